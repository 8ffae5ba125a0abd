"""Paper vs ours: our numbers beside the paper's published values, for one preset or for the
``as_run`` preset (the paper's setting) with ``corrected`` beside it. The bicubic rows beside
them: ``baseline``."""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as np
import pandas as pd


from ..analysis.noise import (
    ALPHA,
    DIFFERS,
    INCONCLUSIVE,
    PER_SEED,
    WITHIN,
    agreement,
    contrast_agreement,
    holm,
    multiplicity_note,
    rounding_variance,
)
from ..pipeline.runs import DEFAULT_PRESET, PAPER_PRESET, same_weight, weight_key
from .paper import A2_METRICS, TABLE1_VALUES
from .published import load_published
from .render import NA, PLUS_MINUS, Table, fmt_hms, fmt_p, header_label
from .runs import RUN_KEYS
from .statistics import STATS_METRICS, WELCH_BLOCK, WELCH_ROWS

#: The preset that reproduces the setting the paper's numbers came from (``PAPER_PRESET``), and
#: the one shown beside it.
BESIDE_PRESET = DEFAULT_PRESET
_PRESET_LABELS = {PAPER_PRESET: f"{PAPER_PRESET}, the paper's setting",
                  BESIDE_PRESET: f"{BESIDE_PRESET}, all losses on"}


def _as_frame(x) -> pd.DataFrame:
    return x.data if isinstance(x, Table) else x


def _value_col(ours: pd.DataFrame, name: str) -> tuple[str | None, str | None]:
    if f"{name}_mean" in ours.columns:
        return f"{name}_mean", f"{name}_sd"
    if name in ours.columns:
        return name, None
    return None, None


def quantity_format(q: str) -> Callable[[float], str]:
    """The formatter of a paper-vs-ours quantity (``psnr_end``, ``p_welch``, ...)."""
    if q.startswith("p_"):
        return fmt_p
    if q.startswith("df"):
        return lambda v: f"{v:.2f}"
    if q.endswith("time_s"):
        return fmt_hms
    if "psnr" in q and not q.startswith(("t_", "ci_", "mean_diff", "cohens")):
        return lambda v: f"{v:.2f}"
    return lambda v: f"{v:.4f}"


class SplitNoise(NamedTuple):
    """A cell's split part: the SD of a validation mean over random splits, its df (images − 1),
    and whether each seed drew its own split (then the SD across seeds holds it)."""

    split_sd: float
    split_df: float
    per_seed: bool


#: Quantities of Tables 2/3 whose noise is that of a mean difference (the CI bounds move with it).
NOISY_STATS = ("mean_diff", "ci_low_welch", "ci_high_welch")
NO_NOISE_MODEL = "n/a: no noise model for this statistic"


