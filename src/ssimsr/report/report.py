"""The report's output files, and the figures assembled from the collected results.

``TABLE_EXTENSIONS`` / ``FIGURE_EXTENSIONS`` and ``figure_names`` let the Snakefile declare
the outputs (the table names come from :func:`ssimsr.tables.table_names`);
``figure_caption`` names each figure's report caption (``workflow/report/<caption>.rst``);
``build_figures`` is what the ``figures`` rule calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from . import figures
from ..pipeline.runs import DEFAULT_PRESET, Run

if TYPE_CHECKING:
    import pandas as pd
# pandas is imported where a table is read: the Snakefile imports this module for the
# figure names, and a dry run should not pay for pandas

TABLE_EXTENSIONS = ("tex", "csv", "md")
FIGURE_EXTENSIONS = ("png", "pdf")

#: Figures written whatever the showcase: training curves, loss terms, the verdict's forest plot.
FIXED_FIGURES = ("training_curves", "loss_terms", "forest_verdict", "forest_contrasts")
#: The SR comparison (HR, bicubic, each λ_s; a row per showcase image), when there are showcase images.
SR_COMPARISON = "sr_comparison"


def figure_names(showcase: dict) -> list[str]:
    images = [e["name"] for e in showcase.get("images", [])]
    return [*FIXED_FIGURES, *([SR_COMPARISON] if images else []), *(f"diff_{name}" for name in images)]


def figure_caption(name: str) -> str:
    """The caption file (``workflow/report/<caption>.rst``) and subcategory of figure ``name``."""
    return "difference_maps" if name.startswith("diff_") else name


def _showcase_runs(history: pd.DataFrame, showcase: dict, study: str, preset: str, seed: int | None):
    """(seed, vgg, lambdas in the paper's panel order 1, 0, 2, then the others), or None."""
    runs = history[(history.study == study) & (history.preset == preset)
                   & (history.model == showcase["model"]) & (history.dataset == showcase["dataset"])]
    if runs.empty or not showcase.get("images"):
        return None
    seed = int(runs.seed.min()) if seed is None else seed
    vgg = sorted(runs.vgg.unique())[0]
    present = sorted(set(runs.lambda_s.astype(float)))
    lambdas = [ls for ls in (1.0, 0.0, 2.0) if ls in present] + [ls for ls in present if ls not in (1.0, 0.0, 2.0)]
    return seed, vgg, lambdas


def _read_rgb(path: Path, what: str) -> np.ndarray:
    """An 8-bit RGB PNG as float64 in [0, 1]; FileNotFoundError naming the file and what it is."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"figures: {what} {path} does not exist")
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"), dtype=np.float64) / 255.0


def _recon_path(eval_root, run: Run, image: str) -> Path:
    return Path(run.under(eval_root)) / "recon" / "showcase" / f"{image}.png"


def sr_comparison_rows(showcase: dict, showcase_dir: str | Path, eval_root: str | Path, runs: list[Run],
                       scale: int) -> list[dict]:
    """Per showcase image: the panels HR, bicubic and one per run of ``runs`` (its λ_s).

    HR is the showcase crop; bicubic is :func:`ssimsr.evaluation.baseline.bicubic_upscale` of the
    decimated crop ``hr[::scale, ::scale]`` (the SR model's own input), with PSNR / SSIM
    (:mod:`ssimsr.evaluation.metrics`, RGB, as training validates) on its float output. A run's panel is
    its reconstruction PNG (``recon/showcase/<image>.png``), with the PSNR / SSIM of its
    ``metrics.csv`` row (set ``showcase``; the float output) where present, else computed
    from the 8-bit PNG (noted under the panel). A missing crop or reconstruction is a
    FileNotFoundError naming the file.
    """
    import pandas as pd

    from ..evaluation import metrics
    from ..evaluation.baseline import bicubic_upscale, decimate

    scale = int(scale)
    rows = []
    tables: dict[Path, pd.DataFrame | None] = {}
    for entry in showcase.get("images", []):
        image = entry["name"]
        crop = Path(showcase_dir) / f"{image}.png"
        hr = _read_rgb(crop, "showcase crop")
        if hr.shape[0] % scale or hr.shape[1] % scale:
            raise ValueError(f"figures: showcase crop {crop} is {hr.shape[1]}x{hr.shape[0]}, "
                             f"not a multiple of scale {scale}")
        bicubic = bicubic_upscale(decimate(hr, scale), scale)
        panels = [dict(label="HR", image=hr, psnr=None, ssim=None),
                  dict(label=f"bicubic x{scale}", image=np.clip(bicubic, 0.0, 1.0),
                       psnr=metrics.psnr(hr, bicubic), ssim=metrics.ssim_numpy(hr, bicubic))]
        for run in runs:
            recon = _recon_path(eval_root, run, image)
            rec = _read_rgb(recon, f"reconstruction (λ_s = {run.lambda_s:g}, run {run.path}):")
            if rec.shape != hr.shape:
                raise ValueError(f"figures: reconstruction {recon} has shape {rec.shape}, "
                                 f"the showcase crop {crop} {hr.shape}")
            table_path = Path(run.under(eval_root)) / "metrics.csv"
            if table_path not in tables:
                tables[table_path] = (pd.read_csv(table_path, dtype={"image": str}) if table_path.is_file() else None)
            table = tables[table_path]
            row = (table[(table["set"] == "showcase") & (table["image"] == image)]
                   if table is not None and {"set", "image", "psnr", "ssim"} <= set(table.columns) else pd.DataFrame())
            if len(row) and pd.notna(row["psnr"].iloc[0]) and pd.notna(row["ssim"].iloc[0]):
                p, s, note = float(row["psnr"].iloc[0]), float(row["ssim"].iloc[0]), ""
            else:
                p, s, note = metrics.psnr(hr, rec), metrics.ssim_numpy(hr, rec), "(from the 8-bit PNG)"
            panels.append(dict(label=figures.panel_label(run.lambda_s), image=rec, psnr=p, ssim=s, note=note))
        rows.append(dict(image=image, panels=panels))
    return rows


def build_figures(history: pd.DataFrame, showcase: dict, showcase_dir: str | Path, eval_root: str | Path,
                  study: str, out_dir: str | Path, preset: str = DEFAULT_PRESET, seed: int | None = None,
                  comparisons: pd.DataFrame | None = None, scale: int = 2,
                  contrasts: pd.DataFrame | None = None) -> list[Path]:
    """Every figure of :func:`figure_names`, in ``out_dir``.

    Training curves and the loss terms (:func:`ssimsr.registry.loss_terms`) per epoch of
    ``study``; the verdict's forest plot from ``comparisons`` (``results/stats/comparisons.csv``;
    None: an empty plot saying so); the paper's λ_s contrasts beside ours from ``contrasts``
    (``results/tables/paper_vs_ours_contrasts.csv``); and, per showcase image, the SR comparison (HR, bicubic
    x``scale``, each λ_s) and the equalised difference maps (Figs. 4-9). The showcase panels
    are the reconstructions of the showcase models (``showcase.model`` trained on
    ``showcase.dataset`` in ``study``/``preset``) for lambda_s 1, 0, 2 (the paper's panel
    order), of the first seed unless ``seed`` is given.
    """
    import pandas as pd

    from ..registry import loss_terms

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = list(figures.plot_training_curves(history, out / "training_curves", study=study).values())
    terms = [t for t in loss_terms() if t in history.columns]
    written += list(figures.plot_loss_terms(history, out / "loss_terms", terms, study=study).values())
    comparisons = pd.DataFrame() if comparisons is None else comparisons
    written += list(figures.plot_forest(comparisons, out / "forest_verdict", study=study).values())
    contrasts = pd.DataFrame() if contrasts is None else contrasts
    written += list(figures.plot_contrast_forest(contrasts, out / "forest_contrasts").values())
    found = _showcase_runs(history, showcase, study, preset, seed)
    if found is None:
        if showcase.get("images"):
            raise ValueError(f"figures: no runs of {showcase['model']} on {showcase['dataset']} in study {study!r}, "
                             f"preset {preset!r} for the showcase figures")
        return written
    seed, vgg, lambdas = found
    runs = [Run(study, preset, showcase["model"], showcase["dataset"], ls, seed, vgg) for ls in lambdas]
    rows = sr_comparison_rows(showcase, showcase_dir, eval_root, runs, scale)
    title = (f"{showcase['model'].upper()} trained on {showcase['dataset']} ({preset}, seed {seed}), "
             f"x{int(scale)}; PSNR / SSIM on RGB")
    written += list(figures.plot_sr_comparison(rows, out / SR_COMPARISON, title=title).values())
    for row in rows:
        image = row["image"]
        original = row["panels"][0]["image"]
        recs = {run.lambda_s: panel["image"] for run, panel in zip(runs, row["panels"][2:])}
        maps = figures.difference_maps(original, recs)
        title = (f"{image}: |original − reconstruction|, histogram-equalised jointly "
                 f"({showcase['model'].upper()} trained on {showcase['dataset']}, seed {seed})")
        written += list(figures.plot_difference_figure(original, maps, title, out / f"diff_{image}").values())
    return written
