"""The paper's published values, shipped as package data in ``ssimsr/tables/published/*.csv``
(transcription notes in ``published/README.md``)."""

from __future__ import annotations

import io
from importlib import resources

import pandas as pd

#: Published tables shipped as package data.
PUBLISHED = ("table1", "table2", "table3", "table4", "table_a2")


def load_published(name: str, printed: bool = False) -> pd.DataFrame:
    """A table of the paper's published values (package data ``ssimsr/tables/published/<name>.csv``).

    ``name`` in :data:`PUBLISHED`: ``table1`` (18 rows), ``table2`` / ``table3``
    (statistic x metric), ``table4`` (metric, lambda_s, fig4..fig9), ``table_a2``.
    ``printed``: every cell as the text printed (strings, e.g. ``"0.0020"``), for the
    rounding error a printed precision carries (:func:`ssimsr.analysis.noise.rounding_variance`).
    """
    if name not in PUBLISHED:
        raise ValueError(f"load_published: unknown table {name!r}; available: {list(PUBLISHED)}")
    text = (resources.files(__package__) / "published" / f"{name}.csv").read_text(encoding="utf-8")
    if printed:
        return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    return pd.read_csv(io.StringIO(text))

