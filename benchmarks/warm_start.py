#!/usr/bin/env python
"""A job's start-up, cold and warm: the same train and evaluate jobs, each in a fresh
process as the workflow starts them, once importing Keras themselves (cold) and once
forked from a zygote that imported it (warm, ``ssimsr.pipeline.warm``). One table, with ratios.

    python benchmarks/warm_start.py              # 4 train and 4 evaluate jobs each way
    python benchmarks/warm_start.py --jobs 8 --epochs 6

Each job is ``python -c`` calling ``ssimsr.pipeline.jobs.run`` with a Snakemake-like object (what
``workflow/scripts/job.py`` does; Snakemake's own bookkeeping is left out), one job at a
time. Train jobs train a demo-sized SR run (``--epochs`` on 64-px crops in batches of 4)
on scikit-image's photographs; evaluate jobs evaluate the first cold run. Wall time per
job; CPU time of the job's process and its children (cold), and of the waiting process
plus the fork (warm, the fork's from the last line of its log). The warm column includes
the zygote's own start (its import) in the first job: ``+zygote`` is that job alone (its
wall time includes the import; its CPU column does not: the zygote is no child of it).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "src") not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO / "src"))

JOB = """
import json, sys
from types import SimpleNamespace
from ssimsr.pipeline import jobs
spec = json.loads(sys.argv[1])
params = SimpleNamespace(**spec["params"])
jobs.run(SimpleNamespace(rule=spec["rule"], log=[spec["log"]], params=params,
                         resources=SimpleNamespace(jobs_per_gpu=1, warm_start=spec["warm"])))
"""


def write_photos(root: Path) -> Path:
    """4 train and 2 val crops (96x128) of scikit-image's photographs, as a prepared dataset."""
    from PIL import Image
    from skimage import data as skdata

    photos = [skdata.astronaut, skdata.coffee, skdata.rocket, skdata.chelsea, skdata.hubble_deep_field,
              skdata.retina]
    for i, photo in enumerate(photos):
        split = "train" if i < 4 else "val"
        (root / split).mkdir(parents=True, exist_ok=True)
        Image.fromarray(photo()[100:196, 100:228]).save(root / split / f"img{i}.png")
    return root


def run_job(spec: dict, env: dict) -> tuple[float, float]:
    """(wall s, CPU s) of one job's process; a warm job's CPU adds its fork's (its log)."""
    import json

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", JOB, json.dumps(spec)], env=env, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if spec["warm"]:
        last = Path(spec["log"]).read_text().strip().splitlines()[-1]
        match = re.search(r"warm start: .*CPU ([\d.]+) s", last)
        if not match:
            raise RuntimeError(f"{spec['log']}: the job did not run warm ({last!r})")
        cpu += float(match.group(1))
    return wall, cpu


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=4, help="jobs of each kind, each way (default: 4)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of each train job (default: 3)")
    args = parser.parse_args(argv)

    from ssimsr.pipeline.experiments import run_params

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = write_photos(tmp / "data")
        warm_dir = tmp / "warm"
        env = {**os.environ, "SSIMSR_WARM_DIR": str(warm_dir), "TF_CPP_MIN_LOG_LEVEL": "2",
               "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
        params = run_params("sr", dataset="bench", epochs=args.epochs, crop=64, batch_size=4, lambda_p=0.0,
                            log_every=100, widths={"filters": 32, "res_blocks": 4},
                            backend="tensorflow").as_dict()
        times: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for way, warm in (("cold", 0), ("warm", 1)):
            for i in range(args.jobs):
                out = tmp / way / f"run{i}"
                spec = {"rule": "train", "warm": warm, "log": str(out) + ".log",
                        "params": {"run": params, "data": str(data), "out": str(out)}}
                times.setdefault(("train", way), []).append(run_job(spec, env))
            for i in range(args.jobs):
                out = tmp / way / f"eval{i}"
                spec = {"rule": "evaluate", "warm": warm, "log": str(out) + ".log",
                        "params": {"run": str(tmp / "cold" / "run0"), "data": str(data), "showcase": None,
                                   "benchmarks": [], "out": str(out)}}
                times.setdefault(("evaluate", way), []).append(run_job(spec, env))
        subprocess.run(["pkill", "-f", f"serve.*{warm_dir}"], check=False)  # the zygote leaves when idle anyway

    print(f"{'job':10s} {'cold wall s':>12s} {'warm wall s':>12s} {'cold/warm':>10s} "
          f"{'cold CPU s':>11s} {'warm CPU s':>11s} {'cold/warm':>10s}")
    for kind in ("train", "evaluate"):
        cold, warm = times[(kind, "cold")], times[(kind, "warm")]
        rows = [(kind, warm[1:]), ("  +zygote", warm[:1])] if kind == "train" else [(kind, warm)]
        for label, hot in rows:
            cw, ww = statistics.mean(w for w, _ in cold), statistics.mean(w for w, _ in hot)
            cc, wc = statistics.mean(c for _, c in cold), statistics.mean(c for _, c in hot)
            print(f"{label:10s} {cw:12.2f} {ww:12.2f} {cw / ww:10.2f} {cc:11.2f} {wc:11.2f} {cc / wc:10.2f}")
    print(f"({args.jobs} jobs of each kind each way, one at a time; train: SR 32 filters x 4 blocks, "
          f"{args.epochs} epochs of 64-px crops, batch 4; warm 'train' excludes the first job, which started "
          f"the zygote: '+zygote', whose CPU column leaves out the zygote's import, in another process tree)")


if __name__ == "__main__":
    main()
