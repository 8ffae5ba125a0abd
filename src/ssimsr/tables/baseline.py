"""The model-free baseline beside Table 1 and paper vs ours: a ``bicubic`` row per dataset
(Keys bicubic x2 of the decimated HR on the same validation images), which shows how hard a
split is and which part of a gap to the paper comes from the data, not the training."""

from __future__ import annotations

import math

import pandas as pd

from .render import Table, header_label
from .versus import BESIDE_PRESET, PAPER_PRESET, quantity_format

BASELINE_MODEL = "bicubic"
BASELINE_VERDICT = "model-free baseline: no published value"


def baseline_values(baseline: pd.DataFrame, datasets, image_set: str = "val") -> pd.DataFrame:
    """Per dataset the bicubic baseline's validation means in Table 1's terms: ``psnr_end``,
    ``ssim_end`` (RGB, output clipped, as training validates) and ``bw_mse_end`` (MSE of the
    unclipped output, from ``psnr_authors``), ``n_images``."""
    cols = ["dataset", "psnr_end", "ssim_end", "bw_mse_end", "n_images"]
    if baseline is None or baseline.empty or "dataset" not in baseline.columns:
        return pd.DataFrame(columns=cols)
    rows = baseline[baseline["dataset"].isin(list(datasets))]
    if "set" in rows.columns:
        rows = rows[rows["set"] == image_set]
    if rows.empty:
        return pd.DataFrame(columns=cols)
    rows = rows.assign(bw=10.0 ** (-rows["psnr_authors"] / 10.0) if "psnr_authors" in rows else math.nan)
    g = rows.groupby("dataset", sort=True)
    return pd.DataFrame({"psnr_end": g["psnr"].mean(), "ssim_end": g["ssim"].mean(),
                         "bw_mse_end": g["bw"].mean(), "n_images": g["image"].nunique()}).reset_index()[cols]


def table1_with_baseline(table: Table, baseline: pd.DataFrame) -> Table:
    """Table 1 with a ``bicubic`` row per dataset (end-of-training columns; no λ_s, no seeds)."""
    data = table.data
    if "dataset" not in data.columns:
        return table
    values = baseline_values(baseline, data["dataset"].unique())
    if values.empty:
        table.notes.append("bicubic baseline: not computed (no results/eval/baseline.csv rows for these datasets)")
        return table
    mean = "_mean" if "psnr_end_mean" in data.columns else ""
    rows = []
    for _, v in values.iterrows():
        row = {c: math.nan for c in data.columns}
        row.update({"dataset": v["dataset"], "model": BASELINE_MODEL, f"psnr_end{mean}": v["psnr_end"],
                    f"ssim_end{mean}": v["ssim_end"], f"bw_mse_end{mean}": v["bw_mse_end"]})
        if "preset" in data.columns:
            row["preset"] = "–"
        rows.append(row)
    extra = pd.DataFrame(rows, columns=data.columns)
    table.data = pd.concat([data, extra], ignore_index=True)
    if table.bold is not None:
        table.bold = pd.concat([table.bold.reset_index(drop=True),
                                pd.DataFrame(False, index=range(len(extra)), columns=table.bold.columns)],
                               ignore_index=True)
    table.caption += (" bicubic: Keys bicubic x2 of the decimated HR (the SR model's LR input), no training, on the "
                      "same validation images: how hard the split is.")
    return table


def versus_with_baseline(table: Table, baseline: pd.DataFrame) -> Table:
    """Paper vs ours (Table 1) with the bicubic baseline's PSNR / SSIM per dataset beside the
    presets' values: the paper has no such row, so its columns read n/a."""
    data, display = table.data, table.display
    if "dataset" not in data.columns or display is None:
        return table
    values = baseline_values(baseline, data["dataset"].unique())
    if values.empty:
        return table
    rows, shown = [], []
    for _, v in values.iterrows():
        for q in ("psnr_end", "ssim_end"):
            row = {c: math.nan for c in data.columns}
            row.update(dataset=v["dataset"], model=BASELINE_MODEL, quantity=q)
            text = {c: "n/a" for c in display.columns}
            text.update(dataset=v["dataset"], model=BASELINE_MODEL, quantity=header_label(q),
                        **{"lambda_s": "–"} if "lambda_s" in display.columns else {})
            for preset in (PAPER_PRESET, BESIDE_PRESET):
                row[f"ours_{preset}"] = v[q]
                row[f"agreement_{preset}"] = BASELINE_VERDICT
                text[f"ours_{preset}"] = quantity_format(q)(float(v[q]))
                text[f"agreement_{preset}"] = BASELINE_VERDICT
            rows.append(row)
            shown.append({c: text.get(c, "n/a") for c in display.columns})
    table.data = pd.concat([data, pd.DataFrame(rows, columns=data.columns)], ignore_index=True)
    table.display = pd.concat([display, pd.DataFrame(shown, columns=display.columns)], ignore_index=True)
    table.caption += (" bicubic rows: the model-free baseline (Keys bicubic x2 of the decimated HR) on our "
                      "validation images, the same for both presets: a gap to the paper that the baseline shares "
                      "comes from the data, not the training.")
    return table