def paper_vs_ours(ours, published: pd.DataFrame | None = None, table: str = "table1",
                  split_sd: Callable[[dict, str], float] | None = None,
                  noise: dict | None = None) -> Table:
    """Our numbers beside the paper's, long format: keys, ``quantity``, ``ours`` (+ ``ours_sd``),
    ``n_seeds``, ``paper``, ``diff`` = ours − paper, and whether the difference is within
    noise: ``split_sd``, ``s``, ``z`` = diff / s and ``agreement`` (:func:`ssimsr.analysis.noise.agreement`).

    The noise of a cell: ``split_sd(keys, quantity)`` (Table 1, Table A2) gives the
    split-sampling SD of the cell's quantity for the row's keys (0 where both sides validate
    on the same images); ``noise`` (Tables 2/3) maps each metric to ``(seed_sd, n_seeds,
    split_sd)`` of its mean difference, applied to :data:`NOISY_STATS` (t, df, p and d get
    :data:`NO_NOISE_MODEL`). Without them ``agreement`` says why there is no verdict.

    ``table`` selects the layout (``published`` defaults to :func:`load_published(table)`):

    ``table1``: ``ours`` = :func:`table1` (Table or its data; ``_mean`` columns used when
    present), keys ``[preset,] dataset, model, lambda_s``, quantities ``total/bw_mse/psnr/
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
    if table == "table1":
        records = _table1_records(ours, published, load_published(table, printed=True), split_sd)
    elif table == "table_a2":
        records = _table_a2_records(ours, published, load_published(table, printed=True), split_sd)
    elif table in ("table2", "table3"):
        records = _welch_records(ours, published, load_published(table, printed=True), noise)
    else:
        raise ValueError(f"paper_vs_ours: unsupported table {table!r} (table1, table_a2, table2, table3); "
                         "Table 4's showcase images are not the paper's, compare it by pattern")
    data = pd.DataFrame(records)
    if data.empty:
        raise ValueError(f"paper_vs_ours({table}): no rows of ours match the published table")
    data["diff"] = data["ours"] - data["paper"]
    data = _judged(data)
    noise_caption = CONTRAST_CAPTION if table in ("table2", "table3") else NOISE_CAPTION
    return Table(data=data, caption=_VERSUS_CAPTIONS[table] + "; difference = ours − paper. " + noise_caption,
                 display=_versus_display(data), headers=VERDICT_HEADERS,
                 notes=[multiplicity_note(data["agreement"], data["p"])])


_VERSUS_CAPTIONS = {"table1": "Table 1, ours vs the paper (validation values after epoch 1 / the last epoch)",
                    "table_a2": "Table A2, ours vs the paper (VGG19 layer pairs)",
                    "table2": "Table 2 statistics (λ_s = 1 vs 2, Welch as the paper), ours vs the paper",
                    "table3": "Table 3 statistics (λ_s = 1 vs 0, Welch as the paper), ours vs the paper"}


def _table1_records(ours: pd.DataFrame, published: pd.DataFrame, printed: pd.DataFrame, split_sd) -> list[dict]:
    """Table 1's cells, keys ``[preset,] dataset, model, lambda_s``."""
    records = []
    keys = ["dataset", "model", "lambda_s"]
    pre = ["preset"] if "preset" in ours.columns else []
    for group, r in _seed_groups(ours, pre + keys):
        match = ((published["dataset"] == r["dataset"]) & (published["model"] == r["model"])
                 & same_weight(published["lambda_s"], r["lambda_s"]))
        pub = published[match]
        if len(pub) != 1:
            continue
        records += _cell_records(group, r, pre + keys, TABLE1_VALUES, pub.iloc[0], printed[match].iloc[0], split_sd)
    return records


def _cell_records(group: pd.DataFrame, r, keys: list[str], quantities, published_row, printed_row,
                  split_sd) -> list[dict]:
    """One cell per quantity of the seed group ``group`` (its keys ``r``) beside the paper's
    row: the seed summary, the published value and its rounding variance, the split noise."""
    records = []
    for q in quantities:
        summary = _seed_summary(group, r, q)
        if summary is None:
            continue
        rec = {k: r[k] for k in keys if k in r}
        rec.update(quantity=q, **summary, paper=float(published_row[q]), rounding_var=rounding_variance(printed_row[q]),
                   **_split_noise(split_sd, dict(rec), q))
        records.append(rec)
    return records


#: Table A2's quantities, ours and the published columns alike.
_TABLE_A2_QUANTITIES = (*A2_METRICS, "training_time_s")


def _table_a2_records(ours: pd.DataFrame, published: pd.DataFrame, printed: pd.DataFrame, split_sd) -> list[dict]:
    """Table A2's cells, keys ``[preset, experiment,] vgg, lambda_s, stage`` (the paper's epoch 1
    / last epoch rows are ``start`` / ``end``)."""
    records = []
    pre = ["preset"] if "preset" in ours.columns else []
    pub_end = published.groupby(["vgg", "lambda_s"])["epoch"].transform("max")
    published = published.assign(stage=np.where(published["epoch"] == 1, "start",
                                                 np.where(published["epoch"] == pub_end, "end", "")))
    a2_keys = [k for k in pre + ["experiment", "vgg", "lambda_s", "stage"] if k in ours.columns]
    for group, r in _seed_groups(ours, a2_keys):
        match = ((published["vgg"] == r["vgg"]) & (published["stage"] == r["stage"])
                 & same_weight(published["lambda_s"], r["lambda_s"]))
        pub = published[match]
        if len(pub) != 1:
            continue
        records += _cell_records(group, r, pre + ["experiment", "vgg", "lambda_s", "stage"], _TABLE_A2_QUANTITIES,
                                 pub.iloc[0], printed[match].iloc[0], split_sd)
    return records


