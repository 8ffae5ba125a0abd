"""Paper vs ours: our numbers beside the paper's published values, for one preset or for the
``as_run`` preset (the paper's setting) with ``corrected`` beside it."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import pandas as pd

from .paper import TABLE1_VALUES
from .published import load_published
from .render import NA, PLUS_MINUS, Table, fmt_hms, fmt_p, header_label
from .statistics import STATS_METRICS, WELCH_BLOCK, WELCH_ROWS

#: The preset that reproduces the setting the paper's numbers came from, and the one shown beside it.
PAPER_PRESET, BESIDE_PRESET = "as_run", "corrected"
_PRESET_LABELS = {PAPER_PRESET: "as_run, the paper's setting", BESIDE_PRESET: "corrected, all losses on"}


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
        return fmt_p
    if q.startswith("df"):
        return lambda v: f"{v:.2f}"
    if q.endswith("time_s"):
        return fmt_hms
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
                                                     for k, v in WELCH_ROWS}}
    for i, r in data.iterrows():
        f = _quantity_fmt(str(r["quantity"]))
        for col in ("ours", "paper", "diff"):
            v = r[col]
            text = NA if pd.isna(v) else f(float(v))
            if col == "diff" and not pd.isna(v) and r["quantity"] != "training_time_s" and v >= 0:
                text = "+" + text
            if col == "diff" and r["quantity"] == "training_time_s" and not pd.isna(v):
                text = ("-" if v < 0 else "+") + fmt_hms(abs(float(v)))
            if col == "ours" and "ours_sd" in data.columns and not pd.isna(r["ours_sd"]) and not pd.isna(v):
                text = f"{text}{PLUS_MINUS}{f(float(r['ours_sd']))}"
            disp.at[i, col] = text
        disp.at[i, "quantity"] = labels.get(str(r["quantity"]), header_label(str(r["quantity"])))
        if "lambda_s" in disp.columns:
            disp.at[i, "lambda_s"] = f"{float(r['lambda_s']):g}"
    caption = {"table1": "Table 1, ours vs the paper (validation values after epoch 1 / the last epoch)",
               "table_a2": "Table A2, ours vs the paper (VGG19 layer pairs)",
               "table2": "Table 2 statistics (λ_s = 1 vs 2, Welch as the paper), ours vs the paper",
               "table3": "Table 3 statistics (λ_s = 1 vs 0, Welch as the paper), ours vs the paper"}[table]
    return Table(data=data, caption=caption + "; difference = ours − paper.", display=disp)


def published_alone(name: str, reasons: list[str]) -> Table:
    """The paper's values listed alone with a note, when none of our runs matches (e.g. the demo)."""
    published = load_published(name)
    return Table(published, f"The paper's {name} (no run of ours matches it).",
                 notes=[f"ours: unavailable ({r})" for r in reasons])


def paper_vs_presets(name: str, compare_for: Callable[[str], Table]) -> Table:
    """The paper beside ours from the ``as_run`` preset (the paper's setting), ``corrected`` beside.

    ``compare_for(preset)`` returns that preset's paper-vs-ours table (columns: keys,
    ``ours``, optional ``ours_sd``, ``paper``, ``diff``) or raises ``ValueError``; a preset
    that fails is named in a note, and both failing lists the paper's values alone.
    """
    sides, reasons = {}, []
    for preset in (PAPER_PRESET, BESIDE_PRESET):
        try:
            sides[preset] = compare_for(preset)
        except ValueError as exc:
            reasons.append(f"{preset}: {exc}")
    if not sides:
        return published_alone(name, reasons)
    values = ("ours", "ours_sd", "paper", "diff")
    frames, keys = [], None
    for preset, table in sides.items():
        data = table.data.reset_index(drop=True)
        shown, _ = table.rendered()
        keys = keys or [c for c in data.columns if c not in values]
        part = data[keys].copy()
        part["paper"] = data["paper"]
        part[f"ours_{preset}"] = data["ours"]
        part[f"ours_{preset}_sd"] = data["ours_sd"] if "ours_sd" in data else math.nan
        part[f"diff_{preset}"] = data["diff"]
        for col in keys + ["paper"]:
            part[f"_shown_{col}"] = shown[col].to_numpy()
        part[f"_shown_ours_{preset}"] = shown["ours"].to_numpy()
        part[f"_shown_diff_{preset}"] = shown["diff"].to_numpy()
        frames.append(part)
    merged = frames[0]
    for other in frames[1:]:
        merged = merged.merge(other, on=keys, how="outer", suffixes=("", "_other"), sort=False)
        for col in [c for c in merged.columns if c.endswith("_other")]:
            merged[col[:-6]] = merged[col[:-6]].combine_first(merged[col])
        merged = merged.drop(columns=[c for c in merged.columns if c.endswith("_other")])
    value_cols = ["paper"]
    for preset in (PAPER_PRESET, BESIDE_PRESET):
        for col in (f"ours_{preset}", f"ours_{preset}_sd", f"diff_{preset}"):
            if col not in merged:
                merged[col] = math.nan
                merged[f"_shown_{col}"] = "n/a"
            value_cols.append(col)
    data = merged[keys + value_cols]
    shown_cols = [c for c in keys + value_cols if not c.endswith("_sd")]
    display = merged[[f"_shown_{c}" for c in shown_cols]].fillna("n/a")
    display.columns = shown_cols
    headers = {"paper": "Paper"}
    for preset, label in _PRESET_LABELS.items():
        headers[f"ours_{preset}"] = f"Ours ({label})"
        headers[f"diff_{preset}"] = f"{preset} − paper"
    base = next(iter(sides.values())).caption.split("; difference")[0].rstrip(".")
    caption = (f"{base}. The paper beside ours from the as_run preset, which reproduces the setting the paper's "
               "numbers came from (forward MSE and perceptual loss off, IRN downscaler frozen); the corrected "
               "preset (all loss terms working) beside it, labelled. Differences = ours − paper.")
    return Table(data=data.reset_index(drop=True), caption=caption, display=display.reset_index(drop=True),
                 headers=headers, notes=[f"ours ({r})" for r in reasons])


def table4_means(ours: Table) -> Table:
    """Table 4 per (metric, lambda_s) averaged over the showcase images, ours beside the paper's.

    The paper's images are the authors' own photographs (not public), so only the means
    over each side's images are comparable, not image by image.
    """
    paper = load_published("table4")
    fig_cols = [c for c in paper.columns if c.startswith("fig")]
    paper_mean = paper.assign(paper=paper[fig_cols].mean(axis=1), lambda_s=paper["lambda_s"].astype(float))
    paper_mean = paper_mean[["metric", "lambda_s", "paper"]]
    data = ours.data.reset_index() if ours.data.index.name or isinstance(ours.data.index, pd.MultiIndex) else ours.data
    # several seeds: <image>_mean / <image>_sd columns, of which only the means are averaged
    cols = [c for c in data.columns if c not in ("metric", "lambda_s", "n_seeds")]
    image_cols = [c for c in cols if c.endswith("_mean")] or cols
    ours_mean = data.assign(ours=data[image_cols].apply(pd.to_numeric, errors="coerce").mean(axis=1),
                            lambda_s=data["lambda_s"].astype(float))
    merged = ours_mean[["metric", "lambda_s", "ours"]].merge(paper_mean, on=["metric", "lambda_s"], how="outer")
    merged["diff"] = merged["ours"] - merged["paper"]
    return Table(merged, "Table 4, mean over the showcase images: ours (our crops) beside the paper's "
                         "(the authors' photographs, not public); only the means are comparable.")
