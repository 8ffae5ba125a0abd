"""Assemble the paper's tables and figures from the collected results.

``build_tables`` and ``build_figures`` are what the ``tables`` and ``figures`` rules call;
the file names they write are listed by ``table_names`` / ``figure_names`` so the
Snakefile can declare them as outputs.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from PIL import Image

from . import figures, tables
from .runs import Run
from .stats import DEFAULT_PAIRS, comparison_label

TABLE_EXTENSIONS = ("tex", "csv", "md")
FIGURE_EXTENSIONS = ("png", "pdf")
#: The paper's Tables 2 and 3: lambda_s 1 vs 2 and 1 vs 0 (differences a - b).
PAPER_TABLE_PAIRS = {"table2": (1.0, 2.0), "table3": (1.0, 0.0)}


def table_names(report: dict) -> list[str]:
    names = ["table1", "loss_shares", "table2", "table3", "table4", "verdict", "stats_all",
             "paper_vs_ours_table1", "paper_vs_ours_table2", "paper_vs_ours_table3", "paper_vs_ours_table4"]
    if report.get("appendix_study"):
        names += ["table_a2", "paper_vs_ours_table_a2"]
    return names


def figure_names(showcase: dict) -> list[str]:
    return ["training_curves"] + [f"diff_{e['name']}" for e in showcase.get("images", [])]


#: The preset that reproduces the setting the paper's numbers came from, and the one shown beside it.
PAPER_PRESET, BESIDE_PRESET = "as_run", "corrected"
_PRESET_LABELS = {PAPER_PRESET: "as_run, the paper's setting", BESIDE_PRESET: "corrected, all losses on"}


def _stats_all(comparisons: pd.DataFrame) -> tables.Table:
    keep = ["study", "preset", "model", "dataset", "vgg", "comparison", "metric", "status", "n_seeds",
            "mean_diff", "sd_seed_diff", "ci_low_seed", "ci_high_seed", "t_seed", "df_seed", "p_seed", "mde_seed",
            "n", "ci_low", "ci_high", "t_paired", "df_paired", "p_paired", "cohens_dz", "p_wilcoxon",
            "t_welch", "df_welch", "p_welch", "cohens_d_pooled", "pairing"]
    data = comparisons[[c for c in keep if c in comparisons.columns]].reset_index(drop=True)
    return tables.Table(data, "All comparisons of λ_s variants (validation images, differences a − b). *_seed: "
                              "the verdict test, a paired t on the per-seed mean differences (n_seeds = n, unit: "
                              "the training run; mde_seed = the difference detectable with 80 % power). n = images: "
                              "paired t, Wilcoxon and d_z on the per-image differences averaged over seeds (these "
                              "trained models), and Welch, the paper's unpaired test, on the per-image values "
                              "averaged over seeds.")


def _published_alone(name: str, reasons: list[str]) -> tables.Table:
    """The paper's values listed alone with a note, when none of our runs matches (e.g. the demo)."""
    published = tables.load_published(name)
    return tables.Table(published, f"The paper's {name} (no run of ours matches it).",
                        notes=[f"ours: unavailable ({r})" for r in reasons])


def _paper_vs_presets(name: str, compare_for: Callable[[str], tables.Table]) -> tables.Table:
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
        return _published_alone(name, reasons)
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
    return tables.Table(data=data.reset_index(drop=True), caption=caption, display=display.reset_index(drop=True),
                        headers=headers, notes=[f"ours ({r})" for r in reasons])


def _loss_shares(history: pd.DataFrame, study: str) -> tables.Table:
    """Table 1's companion: the loss terms' shares; a history without the lambdas gives a note."""
    try:
        return tables.loss_shares(history, study=study)
    except ValueError as exc:
        return tables.Table(pd.DataFrame(columns=["stage", "epoch"]),
                            "Share of each weighted loss term in the validation total: not available.",
                            notes=[str(exc)])


def _table4_means(ours: tables.Table) -> tables.Table:
    """Table 4 per (metric, lambda_s) averaged over the showcase images, ours beside the paper's.

    The paper's images are the authors' own photographs (not public), so only the means
    over each side's images are comparable, not image by image.
    """
    paper = tables.load_published("table4")
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
    return tables.Table(merged, "Table 4, mean over the showcase images: ours (our crops) beside the paper's "
                                "(the authors' photographs, not public); only the means are comparable.")


def _stats_table(comparisons: pd.DataFrame, model: str, dataset: str, pair: tuple[float, float],
                 name: str, **select) -> tables.Table:
    """Table 2 / 3 for ``pair``; a pair the comparisons lack gives an empty table naming it."""
    label = comparison_label(*pair)
    present = comparisons
    for col, value in dict(model=model, dataset=dataset, **select).items():
        if value is not None and col in present.columns:
            present = present[present[col] == value]
    if "comparison" not in present.columns or not (present["comparison"] == label).any():
        have = sorted(present["comparison"].unique()) if "comparison" in present.columns else []
        where = ", ".join(f"{k} {v}" for k, v in dict(model=model, dataset=dataset, **select).items() if v)
        note = (f"λ_s {pair[0]:g} vs {pair[1]:g} (the paper's {name}) was not compared for {where}: the study "
                "lacks one of the values or report.comparisons does not list the pair "
                f"(comparisons present: {', '.join(have) or 'none'}).")
        return tables.Table(pd.DataFrame(columns=["test", "statistic"]), f"{name}: λ_s = {pair[0]:g} vs "
                            f"λ_s = {pair[1]:g} ({dataset} {model}): not available.", notes=[note])
    return tables.table_stats(comparisons, model, dataset, label, **select)


