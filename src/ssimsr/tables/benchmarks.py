"""Tables that tell the data apart from the training (issue 15): the standard benchmarks
(Set5, Set14) beside the bicubic baseline, and the validation results by image origin.

``per_image`` rows of a benchmark have ``set`` = the benchmark's dataset name (``set5``);
the statistics and the paper's tables read ``set == "val"`` only. ``baseline`` is
``results/eval/baseline.csv`` (``ssimsr.evaluation.baseline``): per image ``dataset, set, image,
origin`` and the metric columns, for the validation split of every trained dataset
(``set == "val"``) and for every benchmark (``set`` = its name); ``psnr_y_matlab`` /
``ssim_y_matlab`` are the same images' bicubic baseline under MATLAB's antialiased resize
protocol (the SR literature's), ``grey`` marks images scored on their grey values and
``scale`` the factor (columns a baseline.csv from before them lacks: the table then says so).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from .render import Table, best_mask
from .runs import RUN_KEYS, aggregate_seeds, default_study, several

#: The benchmark table's metrics: luma, border = scale (BasicSR's convention).
BENCHMARK_METRICS = ("psnr_y", "ssim_y")
#: The origin table's metrics: RGB as training measures them, and luma.
ORIGIN_METRICS = ("psnr", "ssim", "psnr_y", "ssim_y")
BICUBIC = "bicubic"
#: The bicubic baseline under the SR literature's LR protocol (``ssimsr.data.imresize``).
BICUBIC_MATLAB = "bicubic (MATLAB imresize protocol)"
#: baseline.csv's columns of :data:`BICUBIC_MATLAB`, per :data:`BENCHMARK_METRICS` entry.
MATLAB_COLUMNS = {"psnr_y": "psnr_y_matlab", "ssim_y": "ssim_y_matlab"}
#: The widely published x2 bicubic figures (MATLAB protocol, Y, border 2; SRCNN / VDSR /
#: EDSR / RCAN tables, BasicSR): what :data:`BICUBIC_MATLAB` should reproduce at x2.
PUBLISHED_BICUBIC_X2 = {"set5": (33.66, 0.9299), "set14": (30.24, 0.8688)}
NONE_SET = "–"

_HEADERS = {"benchmark": "Benchmark", "method": "Method", "dataset": "Trained on", "n_images": "Images",
            "origin": "Origin", "psnr_gain": "PSNR − bicubic", "lr_protocol": "LR protocol"}


def decimation_protocol(scale) -> str:
    """The paper's LR protocol, named: ``decimation x[::2, ::2] (the paper's)`` at x2."""
    s = "s" if scale is None else str(int(scale))
    return f"decimation x[::{s}, ::{s}] (the paper's)"


def matlab_protocol(scale) -> str:
    """The SR literature's LR protocol, named (``ssimsr.data.imresize.matlab_bicubic``)."""
    s = "s" if scale is None else str(int(scale))
    return f"MATLAB imresize(HR, 1/{s}) bicubic, antialiased, LR rounded to uint8"


def _model_protocol(model: str, scale) -> str:
    """A trained model's LR: the SR model decimates; any other its own (learned) downscaler."""
    return decimation_protocol(scale) if str(model) == "sr" else "the model's own downscaler"


def _baseline_scale(baseline: pd.DataFrame):
    """The scale recorded in baseline.csv (``scale`` column), or None."""
    if "scale" not in baseline.columns:
        return None
    values = pd.to_numeric(baseline["scale"], errors="coerce").dropna().unique()
    return int(values[0]) if len(values) == 1 else None


def _run_means(rows: pd.DataFrame, metrics: Sequence[str], extra: Sequence[str] = ()) -> pd.DataFrame:
    """One row per run (and ``extra`` keys): the mean of ``metrics`` over its images, ``n_images``."""
    keys = [c for c in RUN_KEYS if c in rows.columns] + list(extra)
    grouped = rows.groupby(keys, sort=True, dropna=False)
    out = grouped[list(metrics)].mean()
    out["n_images"] = grouped["image"].nunique()
    return out.reset_index()


def _blank(display: pd.DataFrame, rows: pd.Series, cols: Sequence[str]) -> pd.DataFrame:
    """``display`` with the cells of ``cols`` in ``rows`` shown as a dash (not n/a)."""
    for col in cols:
        if col in display.columns:
            display.loc[rows.to_numpy(), col] = NONE_SET
    return display