def _welch_records(ours: pd.DataFrame, published: pd.DataFrame, printed: pd.DataFrame,
                   noise: dict | None) -> list[dict]:
    """Tables 2/3's cells: key ``metric``, quantities the paper's Welch statistics; a mean
    difference carries its contrast noise (``_contrast``)."""
    records = []
    welch = ours[ours["test"] == WELCH_BLOCK] if "test" in ours.columns else ours
    metrics = [m for m in STATS_METRICS if m in welch.columns and m in published.columns]
    for i, p in published.iterrows():
        o = welch[welch["statistic"] == p["statistic"]]
        if len(o) != 1:
            continue
        for m in metrics:
            contrast = (noise or {}).get(m, {})
            noisy = p["statistic"] in NOISY_STATS
            records.append({"metric": m, "quantity": p["statistic"], "ours": float(o.iloc[0][m]),
                            "ours_sd": contrast.get("diff_sd", math.nan) if noisy else math.nan,
                            "n_seeds": contrast.get("n_seeds", math.nan), "paper": float(p[m]),
                            "rounding_var": rounding_variance(printed.at[i, m]),
                            "_contrast": contrast if noisy else None})
    return records


def _judged(data: pd.DataFrame) -> pd.DataFrame:
    """``data`` with each cell's verdict (:func:`with_verdicts`): a Tables 2/3 mean difference
    is judged as a contrast of two runs, every other cell by :func:`ssimsr.analysis.noise.agreement`."""
    if "_contrast" in data.columns:  # Tables 2/3: a mean difference is a contrast of two runs
        unknown = {"diff_sd": math.nan, "pooled_sd": math.nan, "n_seeds": math.nan}
        verdicts = [contrast_agreement(r["ours"], r["paper"], rounding_var=r["rounding_var"],
                                       **{**unknown, **r["_contrast"]})
                    if isinstance(r["_contrast"], dict) else {"agreement": NO_NOISE_MODEL}
                    for _, r in data.iterrows()]
        data = data.drop(columns=["_contrast"])
    else:
        verdicts = [agreement(r["ours"], r["paper"], r["ours_sd"], r["n_seeds"], r["split_sd"], r["split_df"],
                              per_seed=bool(r["per_seed"]), rounding_var=r["rounding_var"])
                    for _, r in data.iterrows()]
    return with_verdicts(data, verdicts)


def _versus_display(data: pd.DataFrame) -> pd.DataFrame:
    """The shown cells of a paper-vs-ours table: values formatted per quantity, the noise
    columns, the quantity's label; :data:`HIDDEN` columns left out."""
    disp = data.drop(columns=[c for c in HIDDEN if c in data.columns]).astype(object)
    labels = {"training_time_s": "Training time", **{k: f"{v} (Welch)" if k.startswith(("t_", "df", "p_")) else v
                                                     for k, v in WELCH_ROWS}}
    for i, r in data.iterrows():
        f = quantity_format(str(r["quantity"]))
        for col in ("ours", "paper", "diff"):
            disp.at[i, col] = _value_text(r, col, f)
        _show_noise(disp, i, r, f)
        disp.at[i, "quantity"] = labels.get(str(r["quantity"]), header_label(str(r["quantity"])))
        if "lambda_s" in disp.columns:
            disp.at[i, "lambda_s"] = f"{float(r['lambda_s']):g}"
    return disp


def _value_text(r, col: str, f) -> str:
    """One shown value (``ours``, ``paper`` or ``diff``) of row ``r``: a difference signed
    (a training time's as h:mm:ss), ours with ± its SD."""
    v = r[col]
    text = NA if pd.isna(v) else f(float(v))
    if col == "diff" and not pd.isna(v) and r["quantity"] != "training_time_s" and v >= 0:
        text = "+" + text
    if col == "diff" and r["quantity"] == "training_time_s" and not pd.isna(v):
        text = ("-" if v < 0 else "+") + fmt_hms(abs(float(v)))
    if col == "ours" and not pd.isna(r["ours_sd"]) and not pd.isna(v):
        text = f"{text}{PLUS_MINUS}{f(float(r['ours_sd']))}"
    return text


_RULE = ("Verdict: the difference is referred to Student's t with guarded Welch–Satterthwaite df (each "
         "estimated part raised in turn to its 90 % upper bound, the smallest df; proven by simulation to say "
         "\"differs\" at most 5 % of the time with no true difference, for any number of seeds ≥ 2 and any mix "
         "of seed and split noise, docs/verdict.md): \"differs\" when |ours − paper| > t_crit · s, i.e. the "
         "95 % interval (ours − paper ± t_crit · s) excludes 0; \"inconclusive\" when it does not and df < 2 "
         "(too few seeds to say more); else \"within noise\". One seed: no verdict. The interval covers "
         "training and split noise only: a different offline preprocessing (the paper's resize filter is "
         "unknown) moves absolute values by more than s.")
