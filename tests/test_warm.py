"""Warm start (ssimsr.pipeline.warm): Keras jobs forked from a process that imported Keras once give
the same files as cold ones, report their status and signals, see code edits, and clean up."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from conftest import tiny_params, write_photo_dataset
from ssimsr.pipeline import jobs, warm

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="warm start is Linux-only")

HERE = str(Path(__file__).resolve().parent)


def zygote_pids(where: Path) -> set[int]:
    pids = set()
    for log in where.glob("*.log"):
        pids |= {int(p) for p in re.findall(r"zygote (\d+): serving", log.read_text())}
    return pids


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(") ")[1][0] != "Z"


def wait_until(condition, seconds=60.0):
    deadline = time.monotonic() + seconds  # a hang guard, not a timing assertion
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def warm_dir(tmp_path, monkeypatch):
    """A private folder for this test's zygotes; they are stopped afterwards."""
    where = tmp_path / "warm"
    monkeypatch.setenv("SSIMSR_WARM_DIR", str(where))
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.setattr(sys, "path", [HERE, *sys.path])
    yield where
    stop_zygotes(where)


@pytest.fixture
def light(monkeypatch):
    """Zygotes that import numpy only: for the tests of how jobs are forked, served and
    ended, which do not need Keras (about 5 s less per zygote); the key tells them apart."""
    monkeypatch.setattr(warm, "PRELOAD", ("numpy",))


def stop_zygotes(where: Path) -> None:
    for pid in zygote_pids(where):
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def train_job(tmp_path, name, data, warm_start, **overrides):
    return SimpleNamespace(rule="train", log=[str(tmp_path / f"{name}.log")],
                           resources=SimpleNamespace(jobs_per_gpu=1, warm_start=warm_start),
                           params=SimpleNamespace(run=tiny_params(epochs=2, **overrides).as_dict(), data=str(data),
                                                  out=str(tmp_path / name)))


def assert_same_training(cold: Path, hot: Path) -> None:
    """params.json, the history (less its timings) and every checkpoint array are identical."""
    assert (cold / "params.json").read_bytes() == (hot / "params.json").read_bytes()
    history = [pd.read_csv(d / "history.csv").drop(columns="seconds") for d in (cold, hot)]
    pd.testing.assert_frame_equal(*history, check_exact=True)
    checkpoints = [dict(np.load(d / "checkpoint" / "state.npz")) for d in (cold, hot)]
    assert checkpoints[0].keys() == checkpoints[1].keys() and len(checkpoints[0]) >= 4
    for key in checkpoints[0].keys() - {"history"}:  # the history (timings aside) is compared above
        np.testing.assert_array_equal(checkpoints[0][key], checkpoints[1][key], key)


def test_a_warm_train_job_gives_the_files_of_a_cold_one(tmp_path, warm_dir):
    """Same parameters, same data: every weight and optimiser array of the checkpoint, the
    saved networks, the history (less its timings) and params.json are identical; the log
    has the same first lines and says where the job ran."""
    import keras

    data = tmp_path / "data"
    write_photo_dataset(data)
    jobs.run(train_job(tmp_path, "cold", data, warm_start=0))
    jobs.run(train_job(tmp_path, "warm", data, warm_start=1))
    cold, hot = tmp_path / "cold", tmp_path / "warm"
    assert_same_training(cold, hot)
    for name in ("upscaler.keras", "downscaler.keras"):
        nets = [keras.saving.load_model(d / name, compile=False, safe_mode=False) for d in (cold, hot)]
        for a, b in zip(nets[0].weights, nets[1].weights, strict=True):
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b), a.path)
    cold_log, warm_log = (tmp_path / "cold.log").read_text(), (tmp_path / "warm.log").read_text()
    assert warm_log.splitlines()[1] == cold_log.splitlines()[1]  # the device line, after the attempt header
    assert "warm start: ran as process" not in cold_log
    assert re.search(r"warm start: ran as process \d+, .*CPU [\d.]+ s, peak memory [\d.]+ GiB; exit status 0$",
                     warm_log.strip().splitlines()[-1])
    assert len(zygote_pids(warm_dir)) == 1