def _metrics_present(frame: pd.DataFrame, metrics: Sequence[str], what: str) -> list[str]:
    missing = [m for m in metrics if m not in frame.columns]
    if missing and not frame.empty:
        raise ValueError(f"{what}: lacks the metric columns {missing}")
    return list(metrics)


def configured_benchmarks(per_image: pd.DataFrame, baseline: pd.DataFrame,
                          benchmarks: Sequence[str] | None) -> list[str]:
    """The benchmarks of the config, or (``None``) those found in the results: image sets
    other than ``val`` / ``showcase``."""
    if benchmarks is not None:
        return list(benchmarks)
    found = set()
    for frame in (per_image, baseline):
        if "set" in frame.columns:
            found |= {str(s) for s in frame["set"].dropna().unique()} - {"val", "showcase"}
    return sorted(found)


def benchmarks_table(per_image: pd.DataFrame, baseline: pd.DataFrame, benchmarks: Sequence[str] | None = None,
                     *, study: str | None) -> Table:
    """Per benchmark x (preset, model, training dataset, λ_s): PSNR-Y / SSIM-Y (border =
    scale) as mean ± SD over seeds of each run's mean over the benchmark's images, with
    the bicubic baseline of the decimated images first. No benchmark: an empty table
    with a note."""
    names = configured_benchmarks(per_image, baseline, benchmarks)
    scale = _baseline_scale(baseline)
    columns = ["benchmark", "method", "lr_protocol", "preset", "dataset", "lambda_s", "n_seeds", "n_images",
               *(f"{m}_{s}" for m in BENCHMARK_METRICS for s in ("mean", "sd"))]
    caption = _benchmarks_caption(scale)
    if not names:
        return Table(pd.DataFrame(columns=columns), caption, headers=_HEADERS,
                     notes=["No benchmark is configured (`evaluation.benchmarks` is empty): every run is "
                            "evaluated on its validation split only. Add e.g. `benchmarks: [set5, set14]` "
                            "with those datasets configured (config.yaml)."])
    metrics = list(BENCHMARK_METRICS)
    sel_study = default_study(per_image, study) if "study" in per_image.columns else None
    rows, notes = [], []
    for name in names:
        _bicubic_benchmark_rows(name, baseline, metrics, scale, rows, notes)
        _model_benchmark_rows(name, per_image, sel_study, metrics, scale, rows, notes)
    data = pd.DataFrame(rows)
    if data.empty:
        return Table(pd.DataFrame(columns=columns), caption, headers=_HEADERS, notes=notes)
    bicubic = data["method"].isin([BICUBIC, BICUBIC_MATLAB])
    if several(data[~bicubic], "vgg"):
        columns.insert(columns.index("lambda_s"), "vgg")
    data = data[[c for c in columns if c in data.columns]].reset_index(drop=True)
    bicubic = data["method"].isin([BICUBIC, BICUBIC_MATLAB])
    bold = best_mask(data, ["benchmark"], [f"{m}_mean" for m in metrics], True,
                     decimals={"psnr_y_mean": 2, "ssim_y_mean": 4}, rows=data["method"] != BICUBIC_MATLAB)
    table = Table(data, caption, bold=bold, notes=notes, headers=_HEADERS)
    display, mask = table.rendered()
    display = _blank(display, bicubic, ["preset", "dataset", "lambda_s", "n_seeds", "vgg"])
    if sel_study is not None:
        caption += f" Runs of study {sel_study}."
    return Table(data, caption, bold=mask, display=display, notes=notes, headers=_HEADERS)


def _benchmarks_caption(scale) -> str:
    return ("Standard benchmarks: PSNR / SSIM on the luma channel Y with a border of `scale` pixels "
            "cropped (BasicSR's convention), each run's mean over the benchmark's images, then mean ± SD "
            "over seeds; images from a grey file (Set14's bridge) are scored on their grey values, as the "
            "SR literature does. LR protocol, per row: " + decimation_protocol(scale) + " is the SR "
            "model's own downscaler; bicubic: Keys bicubic (a = −0.5) upscaling of that decimated HR "
            "image, without any training. " + BICUBIC_MATLAB + ": LR = " + matlab_protocol(scale)
            + ", then imresize(LR, scale) bicubic, rounded to uint8: the SR literature's protocol, not "
            "the paper's input; at x2 it reproduces the widely published bicubic figures (Set5 33.66 / "
            "0.9299, Set14 30.24 / 0.8688), a check of the metric code. Not bold-compared. The models are "
            "trained on the dataset named; the benchmarks are never trained on.")


