"""Summary of a GPU reproduction run (benchmarks/gpu/reproduce.sh): Table 1 on BSDS300,
ours beside the paper, and where the time went.

    python benchmarks/gpu/summarise.py RUN_DIR DEST --mode full --workflow-seconds 412 --commit abc123

RUN_DIR is the workflow folder the script ran in; DEST gets summary.md and
reproduction.tar.gz (tables, histories, timing.json, train logs, benchmark.tsv).
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd

from ssimsr.pipeline.runs import Run
from ssimsr.tables import load_published


def gpu_name() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        out = ""
    return out or "no GPU (CPU run)"


def run_rows(run_dir: Path) -> pd.DataFrame:
    """One row per training run: final and first-epoch validation metrics, timing."""
    rows = []
    for folder in Run.folders(run_dir / "results" / "train"):
        if not (folder / "params.json").exists():
            continue
        params = json.loads((folder / "params.json").read_text())
        if (folder / "history.csv").exists():
            hist = pd.read_csv(folder / "history.csv")
        elif (folder / "checkpoint" / "state.npz").exists():  # stopped by the time limit
            with np.load(folder / "checkpoint" / "state.npz") as state:
                hist = pd.DataFrame(json.loads(str(state["history"])))
        else:
            continue
        val = hist[(hist.split == "val") & (hist.epoch >= 1)].sort_values("epoch")
        timing = json.loads((folder / "timing.json").read_text()) if (folder / "timing.json").exists() else {}
        bench = folder / "benchmark.tsv"
        job_s = float(pd.read_csv(bench, sep="\t")["s"].iloc[0]) if bench.exists() else float("nan")
        rows.append({
            "model": params["model"], "lambda_s": Run.parse(folder).lambda_s, "epochs": int(val.epoch.max()),
            "psnr_start": val.psnr.iloc[0], "psnr_end": val.psnr.iloc[-1],
            "ssim_start": val.ssim.iloc[0], "ssim_end": val.ssim.iloc[-1],
            "job_s": job_s, "train_s": timing.get("seconds"), "steps": timing.get("steps"),
            "compiles": timing.get("compiles"), "compile_s": timing.get("compile_seconds"),
            "compile_share": timing.get("compile_share"), "backend": params.get("backend"),
        })
    if not rows:
        raise SystemExit(f"summarise.py: no history under {run_dir}/results/train")
    return pd.DataFrame(rows)


def val_images(run_dir: Path) -> int:
    return len(list((run_dir / "results" / "data" / "bsds300" / "val").glob("*.png")))


def ours_vs_paper(ours: pd.DataFrame) -> pd.DataFrame:
    paper = load_published("table1")
    paper = paper[paper.dataset == "bsds300"][["model", "lambda_s", "psnr_end", "ssim_end"]]
    table = ours.merge(paper, on=["model", "lambda_s"], how="left", suffixes=("", "_paper"))
    table["psnr_diff"] = table.psnr_end - table.psnr_end_paper
    table["ssim_diff"] = table.ssim_end - table.ssim_end_paper
    return table[["model", "lambda_s", "epochs", "psnr_end", "psnr_end_paper", "psnr_diff",
                  "ssim_end", "ssim_end_paper", "ssim_diff"]].sort_values(["model", "lambda_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--mode", default="full")
    parser.add_argument("--workflow-seconds", type=float, required=True)
    parser.add_argument("--commit", default="unknown")
    args = parser.parse_args()

    ours = run_rows(args.run_dir)
    table = ours_vs_paper(ours)
    timing = ours[["model", "lambda_s", "backend", "steps", "job_s", "train_s", "compiles", "compile_s",
                   "compile_share"]].sort_values(["model", "lambda_s"])
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# Table 1, BSDS300: ours vs the paper ({args.mode} run)", "",
        f"GPU: {gpu_name()}; date: {stamp}; commit: {args.commit}; whole workflow "
        f"(data, {len(ours)} trainings, evaluation, statistics, tables): {args.workflow_seconds:.0f} s.",
        "Ours: preset as_run (the setting the paper's numbers came from), seed 0, x2, validation split"
        f" ({val_images(args.run_dir)} images), PSNR/SSIM of the last epoch. Paper: Table 1, end of training.", "",
        table.to_markdown(index=False, floatfmt=".4f"), "",
        "## Where the time went (per run)", "",
        "job_s: Snakemake benchmark of the train job (start-up included); train_s: epochs in the train"
        " process; compiles / compile_s: JAX compilations (first call per input shape).", "",
        timing.to_markdown(index=False, floatfmt=".3f"), "",
    ]
    paper_vs = args.run_dir / "results" / "tables" / "paper_vs_ours_table1.md"
    if paper_vs.exists():
        lines += ["## The workflow's own paper-vs-ours Table 1", "", paper_vs.read_text()]
    for name, title in (("benchmarks", "Standard benchmarks (Set5, Set14) and the bicubic baseline"),
                        ("by_origin", "By origin of the validation images (bicubic baseline and ours)")):
        table = args.run_dir / "results" / "tables" / f"{name}.md"
        if table.exists():
            lines += [f"## {title}", "", table.read_text()]
    args.dest.mkdir(parents=True, exist_ok=True)
    (args.dest / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))

    with tarfile.open(args.dest / "reproduction.tar.gz", "w:gz") as tar:
        results = args.run_dir / "results"
        if (results / "tables").exists():
            tar.add(results / "tables", arcname="tables")
        for pattern in ("history.csv", "timing.json", "train.log", "benchmark.tsv", "params.json"):
            for path in sorted(results.glob(f"train/**/{pattern}")):
                tar.add(path, arcname=str(path.relative_to(results)))
        for path in sorted(results.glob("stats/*")) + sorted(results.glob("collected/*")):
            tar.add(path, arcname=str(path.relative_to(results)))


if __name__ == "__main__":
    main()
