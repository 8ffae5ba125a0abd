#!/usr/bin/env python
"""The paper's dry run (``snakemake -n --cores 1 --resources gpu=1``), two commits side by side.

    python benchmarks/dry_run.py                       # HEAD vs 64e9a33 (before issue 25), best of 5
    python benchmarks/dry_run.py --baseline REF --candidate REF --repeats 7 --out FILE

Each commit is checked out into a fresh ``git worktree`` (no ``results/``: the DAG of a new
clone, all 441 jobs), and ``snakemake`` runs there with that worktree's ``src/`` first on
``PYTHONPATH``, so each commit's own library answers its Snakefile's imports, in this
environment. The runs alternate (baseline, candidate, baseline, ...) so a machine that
slows down affects both alike; the best and the median of each are printed, and their ratio
(candidate / baseline: below 1 is faster). Two Snakefiles without ssimsr are timed too:
one job (what Snakemake costs before any workflow: its imports, its start-up), and
``dry_run_shape.smk``, the paper's DAG without the workflow (as many runs as the candidate's
dry run trains, each with the train / evaluate / lpips jobs and directives of workflow/rules):
the floor under the paper's dry run, what Snakemake alone spends on a DAG of this size.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from record import emit  # benchmarks/record.py: scripts here run with this folder on sys.path

REPO = Path(__file__).resolve().parents[1]
COMMAND = [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--resources", "gpu=1"]
#: the last commit before issue 25's work (the time the issue's acceptance halves)
BEFORE_ISSUE_25 = "64e9a33"
TRIVIAL_SNAKEFILE = 'rule all:\n    input: "a.txt"\n\nrule a:\n    output: "a.txt"\n    shell: "touch {output}"\n'
SHAPE_SNAKEFILE = Path(__file__).with_name("dry_run_shape.smk")


def worktree(ref: str, where: Path) -> Path:
    """A detached worktree of ``ref`` in ``where`` (removed by :func:`main`)."""
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "--quiet", str(where), ref], check=True)
    return where


def dry_run(cwd: Path, src: Path | None, *extra: str) -> tuple[float, str]:
    """Seconds and printout of one dry run in ``cwd``; ``src`` first on PYTHONPATH. A failed run is an error."""
    # byte-code cached as on a user's machine (the first, untimed run writes it); a shell
    # that sets PYTHONDONTWRITEBYTECODE would make every run compile every module again
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(src), *filter(None, [env.get("PYTHONPATH")])])
    start = time.perf_counter()
    result = subprocess.run([*COMMAND, *extra], cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"dry run in {cwd} failed:\n{result.stderr[-2000:]}")
    return seconds, result.stdout


def job_counts(printout: str) -> dict[str, int]:
    """Snakemake's job-stats table of a dry run: rule -> jobs, and ``total``."""
    return {rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)$", printout, flags=re.M)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default=BEFORE_ISSUE_25, help="git ref timed first (default: %(default)s)")
    parser.add_argument("--candidate", default="HEAD", help="git ref compared with it (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", help="also write the printout here")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    commits = {name: subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", ref], check=True,
                                    capture_output=True, text=True).stdout.strip()
               for name, ref in (("baseline", args.baseline), ("candidate", args.candidate))}
    with tempfile.TemporaryDirectory(prefix="ssimsr-dry-run-") as tmp:
        trees = {name: worktree(commit, Path(tmp) / name) for name, commit in commits.items()}
        trivial, shape = Path(tmp) / "trivial", Path(tmp) / "shape"
        trivial.mkdir()
        (trivial / "Snakefile").write_text(TRIVIAL_SNAKEFILE)
        shape.mkdir()
        shutil.copy(SHAPE_SNAKEFILE, shape / "Snakefile")
        (shape / "env.yaml").write_text("channels: []\n")  # conda: and script: must name files
        (shape / "job.py").write_text("")
        try:
            # untimed: byte-compiles each tree's modules once
            printouts = {name: dry_run(tree, tree / "src")[1] for name, tree in trees.items()}
            jobs = job_counts(printouts["candidate"])
            runs = jobs["train"]
            others = {
                "trivial": lambda: dry_run(trivial, None),
                "shape": lambda: dry_run(shape, None, "--config", f"runs={runs}"),
            }
            shape_jobs = job_counts(others["shape"]()[1])["total"]
            times = {name: [] for name in (*trees, *others)}
            for _ in range(args.repeats):
                for name, tree in trees.items():
                    times[name].append(dry_run(tree, tree / "src")[0])
                for name, run in others.items():
                    times[name].append(run()[0])
        finally:
            for tree in trees.values():
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=False)
    best = {name: min(t) for name, t in times.items()}
    lines = [f"Paper dry run ({' '.join(COMMAND[2:])}), {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
             f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, Python {platform.python_version()}",
             f"{'':<34} {'best s':>7} {'median s':>9} {'runs':>5}"]
    labels = {"baseline": f"baseline {commits['baseline']}",
              "candidate": f"candidate {commits['candidate']} ({jobs['total']} jobs)",
              "shape": f"same shape, no ssimsr ({shape_jobs} jobs)", "trivial": "Snakemake alone (1 job)"}
    for name, label in labels.items():
        lines.append(f"{label:<34} {best[name]:7.2f} {statistics.median(times[name]):9.2f} {len(times[name]):5d}")
    lines.append(f"candidate / baseline (best): {best['candidate'] / best['baseline']:.2f}; "
                 f"same shape / baseline: {best['shape'] / best['baseline']:.2f}; "
                 f"candidate above the same shape: {best['candidate'] - best['shape']:.2f} s")
    emit(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
