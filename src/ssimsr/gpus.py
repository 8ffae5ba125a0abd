"""One GPU per training job on a multi-GPU machine.

Snakemake's ``--resources gpu=N`` limits how many ``gpu=1`` jobs run at once, but it does
not tell a job *which* GPU to use: without help, every TensorFlow process grabs GPU 0.
``claim_gpu`` gives each concurrent job a distinct device: it takes an exclusive
``flock`` on ``<lock_dir>/gpu<i>.lock`` for the first free ``i`` and sets
``CUDA_VISIBLE_DEVICES=i`` before TensorFlow is imported. The lock is held by the open
file for the life of the process, so a killed job frees its GPU at once.

If ``CUDA_VISIBLE_DEVICES`` is already set (SLURM, or by hand) it is respected.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

_held = []  # open lock files: keep them alive for the process lifetime


def count_gpus() -> int:
    """GPUs on this machine: ``SSIMSR_NUM_GPUS`` if set, else ``nvidia-smi -L``, else 0."""
    if os.environ.get("SSIMSR_NUM_GPUS"):
        return int(os.environ["SSIMSR_NUM_GPUS"])
    if not shutil.which("nvidia-smi"):
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(line.startswith("GPU ") for line in out.splitlines())


def claim_gpu(lock_dir: str | os.PathLike, n_gpus: int | None = None) -> str | None:
    """Claim a free GPU for this process; returns its id (or None when there is nothing to do)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES") is not None:
        return os.environ["CUDA_VISIBLE_DEVICES"]
    n_gpus = count_gpus() if n_gpus is None else n_gpus
    if n_gpus <= 1:
        return None
    lock_dir = Path(lock_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    for i in range(n_gpus):
        handle = open(lock_dir / f"gpu{i}.lock", "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        _held.append(handle)
        os.environ["CUDA_VISIBLE_DEVICES"] = str(i)
        return str(i)
    raise RuntimeError(
        f"all {n_gpus} GPUs are claimed by other jobs (locks in {lock_dir}); "
        "run snakemake with --resources gpu=<number of GPUs>"
    )
