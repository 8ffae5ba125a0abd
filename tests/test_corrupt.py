"""Unreadable files of a run (a checkpoint or a saved network cut short by a machine crash or
a copy) name themselves in one line, are moved aside, and heal: training resumes from the
checkpoint before (else afresh), an evaluation fails and leaves the output missing so that the
next ``snakemake`` retrains it, and ``ssimsr status`` does not call such a run done."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import BACKEND, TINY_WIDTHS, tiny_params
from ssimsr import cli
from ssimsr.pipeline import status
from ssimsr.training.checkpoints import CorruptFile
from ssimsr.training.train import train

ROOT = Path(__file__).resolve().parents[1]


def _cut_short(path: Path) -> int:
    """Truncate ``path`` to half its size, as a crash before its data reached the disk leaves it."""
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    return len(data) // 2


def _moved_lines(caplog, path: Path) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.getMessage().startswith(f"{path}: unreadable (") and "moved aside to" in r.getMessage()]


@pytest.fixture(scope="module")
def saved_pair(tmp_path_factory):
    """The two networks of a tiny SR run, saved once: copied into each test's run folder."""
    import keras

    from ssimsr.models import models

    keras.utils.set_random_seed(0)
    pair = models.build_pair("sr", 2, **TINY_WIDTHS["sr"])
    folder = tmp_path_factory.mktemp("pair")
    pair.upscaler.save(folder / "upscaler.keras")
    pair.downscaler.save(folder / "downscaler.keras")
    return folder


def _run_folder(folder: Path, saved_pair: Path, params: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "params.json").write_text(json.dumps(params))
    for name in ("upscaler.keras", "downscaler.keras"):
        (folder / name).write_bytes((saved_pair / name).read_bytes())
    return folder


# --------------------------------------------------------------------------- training

def test_a_truncated_only_checkpoint_is_moved_aside_and_training_starts_afresh(dataset, tmp_path, caplog):
    params = tiny_params(epochs=2)
    train(params, dataset, tmp_path, stop_after_epoch=1)  # killed after epoch 1: one checkpoint
    ckpt = tmp_path / "checkpoint" / "state.npz"
    size = _cut_short(ckpt)
    caplog.set_level(logging.INFO)
    history = train(params, dataset, tmp_path)  # before: "File is not a zip file", on every rerun
    assert list(history.epoch) == [0, 1, 1, 2, 2]  # from the start
    moved = tmp_path / "checkpoint" / "state.npz.corrupt"
    assert _moved_lines(caplog, ckpt) == [f"{ckpt}: unreadable (File is not a zip file; {size} bytes); "
                                          f"moved aside to {moved}"]
    assert moved.stat().st_size == size and (tmp_path / "upscaler.keras").exists()
    attempts = pd.read_csv(tmp_path / "checkpoint" / "attempts.csv")
    assert list(attempts.start_epoch) == [0, 0]
    log = "\n".join(r.getMessage() for r in caplog.records)
    assert "no readable checkpoint" in log and "training starts from epoch 0" in log


def test_a_truncated_checkpoint_resumes_from_the_one_before(dataset, tmp_path, caplog, capsys):
    params = tiny_params(epochs=3)
    train(params, dataset, tmp_path, stop_after_epoch=2)  # checkpoints of epochs 1 and 2
    ckpt = tmp_path / "checkpoint" / "state.npz"
    _cut_short(ckpt)
    caplog.set_level(logging.INFO)
    capsys.readouterr()
    history = train(params, dataset, tmp_path)
    header = [line for line in capsys.readouterr().err.splitlines() if line.startswith("=== attempt 2")]
    assert header and header[0].endswith(": resuming from epoch 1 of 3 (state.prev.npz: state.npz unreadable)")
    assert list(history.epoch) == [0, 1, 1, 2, 2, 3, 3]
    assert len(_moved_lines(caplog, ckpt)) == 1 and (tmp_path / "checkpoint" / "state.npz.corrupt").exists()
    assert list(pd.read_csv(tmp_path / "checkpoint" / "attempts.csv").start_epoch) == [0, 1]
    again = train(params, dataset, tmp_path)  # the rerun finds a good checkpoint of the last epoch
    assert list(again.epoch) == [0, 1, 1, 2, 2, 3, 3]


# --------------------------------------------------------------------------- evaluate, upscale

