"""The paper's tables from the workflow's long result tables, plus "paper vs ours".

Inputs (long ``pandas`` frames written by ``ssimsr collect`` / ``ssimsr stats``):

``history``
    one row per (run, epoch, split): run columns ``study, preset, model, dataset,
    lambda_s, seed, vgg`` (+ ``vgg_layers, epochs, dataset_size, lambda_b, lambda_f,
    lambda_p, perceptual_norm``) and ``epoch`` (0: the validation of the initial weights,
    before the first step, val only; training epochs from 1),
    ``split`` (``train`` / ``val``), ``total, bw_mse, fw_mse, perceptual, ssim_n, psnr,
    ssim, seconds``.
``per_image``
    one row per (run, image): run columns, ``set`` (``val`` / ``showcase``), ``image`` and
    ``psnr, ssim, psnr_y, ssim_y, lpips_alex, lpips_squeeze, lpips_vgg`` (LPIPS NaN where
    unavailable, with ``lpips_<net>_status`` = ``ok`` / ``unavailable: <reason>``).
``comparisons``
    one row per (study, preset, model, dataset, vgg, comparison, metric) with ``status``
    and the statistics of :func:`ssimsr.stats.compare`; ``comparison`` is ``ls1_vs_ls2``
    (variant a minus variant b).

Every table builder returns a :class:`Table`: ``data`` is the plain numeric frame that
goes to CSV; ``display`` (optional) the formatted strings for LaTeX/Markdown; ``bold`` a
boolean mask of the cells set in bold. Several seeds are aggregated into ``<x>_mean`` and
``<x>_sd`` columns (SD with ddof = 1; NaN for one seed); the LaTeX/Markdown renderings
collapse each such pair into one "mean ± sd" column (just the mean when sd is NaN).
:func:`write_table` writes ``<stem>.tex`` (booktabs, via ``Styler.to_latex``),
``<stem>.csv`` and ``<stem>.md``, each atomically.

The paper's published numbers live in ``ssimsr/published/*.csv``
(:func:`load_published`, transcription notes in ``published/README.md``).
"""

from __future__ import annotations

import io
import math
import re
import warnings
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from .atomic import write_text
from .balance import DOMINANCE_RATIO, weighted_terms

WEIGHTED_TERMS = weighted_terms()
from .balance import shares as _term_shares

__all__ = [
    "Table",
    "write_table",
    "format_value",
    "best_mask",
    "run_stages",
    "table1",
    "loss_shares",
    "table_a2",
    "table_stats",
    "table4",
    "verdict",
    "paper_vs_ours",
    "load_published",
    "PUBLISHED",
]

#: Columns identifying one training run.
RUN_KEYS = ("study", "preset", "model", "dataset", "lambda_s", "seed", "vgg")
#: Metrics of Tables 2/3 in the paper's column order.
STATS_METRICS = ("lpips_alex", "lpips_squeeze", "lpips_vgg", "psnr", "ssim")
#: Published tables shipped as package data.
PUBLISHED = ("table1", "table2", "table3", "table4", "table_a2")
#: Lower is better for these metrics (everything else: higher is better).
LOWER_IS_BETTER = ("total", "bwmse", "bw_mse", "fwmse", "fw_mse", "perceptual", "perc", "ssim_n",
                   "lpips_alex", "lpips_squeeze", "lpips_vgg")

_PM = " ± "
_NA = "n/a"


# --------------------------------------------------------------------------- formatting

def _fmt_p(v: float) -> str:
    if v == 0 or abs(v) >= 1e-6:
        return f"{v:.6f}"
    return f"{v:.2e}"