NOISE_CAPTION = ("Ours = mean ± SD over k seeds (finite values only). s² = SD_seeds² (1 + 1/k) + 2 SD_split² + u²/12: "
                 "the paper's cell is one run on its own random split, ours the mean of k runs on ours; SD_split = "
                 "the SD of a mean over the validation images drawn at random from the dataset, from our per-image "
                 "values (finite-population correction; 0 where both sides validate on the same images, e.g. "
                 "DIV2K's official split; not added where each seed drew its own split, since the SD across seeds "
                 "then holds it; for epoch-1 cells from the end-of-training images); u = the paper cell's last "
                 "printed digit (rounding). " + _RULE)
CONTRAST_CAPTION = ("A mean difference is a contrast of two λ_s variants: ours = the mean over k seeds of the paired "
                    "per-seed differences (SD_d, ± shown), the paper's = two independent runs. s² = SD_d²/k + 2 "
                    "SD_run² (the paper's two runs, SD_run pooled from our per-λ_s SDs across seeds) + the split "
                    "parts (ours: a mean of per-image differences; the paper's two runs on their own splits) + "
                    "u²/12. t, df, p and d have no noise model. " + _RULE)
#: What the two-preset tables show of each preset (the CSV keeps every column).
SHOWN_PER_PRESET = ("ours", "diff", "interval", "df", "agreement")
VERDICT_HEADERS = {"s": "s (noise)", "df": "df", "critical": "t crit", "interval": "95 % interval",
                   "agreement": "Verdict"}
#: Columns of the paper-vs-ours data that the rendered tables leave out (the CSV keeps them).
HIDDEN = ("ours_sd", "n_seeds", "split_sd", "split_df", "per_seed", "rounding_var", "low", "high", "z", "p",
          "holm_differs")


def with_verdicts(data: pd.DataFrame, verdicts: list[dict]) -> pd.DataFrame:
    """``data`` with the verdict columns (:func:`ssimsr.analysis.noise.verdict`) and ``holm_differs``:
    "differs" that survives Holm's adjustment over the table's verdicts."""
    frame = pd.DataFrame(verdicts, index=data.index)
    for col in ("s", "df", "critical", "low", "high", "z", "p"):
        if col not in frame:
            frame[col] = math.nan
    out = pd.concat([data, frame[["s", "df", "critical", "low", "high", "z", "p", "agreement"]]], axis=1)
    judged = out["agreement"].isin([WITHIN, DIFFERS, INCONCLUSIVE])
    adjusted = holm(np.where(judged, out["p"].astype(float), np.nan))
    out["holm_differs"] = judged & (adjusted < ALPHA) & (out["agreement"] == DIFFERS)
    return out


def _show_noise(disp: pd.DataFrame, i, r, f) -> None:
    """The noise columns of one displayed row: s, df, t crit and the interval."""
    if "interval" not in disp.columns:  # shown before the verdict
        disp.insert(list(disp.columns).index("agreement") if "agreement" in disp.columns else len(disp.columns),
                    "interval", NA)
    disp.at[i, "s"] = NA if pd.isna(r["s"]) else f(float(r["s"]))
    disp.at[i, "df"] = NA if pd.isna(r["df"]) else ("∞" if math.isinf(r["df"]) else f"{float(r['df']):.1f}")
    disp.at[i, "critical"] = NA if pd.isna(r["critical"]) else f"{float(r['critical']):.2f}"
    disp.at[i, "interval"] = NA if pd.isna(r["low"]) else f"[{f(float(r['low']))}, {f(float(r['high']))}]"


def _seed_groups(ours: pd.DataFrame, keys: list[str]):
    """(rows, first row) per group of ``keys``: per-run rows (a ``seed`` column) grouped, an
    aggregated table (``<x>_mean`` / ``<x>_sd``, ``n_seeds``) row by row."""
    if "seed" in ours.columns:
        for _, rows in ours.groupby(keys, sort=False, dropna=False):
            yield rows, rows.iloc[0]
    else:
        for _, r in ours.iterrows():
            yield None, r


