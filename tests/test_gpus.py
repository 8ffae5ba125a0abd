"""Distinct GPUs for concurrent jobs (no GPU needed: the claim is file locks + env)."""

import os
import subprocess
import sys
import textwrap

from ssimsr.pipeline import gpus


def test_concurrent_processes_claim_distinct_gpus(tmp_path):
    script = textwrap.dedent(f"""
        import os, sys, time
        os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        from ssimsr.pipeline.gpus import claim_gpu
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


def test_jobs_per_gpu_gives_each_gpu_k_slots(tmp_path, monkeypatch):
    """jobs_per_gpu = 2 on 2 GPUs: four jobs get GPUs 0, 1, 0, 1 (every GPU's first slot before
    any second one), each with CUDA_VISIBLE_DEVICES set to its GPU; a fifth is refused with a
    line naming --resources. One GPU and k = 3: three jobs share GPU 0, without CUDA_VISIBLE_DEVICES.
    (Locks by flock: a second open file description of the same process conflicts as another
    process's would.)"""
    import pytest

    held = len(gpus._held)
    try:
        claimed = []
        for _ in range(4):
            monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)  # a new job's environment
            claimed.append(gpus.claim_gpu(tmp_path / "two", n_gpus=2, jobs_per_gpu=2))
            assert os.environ["CUDA_VISIBLE_DEVICES"] == claimed[-1]
        assert claimed == ["0", "1", "0", "1"]
        assert sorted(p.name for p in (tmp_path / "two").iterdir()) == [
            "gpu0.slot0.lock", "gpu0.slot1.lock", "gpu1.slot0.lock", "gpu1.slot1.lock"]
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
        with pytest.raises(RuntimeError, match=r"all 4 GPU slots \(2 GPU\(s\) x 2 job\(s\)\) are claimed .*"
                                               r"--resources gpu=<GPUs x jobs_per_gpu>"):
            gpus.claim_gpu(tmp_path / "two", n_gpus=2, jobs_per_gpu=2)
        assert [gpus.claim_gpu(tmp_path / "one", n_gpus=1, jobs_per_gpu=3) for _ in range(3)] == ["0", "0", "0"]
        assert "CUDA_VISIBLE_DEVICES" not in os.environ  # one GPU: nothing to choose
        with pytest.raises(RuntimeError, match=r"all 3 GPU slots \(1 GPU\(s\) x 3 job\(s\)\)"):
            gpus.claim_gpu(tmp_path / "one", n_gpus=1, jobs_per_gpu=3)
    finally:
        for handle in gpus._held[held:]:  # the jobs end: their slots are free again
            handle.close()
        del gpus._held[held:]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert gpus.claim_gpu(tmp_path / "two", n_gpus=2, jobs_per_gpu=2) == "0"
    gpus._held.pop().close()


def test_the_train_job_claims_its_slot_with_the_rules_jobs_per_gpu_resource(dataset, tmp_path, monkeypatch):
    """The workflow's train job hands its `jobs_per_gpu` resource (not a param) to the GPU claim."""
    from types import SimpleNamespace

    import pytest

    from conftest import tiny_params
    from ssimsr.pipeline import jobs

    asked = []

    def claim(lock_dir, n_gpus=None, jobs_per_gpu=1):
        asked.append(jobs_per_gpu)
        raise RuntimeError("claimed")  # stop before the backend starts

    monkeypatch.setattr(gpus, "claim_gpu", claim)
    out = tmp_path / "run"
    smk = SimpleNamespace(rule="train", log=[str(tmp_path / "train.log")], resources=SimpleNamespace(jobs_per_gpu=3),
                          params=SimpleNamespace(run=tiny_params().as_dict(), data=str(dataset), out=str(out)))
    with pytest.raises(SystemExit):
        jobs.run(smk)
    assert asked == [3]
    assert "ssimsr train: error: claimed" in (tmp_path / "train.log").read_text()


def test_jobs_per_gpu_is_a_resource_so_changing_it_reruns_nothing(tmp_path):
    """A finished train job (its outputs and Snakemake's record of its params, made with --touch
    instead of training) is not rerun when only training.jobs_per_gpu changes; a change of one
    of its params (training.log_every) does rerun it, and the dry run shows the new
    jobs_per_gpu among the job's resources."""
    import json

    from test_workflow import TINY, run_snakemake, touched_train_run

    target, touched = touched_train_run(tmp_path)
    assert touched.returncode == 0, touched.stderr[-3000:]
    assert "jobs_per_gpu=1" in touched.stdout + touched.stderr  # the train job's resource

    def with_training(**values):
        config = json.loads(json.dumps(TINY))
        config["training"].update(values)
        return config

    shared = run_snakemake(tmp_path, with_training(jobs_per_gpu=2), "-n", target)
    assert shared.returncode == 0, shared.stderr[-3000:]
    assert "Nothing to be done" in shared.stdout + shared.stderr, shared.stdout[-3000:] + shared.stderr[-3000:]
    changed = run_snakemake(tmp_path, with_training(jobs_per_gpu=2, log_every=7), "-n", target)
    text = changed.stdout + changed.stderr
    assert changed.returncode == 0 and "Params have changed since last execution" in text, text[-3000:]
    assert "jobs_per_gpu=2" in text, text[-3000:]
