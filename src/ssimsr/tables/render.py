"""Generic table rendering: a :class:`Table`, its cells as text and its .tex/.csv/.md files.

A table's ``data`` is the plain numeric frame that goes to CSV; ``display`` (optional)
the formatted strings for LaTeX/Markdown; ``bold`` a boolean mask of the cells set in
bold. ``<x>_mean`` / ``<x>_sd`` column pairs collapse into one "mean ± sd" column (just
the mean when sd is NaN). Nothing here knows about the paper.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..io.atomic import write_text
from ..evaluation.lpips_nets import NETS, lpips_column

PLUS_MINUS = " ± "
NA = "n/a"


# --------------------------------------------------------------------------- formatting

def fmt_p(v: float) -> str:
    if v == 0 or abs(v) >= 1e-6:
        return f"{v:.6f}"
    return f"{v:.2e}"


def fmt_hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600:d}:{s // 60 % 60:02d}:{s % 60:02d}"


def base_column(col: str) -> str:
    for suffix in ("_mean", "_sd"):
        if col.endswith(suffix):
            return col[: -len(suffix)]
    return col


def _default_formatter(col: str) -> Callable[[object], str]:
    """Formatter chosen from a column name (``_mean`` / ``_sd`` suffixes ignored).

    integers (sizes, epochs, counts, seeds): no decimals; ``lambda_s``: ``%g``;
    p-values (``p``, ``p_*``, ``*_p``): 6 decimals, scientific below 1e-6;
    degrees of freedom (``df*``): 2 decimals; PSNR (name contains ``psnr``): 2 decimals;
    durations (``seconds``, ``*time_s``): h:mm:ss; any other float: 4 decimals.
    """
    name = base_column(str(col)).lower()
    if name in ("dataset_size", "epochs", "epoch", "n", "n_seeds", "n_images", "seed", "n_pairs"):
        return lambda v: f"{int(round(float(v))):d}"
    if name in ("lambda_s", "a", "b"):
        return lambda v: f"{float(v):g}"
    if name == "p" or name.startswith("p_") or name.endswith("_p") or "p_value" in name:
        return lambda v: fmt_p(float(v))
    if name.startswith("df"):
        return lambda v: f"{float(v):.2f}"
    if name == "seconds" or name.endswith("time_s"):
        return lambda v: fmt_hms(float(v))
    if "psnr" in name:
        return lambda v: f"{float(v):.2f}"
    return lambda v: f"{float(v):.4f}"


def format_value(value, col: str = "", fmt=None) -> str:
    """One cell as text: NaN -> ``n/a``, strings unchanged, numbers by ``fmt`` or the column name.

    ``fmt`` is a format string (``"{:.3f}"``) or a callable; default: see
    :func:`_default_formatter`.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return NA
    if isinstance(value, (str, bool, np.bool_)):
        return str(value)
    try:
        if pd.isna(value):
            return NA
    except (TypeError, ValueError):
        pass
    if fmt is None:
        fmt = _default_formatter(col)
    if isinstance(fmt, str):
        return fmt.format(value)
    return fmt(value)


#: Headers of the metrics that are no loss term. A loss term's header is its registry label
#: (``registry.LossTerm.label``, :func:`metric_label`): one home, a new term's included.
METRIC_LABELS = {
    "total": "Total loss", "psnr": "PSNR", "ssim": "SSIM",
    "psnr_y": "PSNR (Y)", "ssim_y": "SSIM (Y)", **{lpips_column(net): f"LPIPS {net}" for net in NETS},
}


def metric_label(name: str) -> str | None:
    """The header of a metric or loss term (by its registry name), None if unknown."""
    from .. import registry

    term = registry.loss_terms().get(name)
    if term is not None:
        return term.label or term.name
    return METRIC_LABELS.get(name)