def _seed_summary(rows: pd.DataFrame | None, r, q: str) -> dict | None:
    """``ours`` (mean), ``ours_sd`` and ``n_seeds`` of quantity ``q`` over the finite values of
    the runs ``rows``; from an aggregated row's ``<q>_mean`` / ``<q>_sd`` / ``n_seeds`` when
    ``rows`` is None. None when ``q`` is absent."""
    if rows is not None:
        if q not in rows.columns:
            return None
        values = pd.to_numeric(rows[q], errors="coerce").to_numpy(float)
        values = values[np.isfinite(values)]
        return {"ours": float(values.mean()) if values.size else math.nan,
                "ours_sd": float(values.std(ddof=1)) if values.size > 1 else math.nan, "n_seeds": float(values.size)}
    vcol, scol = _value_col(r.to_frame().T, q)
    if vcol is None:
        return None
    return {"ours": float(r[vcol]), "ours_sd": float(r[scol]) if scol else math.nan, "n_seeds": _n_seeds(r)}


def _n_seeds(row) -> float:
    return float(row["n_seeds"]) if "n_seeds" in row and not pd.isna(row["n_seeds"]) else 1.0


def _split_noise(split_sd, keys: dict, quantity: str) -> dict:
    """``split_sd``, ``split_df``, ``per_seed`` of a cell from the lookup (a float or a
    :class:`SplitNoise`); NaN without one."""
    if split_sd is None:
        return {"split_sd": math.nan, "split_df": math.inf, "per_seed": False}
    found = split_sd(keys, quantity)
    if isinstance(found, SplitNoise):
        return found._asdict()
    return {"split_sd": float(found), "split_df": math.inf, "per_seed": False}


def published_alone(name: str, reasons: list[str]) -> Table:
    """The paper's values listed alone with a note, when none of our runs matches (e.g. the demo)."""
    published = load_published(name)
    return Table(published, f"The paper's {name} (no run of ours matches it).",
                 notes=[f"ours: unavailable ({r})" for r in reasons])


#: The value columns of a preset's paper-vs-ours table that the two-preset table keeps, as
#: ``<column>_<preset>``.
_PRESET_VALUES = ["ours", "ours_sd", "n_seeds", "split_sd", "split_df", "per_seed", "rounding_var", "diff", "s",
                  "df", "critical", "low", "high", "z", "p", "agreement", "holm_differs"]


def paper_vs_presets(name: str, compare_for: Callable[[str], Table]) -> Table:
    """The paper beside ours from :data:`PAPER_PRESET` (``as_run``, the paper's setting),
    :data:`BESIDE_PRESET` (``corrected``) beside.

    ``compare_for(preset)`` returns that preset's paper-vs-ours table (:func:`paper_vs_ours`:
    keys, ``paper`` and the value columns ``ours``, ``ours_sd``, ``n_seeds``, ``split_sd``,
    ``diff``, ``s``, ``z``, ``agreement``) or raises ``ValueError``; each value column
    becomes ``<column>_<preset>``. A preset that fails is named in a note, and both failing
    lists the paper's values alone.
    """
    sides, reasons = {}, []
    for preset in (PAPER_PRESET, BESIDE_PRESET):
        try:
            sides[preset] = compare_for(preset)
        except ValueError as exc:
            reasons.append(f"{preset}: {exc}")
    if not sides:
        return published_alone(name, reasons)
    merged, keys = _merged_presets(sides)
    value_cols, shown_cols = _both_presets_columns(merged, keys)
    data = merged[keys + value_cols]
    display = merged[[f"_shown_{c}" for c in shown_cols]].fillna("n/a")
    display.columns = shown_cols
    base = next(iter(sides.values())).caption.split("; difference")[0].rstrip(".")
    caption = (f"{base}. The paper beside ours from the {PAPER_PRESET} preset, which reproduces the setting the "
               "paper's numbers came from (forward MSE and perceptual loss off, IRN downscaler frozen); the "
               f"{BESIDE_PRESET} preset (all loss terms working) beside it, labelled. Differences = ours − paper. "
               + next(iter(sides.values())).caption.split("; difference = ours − paper. ", 1)[-1])
    notes = [f"ours ({r})" for r in reasons] + [f"{preset}: {n}" for preset, t in sides.items() for n in t.notes]
    return Table(data=data.reset_index(drop=True), caption=caption, display=display.reset_index(drop=True),
                 headers=_presets_headers(), notes=notes)


