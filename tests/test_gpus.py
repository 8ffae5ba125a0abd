"""Distinct GPUs for concurrent jobs (no GPU needed: the claim is file locks + env)."""

import os
import subprocess
import sys
import textwrap

from ssimsr import gpus


def test_concurrent_processes_claim_distinct_gpus(tmp_path):
    script = textwrap.dedent(f"""
        import os, sys, time
        os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        from ssimsr.gpus import claim_gpu
        gpu = claim_gpu({str(tmp_path)!r}, n_gpus=3)
        print(gpu, flush=True)
        sys.stdin.read()  # hold the claim until the test closes stdin (no timing)
    """)
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    procs = [subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, env=env) for _ in range(3)]
    claimed = sorted(p.stdout.readline().strip() for p in procs)  # all three hold their claims now
    for p in procs:
        p.stdin.close()
        p.wait()
    assert claimed == ["0", "1", "2"]
    # all released: a new process gets GPU 0 again
    again = subprocess.run([sys.executable, "-c", script], env=env, input="", capture_output=True, text=True)
    assert again.stdout.strip() == "0"


def test_existing_assignment_is_respected(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5")
    assert gpus.claim_gpu(tmp_path, n_gpus=8) == "5"


def test_single_gpu_needs_no_claim(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert gpus.claim_gpu(tmp_path, n_gpus=1) is None
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