_HEADERS = {
    "dataset": "Dataset", "model": "Model", "preset": "Preset", "study": "Study", "vgg": "VGG",
    "vgg_layers": "VGG19 layers", "lambda_s": "λ_s", "seed": "Seed", "dataset_size": "Dataset size",
    "epochs": "Epochs", "epoch": "Epoch", "n_seeds": "Seeds", "n_images": "Images",
    "training_time_s": "Training time", "experiment": "Paper exp.", "stage": "Stage",
    "quantity": "Quantity", "ours": "Ours", "paper": "Paper", "diff": "Ours − paper",
    "comparison": "Comparison", "metric": "Metric", "statistic": "Statistic", "test": "Test",
}


def header_label(col: str, headers: Mapping[str, str] | None = None) -> str:
    if headers and col in headers:
        return headers[col]
    if col in _HEADERS:
        return _HEADERS[col]
    if metric_label(col) is not None:
        return metric_label(col)
    m = re.fullmatch(r"(.+)_(start|end)", col)
    if m and metric_label(m.group(1)) is not None:
        return f"{metric_label(m.group(1))} ({m.group(2)})"
    return col


# LaTeX: escape the special characters, map the few Unicode symbols the tables use.
_TEX_TOKENS = [
    ("λ_s", r"$\lambda_s$"), ("±", r"$\pm$"), ("≈", r"$\approx$"), ("λ", r"$\lambda$"),
    ("Δ", r"$\Delta$"), ("−", "$-$"), ("–", "--"), ("≤", r"$\leq$"), ("≥", r"$\geq$"), ("×", r"$\times$"),
    ("<", "$<$"), (">", "$>$"), ("|", r"\textbar{}"),
]
_TEX_CHARS = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
}
_TEX_RE = re.compile("|".join(re.escape(t) for t, _ in _TEX_TOKENS))


def tex_escape(text: str) -> str:
    """Plain text (with λ, ±, ≈, Δ, −) -> LaTeX-safe text."""
    out, pos = [], 0
    mapping = dict(_TEX_TOKENS)
    for m in _TEX_RE.finditer(text):
        out.append("".join(_TEX_CHARS.get(c, c) for c in text[pos:m.start()]))
        out.append(mapping[m.group(0)])
        pos = m.end()
    out.append("".join(_TEX_CHARS.get(c, c) for c in text[pos:]))
    return "".join(out)


def _md_escape(text: str) -> str:
    return text.replace("|", r"\|")


# --------------------------------------------------------------------------- Table + writing