def test_evaluate_names_a_truncated_upscaler_moves_it_aside_and_the_rerun_sees_it_missing(
        dataset, tmp_path, saved_pair, capsys):
    run = _run_folder(tmp_path / "run", saved_pair, {"model": "sr", "scale": 2, "backend": BACKEND})
    upscaler = run / "upscaler.keras"
    size = _cut_short(upscaler)
    args = ["evaluate", "--run", str(run), "--data", str(dataset), "--out", str(tmp_path / "eval")]
    assert cli.main(args) == 1
    message = f"{upscaler}: unreadable (File is not a zip file; {size} bytes); moved aside to {upscaler}.corrupt"
    err = capsys.readouterr().err.strip().splitlines()
    # before: "File not found: ... accessible .keras zip"; the one line is the job's log line of the move
    assert err == [f"ssimsr evaluate: error: {message}"]
    assert not upscaler.exists() and (run / "upscaler.keras.corrupt").stat().st_size == size
    assert (run / "downscaler.keras").exists()  # the readable one stays
    # the train rule's output is missing now: Snakemake trains the run again
    assert cli.main(args) == 1
    assert "missing upscaler.keras" in capsys.readouterr().err


def test_upscale_names_every_unreadable_network_in_one_line(tmp_path, saved_pair, capsys):
    from PIL import Image
    from skimage import data as skdata

    run = _run_folder(tmp_path / "run", saved_pair, {"model": "sr", "scale": 2, "backend": BACKEND})
    (run / "downscaler.keras").write_bytes(b"")
    size = _cut_short(run / "upscaler.keras")
    Image.fromarray(skdata.coffee()[:32, :32]).save(tmp_path / "p.png")
    args = ["upscale", str(run), str(tmp_path / "p.png"), str(tmp_path / "o.png")]
    assert cli.main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"ssimsr upscale: error: {run / 'downscaler.keras'}: unreadable (File is not a zip file; 0 bytes); "
                   f"moved aside to {run / 'downscaler.keras.corrupt'}; {run / 'upscaler.keras'}: unreadable "
                   f"(File is not a zip file; {size} bytes); moved aside to {run / 'upscaler.keras.corrupt'}"]
    assert sorted(p.name for p in run.iterdir()) == ["downscaler.keras.corrupt", "params.json",
                                                     "upscaler.keras.corrupt"]
    assert not (tmp_path / "o.png").exists()
    # a params.json cut short is named, first (it says which run this is), and left in place
    _run_folder(run, saved_pair, {})
    (run / "params.json").write_text('{"model": "sr", "sca')
    assert cli.main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"ssimsr upscale: error: {run / 'params.json'}: unreadable "
                                               "(not valid JSON: Unterminated string"), err
    assert (run / "params.json").exists() and not (run / "upscaler.keras.corrupt2").exists()


# --------------------------------------------------------------------------- status

def test_status_does_not_call_a_run_with_a_truncated_upscaler_done(tmp_path, saved_pair):
    config = status.load_config([ROOT / "config.yaml"])
    run, params = next(iter(status.configured_runs(config).items()))
    folder = _run_folder(tmp_path / "train" / run.path, saved_pair, params)
    history = "epoch,split,total,bw_mse,fw_mse,perceptual,ssim_n,psnr,ssim,seconds\n0,val,1,0.1,0.1,0,0.4,20.0,0.5,1\n"
    (folder / "history.csv").write_text(history)
    (folder / "progress.csv").write_text(history)

    def state():
        return status.read_run(run, params, tmp_path / "train", time.time(), 1800.0)

    assert state().state == "done"
    _cut_short(folder / "upscaler.keras")
    corrupt = state()
    assert (corrupt.state, corrupt.note) == ("corrupt", "upscaler.keras: unreadable (File is not a zip file); "
                                                        "remove it and rerun snakemake")
    # an evaluation moves it aside: still not done, until a training starts again
    with pytest.raises(CorruptFile):
        from ssimsr.evaluation.upscale import load_run

        load_run(folder)
    moved = state()
    assert moved.state == "corrupt" and moved.note == ("upscaler.keras was unreadable, moved aside to "
                                                       "upscaler.keras.corrupt; the next snakemake trains it again")
    text = status.render(status.Study([moved], 1, 0.0, 0))
    assert "1 runs: 0 done, 0 running, 0 failed, 1 corrupt, 0 pending" in text