@pytest.mark.slow  # 16 s: Keras on PyTorch imported twice, a cold and a warm job
def test_a_warm_train_job_on_torch_gives_the_files_of_a_cold_one(tmp_path, warm_dir):
    """Keras on PyTorch starts no thread when imported, so it is forked too: the same run,
    cold and warm, each from its own job process (Keras runs TensorFlow in this one)."""
    import json

    pytest.importorskip("torch")
    data = tmp_path / "data"
    write_photo_dataset(data)
    job = ("import json, sys\nfrom types import SimpleNamespace\nfrom ssimsr.pipeline import jobs\n"
           "spec = json.loads(sys.argv[1])\n"
           "jobs.run(SimpleNamespace(rule='train', log=[spec['out'] + '.log'], params=SimpleNamespace(**spec),"
           " resources=SimpleNamespace(jobs_per_gpu=1, warm_start=spec.pop('warm'))))\n")
    for name, warm_start in (("cold", 0), ("warm", 1)):
        spec = {"run": tiny_params(epochs=2, backend="torch").as_dict(), "data": str(data),
                "out": str(tmp_path / name), "warm": warm_start}
        env = {**os.environ, "SSIMSR_WARM_DIR": str(warm_dir)}
        env.pop("KERAS_BACKEND", None)
        subprocess.run([sys.executable, "-c", job, json.dumps(spec)], env=env, check=True, timeout=600)
    cold, hot = tmp_path / "cold", tmp_path / "warm"
    assert json.loads((hot / "params.json").read_text())["backend"] == "torch"
    assert_same_training(cold, hot)
    assert "warm start: ran as process" in (tmp_path / "warm.log").read_text()
    assert "warm start" not in (tmp_path / "cold.log").read_text()


def test_a_warm_evaluate_job_gives_the_files_of_a_cold_one(tmp_path, warm_dir, tiny_sr_run, dataset):
    """The per-image metrics and every reconstructed PNG, byte for byte."""
    def evaluate_job(name, warm_start):
        return SimpleNamespace(rule="evaluate", log=[str(tmp_path / f"{name}.log")],
                               resources=SimpleNamespace(warm_start=warm_start),
                               params=SimpleNamespace(run=str(tiny_sr_run), data=str(dataset), showcase=None,
                                                      benchmarks=[], out=str(tmp_path / name)))

    jobs.run(evaluate_job("eval_cold", 0))
    jobs.run(evaluate_job("eval_warm", 1))
    files = [sorted(p.relative_to(tmp_path / name) for p in (tmp_path / name).rglob("*") if p.is_file())
             for name in ("eval_cold", "eval_warm")]
    assert files[0] == files[1] and len([f for f in files[0] if f.suffix == ".png"]) >= 2, files
    for name in files[0]:
        cold, warm = ((tmp_path / folder / name).read_bytes() for folder in ("eval_cold", "eval_warm"))
        if name.name == "provenance.json":  # what produced it, and when: the same but the time
            cold, warm = ({k: v for k, v in json.loads(text).items() if k != "written"} for text in (cold, warm))
        assert cold == warm, name
    assert "warm start: ran as process" in (tmp_path / "eval_warm.log").read_text()


def test_a_failing_warm_job_logs_one_line_and_exits_1(tmp_path, warm_dir):
    job = train_job(tmp_path, "run", tmp_path / "no-such-data", warm_start=1)
    with pytest.raises(SystemExit) as info:
        jobs.run(job)
    assert info.value.code == 1
    lines = (tmp_path / "run.log").read_text().splitlines()
    errors = [line for line in lines if line.startswith("ssimsr train: error: ")]
    assert len(errors) == 1 and "no-such-data" in errors[0], lines
    assert lines[-1].endswith("exit status 1") and zygote_pids(warm_dir)


def test_exit_statuses_and_signals_come_back(warm_dir, light):
    assert warm.run_warm("warm_targets:exit_with", (0,), "tensorflow") == 0
    assert warm.run_warm("warm_targets:exit_with", (3,), "tensorflow") == 3
    assert warm.run_warm("warm_targets:kill_self", (signal.SIGKILL,), "tensorflow") == 128 + signal.SIGKILL
    assert len(zygote_pids(warm_dir)) == 1  # one zygote served all three