def build_tables(history: pd.DataFrame, per_image: pd.DataFrame, comparisons: pd.DataFrame,
                 report: dict, out_dir: str | Path) -> list[Path]:
    """Write every table of ``table_names(report)`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    study = report["table1_study"]
    stats = report["stats"]
    stats_study = stats.get("study", study)
    preset = report.get("preset", "corrected")
    model, dataset = stats["model"], stats["dataset"]
    showcase = (report["showcase_model"], report["showcase_dataset"])
    built: dict[str, tables.Table] = {
        "table1": tables.table1(history, study=study),
        "loss_shares": _loss_shares(history, study),
        "table2": _stats_table(comparisons, model, dataset, PAPER_TABLE_PAIRS["table2"], "Table 2",
                               study=stats_study, preset=preset),
        "table3": _stats_table(comparisons, model, dataset, PAPER_TABLE_PAIRS["table3"], "Table 3",
                               study=stats_study, preset=preset),
        "table4": tables.table4(per_image, *showcase, study=stats_study, preset=preset),
        "verdict": tables.verdict(per_image, report.get("comparisons", DEFAULT_PAIRS), study=study),
        "stats_all": _stats_all(comparisons),
    }
    history_of = {p: history[history["preset"] == p] for p in (PAPER_PRESET, BESIDE_PRESET)}

    def table1_for(p: str) -> tables.Table:
        if history_of[p].empty:
            raise ValueError(f"preset {p!r} was not run")
        return tables.paper_vs_ours(tables.table1(history_of[p], study=study), table="table1")

    def stats_for(name: str) -> Callable[[str], tables.Table]:
        return lambda p: tables.paper_vs_ours(tables.table_stats(
            comparisons, model, dataset, comparison_label(*PAPER_TABLE_PAIRS[name]), study=stats_study, preset=p),
            table=name)

    built["paper_vs_ours_table1"] = _paper_vs_presets("table1", table1_for)
    for name in ("table2", "table3"):
        built[f"paper_vs_ours_{name}"] = _paper_vs_presets(name, stats_for(name))
    built["paper_vs_ours_table4"] = _paper_vs_presets(
        "table4", lambda p: _table4_means(tables.table4(per_image, *showcase, study=stats_study, preset=p)))
    if report.get("appendix_study"):
        # the layer grid only exists with the perceptual loss on, i.e. in the corrected preset
        built["table_a2"] = tables.table_a2(history, study=report["appendix_study"])
        try:
            built["paper_vs_ours_table_a2"] = tables.paper_vs_ours(built["table_a2"], table="table_a2")
        except ValueError as exc:
            built["paper_vs_ours_table_a2"] = _published_alone("table_a2", [str(exc)])
    written = []
    for name, table in built.items():
        written += list(table.write(out / name, label=f"tab:{name}").values())
    return written


def build_figures(history: pd.DataFrame, showcase: dict, showcase_dir: str | Path, eval_root: str | Path,
                  study: str, out_dir: str | Path, preset: str = "corrected", seed: int | None = None) -> list[Path]:
    """Training curves and, per showcase image, the equalised difference maps (Figs. 4-9).

    The maps compare the reconstructions of the showcase models (``showcase.model`` trained
    on ``showcase.dataset`` in ``study``/``preset``) for lambda_s 1, 0, 2 (the paper's
    panel order), of the first seed unless ``seed`` is given.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = list(figures.plot_training_curves(history, out / "training_curves", study=study).values())
    runs = history[(history.study == study) & (history.preset == preset)
                   & (history.model == showcase["model"]) & (history.dataset == showcase["dataset"])]
    if runs.empty or not showcase.get("images"):
        return written
    seed = int(runs.seed.min()) if seed is None else seed
    vgg = sorted(runs.vgg.unique())[0]
    present = sorted(set(runs.lambda_s.astype(float)))
    # the paper's panel order (1, 0, 2), then any other lambda_s of the study
    lambdas = [ls for ls in (1.0, 0.0, 2.0) if ls in present] + [ls for ls in present if ls not in (1.0, 0.0, 2.0)]
    for entry in showcase["images"]:
        image = entry["name"]
        original = np.asarray(Image.open(Path(showcase_dir) / f"{image}.png").convert("RGB"), dtype=np.float32) / 255
        recs = {}
        for ls in lambdas:
            run = Run(study, preset, showcase["model"], showcase["dataset"], ls, seed, vgg)
            rec = Path(run.under(eval_root)) / "recon" / "showcase" / f"{image}.png"
            recs[ls] = np.asarray(Image.open(rec).convert("RGB"), dtype=np.float32) / 255
        maps = figures.difference_maps(original, recs)
        title = (f"{image}: |original − reconstruction|, histogram-equalised jointly "
                 f"({showcase['model'].upper()} trained on {showcase['dataset']}, seed {seed})")
        written += list(figures.plot_difference_figure(original, maps, title, out / f"diff_{image}").values())
    return written
