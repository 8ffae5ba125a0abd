"""The model-free bicubic baseline on BSDS300 val under each resize filter and split seed (issue 15).

    python benchmarks/bicubic_baseline.py [--archive ../shared/data/BSDS300-images.tgz] [--out FILE]

Prepares BSDS300 with the project's own code (``ssimsr.data.sources.fetch_source``,
``ssimsr.data.data.prepare_dataset``) into a temporary folder, with config.yaml's bsds300
settings (longer side 500, then each side rounded down to a multiple of 16 by a bicubic
resize, random split of 50 val images) and the local archive as source, and scores
``ssimsr.evaluation.baseline`` (Keys bicubic x2 of the decimated HR, the SR model's own input) with
``ssimsr.evaluation.metrics.image_metrics``: PSNR / SSIM on RGB as training measures them, mean over
the val images. Varied: the filter of the 481 -> 500 px resize (split seed 0), and the
split seed (default filter, bicubic); per origin of the images (``BSDS300/images/test``:
byte-identical to the official archive; ``BSDS300/images/train``: re-encoded in
../shared/data's copy), over the val images and over all 300.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ssimsr.evaluation.baseline import baseline_for_dataset, baseline_metrics
from ssimsr.config import load_config_files
from ssimsr.data.data import image_origins, list_split, prepare_dataset
from ssimsr.data.sources import fetch_source

from record import emit  # benchmarks/record.py: scripts here run with this folder on sys.path

REPO = Path(__file__).resolve().parents[1]
FILTERS = ("bicubic", "bilinear", "lanczos", "hamming", "box", "nearest")
SEEDS = (0, 1, 2, 3, 4)
#: The paper's Table 1, BSDS300, SR, lambda_s = 0, end of training; our SR (as_run, seed 0,
#: 30 epochs, bicubic resize) on an H200 (benchmarks/gpu/h200-2026-11-26.md).
PAPER_SR = (33.15, 0.929)
OURS_SR_BICUBIC = 31.98


def bsds300_options(filter_name: str, seed: int) -> dict:
    config = load_config_files([REPO / "config.yaml"])  # the schema's defaults filled in
    options = {k: v for k, v in config["datasets"]["bsds300"].items() if k != "sources"}
    options["resize"] = dict(options["resize"], filter=filter_name)
    options["split"] = dict(options["split"], seed=seed)
    return dict(options, scale=config["scale"])


def prepared(receipt: Path, source: dict, root: Path, filter_name: str, seed: int) -> Path:
    out = root / f"{filter_name}_seed{seed}"
    if not out.exists():
        prepare_dataset([receipt], bsds300_options(filter_name, seed), out, sources=[source])
    return out


def fmt(frame: pd.DataFrame) -> str:
    return frame.to_string(index=False, float_format=lambda v: f"{v:.4f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archive", default=str(REPO.parent / "shared" / "data" / "BSDS300-images.tgz"))
    parser.add_argument("--out", default=None, help="also write the report to this file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    warnings.simplefilter("ignore")  # the archive has no configured sha256: recorded, not checked
    start = time.perf_counter()
    archive = Path(args.archive)
    if not archive.is_file():
        print(f"bicubic_baseline.py: {archive}: no such archive", file=sys.stderr)
        return 1
    lines = [f"# Bicubic x2 baseline on BSDS300 val ({datetime.date.today()}, {archive.name})", ""]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        source = {"uri": str(archive), "sha256": None, "include": "BSDS300/images/*/*.jpg"}
        receipt = root / "source0.json"
        fetch_source(source, receipt, root)

        # 1. every filter, split seed 0: val (50) and all 300 images, by origin
        per_image = []
        for filter_name in FILTERS:
            data_dir = prepared(receipt, source, root, filter_name, 0)
            val = baseline_for_dataset(data_dir, 2).assign(split="val")
            train = baseline_metrics(list_split(data_dir, "train"), 2, image_set="train")
            origins = image_origins(data_dir)
            train.insert(2, "origin", train["image"].map(origins))
            per_image.append(pd.concat([val, train.assign(split="train")]).assign(filter=filter_name))
        per_image = pd.concat(per_image, ignore_index=True)
        per_image["origin"] = per_image["origin"].str.rsplit("/", n=1).str[-1]  # test / train
        val = per_image[per_image.split == "val"]

        by_filter = (val.groupby("filter", sort=False)[["psnr", "ssim", "psnr_y", "ssim_y"]].mean().reset_index())
        ref = by_filter.set_index("filter").loc["bicubic"]
        by_filter["d_psnr"] = by_filter["psnr"] - ref["psnr"]
        by_filter["d_ssim"] = by_filter["ssim"] - ref["ssim"]
        by_filter.insert(1, "n_val", val.groupby("filter", sort=False).size().to_numpy())
        lines += ["## 1. Resize filter of the 481 -> 500 px step (split seed 0, 50 val images)", "",
                  "psnr / ssim: RGB, as training measures them (tf.image.ssim); psnr_y / ssim_y: luma, border 2.",
                  "d_*: minus the bicubic (default) row.", "", fmt(by_filter), ""]

        def origin_table(frame):
            g = frame.groupby(["filter", "origin"], sort=False)
            out = g[["psnr", "ssim"]].mean()
            out.insert(0, "n", g.size())
            return out.reset_index()

        lines += ["## 2. By origin: test = byte-identical official JPEGs, train = re-encoded copy", "",
                  "### the 50 val images (split seed 0)", "", fmt(origin_table(val)), "",
                  "### all 300 images (100 test, 200 train)", "", fmt(origin_table(per_image)), ""]
        gaps = []
        for name, frame in (("val", val), ("all", per_image)):
            for filter_name in ("bicubic", "bilinear"):
                sub = frame[frame["filter"] == filter_name].groupby("origin")["psnr"].mean()
                gaps.append({"images": name, "filter": filter_name, "train_minus_test_psnr": sub["train"] - sub["test"]})
        lines += ["train - test PSNR of the baseline (a data shift would show as a difference here that the",
                  "two groups' picture content alone does not explain):", "", fmt(pd.DataFrame(gaps)), ""]

        # 2. split seeds 0-4 under the default filter (and bilinear), each prepared by the project
        seeds = []
        for filter_name in ("bicubic", "bilinear"):
            for seed in SEEDS:
                data_dir = prepared(receipt, source, root, filter_name, seed)
                frame = baseline_for_dataset(data_dir, 2)
                origin = frame["origin"].str.rsplit("/", n=1).str[-1]
                seeds.append({"filter": filter_name, "seed": seed, "n_val": len(frame), "n_test_origin":
                              int((origin == "test").sum()), "psnr": frame.psnr.mean(), "ssim": frame.ssim.mean(),
                              "psnr_y": frame.psnr_y.mean(), "ssim_y": frame.ssim_y.mean()})
        seeds = pd.DataFrame(seeds)
        summary = seeds.groupby("filter", sort=False)[["psnr", "ssim"]].agg(["mean", "std", "min", "max"])
        lines += ["## 3. Split seeds 0-4 (random 50 of 300; each prepared by prepare_dataset)", "",
                  fmt(seeds), "", "mean / SD / range over the 5 seeds:", "",
                  summary.to_string(float_format=lambda v: f"{v:.4f}"), ""]

        # per-image SD and the sampling SD of a 50-of-300 mean (finite population correction)
        allb = per_image[per_image["filter"] == "bicubic"]
        sd = allb["psnr"].std(ddof=1)
        n, big_n = 50, len(allb)
        sampling = sd / np.sqrt(n) * np.sqrt((big_n - n) / (big_n - 1))
        lines += [f"Per-image PSNR SD over all {big_n} images (bicubic filter): {sd:.2f} dB; SD of a "
                  f"{n}-of-{big_n} mean: {sampling:.2f} dB (with the finite-population correction).", ""]

        d_bil = by_filter.set_index("filter").loc["bilinear", "d_psnr"]
        lines += ["## 4. Which setting matches the paper", "",
                  f"Paper Table 1, BSDS300, SR, lambda_s = 0: {PAPER_SR[0]:.2f} dB / {PAPER_SR[1]:.3f}. Ours (as_run, "
                  f"seed 0, 30 epochs, bicubic resize, H200): {OURS_SR_BICUBIC:.2f} dB, a gap of "
                  f"{PAPER_SR[0] - OURS_SR_BICUBIC:.2f} dB. The bilinear resize raises the bicubic baseline by "
                  f"{d_bil:.2f} dB on the same 50 images.", ""]
        lines.append(f"elapsed: {time.perf_counter() - start:.0f} s")
    emit(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
