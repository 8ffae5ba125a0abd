"""ssimsr status: the state of every configured run from its folder, the study's time left;
progress lines."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ssimsr import cli
from ssimsr.pipeline import status
from ssimsr.pipeline.progress import Progress, format_duration
from ssimsr.pipeline.runs import Run

ROOT = Path(__file__).resolve().parents[1]
#: a study of 24 runs like the demo's, merged over config.yaml (fixed here: the demo's config may change)
STUDY = {"datasets": {"photos": {"sources": [{"uri": "skimage:astronaut,chelsea,coffee"}],
                                  "split": {"method": "fixed", "val": ["chelsea"]}}},
         "studies": {"watch": {"models": ["sr", "irn"], "datasets": ["photos"], "lambda_s": [0, 1, 2],
                               "epochs": 20, "presets": ["corrected", "as_run"]}},
         "seeds": [0, 1], "active_studies": ["watch"]}
NOW = float(int(time.time()))  # the clock of the fake study (ages relative to it, no timing)
HISTORY_HEADER = "epoch,split,total,bw_mse,fw_mse,perceptual,ssim_n,psnr,ssim,seconds\n"


def _history(epochs: int, train_s: float = 3.0, val_s: float = 1.0) -> str:
    rows = [f"0,val,1,0.1,0.1,0,0.4,20.0,0.5,{val_s}"]
    for e in range(1, epochs + 1):
        rows += [f"{e},train,1,0.1,0.1,0,0.4,{20 + e},0.6,{train_s}",
                 f"{e},val,1,0.1,0.1,0,0.4,{20.5 + e},{0.6 + e / 100:.2f},{val_s}"]
    return HISTORY_HEADER + "\n".join(rows) + "\n"


def _write(folder: Path, name: str, text: str, age: float = 0.0) -> None:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.utime(path, (NOW - age, NOW - age))


def _keras_stub(path: Path, age: float = 0.0) -> None:
    """A zip with the members of a saved Keras model: what status's cheap check reads of one."""
    import zipfile

    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        for member in ("metadata.json", "config.json", "model.weights.h5"):
            archive.writestr(member, "{}")
    os.utime(path, (NOW - age, NOW - age))


def _attempt(folder: Path, host: str, pid: int, age: float = 0.0) -> None:
    started = time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(NOW - age))
    _write(folder, "checkpoint/attempts.csv",
           f"attempt,started,host,pid,start_epoch,epochs\n1,{started},{host},{pid},0,20\n", age)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    study = tmp_path_factory.mktemp("config") / "study.yaml"
    study.write_text(json.dumps(STUDY))  # JSON is YAML
    files = [ROOT / "config.yaml", study]
    config = status.load_config(files)
    return config, status.configured_runs(config), files


def _fake_study(root: Path, table: dict) -> dict[str, Run]:
    """Runs of the study in each state, under ``root/train``; the others have no folder."""
    runs = list(table)
    by = {"done": runs[0], "done2": runs[1], "running_elsewhere": runs[2], "running_here": runs[3],
          "failed_error": runs[4], "failed_stale": runs[5], "failed_gone": runs[6], "outdated": runs[7]}
    assert len({(r.preset, r.model) for r in [by["done"], by["running_elsewhere"]]}) == 1  # comparable
    for key, run in by.items():
        folder = root / "train" / run.path
        params = dict(table[run])
        if key in ("done", "done2", "outdated"):
            if key == "outdated":
                params["epochs"] = 5
            for name in ("upscaler.keras", "downscaler.keras"):
                _keras_stub(folder / name, 3600)
            _write(folder, "params.json", json.dumps(params), 3600)
            _write(folder, "history.csv", _history(params["epochs"]), 3600)
            _write(folder, "progress.csv", _history(params["epochs"]), 3600)
            _write(folder, "benchmark.tsv", "s\th:m:s\n100.0\t0:01:40\n", 3600)
            continue
        _write(folder, "params.json", json.dumps(params), 7200)
        if key == "running_elsewhere":  # a cluster node: decided by the files' age
            _attempt(folder, "node17", 4242, 60)
            _write(folder, "progress.csv", _history(5), 10)
        elif key == "running_here":  # this host: its process is alive
            _attempt(folder, "thishost", os.getpid())  # started after this process (not a reused pid)
            _write(folder, "progress.csv", _history(2), 3 * 3600)
        elif key == "failed_error":
            _attempt(folder, "node17", 4242, 60)
            _write(folder, "progress.csv", _history(3), 30)
            _write(folder, "train.log", "=== attempt 1, x on node17 (pid 1): fresh start\nepoch 1/20 ...\n"
                                        "ssimsr train: error: non-finite loss at epoch 4, step 2\n=== attempt 2, "
                                        "y on node17 (pid 4242): resuming from epoch 3 of 20\nepoch 4/20 step 1\n"
                                        "ssimsr train: error: non-finite loss at epoch 4, step 1\n", 20)
        elif key == "failed_stale":  # another host, nothing changed for two hours
            _attempt(folder, "node17", 4242, 3 * 3600)
            _write(folder, "progress.csv", _history(7), 2 * 3600)
        elif key == "failed_gone":  # this host, its process has ended (Snakemake deleted the outputs)
            _attempt(folder, "thishost", _dead_pid(), 120)
            _write(folder, "progress.csv", _history(4), 60)
            (folder / "params.json").unlink()
    return by


