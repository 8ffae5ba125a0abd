"""This run beside the paper-scale run measured on a GPU and beside the paper: the demo's
first question ("is this what the method does?") answered with the numbers of both scales.

The reference is package data (``ssimsr/tables/published/reference_h200.csv``, see its README):
Table 1's BSDS300 rows of our own full-scale run on an NVIDIA H200, with the bicubic baseline
on the same validation images. What differs between the scales (images, widths, steps) is
said in the caption; the margins over bicubic are comparable, the absolute PSNRs are not.
"""

from __future__ import annotations

import io
from importlib import resources

import pandas as pd

from .baseline import BASELINE_MODEL
from .published import load_published
from .render import Table

COLUMNS = ["model", "lambda_s", "dataset", "n_seeds", "psnr_end", "bicubic_psnr", "margin",
           "ref_psnr_end", "ref_bicubic_psnr", "ref_margin", "paper_psnr_end"]
HEADERS = {"n_seeds": "Seeds", "psnr_end": "This run: PSNR (end)", "bicubic_psnr": "This run: bicubic",
           "margin": "This run: − bicubic", "ref_psnr_end": "GPU paper scale: PSNR (end)",
           "ref_bicubic_psnr": "GPU: bicubic", "ref_margin": "GPU: − bicubic",
           "paper_psnr_end": "Paper (Table 1, BSDS300)"}


def load_reference() -> pd.DataFrame:
    """Our paper-scale rows (``published/reference_h200.csv``)."""
    text = (resources.files(__package__) / "published" / "reference_h200.csv").read_text(encoding="utf-8")
    return pd.read_csv(io.StringIO(text))


def scale_reference(table1: pd.DataFrame, preset: str, reference: pd.DataFrame | None = None) -> Table:
    """One row per (model, λ_s, dataset) of Table 1's ``preset`` rows (``table1``: Table 1's
    data with its bicubic rows): this run's mean end-of-training validation PSNR and its margin
    over the bicubic row of the same dataset, beside the reference run's and the paper's
    BSDS300 value for the same model and λ_s."""
    reference = load_reference() if reference is None else reference
    paper = load_published("table1")
    paper = paper[paper["dataset"] == "bsds300"].set_index(["model", "lambda_s"])["psnr_end"]
    ref = reference.set_index(["model", "lambda_s"])
    bicubic = table1[table1["model"] == BASELINE_MODEL].set_index("dataset")["psnr_end_mean"]
    runs = table1[table1["model"] != BASELINE_MODEL]
    if "preset" in runs.columns:
        runs = runs[runs["preset"] == preset]
    rows = []
    for _, r in runs.sort_values(["model", "lambda_s", "dataset"]).iterrows():
        key = (r["model"], float(r["lambda_s"]))
        base = bicubic.get(r["dataset"], float("nan"))
        ref_row = ref.loc[key] if key in ref.index else None
        rows.append({"model": r["model"], "lambda_s": key[1], "dataset": r["dataset"], "n_seeds": r["n_seeds"],
                     "psnr_end": r["psnr_end_mean"], "bicubic_psnr": base, "margin": r["psnr_end_mean"] - base,
                     "ref_psnr_end": ref_row["psnr_end"] if ref_row is not None else float("nan"),
                     "ref_bicubic_psnr": ref_row["bicubic_psnr"] if ref_row is not None else float("nan"),
                     "ref_margin": (ref_row["psnr_end"] - ref_row["bicubic_psnr"]) if ref_row is not None
                     else float("nan"),
                     "paper_psnr_end": paper.get(key, float("nan"))})
    first = reference.iloc[0]
    caption = (f"This run ({preset} preset) beside our paper-scale run, measured on an {first['gpu']} "
               f"({first['date']}, commit {first['commit']}; {first['source']}): {first['dataset']}, x2, "
               f"{first['epochs']} epochs of whole images ({first['steps']} steps per run), preset "
               f"{first['preset']}, seed {first['seed']}, the paper's widths; and beside the paper's Table 1 "
               "(BSDS300). Validation PSNR (dB) after the last epoch, mean over this run's seeds. The "
               "datasets, widths and steps differ between the scales, so compare the margins over each "
               "one's bicubic baseline (the same validation images), not the absolute PSNRs.")
    frame = pd.DataFrame(rows, columns=COLUMNS)
    formats = {c: "{:.2f}" for c in COLUMNS if "psnr" in c or "margin" in c}
    formats.update({"margin": "{:+.2f}", "ref_margin": "{:+.2f}", "lambda_s": "{:g}", "n_seeds": "{:.0f}"})
    return Table(frame, caption, formats=formats, headers=HEADERS)