def _merged_presets(sides: dict[str, Table]) -> tuple[pd.DataFrame, list[str]]:
    """The presets' tables side by side on their keys (outer join), and the keys: each value
    column as ``<column>_<preset>``, each shown cell as ``_shown_<column>[_<preset>]``."""
    frames, keys = [], None
    for preset, table in sides.items():
        data = table.data.reset_index(drop=True)
        shown, _ = table.rendered()
        keys = keys or [c for c in data.columns if c not in _PRESET_VALUES and c != "paper"]
        part = data[keys].copy()
        part["paper"] = data["paper"]
        for col in keys + ["paper"]:
            part[f"_shown_{col}"] = shown[col].to_numpy()
        for col in _PRESET_VALUES:
            part[f"{col}_{preset}"] = data[col] if col in data else math.nan
        for col in SHOWN_PER_PRESET:
            if col in shown:
                part[f"_shown_{col}_{preset}"] = shown[col].to_numpy()
        frames.append(part)
    merged = frames[0]
    for other in frames[1:]:
        merged = merged.merge(other, on=keys, how="outer", suffixes=("", "_other"), sort=False)
        for col in [c for c in merged.columns if c.endswith("_other")]:
            merged[col[:-6]] = merged[col[:-6]].combine_first(merged[col])
        merged = merged.drop(columns=[c for c in merged.columns if c.endswith("_other")])
    return merged, keys


def _both_presets_columns(merged: pd.DataFrame, keys: list[str]) -> tuple[list[str], list[str]]:
    """The value and shown columns of both presets, in order; a preset's missing ones are added
    to ``merged`` (NaN values, "n/a" shown)."""
    value_cols, shown_cols = ["paper"], keys + ["paper"]
    for preset in (PAPER_PRESET, BESIDE_PRESET):
        for col in _PRESET_VALUES:
            full = f"{col}_{preset}"
            if full not in merged:
                merged[full] = math.nan
            value_cols.append(full)
        for col in SHOWN_PER_PRESET:
            full = f"{col}_{preset}"
            shown_cols.append(full)
            if f"_shown_{full}" not in merged:
                merged[f"_shown_{full}"] = "n/a"
    return value_cols, shown_cols


def _presets_headers() -> dict[str, str]:
    headers = {"paper": "Paper"}
    for preset, label in _PRESET_LABELS.items():
        headers[f"ours_{preset}"] = f"Ours ({label})"
        headers[f"diff_{preset}"] = f"{preset} − paper"
        headers[f"interval_{preset}"] = f"95 % interval ({preset})"
        headers[f"df_{preset}"] = f"df ({preset})"
        headers[f"agreement_{preset}"] = f"Verdict ({preset})"
    return headers


# --------------------------------------------------------------------------- like-for-like and the noise

#: The paper's per-image metrics (Tables 2-4) came from the authors' inference script:
#: our columns in that convention (``ssimsr.evaluation.metrics.image_metrics``).
AUTHORS_METRICS = {"psnr": "psnr_authors", "ssim": "ssim_authors"}


def authors_total(frame: pd.DataFrame) -> pd.Series:
    """The validation total as the authors' code computed it: λ_b·bwMSE + fwMSE + λ_s·SSIM_N.

    Their validation added the forward MSE of the real downscaled reconstruction with
    λ_f = 1 although training's was 0, and their perceptual term was 0 (VGG19 collapsed);
    ``frame`` has ``bw_mse``, ``fw_mse``, ``ssim_n``, ``lambda_s`` (+ ``lambda_b``, else 1).
    """
    missing = [c for c in ("bw_mse", "fw_mse", "ssim_n", "lambda_s") if c not in frame.columns]
    if missing:
        raise ValueError(f"authors_total: columns missing {missing} (rerun evaluation / collect)")
    lambda_b = frame["lambda_b"].astype(float) if "lambda_b" in frame.columns else 1.0
    return lambda_b * frame["bw_mse"] + frame["fw_mse"] + frame["lambda_s"].astype(float) * frame["ssim_n"]


#: Table 1's total loss is the authors' total per image (the other quantities, loss terms and
#: metrics, are per-image columns of their own name): the column whose spread gives the
#: quantity's split-sampling SD
_TOTAL_PER_IMAGE = "total_authors"


def _population(history: pd.DataFrame, dataset: str, n_val: int, splits: dict) -> int | None | str:
    """The number of images a random split drew ``n_val`` validation images from, ``"same"``
    when the split is not random (both sides validate on the same images)."""
    if splits.get(dataset, "random") not in ("random", PER_SEED):
        return "same"
    rows = history[history["dataset"] == dataset] if "dataset" in history.columns else history
    if "dataset_size" not in rows.columns or rows["dataset_size"].isna().all():
        return None
    return int(rows["dataset_size"].max()) + n_val