def _fmt_hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600:d}:{s // 60 % 60:02d}:{s % 60:02d}"


def _base(col: str) -> str:
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
    name = _base(str(col)).lower()
    if name in ("dataset_size", "epochs", "epoch", "n", "n_seeds", "n_images", "seed", "n_pairs"):
        return lambda v: f"{int(round(float(v))):d}"
    if name in ("lambda_s", "a", "b"):
        return lambda v: f"{float(v):g}"
    if name == "p" or name.startswith("p_") or name.endswith("_p") or "p_value" in name:
        return lambda v: _fmt_p(float(v))
    if name.startswith("df"):
        return lambda v: f"{float(v):.2f}"
    if name == "seconds" or name.endswith("time_s"):
        return lambda v: _fmt_hms(float(v))
    if "psnr" in name:
        return lambda v: f"{float(v):.2f}"
    return lambda v: f"{float(v):.4f}"


def format_value(value, col: str = "", fmt=None) -> str:
    """One cell as text: NaN -> ``n/a``, strings unchanged, numbers by ``fmt`` or the column name.

    ``fmt`` is a format string (``"{:.3f}"``) or a callable; default: see
    :func:`_default_formatter`.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return _NA
    if isinstance(value, (str, bool, np.bool_)):
        return str(value)
    try:
        if pd.isna(value):
            return _NA
    except (TypeError, ValueError):
        pass
    if fmt is None:
        fmt = _default_formatter(col)
    if isinstance(fmt, str):
        return fmt.format(value)
    return fmt(value)


_METRIC_LABELS = {
    "total": "Total loss", "bwmse": "bwMSE", "bw_mse": "bwMSE", "fwmse": "fwMSE", "fw_mse": "fwMSE",
    "perceptual": "L_perc", "perc": "L_perc", "ssim_n": "L_SSIM_N", "psnr": "PSNR", "ssim": "SSIM",
    "psnr_y": "PSNR (Y)", "ssim_y": "SSIM (Y)", "lpips_alex": "LPIPS alex",
    "lpips_squeeze": "LPIPS squeeze", "lpips_vgg": "LPIPS vgg",
}
_HEADERS = {
    "dataset": "Dataset", "model": "Model", "preset": "Preset", "study": "Study", "vgg": "VGG",
    "vgg_layers": "VGG19 layers", "lambda_s": "λ_s", "seed": "Seed", "dataset_size": "Dataset size",
    "epochs": "Epochs", "epoch": "Epoch", "n_seeds": "Seeds", "n_images": "Images",
    "training_time_s": "Training time", "experiment": "Paper exp.", "stage": "Stage",
    "quantity": "Quantity", "ours": "Ours", "paper": "Paper", "diff": "Ours − paper",
    "comparison": "Comparison", "metric": "Metric", "statistic": "Statistic", "test": "Test",
}


def _header(col: str, headers: Mapping[str, str] | None = None) -> str:
    if headers and col in headers:
        return headers[col]
    if col in _HEADERS:
        return _HEADERS[col]
    if col in _METRIC_LABELS:
        return _METRIC_LABELS[col]
    m = re.fullmatch(r"(.+)_(start|end)", col)
    if m and m.group(1) in _METRIC_LABELS:
        return f"{_METRIC_LABELS[m.group(1)]} ({m.group(2)})"
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

    def write(self, stem, label: str | None = None) -> dict[str, Path]:
        return write_table(self.data, stem, self.caption, bold=self.bold, label=label,
                           display=self.display, formats=self.formats, notes=self.notes,
                           headers=self.headers)

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
        fmt = formats.get(col, formats.get(_base(col)))
        if col.endswith("_mean") and f"{col[:-5]}_sd" in cols:
            base = col[:-5]
            sd_col = f"{base}_sd"
            cells = []
            for m, s in zip(df[col], df[sd_col]):
                text = format_value(m, base, fmt)
                if text != _NA and not pd.isna(s):
                    text = f"{text}{_PM}{format_value(s, base, fmt).lstrip('+')}"
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


def _render_markdown(disp, mask, caption, notes, headers) -> str:
    cells = disp.copy()
    for col in cells.columns:
        cells[col] = [f"**{_md_escape(v)}**" if b else _md_escape(v) for v, b in zip(disp[col], mask[col])]
    cells.columns = [_md_escape(_header(c, headers)) for c in cells.columns]
    align = ["right" if n else "left" for n in _numeric_columns(disp)]
    body = cells.to_markdown(index=False, disable_numparse=True, colalign=align)
    parts = [f"**{caption}**", "", body]
    for note in notes or []:
        parts += ["", f"*Note:* {note}"]
    return "\n".join(parts) + "\n"


def _render_latex(disp, mask, caption, label, notes, headers) -> str:
    cells = disp.copy()
    for col in cells.columns:
        cells[col] = [rf"\textbf{{{tex_escape(v)}}}" if b else tex_escape(v)
                      for v, b in zip(disp[col], mask[col])]
    cells.columns = [tex_escape(_header(c, headers)) for c in cells.columns]
    numeric = _numeric_columns(disp)
    column_format = "".join("r" if n else "l" for n in numeric)
    styler = cells.style.hide(axis="index")
    tex = styler.to_latex(hrules=True, caption=tex_escape(caption), label=label,
                          position_float="centering", column_format=column_format)
    if notes:
        note_tex = "\n".join(rf"\par\smallskip\footnotesize {tex_escape(n)}" for n in notes)
        tex = tex.replace(r"\end{table}", note_tex + "\n" + r"\end{table}")
    return tex




def write_table(df: pd.DataFrame, stem, caption: str, bold: pd.DataFrame | None = None,
                label: str | None = None, *, display: pd.DataFrame | None = None,
                formats: Mapping | None = None, notes: Sequence[str] | None = None,
                headers: Mapping[str, str] | None = None) -> dict[str, Path]:
    """Write ``<stem>.tex``, ``<stem>.csv`` and ``<stem>.md`` (each atomically); return the paths.

    ``df`` goes to the CSV unchanged (plain numbers, full precision; a non-default index
    becomes columns). The tex/md renderings use ``display`` (strings) when given, else
    ``df`` formatted per column (:func:`format_value`, ``formats`` overriding by column or
    base name) with ``<x>_mean``/``<x>_sd`` pairs collapsed into "mean ± sd".
    ``bold`` is a boolean mask (any subset of the columns; missing cells are False) of the
    cells to set in bold: ``\\textbf{}`` in LaTeX, ``**x**`` in Markdown. ``label`` is the
    LaTeX ``\\label``; ``notes`` are printed under the table.
    """
    stem = Path(stem)
    notes = list(notes or [])
    disp, mask = _prepare_display(df, bold, display, formats)
    flat, _ = _flat(df, None)
    tex = _render_latex(disp, mask, caption, label, notes, headers)
    md = _render_markdown(disp, mask, caption, notes, headers)
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


# --------------------------------------------------------------------------- history helpers

def _run_keys(df: pd.DataFrame) -> list[str]:
    return [c for c in RUN_KEYS if c in df.columns]


def _select(df: pd.DataFrame, what: str, **filters) -> pd.DataFrame:
    """Rows matching every non-None filter; ValueError naming the values present otherwise."""
    for col, value in filters.items():
        if value is None:
            continue
        if col not in df.columns:
            raise ValueError(f"{what}: column {col!r} missing (cannot select {col}={value!r})")
        if col == "lambda_s":
            sel = np.isclose(df[col].astype(float), float(value))
        else:
            sel = df[col] == value
        if not sel.any():
            raise ValueError(f"{what}: no rows with {col} == {value!r} "
                             f"(present: {sorted(map(str, df[col].dropna().unique()))})")
        df = df[sel]
    return df


def _unique_or_fail(df: pd.DataFrame, cols: Iterable[str], what: str) -> None:
    for col in cols:
        if col in df.columns and df[col].nunique(dropna=False) > 1:
            raise ValueError(f"{what}: several values of {col!r} remain "
                             f"({sorted(map(str, df[col].unique()))}); pass {col}=... to choose one")


def _default_study(df: pd.DataFrame, preferred: str | None) -> str | None:
    if preferred is None or "study" not in df.columns:
        return None
    return preferred if (df["study"] == preferred).any() else None


def run_stages(history: pd.DataFrame, metrics: Mapping[str, str], split: str = "val",
               train_seconds: bool = False) -> pd.DataFrame:
    """One row per run: ``<name>_start`` (epoch 1) and ``<name>_end`` (last epoch) values.

    Epoch-0 rows (validation before training) are ignored here; see :func:`loss_shares`.

    ``metrics`` maps output names to history columns (``{"bwmse": "bw_mse"}``); values are
    taken from the ``split`` rows. Adds ``epoch_start``, ``epoch_end`` and, with
    ``train_seconds``, ``training_time_s`` (sum of ``seconds`` over the run's train rows).
    Run attributes ``vgg_layers``, ``epochs``, ``dataset_size`` are carried when present.
    Warns when a run's last epoch is below its configured ``epochs``.
    """
    keys = _run_keys(history)
    if not keys:
        raise ValueError("run_stages: history has none of the run columns " + str(RUN_KEYS))
    need = ["epoch", "split", *metrics.values()]
    missing = [c for c in need if c not in history.columns]
    if missing:
        raise ValueError(f"run_stages: history lacks columns {missing}")
    # epoch 0 (the initial weights, before any step) is neither "start" nor "end"
    rows = history[(history["split"] == split) & (history["epoch"] >= 1)]
    if rows.empty:
        raise ValueError(f"run_stages: no rows with split == {split!r} and epoch >= 1")
    dup = rows.duplicated(subset=keys + ["epoch"], keep=False)
    if dup.any():
        raise ValueError(f"run_stages: duplicated (run, epoch) rows in split {split!r}: "
                         f"{rows.loc[dup, keys + ['epoch']].head(3).to_dict('records')}")
    attrs = [c for c in ("vgg_layers", "epochs", "dataset_size") if c in rows.columns]
    out = []
    for key, run in rows.groupby(keys, sort=True, dropna=False):
        run = run.sort_values("epoch")
        first = run[run["epoch"] == 1]
        first = first.iloc[0] if len(first) else run.iloc[0]
        last = run.iloc[-1]
        rec = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        for a in attrs:
            rec[a] = run[a].iloc[0]
        rec["epoch_start"], rec["epoch_end"] = int(first["epoch"]), int(last["epoch"])
        if "epochs" in rec and int(last["epoch"]) < int(rec["epochs"]):
            warnings.warn(f"run {rec}: last logged epoch {int(last['epoch'])} < configured "
                          f"epochs {int(rec['epochs'])}; using the last logged epoch as 'end'",
                          stacklevel=2)
        for name, col in metrics.items():
            rec[f"{name}_start"] = float(first[col])
            rec[f"{name}_end"] = float(last[col])
        out.append(rec)
    frame = pd.DataFrame(out)
    if train_seconds:
        if "seconds" not in history.columns:
            raise ValueError("run_stages: history lacks 'seconds'")
        train = history[history["split"] == "train"]
        secs = train.groupby(keys, dropna=False)["seconds"].sum().rename("training_time_s").reset_index()
        frame = frame.merge(secs, on=keys, how="left")
    return frame


def _aggregate_seeds(per_run: pd.DataFrame, group: list[str], values: list[str]) -> pd.DataFrame:
    """mean / sd (ddof=1) over seeds of ``values`` per ``group``; adds ``n_seeds``."""
    g = per_run.groupby(group, sort=True, dropna=False)
    out = g.size().rename("n_seeds").reset_index()
    stats = []
    for v in values:
        stats.append(g[v].mean().rename(f"{v}_mean"))
        stats.append(g[v].std(ddof=1).rename(f"{v}_sd"))
    stats = pd.concat(stats, axis=1).reset_index()
    return out.merge(stats, on=group, how="left")


def _several(df: pd.DataFrame, col: str) -> bool:
    return col in df.columns and df[col].nunique(dropna=False) > 1


# --------------------------------------------------------------------------- Table 1

TABLE1_METRICS = {"total": "total", "bwmse": "bw_mse", "psnr": "psnr", "ssim": "ssim"}
TABLE1_VALUES = [f"{m}_{s}" for m in TABLE1_METRICS for s in ("start", "end")]


def table1(history: pd.DataFrame, seeds_agg: bool = True, study: str | None = "table1",
           split: str = "val") -> Table:
    """Table 1: validation total loss, bwMSE, PSNR, SSIM after epoch 1 and after the last epoch.

    Expects ``history`` columns ``dataset, model, lambda_s, seed, epoch, split, total,
    bw_mse, psnr, ssim`` (+ ``study, preset, vgg, dataset_size, epochs`` when present).
    Rows of ``study`` only (when that study is present). One row per ([preset,]
    dataset, model, [vgg,] lambda_s) — preset / vgg only when several occur.
    ``seeds_agg``: columns ``<metric>_<start|end>_mean`` / ``_sd`` and ``n_seeds``;
    otherwise one row per seed with plain ``<metric>_<start|end>`` columns.
    Bold: best end-of-training value per ([preset,] dataset, model) group
    (lower total/bwMSE, higher PSNR/SSIM).
    """
    hist = _select(history, "table1", study=_default_study(history, study))
    per_run = run_stages(hist, TABLE1_METRICS, split=split)
    group = [c for c in ("preset",) if _several(per_run, c)] + ["dataset", "model"]
    group += [c for c in ("vgg",) if _several(per_run, c)]
    attrs = [c for c in ("dataset_size", "epochs") if c in per_run.columns]
    if seeds_agg:
        data = _aggregate_seeds(per_run, group + ["lambda_s"] + attrs, TABLE1_VALUES)
        end_cols = [f"{m}_end_mean" for m in TABLE1_METRICS]
    else:
        cols = group + ["lambda_s", "seed"] + attrs + TABLE1_VALUES
        data = per_run[[c for c in cols if c in per_run.columns]]
        data = data.sort_values(group + ["lambda_s", "seed"], kind="mergesort").reset_index(drop=True)
        end_cols = [f"{m}_end" for m in TABLE1_METRICS]
    hib = {c: not c.startswith(("total", "bwmse")) for c in end_cols}
    bold = best_mask(data, group, end_cols, hib)
    n_seeds = per_run.groupby(group + ["lambda_s"])["seed"].nunique() if "seed" in per_run else pd.Series([1])
    lo, hi = int(n_seeds.min()), int(n_seeds.max())
    seed_note = f"{lo}" if lo == hi else f"{lo}-{hi}"
    caption = ("Training without and with the SSIM loss (λ_s = 0: none, 1: normalised (1 − SSIM)/2, "
               "2: non-normalised 1 − SSIM): validation results after epoch 1 (start) and after the "
               f"last epoch (end); {'mean ± sd over ' + seed_note + ' seed(s)' if seeds_agg else 'one row per seed'}. "
               "Best end-of-training value per dataset and model in bold.")
    return Table(data=data, caption=caption, bold=bold)


# --------------------------------------------------------------------------- loss shares

LAMBDA_COLUMNS = ("lambda_b", "lambda_f", "lambda_p", "lambda_s")
SHARE_COLUMNS = tuple(f"share_{term}" for term, _ in WEIGHTED_TERMS)


def _pct(v: float) -> str:
    return f"{100 * float(v):.1f} %"


def _ratio(v: float) -> str:
    v = float(v)
    return "∞" if math.isinf(v) else f"{v:.3g}"


def _top_ratio(parts: dict) -> float:
    """The largest weighted term over the sum of the others (NaN with fewer than two)."""
    if len(parts) < 2:
        return math.nan
    top = max(parts.values())
    others = sum(parts.values()) - top
    return top / others if others else math.inf


def loss_shares(history: pd.DataFrame, study: str | None = "table1", split: str = "val",
                seeds_agg: bool = True) -> Table:
    """Each weighted loss term's share of the validation total, before training and at the end.

    Expects ``history`` columns ``epoch, split, bw_mse, fw_mse, perceptual, ssim_n`` and the
    lambdas ``lambda_b, lambda_f, lambda_p, lambda_s`` (``ssimsr collect`` adds them from
    params.json) (+ run columns, ``perceptual_norm``). Two rows per run: ``stage`` ``start``
    (epoch 0: the initial weights, before the first step) and ``end`` (last epoch); columns
    ``share_<term>`` = lambda * term / (sum of the weighted terms), NaN for a term of weight
    0, and ``top_ratio`` = the largest weighted term / the sum of the others (> 100: it
    drowns them; the train log warns). Runs without an epoch-0 row (trained before it was
    logged) have no start row, named in a note. Seeds: ``_mean`` / ``_sd`` columns.
    """
    hist = _select(history, "loss_shares", study=_default_study(history, study))
    missing = [c for c in ("epoch", "split", *LAMBDA_COLUMNS, *(t for t, _ in WEIGHTED_TERMS))
               if c not in hist.columns]
    if missing:
        raise ValueError(f"loss_shares: history lacks columns {missing} (rerun `ssimsr collect`)")
    rows = hist[hist["split"] == split]
    keys = _run_keys(rows)
    extra = [c for c in ("perceptual_norm",) if c in rows.columns]
    long, no_start = [], []
    for key, run in rows.groupby(keys, sort=True, dropna=False):
        run = run.sort_values("epoch")
        trained = run[run["epoch"] >= 1]
        stages = [("start", run[run["epoch"] == 0]), ("end", trained.tail(1))]
        rec = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        for stage, row in stages:
            if row.empty:
                if stage == "start":
                    no_start.append(", ".join(f"{k} {v}" for k, v in rec.items()))
                continue
            row = row.iloc[0]
            lambdas = {lam: float(row[lam]) for lam in LAMBDA_COLUMNS}
            shares = _term_shares(row, lambdas)
            parts = {t: lambdas[lam] * float(row[t]) for t, lam in WEIGHTED_TERMS if lambdas[lam] > 0}
            long.append({**rec, **{c: row[c] for c in extra}, "stage": stage, "epoch": int(row["epoch"]),
                         **{f"share_{t}": shares.get(t, math.nan) for t, _ in WEIGHTED_TERMS},
                         "top_ratio": _top_ratio(parts)})
    if not long:
        raise ValueError(f"loss_shares: no {split!r} rows")
    long = pd.DataFrame(long)
    pre = [c for c in ("preset",) if _several(long, c)]
    group = pre + ["dataset", "model"] + [c for c in ("vgg",) if _several(long, c)]
    group += [c for c in extra if _several(long, c)] + ["lambda_s", "stage", "epoch"]
    group = [c for c in group if c in long.columns]
    values = list(SHARE_COLUMNS) + ["top_ratio"]
    if seeds_agg and "seed" in long.columns:
        data = _aggregate_seeds(long, group, values)
    else:
        data = long[group + [c for c in ("seed",) if c in long.columns] + values]
    data["_s"] = (data["stage"] == "end").astype(int)
    data = data.sort_values([c for c in group if c not in ("stage", "epoch")] + ["_s"],
                            kind="mergesort").drop(columns="_s").reset_index(drop=True)
    # a column of a term no run weights is dropped (e.g. perceptual with lambda_p = 0)
    for col in SHARE_COLUMNS:
        cols = [c for c in data.columns if _base(c) == col]
        if cols and data[cols].isna().all().all():
            data = data.drop(columns=cols)
    formats = {c: _pct for c in SHARE_COLUMNS} | {"top_ratio": _ratio}
    headers = {f"share_{t}": f"{_METRIC_LABELS[t]} share" for t, _ in WEIGHTED_TERMS}
    headers["top_ratio"] = "Largest / rest"
    headers["perceptual_norm"] = "L_perc norm"
    notes = []
    if no_start:
        notes.append("no epoch-0 row (trained before it was logged), start not shown: " + "; ".join(no_start))
    if "share_perceptual" not in [_base(c) for c in data.columns]:
        notes.append("L_perc has weight 0 in every run shown (lambda_p = 0).")
    caption = ("Share of each weighted loss term in the validation total (λ · term / total) before the first "
               "training step (start, epoch 0) and after the last epoch (end)"
               + (", mean ± sd over seeds" if seeds_agg and "n_seeds" in data.columns else "")
               + f". n/a: weight 0. Largest / rest: the largest weighted term divided by the sum of the others "
               f"(above {DOMINANCE_RATIO:g} it drowns them; the train log warns). With L_perc, the values depend "
               "on the VGG19 weights file: only ImageNet weights give the magnitudes of the paper's setting.")
    return Table(data=data, caption=caption, formats=formats, headers=headers, notes=notes)


# --------------------------------------------------------------------------- Table A2

A2_METRICS = {"bwmse": "bw_mse", "perceptual": "perceptual", "fwmse": "fw_mse", "ssim_n": "ssim_n",
              "total": "total", "psnr": "psnr", "ssim": "ssim"}
#: The paper's experiment numbers of Table A2: (vgg tag, lambda_s) -> E<n>.
A2_EXPERIMENTS = {("b4c4-b5c4", 1.0): "E1", ("b4c4-b5c4", 0.0): "E2", ("b1c2-b4c4", 1.0): "E3",
                  ("b1c2-b4c4", 0.0): "E4", ("b2c2-b5c2", 1.0): "E5", ("b2c2-b5c2", 0.0): "E6",
                  ("b3c2-b4c4", 1.0): "E7", ("b3c2-b4c4", 0.0): "E8"}


def table_a2(history: pd.DataFrame, study: str | None = "appendix_a", split: str = "val",
             seeds_agg: bool = True) -> Table:
    """Table A2: the VGG19 layer-pair grid (IRN, DIV2K in the paper).

    Expects ``history`` columns ``vgg, lambda_s, seed, epoch, split, bw_mse, perceptual,
    fw_mse, ssim_n, total, psnr, ssim, seconds`` (+ ``study, preset, vgg_layers, model,
    dataset``). Two rows per (vgg pair, lambda_s) as in the paper: ``stage`` ``start``
    (epoch 1) and ``end`` (last epoch), with bwMSE, L_perc, fwMSE, L_SSIM_N, total loss,
    PSNR, SSIM on the ``split`` rows and ``training_time_s`` = sum of ``seconds`` over the
    run's train rows. ``experiment`` is the paper's E1-E8 label of that (vgg, lambda_s).
    Seeds: ``_mean``/``_sd`` columns when ``seeds_agg``. Bold: best end-of-training values
    per lambda_s (and preset) across the layer pairs (lower losses, higher PSNR/SSIM).
    """
    hist = _select(history, "table_a2", study=_default_study(history, study))
    per_run = run_stages(hist, A2_METRICS, split=split, train_seconds=True)
    for col in ("model", "dataset"):
        if _several(per_run, col):
            raise ValueError(f"table_a2: several values of {col!r} ({sorted(per_run[col].unique())}); "
                             "filter the history first")
    pre = [c for c in ("preset",) if _several(per_run, c)]
    layer_cols = ["vgg"] + [c for c in ("vgg_layers",) if c in per_run.columns]
    long = []
    for stage in ("start", "end"):
        part = per_run[_run_keys(per_run) + [c for c in ("vgg_layers",) if c in per_run.columns]].copy()
        part["stage"] = stage
        part["epoch"] = per_run[f"epoch_{stage}"]
        for m in A2_METRICS:
            part[m] = per_run[f"{m}_{stage}"]
        part["training_time_s"] = per_run["training_time_s"]
        long.append(part)
    long = pd.concat(long, ignore_index=True)
    values = list(A2_METRICS) + ["training_time_s"]
    group = pre + layer_cols + ["lambda_s", "stage", "epoch"]
    if seeds_agg:
        data = _aggregate_seeds(long, group, values)
        value_cols = [f"{m}_mean" for m in A2_METRICS]
    else:
        data = long[group + ["seed"] + values].copy()
        value_cols = list(A2_METRICS)
    data.insert(0, "experiment", [A2_EXPERIMENTS.get((v, float(l)), "") for v, l in
                                  zip(data["vgg"], data["lambda_s"])])
    order = {e: i for i, e in enumerate(sorted(set(A2_EXPERIMENTS.values()), key=lambda s: int(s[1:])))}
    data["_o"] = [order.get(e, len(order)) for e in data["experiment"]]
    data["_s"] = (data["stage"] == "end").astype(int)
    data = data.sort_values(["_o", *pre, "vgg", "lambda_s", "_s"] + (["seed"] if "seed" in data else []),
                            ascending=[True] * (len(pre) + 2) + [False, True] + ([True] if "seed" in data else []),
                            kind="mergesort").drop(columns=["_o", "_s"]).reset_index(drop=True)
    hib = {c: _base(c) in ("psnr", "ssim") for c in value_cols}
    bold = best_mask(data, pre + ["lambda_s"], value_cols, hib, rows=data["stage"] == "end")
    caption = ("Perceptual-loss VGG19 layer pairs (Appendix A grid): validation losses and metrics after "
               "epoch 1 (start) and the last epoch (end), training time = sum of the training epochs' "
               "wall-clock seconds. Best end-of-training value per λ_s across layer pairs in bold.")
    return Table(data=data, caption=caption, bold=bold)


# --------------------------------------------------------------------------- Tables 2 / 3

_WELCH_ROWS = [("t_welch", "t statistic"), ("df_welch", "df"), ("p_welch", "p-value"),
               ("mean_diff", "mean difference"), ("ci_low_welch", "95 % CI (min)"),
               ("ci_high_welch", "95 % CI (max)"), ("cohens_d_pooled", "Cohen's d (pooled SD)")]
_PAIRED_ROWS = [("t_paired", "t statistic"), ("df_paired", "df"), ("p_paired", "p-value"),
                ("mean_diff", "mean difference"), ("ci_low", "95 % CI (min)"), ("ci_high", "95 % CI (max)"),
                ("cohens_dz", "Cohen's d_z"), ("wilcoxon_W", "Wilcoxon W"),
                ("p_wilcoxon", "Wilcoxon p-value")]
_SEED_ROWS = [("t_seed", "t statistic"), ("df_seed", "df"), ("p_seed", "p-value"), ("mean_diff", "mean difference"),
              ("ci_low_seed", "95 % CI (min)"), ("ci_high_seed", "95 % CI (max)"),
              ("sd_seed_diff", "SD of the per-seed differences"), ("mde_seed", "detectable at 80 % power")]
SEED_BLOCK = "per-seed means, n = seeds (verdict)"
WELCH_BLOCK = "unpaired Welch, n = images (the paper's analysis)"
PAIRED_BLOCK = "paired by image, n = images (these models)"


def _parse_comparison(comparison: str) -> tuple[float, float]:
    m = re.fullmatch(r"ls([0-9.]+)_vs_ls([0-9.]+)", comparison)
    if not m:
        raise ValueError(f"comparison {comparison!r} is not of the form 'ls<a>_vs_ls<b>'")
    return float(m.group(1)), float(m.group(2))


def _fmt_stat(key: str, v) -> str:
    if v is None or pd.isna(v):
        return _NA
    if key.startswith("p_"):
        return _fmt_p(float(v))
    if key in ("df_paired", "df_seed"):
        return f"{int(round(float(v)))}"
    if key.startswith("df"):
        return f"{float(v):.2f}"
    if key == "wilcoxon_W":
        return f"{float(v):g}"
    return f"{float(v):.4f}"


def table_stats(comparisons: pd.DataFrame, model: str, dataset: str, comparison: str, *,
                study: str | None = None, preset: str | None = None, vgg: str | None = None,
                metrics: Sequence[str] = STATS_METRICS, alpha: float = 0.05) -> Table:
    """Tables 2 / 3: statistics (rows) x metrics (columns) of one comparison.

    Expects ``comparisons`` columns ``model, dataset, comparison, metric, status`` (+
    ``study, preset, vgg, pairing``) and the :data:`ssimsr.stats.STAT_KEYS`. After
    filtering, each metric must have one row (else ValueError: choose study/preset/vgg).
    ``data`` has columns ``test`` (the block), ``statistic`` (the stats key), ``label``
    and one column per metric; three blocks, each with its n and unit: the verdict test
    (paired t on per-seed mean differences, n = seeds: t, df, p, mean difference, CI, SD of
    the per-seed differences, the difference detectable at 80 % power), the paper's unpaired
    Welch test on per-image values averaged over seeds (n = images: t, Welch df, p, mean
    difference, Welch 95 % CI, pooled-SD Cohen's d) and the image-level paired analysis of
    these trained models (n = images: t, p, mean difference, CI, Cohen's d_z, Wilcoxon W, p).
    ``display`` writes t as "t (df ≈ x)" like the paper; unavailable metrics read
    "unavailable" (reason in the notes). p-values below ``alpha`` are bold.
    """
    a, b = _parse_comparison(comparison)
    sel = _select(comparisons, "table_stats", model=model, dataset=dataset, comparison=comparison,
                  study=study, preset=preset, vgg=vgg)
    rows = {}
    for m in metrics:
        part = sel[sel["metric"] == m]
        if len(part) > 1:
            _unique_or_fail(part, ("study", "preset", "vgg"), f"table_stats({m})")
            raise ValueError(f"table_stats: {len(part)} rows for metric {m!r}")
        rows[m] = part.iloc[0] if len(part) else None
    notes, status = [], {}
    for m, r in rows.items():
        if r is None:
            status[m] = "unavailable: metric not in the comparisons table"
        else:
            st = str(r.get("status", "ok")) if not pd.isna(r.get("status", "ok")) else "ok"
            status[m] = st
        if status[m] != "ok":
            notes.append(f"{m}: {status[m]}")
    def counts(col: str) -> str:
        found = sorted({int(r[col]) for r in rows.values() if r is not None and not pd.isna(r.get(col, math.nan))})
        return "/".join(map(str, found)) if found else "?"

    n_seeds, n_images = counts("n_seeds"), counts("n")
    records, disp_rows, bold_rows = [], [], []
    for block, spec in ((SEED_BLOCK, _SEED_ROWS), (WELCH_BLOCK, _WELCH_ROWS), (PAIRED_BLOCK, _PAIRED_ROWS)):
        for key, label in spec:
            rec = {"test": block, "statistic": key, "label": label}
            for m in metrics:
                r = rows[m]
                rec[m] = float(r[key]) if (r is not None and status[m] == "ok" and key in r
                                           and not pd.isna(r[key])) else math.nan
            records.append(rec)
        for key, label in spec:
            if key.startswith("df"):
                continue  # shown with t
            drow = {"test": block, "statistic": label + (" (df)" if key.startswith("t_") else "")}
            brow = {"test": False, "statistic": False}
            for m in metrics:
                r = rows[m]
                if status[m] != "ok":
                    drow[m], brow[m] = "unavailable", False
                    continue
                val = r.get(key, math.nan)
                text = _fmt_stat(key, val)
                if key.startswith("t_"):
                    dfkey = {"t_welch": "df_welch", "t_seed": "df_seed"}.get(key, "df_paired")
                    sym = "≈" if key == "t_welch" else "="
                    text = f"{text} (df {sym} {_fmt_stat(dfkey, r.get(dfkey, math.nan))})"
                drow[m] = text
                brow[m] = bool(key.startswith("p_") and not pd.isna(val) and float(val) < alpha)
            disp_rows.append(drow)
            bold_rows.append(brow)
    data = pd.DataFrame(records)
    display = pd.DataFrame(disp_rows)
    bold = pd.DataFrame(bold_rows).astype(bool)
    setting = ", ".join(f"{k} {v}" for k, v in (("study", study), ("preset", preset), ("vgg", vgg)) if v)
    caption = (f"{dataset} {model}{' (' + setting + ')' if setting else ''}: λ_s = {a:g} vs λ_s = {b:g} on the "
               f"validation images (differences λ_s = {a:g} minus λ_s = {b:g}). First block, the verdict test: "
               f"paired t on the per-seed mean differences, n = {n_seeds} seed{'' if n_seeds == '1' else 's'} (unit: the training run), with "
               "the smallest difference detectable at 80 % power. Second, the paper's analysis: unpaired Welch "
               "test (Welch-Satterthwaite df, pooled-SD Cohen's d) on the per-image values averaged over the "
               f"seeds, n = {n_images} images per variant (the paper's n = 50). Third, paired tests on the "
               f"per-image differences averaged over the seeds, n = {n_images} images (df = n − 1, Cohen's d_z, "
               f"Wilcoxon signed-rank): they describe these trained models, not training in general. "
               f"p < {alpha:g} in bold.")
    headers = {"test": "Test", "statistic": "Statistic"}
    return Table(data=data, caption=caption, bold=bold, display=display, notes=notes, headers=headers)


# --------------------------------------------------------------------------- Table 4

TABLE4_METRICS = ("lpips_alex", "lpips_squeeze", "lpips_vgg", "psnr", "ssim")


def table4(per_image: pd.DataFrame, model: str = "sr", dataset: str = "bsds300", image_set: str = "showcase",
           *, study: str | None = None, preset: str | None = None, vgg: str | None = None,
           metrics: Sequence[str] = TABLE4_METRICS, lambdas: Sequence[float] | None = None) -> Table:
    """Table 4: per showcase image (columns), each metric for each lambda_s (rows).

    Expects ``per_image`` columns ``model, dataset, set, image, lambda_s, seed`` and the
    metric columns (+ ``study, preset, vgg`` and ``<metric>_status``). The paper used the
    SR model trained on BSDS300. Rows ``metric, lambda_s``; one column per image
    (``<image>_mean``/``_sd`` with several seeds, plain ``<image>`` with one). Bold: best
    per image and metric (lowest LPIPS, highest PSNR/SSIM). All values 4 decimals as in the paper.
    """
    sel = _select(per_image, "table4", model=model, dataset=dataset, set=image_set, study=study,
                  preset=preset, vgg=vgg)
    _unique_or_fail(sel, ("study", "preset", "vgg"), "table4")
    if lambdas is not None:
        sel = sel[np.isin(sel["lambda_s"].astype(float), [float(x) for x in lambdas])]
    metrics = [m for m in metrics if m in sel.columns]
    images = sorted(sel["image"].astype(str).unique())
    lams = sorted(sel["lambda_s"].astype(float).unique())
    multi = "seed" in sel.columns and sel["seed"].nunique() > 1
    records, notes = [], []
    for m in metrics:
        scol = f"{m}_status"
        if scol in sel.columns and sel[m].isna().all():
            reasons = sorted({str(s) for s in sel[scol].dropna().unique() if str(s) != "ok"})
            notes.append(f"{m}: {'; '.join(reasons) or 'unavailable'}")
        for lam in lams:
            rec = {"metric": m, "lambda_s": lam}
            part = sel[np.isclose(sel["lambda_s"].astype(float), lam)]
            for img in images:
                vals = pd.to_numeric(part.loc[part["image"].astype(str) == img, m], errors="coerce")
                if multi:
                    rec[f"{img}_mean"] = float(vals.mean()) if vals.notna().any() else math.nan
                    rec[f"{img}_sd"] = float(vals.std(ddof=1)) if vals.notna().sum() > 1 else math.nan
                else:
                    if len(vals) > 1:
                        raise ValueError(f"table4: {len(vals)} rows for image {img!r}, λ_s={lam:g}")
                    rec[img] = float(vals.iloc[0]) if len(vals) else math.nan
            if multi:
                rec["n_seeds"] = int(part["seed"].nunique())
            records.append(rec)
    data = pd.DataFrame(records)
    value_cols = [f"{img}_mean" if multi else img for img in images]
    bold = pd.DataFrame(False, index=data.index, columns=data.columns)
    for m in metrics:
        rows = data["metric"] == m
        sub = best_mask(data, [], value_cols, m not in LOWER_IS_BETTER, rows=rows, decimals=4)
        bold |= sub
    formats = {img: "{:.4f}" for img in images}
    display = None
    caption = (f"Per-image metrics of the showcase crops ({dataset} {model} models, λ_s = "
               f"{', '.join(f'{x:g}' for x in lams)}{', mean ± sd over seeds' if multi else ''}). "
               "Best value per image and metric in bold (lowest LPIPS, highest PSNR / SSIM).")
    headers = {"metric": "Metric", "lambda_s": "λ_s"}
    return Table(data=data, caption=caption, bold=bold, display=display, notes=notes, formats=formats,
                 headers=headers)


# --------------------------------------------------------------------------- verdict

def _group_text(gd: Mapping) -> str:
    return " ".join(f"{k}={v}" for k, v in gd.items())


def _span(values) -> str:
    values = sorted(set(int(v) for v in values))
    return f"{values[0]}" if len(values) == 1 else f"{values[0]}-{values[-1]}"


def verdict(per_image: pd.DataFrame, pairs=None, published: pd.DataFrame | str | None = "table1", *,
            image_set: str = "val", study: str | None = "table1", metrics: Sequence[str] = ("ssim", "psnr"),
            alpha: float = 0.05, power: float = 0.8) -> Table:
    """Does λ_s = a change what training produces, against λ_s = b? Ours beside the paper's Table 1.

    Expects ``per_image`` columns ``model, dataset, lambda_s, seed, set, image`` and the
    ``metrics`` (+ ``study, preset, vgg``). ``pairs`` is ``report.comparisons`` (default
    :data:`ssimsr.stats.DEFAULT_PAIRS`: 1 vs 0, 1 vs 2). One row per (preset, model,
    dataset, [vgg,] comparison), computed by :func:`ssimsr.stats.compare_variants` (which
    rejects unmatched (seed, image) keys): for each metric ``d<metric>_mean`` = the mean
    difference a − b, ``d<metric>_sd`` = SD over seeds of the per-seed mean differences,
    ``p_<metric>`` = the verdict test (paired t on the per-seed means, n = seeds),
    ``mde_<metric>`` = the smallest true difference the seeds detect with ``power`` at
    ``alpha`` given that SD, ``pimg_<metric>`` = paired t on per-image differences averaged
    over seeds (n = images; these trained models only), and ``paper_d<metric>`` = the
    paper's Table 1 end-of-training difference. ``agree_<metric>`` is 1 where our mean
    difference has the paper's sign, 0 where not. A configured pair that a group lacks is
    named in a note; no pair in any group gives an empty table with those notes.
    """
    from .stats import DEFAULT_PAIRS, check_pairs, comparison_label, compare_variants  # scipy only

    pairs = check_pairs(DEFAULT_PAIRS if pairs is None else pairs)
    sel = _select(per_image, "verdict", set=image_set, study=_default_study(per_image, study))
    if isinstance(published, str):
        published = load_published(published)
    keys = [c for c in ("study", "preset", "model", "dataset", "vgg") if c in sel.columns]
    out, notes = [], []
    for gkey, group in sel.groupby(keys, sort=True, dropna=False):
        gd = dict(zip(keys, gkey if isinstance(gkey, tuple) else (gkey,)))
        present = set(group["lambda_s"].astype(float).unique())
        for a, b in pairs:
            if a not in present or b not in present:
                notes.append(f"λ_s {a:g} vs {b:g} (report.comparisons): not in {_group_text(gd)} "
                             f"(λ_s present: {', '.join(f'{x:g}' for x in sorted(present))}).")
                continue
            res = compare_variants(group, metrics, "lambda_s", a, b, alpha=alpha, power=power).set_index("metric")
            rec = dict(gd, comparison=comparison_label(a, b), n_seeds=int(res["n_seeds"].iloc[0]),
                       n_images=int(res["n"].iloc[0]))
            words = []
            for m in metrics:
                r = res.loc[m]
                rec.update({f"d{m}_mean": r["mean_diff"], f"d{m}_sd": r["sd_seed_diff"], f"p_{m}": r["p_seed"],
                            f"mde_{m}": r["mde_seed"], f"pimg_{m}": r["p_paired"]})
                paper = math.nan
                if published is not None and f"{m}_end" in published.columns:
                    pub = published[(published["dataset"] == gd.get("dataset")) & (published["model"] == gd.get("model"))]
                    va = pub.loc[np.isclose(pub["lambda_s"].astype(float), a), f"{m}_end"]
                    vb = pub.loc[np.isclose(pub["lambda_s"].astype(float), b), f"{m}_end"]
                    if len(va) == 1 and len(vb) == 1:
                        paper = float(va.iloc[0]) - float(vb.iloc[0])
                rec[f"paper_d{m}"] = paper
                ours = rec[f"d{m}_mean"]
                rec[f"agree_{m}"] = (float(np.sign(ours) == np.sign(paper))
                                     if not (pd.isna(paper) or pd.isna(ours) or paper == 0 or ours == 0)
                                     else math.nan)
                p = rec[f"p_{m}"]
                rel = "higher" if ours > 0 else "lower" if ours < 0 else "equal"
                sig = ("one seed: no run-level test" if rec["n_seeds"] < 2
                       else f"p < {alpha:g}" if p < alpha else "n.s.")
                words.append(f"{m.upper()} {rel} ({sig})")
            rec["verdict"] = f"λ_s={a:g} vs {b:g}: " + ", ".join(words)
            out.append(rec)
    value_cols = [f"{p}{m}{s}" for m in metrics for p, s in (("d", "_mean"), ("d", "_sd"), ("p_", ""),
                                                               ("mde_", ""), ("pimg_", ""), ("paper_d", ""),
                                                               ("agree_", ""))]
    data = pd.DataFrame(out, columns=keys + ["comparison", "n_seeds", "n_images"] + value_cols + ["verdict"])
    drop = [c for c in ("study", "vgg") if c in data.columns and not _several(data, c)]
    data = data.drop(columns=drop)
    headers = {"comparison": "Comparison", "verdict": "Verdict"}
    formats = {}
    for m in metrics:
        label = _METRIC_LABELS.get(m, m)
        headers.update({f"d{m}": f"Δ{label} (ours)", f"p_{m}": f"p {label} (seeds)",
                        f"mde_{m}": f"detectable Δ{label}", f"pimg_{m}": f"p {label} (images)",
                        f"paper_d{m}": f"Δ{label} (paper)", f"agree_{m}": f"sign as paper ({label})"})
        formats[f"d{m}"] = "{:+.2f}" if "psnr" in m else "{:+.4f}"
        formats[f"mde_{m}"] = "{:.2f}" if "psnr" in m else "{:.4f}"
        formats[f"paper_d{m}"] = formats[f"d{m}"]
        formats[f"agree_{m}"] = lambda v: "yes" if v == 1 else "no"
        formats[f"pimg_{m}"] = _fmt_p
    n_text = (f"n = {_span(data['n_seeds'])} seeds" if len(data) else "n = seeds")
    img_text = (f"n = {_span(data['n_images'])} images" if len(data) else "n = images")
    caption = (f"λ_s comparisons (a − b) on the {image_set} images. Verdict test: paired t on the per-seed mean "
               f"differences ({n_text}; unit: the training run); Δ (ours) = mean ± SD over seeds of the per-seed "
               f"mean difference; detectable Δ = the smallest true difference these seeds detect with "
               f"{power * 100:g} % power at α = {alpha:g}, from the observed SD. p (images): paired t on the per-image "
               f"differences averaged over seeds ({img_text}), which describes these trained models only. "
               "Δ (paper): difference of the paper's Table 1 end-of-training values.")
    return Table(data=data, caption=caption, formats=formats, headers=headers, notes=notes)


# --------------------------------------------------------------------------- published values

def load_published(name: str) -> pd.DataFrame:
    """A table of the paper's published values (package data ``ssimsr/published/<name>.csv``).

    ``name`` in :data:`PUBLISHED`: ``table1`` (18 rows), ``table2`` / ``table3``
    (statistic x metric), ``table4`` (metric, lambda_s, fig4..fig9), ``table_a2``.
    """
    if name not in PUBLISHED:
        raise ValueError(f"load_published: unknown table {name!r}; available: {list(PUBLISHED)}")
    text = (resources.files("ssimsr") / "published" / f"{name}.csv").read_text(encoding="utf-8")
    return pd.read_csv(io.StringIO(text))


def _as_frame(x) -> pd.DataFrame:
    return x.data if isinstance(x, Table) else x


def _value_col(ours: pd.DataFrame, name: str) -> tuple[str | None, str | None]:
    if f"{name}_mean" in ours.columns:
        return f"{name}_mean", f"{name}_sd"
    if name in ours.columns:
        return name, None
    return None, None


def _quantity_fmt(q: str) -> Callable[[float], str]:
    if q.startswith("p_"):
        return _fmt_p
    if q.startswith("df"):
        return lambda v: f"{v:.2f}"
    if q.endswith("time_s"):
        return _fmt_hms
    if "psnr" in q and not q.startswith(("t_", "ci_", "mean_diff", "cohens")):
        return lambda v: f"{v:.2f}"
    return lambda v: f"{v:.4f}"


def paper_vs_ours(ours, published: pd.DataFrame | None = None, table: str = "table1") -> Table:
    """Our numbers beside the paper's, long format: keys, ``quantity``, ``ours`` (+ ``ours_sd``),
    ``paper``, ``diff`` = ours − paper.

    ``table`` selects the layout (``published`` defaults to :func:`load_published(table)`):

    ``table1``: ``ours`` = :func:`table1` (Table or its data; ``_mean`` columns used when
    present), keys ``[preset,] dataset, model, lambda_s``, quantities ``total/bwmse/psnr/
    ssim _start/_end``.
    ``table_a2``: ``ours`` = :func:`table_a2`, keys ``vgg, lambda_s, stage`` (the paper's
    epoch 1 / epoch 60 rows are ``start`` / ``end``), quantities bwMSE ... SSIM and training time.
    ``table2`` / ``table3``: ``ours`` = :func:`table_stats` for the matching comparison;
    key ``metric``, quantities the Welch statistics of the paper.
    Rows of ours without a published counterpart are dropped.
    """
    ours = _as_frame(ours)
    if published is None:
        published = load_published(table)
    records = []
    if table == "table1":
        keys = ["dataset", "model", "lambda_s"]
        pre = ["preset"] if "preset" in ours.columns else []
        for _, r in ours.iterrows():
            pub = published[(published["dataset"] == r["dataset"]) & (published["model"] == r["model"])
                            & np.isclose(published["lambda_s"].astype(float), float(r["lambda_s"]))]
            if len(pub) != 1:
                continue
            for q in TABLE1_VALUES:
                vcol, scol = _value_col(ours, q)
                if vcol is None:
                    continue
                rec = {k: r[k] for k in pre + keys}
                rec.update(quantity=q, ours=float(r[vcol]), ours_sd=float(r[scol]) if scol else math.nan,
                           paper=float(pub.iloc[0][q]))
                records.append(rec)
    elif table == "table_a2":
        pre = ["preset"] if "preset" in ours.columns else []
        qmap = {"bwmse": "bwmse", "perceptual": "perc", "fwmse": "fwmse", "ssim_n": "ssim_n", "total": "total",
                "psnr": "psnr", "ssim": "ssim", "training_time_s": "training_time_s"}
        pub_end = published.groupby(["vgg", "lambda_s"])["epoch"].transform("max")
        published = published.assign(stage=np.where(published["epoch"] == 1, "start",
                                                     np.where(published["epoch"] == pub_end, "end", "")))
        for _, r in ours.iterrows():
            pub = published[(published["vgg"] == r["vgg"]) & (published["stage"] == r["stage"])
                            & np.isclose(published["lambda_s"].astype(float), float(r["lambda_s"]))]
            if len(pub) != 1:
                continue
            for q, pq in qmap.items():
                vcol, scol = _value_col(ours, q)
                if vcol is None:
                    continue
                rec = {k: r[k] for k in pre + ["experiment", "vgg", "lambda_s", "stage"] if k in r}
                rec.update(quantity=q, ours=float(r[vcol]), ours_sd=float(r[scol]) if scol else math.nan,
                           paper=float(pub.iloc[0][pq]))
                records.append(rec)
    elif table in ("table2", "table3"):
        welch = ours[ours["test"] == WELCH_BLOCK] if "test" in ours.columns else ours
        metrics = [m for m in STATS_METRICS if m in welch.columns and m in published.columns]
        for _, p in published.iterrows():
            o = welch[welch["statistic"] == p["statistic"]]
            if len(o) != 1:
                continue
            for m in metrics:
                records.append({"metric": m, "quantity": p["statistic"], "ours": float(o.iloc[0][m]),
                                "ours_sd": math.nan, "paper": float(p[m])})
    else:
        raise ValueError(f"paper_vs_ours: unsupported table {table!r} (table1, table_a2, table2, table3); "
                         "Table 4's showcase images are not the paper's, compare it by pattern")
    data = pd.DataFrame(records)
    if data.empty:
        raise ValueError(f"paper_vs_ours({table}): no rows of ours match the published table")
    data["diff"] = data["ours"] - data["paper"]
    if data["ours_sd"].isna().all():
        data = data.drop(columns=["ours_sd"])
    disp = data.drop(columns=[c for c in ("ours_sd",) if c in data.columns]).astype(object)
    labels = {"training_time_s": "Training time", **{k: f"{v} (Welch)" if k.startswith(("t_", "df", "p_")) else v
                                                     for k, v in _WELCH_ROWS}}
    for i, r in data.iterrows():
        f = _quantity_fmt(str(r["quantity"]))
        for col in ("ours", "paper", "diff"):
            v = r[col]
            text = _NA if pd.isna(v) else f(float(v))
            if col == "diff" and not pd.isna(v) and r["quantity"] != "training_time_s" and v >= 0:
                text = "+" + text
            if col == "diff" and r["quantity"] == "training_time_s" and not pd.isna(v):
                text = ("-" if v < 0 else "+") + _fmt_hms(abs(float(v)))
            if col == "ours" and "ours_sd" in data.columns and not pd.isna(r["ours_sd"]) and not pd.isna(v):
                text = f"{text}{_PM}{f(float(r['ours_sd']))}"
            disp.at[i, col] = text
        disp.at[i, "quantity"] = labels.get(str(r["quantity"]), _header(str(r["quantity"])))
        if "lambda_s" in disp.columns:
            disp.at[i, "lambda_s"] = f"{float(r['lambda_s']):g}"
    caption = {"table1": "Table 1, ours vs the paper (validation values after epoch 1 / the last epoch)",
               "table_a2": "Table A2, ours vs the paper (VGG19 layer pairs)",
               "table2": "Table 2 statistics (λ_s = 1 vs 2, Welch as the paper), ours vs the paper",
               "table3": "Table 3 statistics (λ_s = 1 vs 0, Welch as the paper), ours vs the paper"}[table]
    return Table(data=data, caption=caption + "; difference = ours − paper.", display=disp)