def client(tmp_path, where, target, *args, prelude="", **popen):
    """A job's process (``run_warm`` in its own interpreter), as Snakemake starts one; exit
    status 99 when it would run the job cold. ``prelude``: code run first. It preloads what
    this test's zygotes do (``light``)."""
    code = (f"import os, sys; sys.path.insert(0, {HERE!r}); {prelude}from ssimsr.pipeline import warm; "
            f"warm.PRELOAD = {tuple(warm.PRELOAD)!r}; "
            f"status = warm.run_warm({target!r}, {args!r}, 'tensorflow'); sys.exit(99 if status is None else status)")
    env = {**os.environ, "SSIMSR_WARM_DIR": str(where)}
    return subprocess.Popen([sys.executable, "-c", code], env=env, cwd=tmp_path, **popen)


def test_a_signal_to_the_job_reaches_its_child(tmp_path, warm_dir, light):
    marker = tmp_path / "child.pid"
    job = client(tmp_path, warm_dir, "warm_targets:sleep_then_write", str(marker), 120)
    wait_until(marker.exists)
    child = int(marker.read_text())
    job.send_signal(signal.SIGTERM)  # Snakemake cancelling the job
    assert job.wait(timeout=60) == 128 + signal.SIGTERM
    wait_until(lambda: not alive(child))


def test_a_child_whose_job_process_died_stops(tmp_path, warm_dir, light):
    marker = tmp_path / "child.pid"
    job = client(tmp_path, warm_dir, "warm_targets:sleep_then_write", str(marker), 120)
    wait_until(marker.exists)
    child = int(marker.read_text())
    job.kill()  # SIGKILL: nothing forwarded
    job.wait(timeout=60)
    wait_until(lambda: not alive(child))
    assert warm.run_warm("warm_targets:exit_with", (0,), "tensorflow") == 0  # the zygote serves on


def test_an_edit_of_the_code_takes_effect_in_the_next_job(tmp_path, warm_dir, light, monkeypatch):
    """The zygote holds no ssimsr module and imports nothing of the jobs' code: each child
    reads it from disk."""
    (tmp_path / "edited.py").write_text("def value():\n    return 11\n")
    (tmp_path / "count_ssimsr.py").write_text(
        "import sys\ndef loaded():\n    return 10 + sum(m == 'ssimsr' or m.startswith('ssimsr.') for m in sys.modules)\n")
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    assert warm.run_warm("count_ssimsr:loaded", (), "tensorflow") == 10
    assert warm.run_warm("edited:value", (), "tensorflow") == 11
    time.sleep(0.01)
    (tmp_path / "edited.py").write_text("def value():\n    return 12\n")
    assert warm.run_warm("edited:value", (), "tensorflow") == 12
    assert len(zygote_pids(warm_dir)) == 1


def test_concurrent_jobs_start_one_zygote_and_a_dead_ones_socket_is_replaced(tmp_path, warm_dir, light):
    env = warm.zygote_env("tensorflow")
    stale = warm_dir / f"{warm.zygote_key(env)}.sock"
    warm_dir.mkdir(mode=0o700, parents=True)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(stale))  # a socket file nobody listens on: a killed zygote's
    dead.close()
    clients = [client(tmp_path, warm_dir, "warm_targets:exit_with", 5) for _ in range(3)]
    assert [c.wait(timeout=300) for c in clients] == [5, 5, 5]
    assert len(zygote_pids(warm_dir)) == 1


def test_the_zygote_leaves_when_idle(warm_dir, light, monkeypatch):
    monkeypatch.setattr(warm, "IDLE_SECONDS", 0.5)
    assert warm.run_warm("warm_targets:exit_with", (0,), "tensorflow") == 0
    (pid,) = zygote_pids(warm_dir)
    wait_until(lambda: not alive(pid))
    assert not list(warm_dir.glob("*.sock"))


def test_a_backend_that_starts_threads_on_import_is_refused_and_its_jobs_run_cold(warm_dir):
    """JAX starts threads when imported: forking would copy them stopped. The zygote says
    so once; its jobs (and later ones) start cold."""
    pytest.importorskip("jax")
    assert warm.run_warm("warm_targets:exit_with", (0,), "jax") is None
    (refused,) = warm_dir.glob("*.refused")
    assert "thread" in refused.read_text() and "KERAS_BACKEND=jax" in refused.read_text()
    assert warm.run_warm("warm_targets:exit_with", (0,), "jax") is None
    assert not zygote_pids(warm_dir)


