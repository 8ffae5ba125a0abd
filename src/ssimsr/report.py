"""The report's output files, and the figures assembled from the collected results.

``TABLE_EXTENSIONS`` / ``FIGURE_EXTENSIONS`` and ``figure_names`` let the Snakefile declare
the outputs (the table names come from :func:`ssimsr.tables.table_names`);
``build_figures`` is what the ``figures`` rule calls.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from . import figures
from .runs import Run

TABLE_EXTENSIONS = ("tex", "csv", "md")
FIGURE_EXTENSIONS = ("png", "pdf")


def figure_names(showcase: dict) -> list[str]:
    return ["training_curves"] + [f"diff_{e['name']}" for e in showcase.get("images", [])]


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
