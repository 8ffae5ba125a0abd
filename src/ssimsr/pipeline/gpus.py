"""GPUs for training jobs: which device a job uses, and what the job's backend sees.

One GPU per training job on a multi-GPU machine (the default), or several jobs per GPU.

Snakemake's ``--resources gpu=N`` limits how many ``gpu=1`` jobs run at once, but it does
not tell a job *which* GPU to use: without help, every TensorFlow process grabs GPU 0.
``claim_gpu`` gives each concurrent job a distinct device: it takes an exclusive
``flock`` on ``<lock_dir>/gpu<i>.lock`` for the first free ``i`` and sets
``CUDA_VISIBLE_DEVICES=i`` before TensorFlow is imported. The lock is held by the open
file for the life of the process, so a killed job frees its GPU at once.

If ``CUDA_VISIBLE_DEVICES`` is already set (SLURM, or by hand) it is respected.

A batch-1 job leaves a large GPU mostly idle. With ``jobs_per_gpu = k`` each GPU has k
slots (``gpu<i>.slot<j>.lock``) and jobs fill the least-used GPU first; every job's
backend allocates GPU memory on demand (``backends.Backend.environment``) instead of
reserving most of it for the first process. Run Snakemake with
``--resources gpu=<GPUs x k>``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
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


def claim_gpu(lock_dir: str | os.PathLike, n_gpus: int | None = None, jobs_per_gpu: int = 1) -> str | None:
    """Claim a GPU slot for this process; returns the GPU id (None when there is nothing to do)."""
    if jobs_per_gpu < 1:
        raise ValueError(f"training.jobs_per_gpu: must be >= 1, got {jobs_per_gpu}")
    if os.environ.get("CUDA_VISIBLE_DEVICES") is not None:
        return os.environ["CUDA_VISIBLE_DEVICES"]
    n_gpus = count_gpus() if n_gpus is None else n_gpus
    if n_gpus <= 1 and jobs_per_gpu == 1:
        return None
    lock_dir = Path(lock_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    names = ([f"gpu{i}.lock" for i in range(n_gpus)] if jobs_per_gpu == 1 else
             # slot-major order: the second job on any GPU only once every GPU has one
             [f"gpu{i}.slot{j}.lock" for j in range(jobs_per_gpu) for i in range(max(n_gpus, 1))])
    for name in names:
        handle = open(lock_dir / name, "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        _held.append(handle)
        gpu = name[3:].split(".")[0]
        if n_gpus > 1:
            os.environ["CUDA_VISIBLE_DEVICES"] = gpu
        return gpu
    raise RuntimeError(
        f"all {len(names)} GPU slots ({max(n_gpus, 1)} GPU(s) x {jobs_per_gpu} job(s)) are claimed by "
        f"other jobs (locks in {lock_dir}); run snakemake with --resources gpu=<GPUs x jobs_per_gpu>"
    )


class HeldOutput:
    text = ""


@contextlib.contextmanager
def held_stderr():
    """Hold back what is written to file descriptor 2 (the C++ logs of a backend's
    import) so that the caller's own line can come first; ``.text`` has it afterwards.
    On an error the held text is written out at once, before the traceback."""
    held = HeldOutput()
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as buffer:
        os.dup2(buffer.fileno(), 2)
        failed = True
        try:
            yield held
            failed = False
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            buffer.seek(0)
            held.text = buffer.read().decode(errors="replace")
            if failed:
                sys.stderr.write(held.text)