def test_a_fake_study_gives_each_run_its_state_and_the_counts(tmp_path, demo):
    config, table, _ = demo
    by = _fake_study(tmp_path, table)
    study = status.study_status(config, tmp_path, now=NOW, host="thishost")
    states = {s.run: s for s in study.runs}
    expected = {"done": "done", "done2": "done", "running_elsewhere": "running", "running_here": "running",
                "failed_error": "failed", "failed_stale": "failed", "failed_gone": "failed", "outdated": "pending"}
    assert {k: states[r].state for k, r in by.items()} == expected
    assert study.counts() == {"done": 2, "running": 2, "failed": 3, "corrupt": 0, "pending": len(table) - 7}
    assert states[by["failed_error"]].note == "ssimsr train: error: non-finite loss at epoch 4, step 1"
    assert "is gone" in states[by["failed_gone"]].note
    assert states[by["failed_stale"]].note == "no change for 2:00:00"
    assert states[by["outdated"]].note == "outdated: trained with other epochs"
    assert states[by["outdated"]].epoch is None and states[by["outdated"]].estimated  # its numbers are stale
    running = states[by["running_elsewhere"]]
    assert (running.epoch, running.epochs, running.psnr, running.ssim) == (5, 20, 25.5, 0.65)
    assert running.epoch_seconds == 4.0 and not running.estimated
    assert running.eta == 15 * 4.0 - 10  # its remaining epochs, less the time since its last one
    # a pending SR run of the other preset: from the SR runs (same model and dataset): their
    # epoch 0, 20 of their epochs and the start-up of the done ones (benchmark less history)
    pending = [s for s in study.runs if s.state == "pending" and s.run.model == by["done"].model]
    assert pending and all(s.estimated for s in pending)
    assert [s.eta for s in pending] == pytest.approx([1.0 + 20 * 4.0 + (100.0 - 81.0)] * len(pending))
    failed = states[by["failed_stale"]]  # resumes: its remaining epochs and a start-up
    assert failed.eta == pytest.approx(13 * 4.0 + 19.0) and failed.estimated
    text = status.render(study)
    assert f"{len(table)} runs: 2 done, 2 running, 3 failed, {len(table) - 7} pending" in text
    assert "remaining: about " in text and "2 at a time" in text


def test_a_run_with_an_unreadable_output_is_corrupt_not_done(tmp_path, demo):
    """The cheap checks (a .keras zip's directory, params.json parses, history.csv's header, row
    lengths and last line end) name the file; a network an evaluation moved aside keeps the run
    corrupt until a training starts again."""
    config, table, _ = demo
    by = _fake_study(tmp_path, table)
    folder = {key: tmp_path / "train" / by[key].path for key in ("done", "done2", "outdated")}
    upscaler = folder["done"] / "upscaler.keras"
    upscaler.write_bytes(upscaler.read_bytes()[:-10])
    history = folder["done2"] / "history.csv"
    history.write_text(history.read_text()[:-7])
    (folder["outdated"] / "params.json").write_text('{"model": ')  # unreadable: not known to be outdated

    def states():
        return {s.run: s for s in status.study_status(config, tmp_path, now=NOW, host="thishost").runs}

    now = states()
    assert [(now[by[k]].state, now[by[k]].note) for k in folder] == [
        ("corrupt", "upscaler.keras: unreadable (File is not a zip file); remove it and rerun snakemake"),
        ("corrupt", "history.csv: unreadable (cut short: no line end at its end); remove it and rerun snakemake"),
        ("corrupt", "params.json: unreadable (not valid JSON: Expecting value: line 1 column 11 (char 10)); "
                    "remove it and rerun snakemake")]
    assert now[by["done"]].eta is not None  # to train again: part of the time left
    assert "3 corrupt" in status.render(status.study_status(config, tmp_path, now=NOW, host="thishost"))
    moved = upscaler.with_name("upscaler.keras.corrupt")
    upscaler.rename(moved)  # what the evaluate job does (checkpoints.set_aside), then it touches it
    os.utime(moved, (NOW, NOW))
    assert states()[by["done"]].note == ("upscaler.keras was unreadable, moved aside to upscaler.keras.corrupt; "
                                         "the next snakemake trains it again")
    os.utime(moved, (NOW - 60, NOW - 60))
    _attempt(folder["done"], "node17", 4242, 10)  # the retraining has started since
    assert states()[by["done"]].state == "running"


