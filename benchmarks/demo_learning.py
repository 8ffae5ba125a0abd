"""How far the demo's SR runs get past bicubic for their training steps (issue 26).

    python benchmarks/demo_learning.py [--steps 150,300,600,1200,2400] [--seeds 0,1] [--out FILE]

Trains the SR runs of the demo study's corrected preset exactly as the demo does (the
profile's config merged over config.yaml: ``profiles/demo``; the same run parameters, the
same batches, ``ssimsr.training.train``'s own epochs and steps), but reads the validation PSNR at
each step budget in one pass: with a constant learning rate, step N of a longer run is the
last step of a demo of N steps. Prints, per lambda_s and budget, the mean validation PSNR
over the seeds minus the bicubic baseline's on the same images (``ssimsr.evaluation.baseline``: what
``results/tables/table1.csv``'s bicubic row holds), and the training seconds per run.
Needs the prepared demo dataset (``snakemake --profile profiles/demo
results/data/photos/manifest.csv``).
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import time
from pathlib import Path

import numpy as np

from ssimsr.evaluation.baseline import bicubic_baseline
from ssimsr.config import load_config_files, workflow_config_files
from ssimsr.pipeline.experiments import experiment_table
from ssimsr.evaluation.metrics import psnr
from ssimsr.training.run_params import RunParams
from ssimsr.training.train import Trainer, _batch, epoch_batches, load_split

from record import emit  # benchmarks/record.py: scripts here run with this folder on sys.path

REPO = Path(__file__).resolve().parents[1]


def demo_sr_runs(seeds: list[int]) -> dict:
    """The demo's SR runs of the corrected preset, by (lambda_s, seed): their RunParams."""
    config = load_config_files(workflow_config_files(profile=REPO / "profiles" / "demo"))
    runs = {}
    for run, params in experiment_table(config).items():
        if run.model == "sr" and run.preset == "corrected" and run.seed in seeds:
            runs[(float(params["loss_weights"]["lambda_s"]), run.seed)] = RunParams.from_dict(params)
    return runs


def learning_curve(params: RunParams, train_images, val_images, budgets: list[int]) -> dict[int, tuple]:
    """{steps: (mean validation PSNR, training seconds so far)} at each budget."""
    trainer, curve, done, seconds, epoch = Trainer(params), {}, 0, 0.0, 0
    while done < max(budgets):
        epoch += 1
        for batch in epoch_batches(train_images, params, epoch):
            t = time.perf_counter()
            terms = trainer.steps.train(*_batch(batch, 0))
            done += 1
            if done in budgets:
                trainer.steps.fetch([terms])  # the steps so far are done: time them, then validate
                seconds += time.perf_counter() - t
                curve[done] = (trainer.validate(val_images)["psnr"], seconds)
                continue
            seconds += time.perf_counter() - t
            if done >= max(budgets):
                break
    return curve


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", default="150,300,600,1200,2400")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--data", default=str(REPO / "results" / "data" / "photos"))
    parser.add_argument("--out", help="also write the printout here")
    args = parser.parse_args(argv)
    budgets = sorted(int(s) for s in args.steps.split(","))
    seeds = [int(s) for s in args.seeds.split(",")]
    _, train_images = load_split(args.data, "train")
    _, val_images = load_split(args.data, "val")
    bicubic = float(np.mean([psnr(v / 255.0, bicubic_baseline(v / 255.0, 2)) for v in val_images]))
    runs = demo_sr_runs(seeds)
    some = next(iter(runs.values()))
    lines = [f"Demo SR learning curve, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
             f"{platform.processor() or platform.machine()}, backend {some.backend}",
             f"runs: SR corrected, widths {some.widths}, crop {some.crop}, batch {some.batch_size}, "
             f"{some.crops_per_image} crops/image/epoch, lr {some.learning_rate}; {len(train_images)} train / "
             f"{len(val_images)} val images; seeds {seeds}",
             f"bicubic baseline (validation PSNR): {bicubic:.3f} dB", "",
             f"{'lambda_s':>8} {'steps':>6} {'PSNR - bicubic (dB, mean over seeds)':>38} {'per seed':>18} {'train s/run':>12}"]
    curves = {key: learning_curve(params, train_images, val_images, budgets) for key, params in sorted(runs.items())}
    for ls in sorted({k[0] for k in curves}):
        for steps in budgets:
            margins = [curves[(ls, s)][steps][0] - bicubic for s in seeds]
            secs = np.mean([curves[(ls, s)][steps][1] for s in seeds])
            lines.append(f"{ls:8g} {steps:6d} {np.mean(margins):38.3f} {' '.join(f'{m:+.2f}' for m in margins):>18} "
                         f"{secs:12.1f}")
    emit(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