@pytest.mark.parametrize("variable", ["SLURM_JOB_ID", "APPTAINER_CONTAINER"])
def test_no_warm_start_under_slurm_or_in_a_container(warm_dir, monkeypatch, variable):
    monkeypatch.setenv(variable, "42")
    assert warm.run_warm("warm_targets:exit_with", (0,), "tensorflow") is None
    assert not warm_dir.exists() or not list(warm_dir.iterdir())


def test_warm_start_is_off_by_default_and_on_in_the_demo():
    import yaml

    from ssimsr.config import defaults

    assert defaults("execution") == {"warm_start": False}
    demo = yaml.safe_load((Path(HERE).parent / "profiles/demo/demo-config.yaml").read_text())
    assert demo["execution"]["warm_start"] is True


def test_warm_start_is_a_resource_on_cpu_only_so_toggling_it_reruns_nothing(tmp_path):
    """Turned on, the dry run gives train and evaluate jobs warm_start=1 where no GPU is
    visible and 0 where one is; turning it on reruns no job finished without it."""
    from test_workflow import TINY, run_snakemake, touched_train_run

    on = {**TINY, "execution": {"warm_start": True}}
    cpu = run_snakemake(tmp_path, on, "-n", "--printshellcmds", env={**os.environ, "SSIMSR_NUM_GPUS": "0"})
    gpu = run_snakemake(tmp_path, on, "-n", env={**os.environ, "SSIMSR_NUM_GPUS": "1"})
    assert cpu.returncode == 0 and gpu.returncode == 0, cpu.stderr[-2000:] + gpu.stderr[-2000:]
    for rule in ("train", "evaluate"):
        for result, flag in ((cpu, 1), (gpu, 0)):
            blocks = [b for b in result.stdout.split("\n\n") if re.search(rf"^rule {rule}:", b, flags=re.M)]
            assert blocks and all(f"warm_start={flag}" in b for b in blocks), (rule, flag)
    target, touched = touched_train_run(tmp_path)  # TINY: warm start off, the default
    assert touched.returncode == 0, touched.stderr[-3000:]
    dry = run_snakemake(tmp_path, on, "-n", target)
    assert dry.returncode == 0 and "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout[-3000:]