@dataclass
class Table:
    """A table: numeric ``data`` (CSV), optional ``display`` strings and ``bold`` mask.

    ``bold`` is aligned with ``display`` when that is given, else with ``data`` (a mask
    on ``<x>_mean`` carries over to the collapsed "mean ± sd" column).
    """

    data: pd.DataFrame
    caption: str
    bold: pd.DataFrame | None = None
    display: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)
    formats: dict = field(default_factory=dict)
    headers: dict = field(default_factory=dict)

    def write(self, stem, label: str | None = None, provenance: str | None = None) -> dict[str, Path]:
        return write_table(self.data, stem, self.caption, bold=self.bold, label=label,
                           display=self.display, formats=self.formats, notes=self.notes,
                           headers=self.headers, provenance=provenance)

    def rendered(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(display strings, bold mask) as used for LaTeX / Markdown."""
        return _prepare_display(self.data, self.bold, self.display, self.formats)

    def to_markdown(self) -> str:
        disp, mask = self.rendered()
        return _render_markdown(disp, mask, self.caption, self.notes, self.headers)

    def to_latex(self, label: str | None = None) -> str:
        disp, mask = self.rendered()
        return _render_latex(disp, mask, self.caption, label, self.notes, self.headers)


def _flat(df: pd.DataFrame, mask: pd.DataFrame | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reset a non-default index into columns; align the bold mask to the result."""
    if mask is None:
        mask = pd.DataFrame(False, index=df.index, columns=df.columns)
    else:
        if isinstance(mask, pd.Series):
            raise TypeError("bold must be a DataFrame mask (columns = table columns)")
        extra = [c for c in mask.columns if c not in df.columns]
        if extra:
            raise ValueError(f"bold mask has columns not in the table: {extra}")
        mask = mask.reindex(index=df.index, columns=df.columns).eq(True)
    default_index = isinstance(df.index, pd.RangeIndex) and df.index.name is None
    if not default_index:
        df = df.reset_index()
        new = [c for c in df.columns if c not in mask.columns]
        mask = mask.reset_index(drop=True)
        for c in new:
            mask[c] = False
        mask = mask[df.columns]
    else:
        df = df.reset_index(drop=True)
        mask = mask.reset_index(drop=True)
    return df, mask


def _prepare_display(data: pd.DataFrame, bold, display, formats) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Strings for tex/md: ``display`` as given, else ``data`` formatted with mean ± sd collapsed."""
    formats = formats or {}
    if display is not None:
        disp, mask = _flat(display, bold)
        return disp.astype(object).map(lambda v: format_value(v)), mask
    df, mask = _flat(data, bold)
    cols = list(df.columns)
    out, out_mask = {}, {}
    for col in cols:
        col = str(col)
        if col.endswith("_sd") and f"{col[:-3]}_mean" in cols:
            continue  # merged into its _mean column
        fmt = formats.get(col, formats.get(base_column(col)))
        if col.endswith("_mean") and f"{col[:-5]}_sd" in cols:
            base = col[:-5]
            sd_col = f"{base}_sd"
            cells = []
            for m, s in zip(df[col], df[sd_col]):
                text = format_value(m, base, fmt)
                if text != NA and not pd.isna(s):
                    text = f"{text}{PLUS_MINUS}{format_value(s, base, fmt).lstrip('+')}"
                cells.append(text)
            out[base] = cells
            out_mask[base] = (mask[col] | mask[sd_col]).to_numpy()
        else:
            out[col] = [format_value(v, col, fmt) for v in df[col]]
            out_mask[col] = mask[col].to_numpy()
    return pd.DataFrame(out, dtype=object), pd.DataFrame(out_mask).astype(bool)


_NUMERIC_CELL = re.compile(r"^(\*\*)?[-+−]?(\d|\.\d|n/a$|unavailable$|inf|nan)")


def _numeric_columns(disp: pd.DataFrame) -> list[bool]:
    """Right-align a column when all its cells look like numbers (or n/a / unavailable)."""
    flags = []
    for col in disp.columns:
        cells = [str(v) for v in disp[col]]
        flags.append(bool(cells) and all(_NUMERIC_CELL.match(c) for c in cells))
    return flags


def _render_markdown(disp, mask, caption, notes, headers, provenance=None) -> str:
    cells = disp.copy()
    for col in cells.columns:
        cells[col] = [f"**{_md_escape(v)}**" if b else _md_escape(v) for v, b in zip(disp[col], mask[col])]
    cells.columns = [_md_escape(header_label(c, headers)) for c in cells.columns]
    align = ["right" if n else "left" for n in _numeric_columns(disp)]
    body = cells.to_markdown(index=False, disable_numparse=True, colalign=align)
    parts = [f"**{caption}**", *([f"*{_md_escape(provenance)}*"] if provenance else []), "", body]
    for note in notes or []:
        parts += ["", f"*Note:* {note}"]
    return "\n".join(parts) + "\n"


def _render_latex(disp, mask, caption, label, notes, headers, provenance=None) -> str:
    cells = disp.copy()
    for col in cells.columns:
        cells[col] = [rf"\textbf{{{tex_escape(v)}}}" if b else tex_escape(v)
                      for v, b in zip(disp[col], mask[col])]
    cells.columns = [tex_escape(header_label(c, headers)) for c in cells.columns]
    numeric = _numeric_columns(disp)
    column_format = "".join("r" if n else "l" for n in numeric)
    styler = cells.style.hide(axis="index")
    caption = f"{caption} {provenance}" if provenance else caption
    tex = styler.to_latex(hrules=True, caption=tex_escape(caption), label=label,
                          position_float="centering", column_format=column_format)
    if notes:
        note_tex = "\n".join(rf"\par\smallskip\footnotesize {tex_escape(n)}" for n in notes)
        tex = tex.replace(r"\end{table}", note_tex + "\n" + r"\end{table}")
    return tex


def write_table(df: pd.DataFrame, stem, caption: str, bold: pd.DataFrame | None = None,
                label: str | None = None, *, display: pd.DataFrame | None = None,
                formats: Mapping | None = None, notes: Sequence[str] | None = None,
                headers: Mapping[str, str] | None = None, provenance: str | None = None) -> dict[str, Path]:
    """Write ``<stem>.tex``, ``<stem>.csv`` and ``<stem>.md`` (each atomically); return the paths.

    ``df`` goes to the CSV unchanged (plain numbers, full precision; a non-default index
    becomes columns). The tex/md renderings use ``display`` (strings) when given, else
    ``df`` formatted per column (:func:`format_value`, ``formats`` overriding by column or
    base name) with ``<x>_mean``/``<x>_sd`` pairs collapsed into "mean ± sd".
    ``bold`` is a boolean mask (any subset of the columns; missing cells are False) of the
    cells to set in bold: ``\\textbf{}`` in LaTeX, ``**x**`` in Markdown. ``label`` is the
    LaTeX ``\\label``; ``notes`` are printed under the table. ``provenance`` (one sentence: which
    code and config produced the table, ``ssimsr.pipeline.provenance.describe``) ends the LaTeX caption
    and is the line under the Markdown caption; the CSV holds the data alone.
    """
    stem = Path(stem)
    notes = list(notes or [])
    disp, mask = _prepare_display(df, bold, display, formats)
    flat, _ = _flat(df, None)
    tex = _render_latex(disp, mask, caption, label, notes, headers, provenance)
    md = _render_markdown(disp, mask, caption, notes, headers, provenance)
    buf = io.StringIO()
    flat.to_csv(buf, index=False)
    paths = {ext: stem.with_name(f"{stem.name}.{ext}") for ext in ("tex", "csv", "md")}
    write_text(paths["csv"], buf.getvalue())
    write_text(paths["tex"], tex)
    write_text(paths["md"], md)
    return paths


# --------------------------------------------------------------------------- bold = best

def best_mask(df: pd.DataFrame, group_cols: Sequence[str], value_cols: Sequence[str],
              higher_is_better: Mapping[str, bool] | bool, decimals: Mapping[str, int] | int | None = None,
              rows: pd.Series | None = None) -> pd.DataFrame:
    """Boolean mask (``df``'s index and columns) of the best value of each column per group.

    For every column in ``value_cols``, a cell is True when it equals the maximum
    (``higher_is_better[col]`` True) or minimum of its group (rows sharing
    ``group_cols``; the whole frame when empty); ties are all True, NaN never.
    ``decimals`` (per column or for all) compares rounded values, so cells that print the
    same are bold together. ``rows`` (boolean Series) restricts the candidates.
    """
    group_cols, value_cols = list(group_cols), list(value_cols)
    missing = [c for c in group_cols + value_cols if c not in df.columns]
    if missing:
        raise ValueError(f"best_mask: columns not in the table: {missing}")
    mask = pd.DataFrame(False, index=df.index, columns=df.columns)
    cand = pd.Series(True, index=df.index) if rows is None else rows.reindex(df.index).eq(True)
    for col in value_cols:
        hib = higher_is_better if isinstance(higher_is_better, bool) else higher_is_better[col]
        vals = pd.to_numeric(df[col], errors="coerce").astype(float)
        dec = decimals if (decimals is None or isinstance(decimals, int)) else decimals.get(col)
        if dec is not None:
            vals = vals.round(dec)
        vals = vals.where(cand)
        if group_cols:
            keys = [df[c] for c in group_cols]
            best = vals.groupby(keys, dropna=False, sort=False).transform("max" if hib else "min")
        else:
            best = pd.Series(vals.max() if hib else vals.min(), index=df.index)
        close = np.isclose(vals.to_numpy(), best.to_numpy(), rtol=1e-12, atol=0.0)
        mask[col] = close & vals.notna().to_numpy()
    return mask