def test_a_dry_study_lists_every_run_as_pending(tmp_path):
    config = status.load_config([ROOT / "config.yaml"])
    study = status.study_status(config, tmp_path / "results")
    assert len(study.runs) == 138 and study.counts()["pending"] == 138
    assert all(s.eta is None and s.epoch is None for s in study.runs)
    text = status.render(study)
    assert "138 runs: 0 done, 0 running, 0 failed, 138 pending" in text
    assert "no estimate before a run of the same model and dataset has finished an epoch" in text


def test_status_command_merges_configs_and_filters_states(tmp_path, demo, capsys, monkeypatch):
    _, table, files = demo
    by = _fake_study(tmp_path, table)
    monkeypatch.setattr(status.socket, "gethostname", lambda: "thishost")
    code = cli.main(["status", "--config", str(files[0]), "--config", str(files[1]), "--results", str(tmp_path),
                     "--state", "done", "failed"])
    out = capsys.readouterr().out
    assert code == 0
    assert by["done"].path in out and by["failed_error"].path in out and by["running_elsewhere"].path not in out
    assert f"{len(table)} runs: 2 done" in out  # the summary counts every run


def test_config_files_merge_as_snakemake_configfiles(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no workflow config.yaml here
    (tmp_path / "a.yaml").write_text("seeds: [0, 1, 2]\ntraining: {crop: 64, batch_size: 4}\n")
    (tmp_path / "b.yaml").write_text("seeds: [5]\ntraining: {crop: 32}\n")
    merged = status.load_config([tmp_path / "a.yaml", tmp_path / "b.yaml"])
    assert merged == {"seeds": [5], "training": {"crop": 32, "batch_size": 4}}  # lists replace, mappings merge
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        status.load_config([tmp_path / "missing.yaml"])
    # the Snakefile's configfile: config.yaml first, every --configfile over it (named twice: once)
    (tmp_path / "config.yaml").write_text("seeds: [7]\nscale: 2\ntraining: {log_every: 3}\n")
    assert status.load_config([tmp_path / "b.yaml"]) == {"seeds": [5], "scale": 2,
                                                         "training": {"log_every": 3, "crop": 32}}
    assert status.load_config(["config.yaml", tmp_path / "b.yaml"]) == status.load_config([tmp_path / "b.yaml"])
    assert status.load_config() == {"seeds": [7], "scale": 2, "training": {"log_every": 3}}
    # --profile DIR: its configfile entries, as `snakemake --profile DIR`
    (tmp_path / "prof").mkdir()
    (tmp_path / "prof" / "config.yaml").write_text("configfile: [a.yaml]\ncores: 2\n")
    assert status.load_config(profile="prof")["seeds"] == [0, 1, 2]
    assert status.load_config([tmp_path / "b.yaml"], profile="prof")["seeds"] == [5]
    with pytest.raises(FileNotFoundError, match="profile nowhere: no nowhere/config.yaml"):
        status.load_config(profile="nowhere")


def test_the_demo_profile_and_its_config_file_give_the_demo_s_runs(capsys, tmp_path, monkeypatch):
    """`ssimsr status --profile profiles/demo` and `--config profiles/demo/demo-config.yaml`
    read what `snakemake --profile profiles/demo` reads (config.yaml, then the demo's file)."""
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    outputs = []
    for options in (["--profile", "profiles/demo"], ["--config", "profiles/demo/demo-config.yaml"]):
        assert cli.main(["status", *options, "--results", str(tmp_path)]) == 0
        outputs.append(capsys.readouterr().out)
    assert "24 runs: 0 done" in outputs[0] and outputs[0].split("\n")[:-3] == outputs[1].split("\n")[:-3]


def test_only_the_latest_attempts_error_fails_a_run(tmp_path):
    log = tmp_path / "train.log"
    log.write_text("=== attempt 1, ...: fresh start\nssimsr train: error: killed\n"
                   "=== attempt 2, ...: resuming from epoch 3 of 20\nepoch 4/20 step 1/8\n")
    assert status._log_error(log) is None
    log.write_text(log.read_text() + "Traceback (most recent call last):\n  File x\n"
                   "ssimsr train: internal error: boom\n")
    assert status._log_error(log) == "ssimsr train: internal error: boom"


def test_progress_lines_have_a_rate_and_an_eta():
    clock = iter([0.0, 1.0, 2.0, 3.0, 12.0, 13.0]).__next__
    stream = io.StringIO()
    progress = Progress("prepare bsds300", 5, every=10, stream=stream, clock=clock)
    for _ in progress.wrap(range(5)):
        pass
    lines = stream.getvalue().splitlines()
    # the first item, then one line per 10 s, then the last
    assert lines == ["prepare bsds300: 1/5 images, 1.00 img/s, eta 0:00:04",
                     "prepare bsds300: 4/5 images, 0.33 img/s, eta 0:00:03",
                     "prepare bsds300: 5/5 images, 0.38 img/s, done in 0:00:13"]
    assert format_duration(3725.9) == "1:02:05"