def _bicubic_benchmark_rows(name: str, baseline: pd.DataFrame, metrics: list[str], scale,
                            rows: list[dict], notes: list[str]) -> None:
    """Appends benchmark ``name``'s bicubic rows (decimated LR, and MATLAB's protocol beside the
    published x2 figures) to ``rows``; what is missing, to ``notes``."""
    base = baseline[(baseline["dataset"] == name) & (baseline["set"] == name)] \
        if {"dataset", "set"} <= set(baseline.columns) else baseline.iloc[0:0]
    if base.empty:
        notes.append(f"{name}: no bicubic baseline rows (results/eval/baseline.csv).")
        return
    _metrics_present(base, metrics, f"baseline of {name}")
    rows.append({"benchmark": name, "method": BICUBIC, "lr_protocol": decimation_protocol(scale),
                 "preset": "", "dataset": "", "lambda_s": np.nan,
                 "n_seeds": np.nan, "n_images": base["image"].nunique(),
                 **{f"{m}_mean": base[m].mean() for m in metrics},
                 **{f"{m}_sd": np.nan for m in metrics}})
    if not set(MATLAB_COLUMNS.values()) <= set(base.columns):
        notes.append(f"{name}: baseline.csv has no {BICUBIC_MATLAB} columns "
                     f"({', '.join(MATLAB_COLUMNS.values())}): rerun the baseline rule.")
        return
    means = {m: base[MATLAB_COLUMNS[m]].mean() for m in metrics}
    rows.append({"benchmark": name, "method": BICUBIC_MATLAB, "lr_protocol": matlab_protocol(scale),
                 "preset": "", "dataset": "", "lambda_s": np.nan,
                 "n_seeds": np.nan, "n_images": base["image"].nunique(),
                 **{f"{m}_mean": means[m] for m in metrics}, **{f"{m}_sd": np.nan for m in metrics}})
    published = PUBLISHED_BICUBIC_X2.get(str(name).lower())
    if published is not None and scale == 2:
        notes.append(f"{name}: {BICUBIC_MATLAB} {means['psnr_y']:.2f} dB / {means['ssim_y']:.4f}; "
                     f"published x2 bicubic {published[0]:.2f} / {published[1]:.4f} (difference "
                     f"{means['psnr_y'] - published[0]:+.2f} dB / {means['ssim_y'] - published[1]:+.4f}).")


def _model_benchmark_rows(name: str, per_image: pd.DataFrame, sel_study, metrics: list[str], scale,
                          rows: list[dict], notes: list[str]) -> None:
    """Appends the trained runs' rows on benchmark ``name`` (mean ± SD over seeds per preset,
    model, dataset, [vgg,] λ_s) to ``rows``; a benchmark no run was evaluated on, to ``notes``."""
    ours = per_image[per_image["set"] == name] if "set" in per_image.columns else per_image.iloc[0:0]
    if sel_study is not None:
        ours = ours[ours["study"] == sel_study]
    if ours.empty:
        notes.append(f"{name}: no run was evaluated on it (per_image.csv has no rows with set == {name!r}).")
        return
    _metrics_present(ours, metrics, f"per-image rows of {name}")
    per_run = _run_means(ours, metrics)
    group = [c for c in ("preset", "model", "dataset", "vgg", "lambda_s") if c in per_run.columns]
    agg = aggregate_seeds(per_run, group, metrics)
    images = per_run.groupby(group, dropna=False)["n_images"].max().rename("n_images").reset_index()
    agg = agg.merge(images, on=group, how="left")
    for rec in agg.to_dict("records"):
        rec["benchmark"], rec["method"] = name, rec.pop("model")
        rec["lr_protocol"] = _model_protocol(rec["method"], scale)
        rows.append(rec)