def test_a_folder_others_can_enter_is_not_used(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    monkeypatch.setenv("SSIMSR_WARM_DIR", str(shared))
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert warm.warm_dir() is None
    assert warm.run_warm("warm_targets:exit_with", (0,), "tensorflow") is None
    assert not list(shared.iterdir())


def test_the_zygote_key_follows_the_variables_read_at_import(monkeypatch):
    """Another backend or an import-time variable (oneDNN, the Keras config's home) needs
    another zygote; a variable the libraries do not read does not."""
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    base = warm.zygote_key(warm.zygote_env("tensorflow"))
    assert warm.zygote_key(warm.zygote_env("jax")) != base
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    assert warm.zygote_key(warm.zygote_env("tensorflow")) != base
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS")
    monkeypatch.setenv("HOME", "/elsewhere")
    assert warm.zygote_key(warm.zygote_env("tensorflow")) != base
    monkeypatch.undo()
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    monkeypatch.setenv("SOME_UNRELATED_VARIABLE", "1")
    monkeypatch.setenv("SSIMSR_WARM_DIR", "/another/place")  # where, not what
    assert warm.zygote_key(warm.zygote_env("tensorflow")) == base


def test_a_child_sees_the_process_state_of_a_fresh_job(tmp_path, warm_dir, light, monkeypatch):
    """Its TMPDIR (Snakemake sets one per job), its backend's variables, its umask, a global
    numpy generator of its own (not the zygote's state in every job), exit handlers that run."""
    import json

    states = []
    for i, mask in enumerate((0o022, 0o027)):
        tmp = tmp_path / f"tmp{i}"
        tmp.mkdir()
        monkeypatch.setenv("TMPDIR", str(tmp))
        monkeypatch.delenv("KERAS_BACKEND", raising=False)
        old = os.umask(mask)
        try:
            assert warm.run_warm("warm_targets:report_state", (str(tmp_path / f"state{i}.json"),), "tensorflow") == 0
        finally:
            os.umask(old)
        states.append(json.loads((tmp_path / f"state{i}.json").read_text()))
        assert states[-1]["tmp"] == str(tmp) and states[-1]["umask"] == mask
        assert states[-1]["keras_backend"] == "tensorflow" and not states[-1]["stdin_is_socket"]
        assert (tmp_path / f"state{i}.json.atexit").read_text() == "ran"
    assert states[0]["draw"] != states[1]["draw"]
    assert len(zygote_pids(warm_dir)) == 1  # TMPDIR and umask are not part of the key


def test_bad_requests_neither_end_the_zygote_nor_leak_its_descriptors(warm_dir, light):
    import json
    import struct

    assert warm.run_warm("warm_targets:exit_with", (0,), "tensorflow") == 0
    (zygote,) = zygote_pids(warm_dir)
    (sock,) = warm_dir.glob("*.sock")
    (log,) = warm_dir.glob("*.log")
    wait_until(lambda: " ended: " in log.read_text())  # logged once it closed that job's connection
    open_fds = len(os.listdir(f"/proc/{zygote}/fd"))
    for plain in (b"{}", b"not json", json.dumps({"target": "no-colon"}).encode()):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(str(sock))
            socket.send_fds(conn, [struct.pack("!QQ", len(plain), 0)], [0, 1, 2])
            conn.sendall(plain)
            assert conn.recv(8) == b""  # closed: not started
    assert warm.run_warm("warm_targets:exit_with", (4,), "tensorflow") == 4
    assert zygote_pids(warm_dir) == {zygote} and alive(zygote)
    wait_until(lambda: len(os.listdir(f"/proc/{zygote}/fd")) == open_fds)


def test_a_job_with_a_closed_standard_stream_runs_cold(tmp_path, warm_dir, light):
    job = client(tmp_path, warm_dir, "warm_targets:exit_with", 0, prelude="os.close(0); ")
    assert job.wait(timeout=300) == 99


def test_when_the_zygote_dies_its_jobs_stop_and_say_so(tmp_path, warm_dir, light):
    marker = tmp_path / "child.pid"
    job = client(tmp_path, warm_dir, "warm_targets:sleep_then_write", str(marker), 120, stderr=subprocess.PIPE,
                 text=True)
    wait_until(marker.exists)
    child = int(marker.read_text())
    (zygote,) = zygote_pids(warm_dir)
    os.kill(zygote, signal.SIGKILL)
    _, stderr = job.communicate(timeout=60)
    assert job.returncode == 1 and "the zygote ended while job process" in stderr and "run the job again" in stderr
    wait_until(lambda: not alive(child))


def test_a_zygote_that_cannot_start_is_not_retried_by_every_job(tmp_path, warm_dir, monkeypatch):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "keras.py").write_text("raise ImportError('a broken install')\n")
    monkeypatch.setenv("PYTHONPATH", str(broken))  # the zygote's imports fail
    assert warm.run_warm("warm_targets:exit_with", (0,), "tensorflow") is None
    (failed,) = warm_dir.glob("*.failed")
    assert "did not start" in failed.read_text()
    (log,) = warm_dir.glob("*.log")
    assert "a broken install" in log.read_text()
    log.write_text("")
    assert warm.run_warm("warm_targets:exit_with", (0,), "tensorflow") is None
    assert log.read_text() == ""  # no second attempt


# ------------------------------------------- a warm job runs as a cold one would (issue 24)


def test_a_changed_keras_json_starts_a_new_zygote_whose_jobs_see_it(tmp_path, warm_dir, monkeypatch):
    """Keras reads keras.json once, when the zygote imports it: its bytes are in the key, so
    a job after an edit gets a zygote (and a Keras) that read the new file."""
    import json

    home = tmp_path / "keras-home"
    home.mkdir()
    monkeypatch.setenv("KERAS_HOME", str(home))
    seen = []
    for floatx, epsilon in (("float64", 1e-5), ("float16", 1e-3)):
        (home / "keras.json").write_text(json.dumps({"floatx": floatx, "epsilon": epsilon, "backend": "tensorflow",
                                                     "image_data_format": "channels_last"}))
        report = tmp_path / f"keras-{floatx}.json"
        assert warm.run_warm("warm_targets:report_keras_config", (str(report),), "tensorflow") == 0
        seen.append(json.loads(report.read_text()))
    assert seen == [{"floatx": "float64", "epsilon": 1e-5}, {"floatx": "float16", "epsilon": 1e-3}]
    assert len(zygote_pids(warm_dir)) == 2


