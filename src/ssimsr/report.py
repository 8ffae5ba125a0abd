"""Assemble the paper's tables and figures from the collected results.

``build_tables`` and ``build_figures`` are what the ``tables`` and ``figures`` rules call;
the file names they write are listed by ``table_names`` / ``figure_names`` so the
Snakefile can declare them as outputs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from . import figures, tables
from .experiments import lambda_tag

TABLE_EXTENSIONS = ("tex", "csv", "md")
FIGURE_EXTENSIONS = ("png", "pdf")


def table_names(report: dict) -> list[str]:
    names = ["table1", "table2", "table3", "table4", "verdict", "stats_all",
             "paper_vs_ours_table1", "paper_vs_ours_table2", "paper_vs_ours_table3", "paper_vs_ours_table4"]
    if report.get("appendix_study"):
        names += ["table_a2", "paper_vs_ours_table_a2"]
    return names


def figure_names(showcase: dict) -> list[str]:
    return ["training_curves"] + [f"diff_{e['name']}" for e in showcase.get("images", [])]


def _stats_all(comparisons: pd.DataFrame) -> tables.Table:
    keep = ["study", "preset", "model", "dataset", "vgg", "comparison", "metric", "status", "n",
            "mean_diff", "ci_low", "ci_high", "t_paired", "df_paired", "p_paired", "cohens_dz",
            "p_wilcoxon", "t_welch", "df_welch", "p_welch", "cohens_d_pooled", "pairing"]
    data = comparisons[[c for c in keep if c in comparisons.columns]].reset_index(drop=True)
    return tables.Table(data, "All comparisons of lambda_s variants (validation images). Paired tests pair "
                              "the same image (and seed) across variants; Welch is the paper's unpaired test.")


def _paper_vs_ours(ours: tables.Table, name: str) -> tables.Table:
    """Ours beside the paper's; where none of our runs matches (e.g. the demo's dataset), the
    paper's values are listed alone with a note rather than silently dropped."""
    try:
        return tables.paper_vs_ours(ours, table=name)
    except ValueError as exc:
        published = tables.load_published(name)
        return tables.Table(published, f"The paper's {name} (no run of ours matches it: {exc}).",
                            notes=[f"ours: unavailable ({exc})"])


def _table4_means(ours: tables.Table) -> tables.Table:
    """Table 4 per (metric, lambda_s) averaged over the showcase images, ours beside the paper's.

    The paper's images are the authors' own photographs (not public), so only the means
    over each side's images are comparable, not image by image.
    """
    paper = tables.load_published("table4")
    fig_cols = [c for c in paper.columns if c.startswith("fig")]
    paper_mean = paper.assign(paper=paper[fig_cols].mean(axis=1))[["metric", "lambda_s", "paper"]]
    data = ours.data.reset_index() if ours.data.index.name or isinstance(ours.data.index, pd.MultiIndex) else ours.data
    image_cols = [c for c in data.columns if c not in ("metric", "lambda_s")]
    ours_mean = data.assign(ours=data[image_cols].apply(pd.to_numeric, errors="coerce").mean(axis=1))
    merged = ours_mean[["metric", "lambda_s", "ours"]].merge(paper_mean, on=["metric", "lambda_s"], how="outer")
    merged["diff"] = merged["ours"] - merged["paper"]
    return tables.Table(merged, "Table 4, mean over the showcase images: ours (our crops) beside the paper's "
                                "(the authors' photographs, not public); only the means are comparable.")


def build_tables(history: pd.DataFrame, per_image: pd.DataFrame, comparisons: pd.DataFrame,
                 report: dict, out_dir: str | Path) -> list[Path]:
    """Write every table of ``table_names(report)`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    study = report["table1_study"]
    stats = report["stats"]
    stats_study = stats.get("study", study)
    preset = report.get("preset", "corrected")
    built: dict[str, tables.Table] = {
        "table1": tables.table1(history, study=study),
        "table2": tables.table_stats(comparisons, stats["model"], stats["dataset"], "ls1_vs_ls2",
                                     study=stats_study, preset=preset),
        "table3": tables.table_stats(comparisons, stats["model"], stats["dataset"], "ls1_vs_ls0",
                                     study=stats_study, preset=preset),
        "table4": tables.table4(per_image, report["showcase_model"], report["showcase_dataset"],
                                study=stats_study, preset=preset),
        "verdict": tables.verdict(per_image, comparisons, study=study),
        "stats_all": _stats_all(comparisons),
    }
    if report.get("appendix_study"):
        built["table_a2"] = tables.table_a2(history, study=report["appendix_study"])
    for name in ("table1", "table2", "table3", "table_a2"):
        if name in built:
            built[f"paper_vs_ours_{name}"] = _paper_vs_ours(built[name], name)
    built["paper_vs_ours_table4"] = _table4_means(built["table4"])
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
    lambdas = [ls for ls in (1.0, 0.0, 2.0) if ls in set(runs.lambda_s)]
    for entry in showcase["images"]:
        image = entry["name"]
        original = np.asarray(Image.open(Path(showcase_dir) / f"{image}.png").convert("RGB"), dtype=np.float32) / 255
        recs = {}
        for ls in lambdas:
            rec = (Path(eval_root) / study / preset / showcase["model"] / showcase["dataset"]
                   / f"ls{lambda_tag(ls)}" / vgg / f"seed{seed}" / "recon" / "showcase" / f"{image}.png")
            recs[ls] = np.asarray(Image.open(rec).convert("RGB"), dtype=np.float32) / 255
        maps = figures.difference_maps(original, recs)
        title = (f"{image}: |original − reconstruction|, histogram-equalised jointly "
                 f"({showcase['model'].upper()} trained on {showcase['dataset']}, seed {seed})")
        written += list(figures.plot_difference_figure(original, maps, title, out / f"diff_{image}").values())
    return written