def by_origin_table(per_image: pd.DataFrame, baseline: pd.DataFrame, study: str | None) -> Table:
    """Validation images grouped by origin (the folder of their source member): the bicubic
    baseline and each (preset, model, λ_s), mean over seeds of the per-run means, and the
    gain over bicubic on the same images; ``all`` rows pool the origins."""
    metrics = list(ORIGIN_METRICS)
    columns = ["dataset", "origin", "n_images", "method", "preset", "lambda_s", "n_seeds", *metrics, "psnr_gain"]
    caption = ("Validation images by origin (the folder of the source member each image came from, e.g. "
               "BSDS300/images/test: the byte-identical official test JPEGs; BSDS300/images/train: re-encoded "
               "in ../shared/data's copy). PSNR / SSIM on RGB as training measures them, PSNR (Y) / SSIM (Y) "
               "with border = scale; models: mean over seeds of each run's mean over the images of that "
               "origin. Bicubic: Keys bicubic upscaling of the decimated HR (no training). PSNR − bicubic: the "
               "model's PSNR minus the baseline's on the same images; a shift of the data shows in the "
               "bicubic rows, a shift of what training learned in the gain.")
    notes = []
    val = per_image[per_image["set"] == "val"] if "set" in per_image.columns else per_image.iloc[0:0]
    sel_study = default_study(val, study) if "study" in val.columns else None
    if sel_study is not None:
        val = val[val["study"] == sel_study]
        caption += f" Runs of study {sel_study}."
    if not val.empty and "origin" not in val.columns:
        notes.append("per_image.csv has no `origin` column (collected before origins were recorded): "
                     "rerun the collect rule.")
        val = val.iloc[0:0]
    base = baseline[baseline["set"] == "val"] if "set" in baseline.columns else baseline.iloc[0:0]
    if val.empty and base.empty:
        notes.append("No validation results and no bicubic baseline rows.")
        return Table(pd.DataFrame(columns=columns), caption, headers=_HEADERS, notes=notes)
    val = val.assign(origin=val["origin"].fillna("unknown").astype(str)) if not val.empty else val
    base = base.assign(origin=base["origin"].fillna("unknown").astype(str)) if not base.empty else base
    both = [f for f in (val, base) if not f.empty]
    for frame, what in zip(both, ("per-image rows", "baseline rows")):
        _metrics_present(frame, metrics, f"by_origin: {what}")
    rows = _origin_bicubic_rows(base, metrics)
    if base.empty:
        notes.append("No bicubic baseline rows for the validation split (results/eval/baseline.csv).")
    rows += _origin_model_rows(val, metrics)
    data = _origin_ordered(pd.DataFrame(rows), columns)
    headers = {**_HEADERS, "dataset": "Dataset"}
    table = Table(data, caption, notes=notes, headers=headers)
    display, _ = table.rendered()
    display = _blank(display, data["method"] == BICUBIC, ["preset", "lambda_s", "n_seeds", "psnr_gain"])
    return Table(data, caption, display=display, notes=notes, headers=headers)


def _pooled(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` plus a copy of its rows under origin ``all``."""
    return pd.concat([frame, frame.assign(origin="all")], ignore_index=True)


def _origin_bicubic_rows(base: pd.DataFrame, metrics: list[str]) -> list[dict]:
    """The bicubic baseline's rows per dataset and origin (and ``all``); none without a baseline."""
    rows = []
    if not base.empty:
        b = _pooled(base).groupby(["dataset", "origin"], sort=True)
        means = b[metrics].mean()
        means["n_images"] = b["image"].nunique()
        for (dataset, origin), rec in means.iterrows():
            rows.append({"dataset": dataset, "origin": origin, "method": BICUBIC, "preset": "", "lambda_s": np.nan,
                         "n_seeds": np.nan, **rec.to_dict()})
    return rows


def _origin_model_rows(val: pd.DataFrame, metrics: list[str]) -> list[dict]:
    """Per dataset, origin (and ``all``), preset, model and λ_s: the mean over seeds of each
    run's mean over the images."""
    rows = []
    if not val.empty:
        per_run = _run_means(_pooled(val), metrics, extra=["origin"])
        group = ["dataset", "origin", "preset", "model", "lambda_s"]
        g = per_run.groupby(group, sort=True, dropna=False)
        agg = g[metrics].mean()
        agg["n_seeds"] = g.size()
        agg["n_images"] = g["n_images"].max()
        for rec in agg.reset_index().to_dict("records"):
            rec["method"] = rec.pop("model")
            rows.append(rec)
    return rows


def _origin_ordered(data: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``data`` with each model's PSNR gain over bicubic on the same images, sorted: per dataset
    the origins, ``all`` last, bicubic first within each."""
    bic = data[data["method"] == BICUBIC].set_index(["dataset", "origin"])["psnr"]
    data["psnr_gain"] = [np.nan if m == BICUBIC else p - bic.get((d, o), np.nan)
                         for d, o, m, p in zip(data["dataset"], data["origin"], data["method"], data["psnr"])]
    order = {"all": 1}
    data = data.assign(_o=data["origin"].map(lambda o: order.get(o, 0)), _m=(data["method"] != BICUBIC))
    data = data.sort_values(["dataset", "_o", "origin", "_m", "method", "preset", "lambda_s"], kind="stable")
    return data.drop(columns=["_o", "_m"])[columns].reset_index(drop=True)