def _of_keys(frame: pd.DataFrame, keys: dict) -> pd.DataFrame:
    for k, v in keys.items():
        if k in frame.columns and k != "quantity":
            frame = frame[same_weight(frame[k], v)] if k.startswith("lambda_") else frame[frame[k] == v]
    return frame


def pooled_split_sd(rows: pd.DataFrame, column: str, population) -> tuple[float, float]:
    """(SD, df) of a validation mean of ``column`` over random splits, from each run's
    per-image values (:func:`ssimsr.analysis.noise.split_sampling_sd`), pooled over runs (root mean
    square); df = images − 1. NaN without two finite values."""
    from ..analysis.noise import split_sampling_sd

    by = [c for c in ("seed", "lambda_s") if c in rows.columns]  # one run's images at a time
    groups = rows.groupby(by) if by else [(0, rows)]
    per_seed, n_images = [], 0
    for _, g in groups:
        values = pd.to_numeric(g[column], errors="coerce").dropna().to_numpy(float)
        if values.size >= 2:
            per_seed.append(split_sampling_sd(values, population if isinstance(population, int) else None))
            n_images = max(n_images, values.size)
    if not per_seed:
        return math.nan, math.nan
    return float(np.sqrt(np.mean(np.square(per_seed)))), float(n_images - 1)


def split_sd_lookup(per_image: pd.DataFrame, history: pd.DataFrame, splits: dict,
                    image_set: str = "val") -> Callable[[dict, str], SplitNoise]:
    """``lookup(keys, quantity)``: the :class:`SplitNoise` of a Table 1 cell (``psnr_end``, ...).

    From the per-image values of the run group that ``keys`` names (dataset, model,
    lambda_s, [preset, vgg]): :func:`pooled_split_sd` of the per-image column behind the cell
    (end cells: :data:`EVALUATION_END`). 0 where the split is not random; NaN where a column
    is missing. Epoch-1 cells use the end-of-training images' spread.
    """
    frame = per_image[per_image["set"] == image_set] if "set" in per_image.columns else per_image
    frame = with_evaluation_columns(frame)
    cache: dict = {}

    def lookup(keys: dict, quantity: str) -> SplitNoise:
        # an end cell's spread from the very column its value comes from (the evaluation's, where
        # :func:`end_cells_from_evaluation` found it)
        column = EVALUATION_END.get(quantity)
        if column not in frame.columns:
            stem = quantity.rsplit("_", 1)[0]
            column = _TOTAL_PER_IMAGE if stem == "total" else stem
        key = (tuple(sorted(keys.items())), column)
        if key not in cache:  # start and end cells share one value
            cache[key] = _split_noise_of(keys, column)
        return cache[key]

    def _split_noise_of(keys: dict, column: str) -> SplitNoise:
        per_seed = splits.get(keys.get("dataset")) == PER_SEED
        if splits.get(keys.get("dataset"), "random") not in ("random", PER_SEED):
            return SplitNoise(0.0, math.inf, False)  # both sides validate on the same images
        rows = _of_keys(frame, keys)
        if column not in rows.columns or rows.empty or rows[column].isna().all():
            return SplitNoise(math.nan, math.nan, per_seed)
        n_val = int(rows.groupby("seed")["image"].nunique().max()) if "seed" in rows.columns else rows["image"].nunique()
        population = _population(history, keys.get("dataset"), n_val, splits)
        if population == "same":
            return SplitNoise(0.0, math.inf, False)
        return SplitNoise(*pooled_split_sd(rows, column, population), per_seed)

    return lookup