def test_the_key_follows_keras_json_and_the_installed_distributions(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    home = tmp_path / "keras-home"
    home.mkdir()
    monkeypatch.setenv("PYTHONPATH", str(site))
    monkeypatch.setenv("KERAS_HOME", str(home))
    env = warm.zygote_env("tensorflow")
    assert warm.keras_config_path(env) == str(home / "keras.json")
    keys = [warm.zygote_key(env)]
    (home / "keras.json").write_text('{"floatx": "float32"}')
    keys.append(warm.zygote_key(env))
    (home / "keras.json").write_text('{"floatx": "float64"}')
    keys.append(warm.zygote_key(env))
    (site / "somelib-1.0.dist-info").mkdir()  # pip install somelib
    keys.append(warm.zygote_key(env))
    (site / "somelib-1.0.dist-info").rename(site / "somelib-1.1.dist-info")  # pip install -U somelib
    keys.append(warm.zygote_key(env))
    assert len(set(keys)) == len(keys), keys
    assert warm.zygote_key(env) == keys[-1]


def test_a_job_with_a_nice_increment_lower_limits_or_sighup_ignored_gets_them_in_its_fork(tmp_path, warm_dir, light):
    """``nice``, ``ulimit`` and ``nohup`` hold for a warm job as for a cold one: a job's
    process that has them starts a zygote of its own (the key), which inherits them."""
    import json
    import resource
    import signal

    # this test's own process as a plain job's: SIGHUP not ignored (pytest may run under nohup)
    saved = signal.signal(signal.SIGHUP, signal.SIG_DFL)
    try:
        assert warm.run_warm("warm_targets:report_limits", (str(tmp_path / "plain.json"),), "tensorflow") == 0
    finally:
        signal.signal(signal.SIGHUP, saved)
    plain = json.loads((tmp_path / "plain.json").read_text())
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert plain == {"nice": os.getpriority(os.PRIO_PROCESS, 0), "nofile": [soft, hard], "sighup_ignored": False}
    lowered = min(soft, 1024) - 7
    prelude = (f"import resource, signal; os.nice(3); resource.setrlimit(resource.RLIMIT_NOFILE, ({lowered}, {hard})); "
               "signal.signal(signal.SIGHUP, signal.SIG_IGN); ")
    job = client(tmp_path, warm_dir, "warm_targets:report_limits", str(tmp_path / "limited.json"), prelude=prelude)
    assert job.wait(timeout=120) == 0
    limited = json.loads((tmp_path / "limited.json").read_text())
    assert limited == {"nice": plain["nice"] + 3, "nofile": [lowered, hard], "sighup_ignored": True}
    assert len(zygote_pids(warm_dir)) == 2


def test_the_key_follows_the_cgroup_and_every_resource_limit():
    env = warm.zygote_env("tensorflow")
    context = warm.process_context()
    assert context["cgroup"] and "RLIMIT_AS" in context["rlimits"] and "RLIMIT_NOFILE" in context["rlimits"]
    base = warm.zygote_key(env, context)
    assert warm.zygote_key(env, dict(context, cgroup="0::/user.slice/limited.scope\n")) != base
    for name in ("RLIMIT_AS", "RLIMIT_DATA", "RLIMIT_NPROC"):
        limits = dict(context["rlimits"], **{name: [2**30, 2**31]})
        assert warm.zygote_key(env, dict(context, rlimits=limits)) != base, name


def test_a_zygote_reniced_after_it_started_forks_no_job(tmp_path, warm_dir, light):
    """The zygote forks only for a job whose process has its priority, limits and cgroup:
    one reniced (or moved to another cgroup) since lets its jobs start cold."""
    assert warm.run_warm("warm_targets:exit_with", (0,), "tensorflow") == 0
    (zygote,) = zygote_pids(warm_dir)
    os.setpriority(os.PRIO_PROCESS, zygote, os.getpriority(os.PRIO_PROCESS, zygote) + 1)
    assert warm.run_warm("warm_targets:exit_with", (0,), "tensorflow") is None
    (log,) = warm_dir.glob("*.log")
    assert "not forking: the job's process differs from this zygote in nice" in log.read_text()


def test_a_zygote_whose_process_differs_from_its_key_refuses(warm_dir, light, monkeypatch):
    """Its context is checked at start-up too: one that would not run its jobs as their own
    processes would (here: a job process claims another nice level) records a refusal."""
    real = warm.process_context
    monkeypatch.setattr(warm, "process_context", lambda: dict(real(), nice=real()["nice"] + 5))
    assert warm.run_warm("warm_targets:exit_with", (0,), "tensorflow") is None
    (refused,) = warm_dir.glob("*.refused")
    assert "nice" in refused.read_text()
    assert warm.run_warm("warm_targets:exit_with", (0,), "tensorflow") is None  # not retried
    assert not zygote_pids(warm_dir)


def one_line(capfd) -> str:
    err = capfd.readouterr().err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def test_a_warm_dir_that_is_a_file_starts_the_job_cold_with_one_line(tmp_path, monkeypatch, capfd):
    taken = tmp_path / "not-a-folder"
    taken.write_text("")
    monkeypatch.setenv("SSIMSR_WARM_DIR", str(taken))
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert warm.run_warm("warm_targets:exit_with", (0,), "tensorflow") is None
    assert f"{taken} is not a folder" in one_line(capfd)
    nested = taken / "warm"  # under a file: cannot be created
    monkeypatch.setenv("SSIMSR_WARM_DIR", str(nested))
    assert warm.run_warm("warm_targets:exit_with", (0,), "tensorflow") is None
    assert f"cannot create the folder {nested}" in one_line(capfd)


def test_a_symbolic_link_to_a_private_folder_is_not_used(tmp_path, monkeypatch, capfd):
    """The folder is checked, not what a link points to: someone else's link in /tmp could
    point to a folder of this user's they can swap for their own."""
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    link = tmp_path / "link"
    link.symlink_to(private)
    monkeypatch.setenv("SSIMSR_WARM_DIR", str(link))
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert warm.warm_dir() is None
    capfd.readouterr()
    assert warm.run_warm("warm_targets:exit_with", (0,), "tensorflow") is None
    assert f"{link} is a symbolic link" in one_line(capfd)
    assert not list(private.iterdir())


def test_a_default_folder_taken_by_another_user_is_not_used(tmp_path, monkeypatch, capfd):
    """Another user created /tmp/ssimsr-warm-<our uid> first: one line names it and its
    owner; the job starts cold (no $XDG_RUNTIME_DIR to fall back to)."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.delenv("SSIMSR_WARM_DIR", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    ours = os.getuid() + 4242  # as if we were another user than the folder's owner
    taken = tmp_path / f"ssimsr-warm-{ours}"
    taken.mkdir(mode=0o700)
    monkeypatch.setattr(os, "getuid", lambda: ours)
    assert warm.run_warm("warm_targets:exit_with", (0,), "tensorflow") is None
    line = one_line(capfd)
    assert f"{taken} belongs to user {os.stat(taken).st_uid}" in line and "starts cold" in line


def test_a_taken_default_folder_falls_back_to_the_runtime_dir(monkeypatch, capfd, light):
    import shutil

    short = Path(tempfile.mkdtemp(prefix="ssimsr-test-"))  # a socket's path has at most 107 bytes
    runtime = short / "run"
    runtime.mkdir(mode=0o700)
    runtime.chmod(0o700)
    monkeypatch.setattr(tempfile, "tempdir", str(short))
    monkeypatch.setattr(sys, "path", [HERE, *sys.path])
    monkeypatch.delenv("SSIMSR_WARM_DIR", raising=False)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    (short / f"ssimsr-warm-{os.getuid()}").symlink_to(runtime)  # someone's squat
    try:
        assert warm.run_warm("warm_targets:exit_with", (0,), "tensorflow") == 0
        assert f"is a symbolic link, not a folder; using {runtime / 'ssimsr-warm'} instead" in one_line(capfd)
        assert len(zygote_pids(runtime / "ssimsr-warm")) == 1
    finally:
        stop_zygotes(runtime / "ssimsr-warm")
        monkeypatch.undo()  # the temp dir first: pytest's capture needs one
        shutil.rmtree(short)


def test_a_socket_path_too_long_starts_the_job_cold_with_one_line(tmp_path, monkeypatch, capfd):
    deep = tmp_path / ("d" * 100)
    monkeypatch.setenv("SSIMSR_WARM_DIR", str(deep))
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert warm.run_warm("warm_targets:exit_with", (0,), "tensorflow") is None
    assert "is too long" in one_line(capfd) and not list(deep.iterdir())