def with_evaluation_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Per-image rows with the columns of Table 1's end cells in the authors' (unclipped)
    convention: ``total_authors`` (:func:`authors_total`) and ``ssim_unclipped`` = 1 − 2·SSIM_N."""
    if {"bw_mse", "fw_mse", "ssim_n", "lambda_s"} <= set(frame.columns):
        frame = frame.assign(total_authors=authors_total(frame))
    if "ssim_n" in frame.columns:
        frame = frame.assign(ssim_unclipped=1.0 - 2.0 * frame["ssim_n"])
    return frame


#: Table 1's end-of-training cells from the evaluation, in the authors' validation convention
#: (unclipped output): per-image column of each quantity.
EVALUATION_END = {"total_end": "total_authors", "bw_mse_end": "bw_mse", "psnr_end": "psnr_authors",
                  "ssim_end": "ssim_unclipped"}


def end_cells_from_evaluation(per_run: pd.DataFrame, per_image: pd.DataFrame, image_set: str = "val") -> pd.DataFrame:
    """Per-run Table 1 rows (one per seed) whose ``*_end`` values are the evaluation's
    unclipped per-image means (:data:`EVALUATION_END`) where the run was evaluated; the
    epoch-1 (``*_start``) values stay training's own validation (clipped). ``end_source``
    says which each row holds."""
    frame = per_image[per_image["set"] == image_set] if "set" in per_image.columns else per_image
    frame = with_evaluation_columns(frame)
    present = {q: c for q, c in EVALUATION_END.items() if c in frame.columns and q in per_run.columns}
    keys = [c for c in RUN_KEYS if c in per_run.columns and c in frame.columns]
    out = per_run.assign(end_source="training validation (clipped)")
    if not present or not keys or frame.empty:
        return out
    means = frame.groupby(keys, dropna=False)[list(present.values())].mean().reset_index()
    means = means.rename(columns={c: f"_eval_{q}" for q, c in present.items()})
    if "lambda_s" in keys:
        means["lambda_s"] = weight_key(means["lambda_s"])  # a merge key: runs.weight_key
        out["lambda_s"] = weight_key(out["lambda_s"])
    merged = out.merge(means, on=keys, how="left")
    evaluated = merged[[f"_eval_{q}" for q in present]].notna().all(axis=1)
    for q in present:
        merged[q] = merged[q].where(~evaluated, merged[f"_eval_{q}"])
    merged.loc[evaluated, "end_source"] = "evaluation (unclipped)"
    return merged.drop(columns=[f"_eval_{q}" for q in present])


def stats_noise(comparisons: pd.DataFrame, per_image: pd.DataFrame, history: pd.DataFrame, splits: dict,
                dataset: str, metrics: dict, pair: tuple[float, float]) -> dict:
    """``{paper metric: contrast noise}`` of Tables 2/3's mean difference (the keyword
    arguments of :func:`ssimsr.analysis.noise.contrast_agreement`), from the comparisons rows (one per
    our metric in ``metrics``, paper name -> ours) and the per-image rows of the compared
    runs: the SD across seeds of the per-seed differences, our per-λ_s SDs across seeds
    pooled (the paper's two independent runs), the split-sampling SD of a mean of per-image
    differences (``sd_diff``, n images) and of one variant's mean."""
    out = {}
    per_seed = splits.get(dataset) == PER_SEED
    for paper_name, ours in metrics.items():
        row = comparisons[comparisons["metric"] == ours]
        if len(row) != 1:
            continue
        r = row.iloc[0]
        n = int(r["n"]) if not pd.isna(r.get("n", math.nan)) else 0
        population = _population(history, dataset, n, splits)
        variants = [_of_keys(per_image, {"lambda_s": lam}) for lam in pair]  # one λ_s's runs each
        if population == "same":
            split_diff, split, split_df = 0.0, 0.0, math.inf
        else:
            fpc = 1.0 - n / population if isinstance(population, int) else 1.0
            split_diff = (float(r["sd_diff"]) * math.sqrt(fpc / n) if n >= 2 and not pd.isna(r.get("sd_diff", math.nan))
                          else math.nan)
            split, split_df = (pooled_split_sd(pd.concat(variants), ours, population) if ours in per_image.columns
                               else (math.nan, math.nan))
        out[paper_name] = {"diff_sd": float(r["sd_seed_diff"]) if not pd.isna(r["sd_seed_diff"]) else math.nan,
                           "pooled_sd": pooled_seed_sd(per_image, ours, pair),
                           "n_seeds": int(r["n_seeds"]) if not pd.isna(r["n_seeds"]) else 1,
                           "split_diff_sd": split_diff, "split_sd": split, "split_df": split_df, "per_seed": per_seed}
    return out


def pooled_seed_sd(frame: pd.DataFrame, column: str, pair) -> float:
    """Our SD across seeds of one λ_s's value (the per-seed mean of ``column`` over ``frame``'s
    rows: one run's images, or one row per run), pooled over the two λ_s of ``pair`` (root
    mean of the two variances): the SD of one of the paper's independent runs."""
    if column not in frame.columns or "seed" not in frame.columns:
        return math.nan
    variances = []
    for lam in pair:
        rows = frame[same_weight(frame["lambda_s"], lam)]
        means = pd.to_numeric(rows[column], errors="coerce").groupby(rows["seed"]).mean().dropna()
        if len(means) < 2:
            return math.nan
        variances.append(float(means.var(ddof=1)))
    return float(np.sqrt(np.mean(variances)))
