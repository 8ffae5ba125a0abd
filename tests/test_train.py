"""Training runs: history, resume == uninterrupted, NaN guard; the upscale CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from skimage import data as skdata

from conftest import BACKEND, tiny_params, to_numpy
from ssimsr import cli
from ssimsr.training.backends import BACKENDS, describe_devices
from ssimsr.training.train import NonFiniteLoss, RunParams, epoch_batches, history_columns, steps_per_epoch, train


@pytest.fixture(scope="module")
def trained_runs(dataset, tmp_path_factory):
    runs = {}
    for model in ("sr", "irn"):
        out = tmp_path_factory.mktemp(f"run_{model}")
        train(tiny_params(model, epochs=2, crop=None, batch_size=1), dataset, out)
        runs[model] = out
    return runs


def test_history_has_one_row_per_epoch_and_split(trained_runs):
    history = pd.read_csv(trained_runs["irn"] / "history.csv")
    assert list(history.columns) == history_columns()
    assert list(zip(history.epoch, history.split)) == [(0, "val"), (1, "train"), (1, "val"), (2, "train"),
                                                       (2, "val")]
    val = history[history.split == "val"]
    assert (val.fw_mse > 0).all() and (val.ssim_n > 0).all() and (val.perceptual == 0).all()
    assert np.allclose(val.total, val.bw_mse + val.fw_mse + val.ssim_n, rtol=1e-5)
    params = json.loads((trained_runs["irn"] / "params.json").read_text())
    assert params["model"] == "irn" and params["loss_weights"]["lambda_s"] == 1.0 and params["loss_weights"]["lambda_p"] == 0.0


def test_a_run_folder_says_what_produced_it(trained_runs):
    """Provenance (issue 27): the ssimsr version, the commit and dirty flag of this checkout,
    the stage's code digest and the versions of Python, numpy, Keras and its backend."""
    import platform

    import keras

    from ssimsr import __version__
    from ssimsr.pipeline.code_digest import code_digest
    from ssimsr.pipeline.provenance import git_state

    record = json.loads((trained_runs["sr"] / "provenance.json").read_text())
    assert record["ssimsr"] == __version__ and record["stage"] == "train"
    assert record["code_digest"] == code_digest("train") and record["python"] == platform.python_version()
    assert record["numpy"] == np.__version__ and record["keras"] == keras.__version__
    assert record["backend"] == keras.backend.backend() and record["backend_version"]
    state = git_state()
    if state:  # a checkout (CI clones one): the commit and whether it had uncommitted changes
        assert record["git_commit"] == state["commit"] and len(record["git_commit"]) == 40
        assert isinstance(record["git_dirty"], bool)


def test_epoch_batches_are_a_function_of_seed_and_epoch(dataset):
    images = [np.asarray(Image.open(p)) for p in sorted((dataset / "train").glob("*.png"))]
    params = tiny_params()
    first = [b.copy() for b in epoch_batches(images, params, 2)]
    again = [b.copy() for b in epoch_batches(images, params, 2)]
    other = [b.copy() for b in epoch_batches(images, params, 3)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))
    assert first[0].shape == (2, 32, 32, 3) and first[0].dtype == np.float32


def _source_batches(params, n_images: int = 4, epoch: int = 1) -> list[list[int]]:
    """The image each crop of each batch came from: image i is a flat grey of value 10 i."""
    images = [np.full((40, 48, 3), 10 * i, np.uint8) for i in range(n_images)]
    return [[int(round(c.mean() * 255)) // 10 for c in batch] for batch in epoch_batches(images, params, epoch)]


def test_an_epoch_draws_crops_per_image_crops_of_every_image():
    paper_epoch = _source_batches(tiny_params(batch_size=3))
    assert [len(b) for b in paper_epoch] == [3, 1]  # 4 images: each once, batches of 3
    assert sorted(sum(paper_epoch, [])) == [0, 1, 2, 3]
    params = tiny_params(batch_size=3, crops_per_image=5)
    batches = _source_batches(params)
    assert [len(b) for b in batches] == [3] * 6 + [2] and steps_per_epoch(params, 4) == 7
    assert sorted(sum(batches, [])) == sorted([0, 1, 2, 3] * 5)  # each image 5 times, shuffled together
    assert batches != _source_batches(params, epoch=2)
    assert steps_per_epoch(tiny_params(crop=None, batch_size=1), 4) == 4  # whole images: one per step


def _orientations(crop: np.ndarray) -> list[np.ndarray]:
    """The 8 orientations of a square crop: a horizontal flip or not, then 0-3 quarter turns."""
    return [np.rot90(c, k) for c in (crop, crop[:, ::-1]) for k in range(4)]


def test_augment_shows_the_same_crops_in_their_eight_orientations():
    """Each augmented crop is one of the 8 orientations of the crop drawn without
    ``augment`` (positions unchanged), the orientations are drawn about evenly and they are
    a function of (seed, epoch)."""
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (40, 48, 3), dtype=np.uint8) for _ in range(3)]
    plain_params = tiny_params(batch_size=4, crops_per_image=200)
    plain = np.concatenate(list(epoch_batches(images, plain_params, 1)))
    augmented = np.concatenate(list(epoch_batches(images, tiny_params(batch_size=4, crops_per_image=200,
                                                                      augment=True), 1)))
    assert augmented.shape == plain.shape == (600, 32, 32, 3)
    drawn = []
    for a, p in zip(augmented, plain):
        # random pixels: no two orientations of a crop are equal, so the match is unique
        matches = [k for k, o in enumerate(_orientations(p)) if np.array_equal(a, o)]
        assert len(matches) == 1
        drawn.append(matches[0])
    counts = np.bincount(drawn, minlength=8)
    # 600 draws of 8 equally likely orientations: 75 each, SD 8.1; 40..110 is beyond 4 SD
    assert counts.min() > 40 and counts.max() < 110, counts
    again = np.concatenate(list(epoch_batches(images, tiny_params(batch_size=4, crops_per_image=200, augment=True), 1)))
    np.testing.assert_array_equal(augmented, again)


def test_a_resumed_run_of_many_crops_per_image_equals_an_uninterrupted_one(dataset, tmp_path):
    params = tiny_params(crops_per_image=3, augment=True)  # the orientations too are a function of (seed, epoch)
    straight = train(params, dataset, tmp_path / "straight")
    assert steps_per_epoch(params, 4) == 6
    train(params, dataset, tmp_path / "killed", stop_after_epoch=1)
    resumed = train(params, dataset, tmp_path / "killed")
    pd.testing.assert_frame_equal(straight.drop(columns="seconds"), resumed.drop(columns="seconds"))
    want, got = _weights(tmp_path / "straight"), _weights(tmp_path / "killed")
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def _weights(run: Path) -> dict[str, np.ndarray]:
    """Every array of the run's checkpoint but its history, by key."""
    with np.load(run / "checkpoint" / "state.npz") as state:
        return {k: state[k] for k in state.files if k != "history"}


@pytest.mark.parametrize("model", ["sr", "irn"])
def test_resume_equals_uninterrupted(dataset, tmp_path, model):
    params = tiny_params(model)
    straight = train(params, dataset, tmp_path / "straight")
    killed = tmp_path / "killed"
    partial = train(params, dataset, killed, stop_after_epoch=1)  # as if killed after epoch 1
    assert list(partial.epoch.unique()) == [0, 1] and not (killed / "upscaler.keras").exists()
    # written after every epoch: the rows of epochs 0..1 exactly, in both files
    for name in ("history.csv", "progress.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(killed / name), partial, check_dtype=False)
    resumed = train(params, dataset, killed)
    pd.testing.assert_frame_equal(straight.drop(columns="seconds"), resumed.drop(columns="seconds"))
    want, got = _weights(tmp_path / "straight"), _weights(killed)
    assert sorted(got) == sorted(want)  # the same arrays by name: none compared away
    assert sum(k.startswith(("up_", "down_")) for k in want) >= 4 and any(k.startswith("opt_") for k in want)
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    with np.load(killed / "checkpoint" / "state.npz") as state:
        saved = json.loads(str(state["history"]))
    assert [(r["epoch"], r["split"]) for r in saved].count((0, "val")) == 1  # logged once, not per process
    assert [r["epoch"] for r in saved] == [0, 1, 1, 2, 2, 3, 3]
    attempts = pd.read_csv(killed / "checkpoint" / "attempts.csv")
    assert list(attempts.attempt) == [1, 2] and list(attempts.start_epoch) == [0, 1]
    pd.testing.assert_frame_equal(pd.read_csv(killed / "progress.csv"), pd.read_csv(killed / "history.csv"))


def test_a_killed_train_job_keeps_its_history_and_both_attempts_in_its_log(dataset, tmp_path, monkeypatch):
    """The workflow's train job killed after epoch 1, then rerun as Snakemake reruns it: the
    job's declared outputs and log deleted first. progress.csv keeps the finished epochs in
    between; the rerun resumes, and its log holds both attempts with a header each."""
    from types import SimpleNamespace

    import ssimsr.training.train
    from ssimsr.pipeline import jobs

    monkeypatch.chdir(tmp_path)  # train_run's GPU lock folder is relative
    params = tiny_params(epochs=3)
    out, log = tmp_path / "run", tmp_path / "run" / "train.log"
    smk = SimpleNamespace(rule="train", log=[str(log)], resources=SimpleNamespace(jobs_per_gpu=1),
                          params=SimpleNamespace(run=params.as_dict(), data=str(dataset), out=str(out)))
    real_train = ssimsr.training.train.train

    def killed_after_epoch_1(*args, **kwargs):
        real_train(*args, **{**kwargs, "stop_after_epoch": 1})
        raise RuntimeError("killed")  # the job dies here (SIGKILL at a time limit, say)

    monkeypatch.setattr(ssimsr.training.train, "train", killed_after_epoch_1)
    with pytest.raises(SystemExit):
        jobs.run(smk)
    monkeypatch.setattr(ssimsr.training.train, "train", real_train)
    for name in ("history.csv", "params.json", "train.log"):  # what Snakemake deletes
        (out / name).unlink()
    progress = pd.read_csv(out / "progress.csv")
    assert list(zip(progress.epoch, progress.split)) == [(0, "val"), (1, "train"), (1, "val")]

    jobs.run(smk)  # the rerun: resumes and completes
    text = log.read_text()
    headers = [line for line in text.splitlines() if line.startswith("=== attempt ")]
    assert len(headers) == 2, text
    assert headers[0].startswith("=== attempt 1, ") and headers[0].endswith(": fresh start")
    assert headers[1].startswith("=== attempt 2, ") and headers[1].endswith(": resuming from epoch 1 of 3")
    first, second = text.split(headers[1])
    assert "epoch 1/3 val psnr=" in first and "ssimsr train: error: killed" in first
    assert "epoch 2/3 val psnr=" in second and "epoch 1/3 val" not in second
    assert text.splitlines()[0] == headers[0]  # the header opens the attempt
    # ... and the device line follows it, in every attempt (README: "training on CPU (no GPU ...")
    device_line, _ = describe_devices(BACKEND)
    lines = text.splitlines()
    for header in headers:
        assert lines[lines.index(header) + 1].startswith(device_line), text
    history = pd.read_csv(out / "history.csv")
    assert list(history.epoch) == [0, 1, 1, 2, 2, 3, 3] and (out / "upscaler.keras").exists()


@pytest.fixture(scope="module")
def every_2_uninterrupted(dataset, tmp_path_factory):
    """An uninterrupted run of 8 epochs with a checkpoint every 2: (params, run folder, history)."""
    params = tiny_params(epochs=8, checkpoint_every=2)
    out = tmp_path_factory.mktemp("every_2_uninterrupted")
    return params, out, train(params, dataset, out)


def assert_same_run(got: Path, history: pd.DataFrame, want: Path, want_history: pd.DataFrame) -> None:
    """The same history (all but the seconds, exactly) and every checkpoint array, by name, bit for bit."""
    pd.testing.assert_frame_equal(history.drop(columns="seconds"), want_history.drop(columns="seconds"),
                                  check_exact=True)
    expected, actual = _weights(want), _weights(got)
    assert sorted(actual) == sorted(expected)  # the same arrays by name: none compared away
    assert sum(k.startswith(("up_", "down_")) for k in expected) >= 4 and any(k.startswith("opt_") for k in expected)
    for key in expected:
        np.testing.assert_array_equal(actual[key], expected[key], err_msg=key)


def test_resume_after_an_epoch_without_checkpoint_equals_uninterrupted(dataset, tmp_path, every_2_uninterrupted):
    """checkpoint_every 2, stopped after epoch 3, which wrote no checkpoint: the rerun resumes from
    epoch 2, trains epoch 3 again and ends where an uninterrupted run ends."""
    params, straight, straight_history = every_2_uninterrupted
    killed = tmp_path / "killed"
    partial = train(params, dataset, killed, stop_after_epoch=3)
    assert partial.epoch.max() == 3 and pd.read_csv(killed / "progress.csv").epoch.max() == 3
    with np.load(killed / "checkpoint" / "state.npz") as state:
        assert int(state["epoch"]) == 2  # epoch 3 is only in progress.csv
    resumed = train(params, dataset, killed)
    assert_same_run(killed, resumed, straight, straight_history)
    attempts = pd.read_csv(killed / "checkpoint" / "attempts.csv")
    assert list(attempts.start_epoch) == [0, 2]
    with np.load(killed / "checkpoint" / "state.npz") as state:
        saved = json.loads(str(state["history"]))
    assert [r["epoch"] for r in saved] == [0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8]  # epoch 3 once


def _last_epoch(progress: Path) -> int | None:
    """The last epoch progress.csv shows (None before its first write; it is replaced atomically)."""
    return int(pd.read_csv(progress).epoch.max()) if progress.exists() else None


def test_a_killed_train_command_resumes_and_equals_an_uninterrupted_run(dataset, tmp_path, every_2_uninterrupted):
    """``ssimsr train`` in its own process, killed with SIGKILL while progress.csv shows an epoch
    beyond its checkpoint (outside SLURM and Snakemake); the rerun resumes from the checkpoint and
    ends bit for bit where an uninterrupted run ends. The command's first stderr line names the device.

    No clock: the test polls the run's files; when progress.csv shows an odd epoch (checkpoints
    every 2 epochs) it stops the process (SIGSTOP), reads what is on disk, and kills it if an
    epoch beyond the checkpoint is there, else lets it go on."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from ssimsr.training.train import checkpoint_epoch

    params, straight, straight_history = every_2_uninterrupted
    (tmp_path / "params.json").write_text(json.dumps(params.as_dict()))
    run = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}  # the command sets it from the params
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(Path(cli.__file__).parents[1]), env.get("PYTHONPATH")) if p)
    killed_at = None
    with open(tmp_path / "stderr.txt", "w") as stderr:
        child = subprocess.Popen([sys.executable, "-m", "ssimsr", "train", "--params", str(tmp_path / "params.json"),
                                  "--data", str(dataset), "--out", str(run)], cwd=tmp_path, env=env,
                                 stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            while killed_at is None and child.poll() is None:
                epoch = _last_epoch(run / "progress.csv")
                if epoch is not None and epoch >= 3 and epoch % 2:
                    os.kill(child.pid, signal.SIGSTOP)  # frozen: its files are what a kill leaves
                    epoch = _last_epoch(run / "progress.csv")
                    saved = checkpoint_epoch(run / "checkpoint" / "state.npz", params.fingerprint())
                    if saved is not None and epoch > saved:
                        os.kill(child.pid, signal.SIGKILL)
                        killed_at = (epoch, saved)
                    else:
                        os.kill(child.pid, signal.SIGCONT)
                time.sleep(0.005)  # a polling interval, not a measurement
        finally:
            if child.poll() is None and killed_at is None:
                child.kill()
            child.wait()
    assert killed_at is not None, ("the run ended before an epoch beyond a checkpoint was seen: "
                                   + (tmp_path / "stderr.txt").read_text()[-3000:])
    assert child.returncode == -signal.SIGKILL
    epoch, saved = killed_at
    assert saved == epoch - 1 and not (run / "upscaler.keras").exists()

    # the attempt's header, then the device line open the command's stderr (README "Training on a GPU")
    device_line, has_gpu = describe_devices(BACKEND)
    header, first = (tmp_path / "stderr.txt").read_text().splitlines()[:2]
    assert header.startswith("=== attempt 1, ") and header.endswith(": fresh start"), header
    assert first.startswith(device_line), first
    assert has_gpu or first.startswith("training on CPU (no GPU visible to this backend): keras "), first

    resumed = train(params, dataset, run)  # the rerun
    attempts = pd.read_csv(run / "checkpoint" / "attempts.csv")
    assert len(attempts) == 2 and list(attempts.start_epoch) == [0, saved] and attempts.pid.iloc[0] == child.pid
    assert_same_run(run, resumed, straight, straight_history)
    pd.testing.assert_frame_equal(pd.read_csv(run / "progress.csv"), pd.read_csv(run / "history.csv"))


def test_the_backend_is_part_of_the_fingerprint_and_another_backends_checkpoint_is_not_resumed(trained_runs,
                                                                                                 tmp_path):
    import shutil

    from ssimsr.training.checkpoints import load_checkpoint
    from ssimsr.training.train import Trainer, begin_attempt, checkpoint_epoch

    same = tiny_params("sr", epochs=2, crop=None, batch_size=1)  # trained_runs["sr"]'s parameters
    other = tiny_params("sr", epochs=2, crop=None, batch_size=1,
                        backend=next(b for b in BACKENDS if b != BACKEND))
    assert {k for k, v in same.as_dict().items() if other.as_dict()[k] != v} == {"backend"}
    assert same.fingerprint() != other.fingerprint()
    run = tmp_path / "run"
    shutil.copytree(trained_runs["sr"] / "checkpoint", run / "checkpoint")
    ckpt = run / "checkpoint" / "state.npz"
    assert checkpoint_epoch(ckpt, same.fingerprint()) == 2  # this backend's rerun would resume it
    assert checkpoint_epoch(ckpt, other.fingerprint()) is None
    assert begin_attempt(other, run).endswith(": fresh start, the checkpoint belongs to other parameters")
    # what train() does with the checkpoint: nothing is loaded for the other backend's run
    trainer = Trainer(same)
    initial = [w.copy() for w in trainer.pair.upscaler.get_weights()]
    assert load_checkpoint(ckpt, trainer.pair, trainer.optimizer, trainer.variables, other.fingerprint()) is None
    assert all(np.array_equal(a, b) for a, b in zip(initial, trainer.pair.upscaler.get_weights()))
    restored = load_checkpoint(ckpt, trainer.pair, trainer.optimizer, trainer.variables, same.fingerprint())
    assert restored is not None and restored[0] == 2


def test_checkpoint_of_other_parameters_is_not_resumed(dataset, tmp_path):
    train(tiny_params(), dataset, tmp_path, stop_after_epoch=1)
    history = train(tiny_params(lambda_s=2.0, epochs=2), dataset, tmp_path)
    assert list(history.epoch) == [0, 1, 1, 2, 2]  # started afresh


def test_nan_loss_stops_with_epoch_and_step_and_keeps_checkpoint(dataset, tmp_path):
    train(tiny_params(epochs=2), dataset, tmp_path, stop_after_epoch=1)
    ckpt = tmp_path / "checkpoint" / "state.npz"
    before = ckpt.read_bytes()
    # An absurd learning rate makes the weights, hence the loss, overflow to NaN.
    with pytest.raises(NonFiniteLoss, match=r"non-finite loss at epoch 1, step \d+: total=nan"):
        train(tiny_params(epochs=2, learning_rate=1e9), dataset, tmp_path)
    assert ckpt.read_bytes() == before
    assert not (tmp_path / "upscaler.keras").exists()


def test_epoch_0_row_is_the_initial_weights_validated(dataset, tmp_path):
    """The epoch-0 row equals an independent validation of a fresh Trainer of the same seed
    (the same initial weights), and training then moves the terms."""
    from ssimsr.training.train import Trainer, load_split

    params = tiny_params("irn", epochs=1)
    history = train(params, dataset, tmp_path)
    row = history[history.epoch == 0]
    assert list(row.split) == ["val"]
    _, val_images = load_split(dataset, "val")
    expected = Trainer(params).validate(val_images)
    for key in ("total", "bw_mse", "fw_mse", "ssim_n", "psnr", "ssim"):
        np.testing.assert_allclose(float(row[key].iloc[0]), expected[key], rtol=1e-6, err_msg=key)
    np.testing.assert_allclose(float(row.total.iloc[0]), float((row.bw_mse + row.fw_mse + row.ssim_n).iloc[0]),
                               rtol=1e-5)  # lambda_p = 0: the other three, each with weight 1
    assert float(history[(history.epoch == 1) & (history.split == "val")].total.iloc[0]) != expected["total"]


def test_term_shares_and_dominance_by_hand():
    from ssimsr.training import balance

    lambdas = {"lambda_b": 1.0, "lambda_f": 1.0, "lambda_p": 1.0, "lambda_s": 1.0}
    terms = {"bw_mse": 0.001, "fw_mse": 0.002, "perceptual": 0.5, "ssim_n": 0.0}
    shares = balance.shares(terms, lambdas)
    np.testing.assert_allclose([shares[k] for k in ("bw_mse", "fw_mse", "perceptual", "ssim_n")],
                               [0.001 / 0.503, 0.002 / 0.503, 0.5 / 0.503, 0.0])
    term, factor = balance.dominant(terms, lambdas)
    assert term == "perceptual" and factor == pytest.approx(0.5 / 0.003)  # 166.7 > 100
    assert balance.dominant(terms, {**lambdas, "lambda_p": 0.5}) is None  # 0.25 / 0.003 = 83 < 100
    # weight 0: not a weighted term, not in the shares, cannot dominate or be drowned
    only_b = {"lambda_b": 1.0, "lambda_f": 0.0, "lambda_p": 0.0, "lambda_s": 0.0}
    assert balance.shares(terms, only_b) == {"bw_mse": 1.0} and balance.dominant(terms, only_b) is None
    assert balance.dominant({**terms, "fw_mse": 0.0, "ssim_n": 0.0}, {**lambdas, "lambda_p": 0.0}) == \
        ("bw_mse", float("inf"))  # the only non-zero weighted term: the others add nothing
    assert balance.describe(terms, {**lambdas, "lambda_p": 0.0, "lambda_s": 0.0}) == "bw_mse 33.3%, fw_mse 66.7%"


def test_train_log_warns_on_a_dominant_term_at_epoch_0_and_the_end(dataset, tmp_path, caplog):
    """lambda_s = 1000: 1000 x SSIM_N (about 0.1-0.5) drowns bwMSE + fwMSE (about 0.01-0.1)."""
    import logging

    with caplog.at_level(logging.INFO, logger="ssimsr.training.train"):
        history = train(tiny_params(lambda_s=1000.0, epochs=1), dataset, tmp_path)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == "ssimsr.training.train"]
    assert len(warned) == 2, warned
    assert "(before training (epoch 0)): lambda_s x ssim_n" in warned[0]
    assert "(epoch 1): lambda_s x ssim_n" in warned[1] and "> 100x" in warned[1]
    val = history[history.split == "val"]
    assert (1000 * val.ssim_n > 100 * (val.bw_mse + val.fw_mse)).all()  # the warning is right
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="ssimsr.training.train"):
        train(tiny_params(epochs=1), dataset, tmp_path / "balanced")
    assert not [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "ssimsr.training.train"]
    shares = [r.getMessage() for r in caplog.records if "loss shares" in r.getMessage()]
    assert len(shares) == 2 and "bw_mse" in shares[0] and "perceptual" not in shares[0]


def _relative_perceptual_by_hand(hr: np.ndarray, rec: np.ndarray, extractor) -> float:
    """losses.perceptual(norm="relative")'s definition, written out: both images x255, RGB -> BGR,
    minus the ImageNet BGR means (the Caffe weights' preprocessing), then per layer
    mean|phi(hr) - phi(rec)| / mean|phi(hr)|, averaged over the layers (float64 means)."""
    means = np.array([103.939, 116.779, 123.68], np.float32)
    features = [[to_numpy(f).astype(np.float64) for f in extractor(img[None, ..., ::-1] * 255.0 - means)]
                for img in (hr, rec)]
    return float(np.mean([np.abs(a - b).mean() / np.abs(a).mean() for a, b in zip(*features)]))


def test_perceptual_run_epoch_0_terms_and_shares_by_hand(dataset, tmp_path, vgg_weights, caplog):
    """A run with all four terms on, each with its own lambda (random-init test VGG19 weights,
    not ImageNet): the epoch-0 perceptual term equals one computed here from the initial
    networks and the VGG19 weights (set directly, not through losses.load_vgg19), and the
    shares the train log reports are lambda x term / sum, computed here from the history row."""
    import logging

    import keras

    from ssimsr.models import models

    lambdas = {"lambda_b": 1.0, "lambda_f": 0.5, "lambda_p": 0.25, "lambda_s": 2.0}
    params = tiny_params(epochs=1, vgg_weights=str(vgg_weights[0]), perceptual_norm="relative", **lambdas)
    with caplog.at_level(logging.INFO, logger="ssimsr.training.train"):
        history = train(params, dataset, tmp_path)
    start = history[history.epoch == 0].iloc[0]
    assert start.fw_mse > 0 and start.ssim_n > 0

    # the initial networks (Trainer: seed, then build_pair) and VGG19 with the file's arrays
    keras.utils.set_random_seed(params.seed)
    pair = models.build_pair("sr", scale=params.scale, freeze_downscaler=not params.train_downscaler,
                             **params.widths)
    vgg = keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
    vgg.set_weights(vgg_weights[1])
    extractor = keras.Model(vgg.input, [vgg.get_layer(name).output for name in params.vgg_layers])
    images = [np.asarray(Image.open(p), dtype=np.float32) / 255.0 for p in sorted((dataset / "val").glob("*.png"))]
    recs = [to_numpy(pair.upscaler(pair.downscaler(hr[None], training=False), training=False))[0] for hr in images]
    # the same initial weights: their pixel error is the history's
    np.testing.assert_allclose(np.mean([np.mean((hr - rec) ** 2, dtype=np.float64) for hr, rec in zip(images, recs)]),
                               start.bw_mse, rtol=1e-5)
    expected = np.mean([_relative_perceptual_by_hand(hr, rec, extractor) for hr, rec in zip(images, recs)])
    # float32 features of 16 conv layers (the library runs hr and rec as one batch of 2, here
    # one by one): per-activation rounding ~1e-6 relative, so 1e-5 is 10x that; a wrong
    # normalisation (sum over layers, the reconstruction's scale, squares) moves it by > 10 %.
    np.testing.assert_allclose(start.perceptual, expected, rtol=1e-5)

    weighted = {"bw_mse": 1.0 * start.bw_mse, "fw_mse": 0.5 * start.fw_mse, "perceptual": 0.25 * start.perceptual,
                "ssim_n": 2.0 * start.ssim_n}
    total = sum(weighted.values())
    np.testing.assert_allclose(start.total, total, rtol=1e-5)  # Eq. 11 with these lambdas (float32 sum)
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("loss shares (validation, ")]
    assert len(logged) == 2 and "before training (epoch 0)" in logged[0]
    shares = {name: float(value) for name, value in re.findall(r"(\w+) ([\d.]+)%", logged[0].split("): ", 1)[1])}
    assert list(shares) == list(weighted)
    for name, value in weighted.items():  # logged with one decimal: within 0.05 points (+ float32)
        assert abs(shares[name] - 100 * value / total) <= 0.05 + 1e-6, (name, shares, weighted)


def test_perceptual_norm_option_and_fingerprint():
    with pytest.raises(ValueError, match="perceptual_norm: unknown value 'basicsr'"):
        tiny_params(perceptual_norm="basicsr")
    raw = tiny_params(lambda_p=1.0, perceptual_norm="raw")
    assert tiny_params(lambda_p=1.0, perceptual_norm="relative").fingerprint() != raw.fingerprint()
    # the run's names and the log cadence do not change what it computes
    named = tiny_params(lambda_p=1.0, perceptual_norm="raw", log_every=7,
                        run={"study": "s", "preset": "corrected", "model": "sr", "dataset": "tiny",
                             "lambda_s": 1.0, "seed": 0, "vgg": "b4c4-b5c4"})
    assert named.fingerprint() == raw.fingerprint()
    assert tiny_params(lambda_p=1.0, perceptual_norm="raw", seed=1).fingerprint() != raw.fingerprint()
    # without the perceptual term the option changes nothing, nor the fingerprint
    assert tiny_params(perceptual_norm="relative").fingerprint() == tiny_params().fingerprint()


def test_bad_parameters_name_the_key():
    with pytest.raises(ValueError, match="lambda_s: must be >= 0"):
        tiny_params(lambda_s=-1.0)
    with pytest.raises(ValueError, match="epochs: must be >= 1"):
        tiny_params(epochs=0)
    with pytest.raises(ValueError, match="unknown training parameter"):
        RunParams.from_dict({"model": "sr", "dataset": "x", "lambda_s": 1, "colour": 1})
    with pytest.raises(ValueError, match=r"missing training parameter\(s\) \['batch_size'"):
        RunParams.from_dict({k: v for k, v in tiny_params().as_dict().items() if k != "batch_size"})
    with pytest.raises(ValueError, match="model: unknown architecture 'vdsr'"):
        RunParams.from_dict({**tiny_params().as_dict(), "model": "vdsr"})
    with pytest.raises(ValueError, match="batch_size > 1 needs `crop`"):
        tiny_params(crop=None, batch_size=4)
    with pytest.raises(ValueError, match="crops_per_image > 1 needs `crop`"):
        tiny_params(crop=None, batch_size=1, crops_per_image=2)
    with pytest.raises(ValueError, match="crops_per_image: must be >= 1"):
        tiny_params(crops_per_image=0)
    with pytest.raises(ValueError, match="augment needs `crop`"):
        tiny_params(crop=None, batch_size=1, augment=True)
    # a params.json from before the options reads as the run it was: one crop of each image, as drawn
    old = {k: v for k, v in tiny_params().as_dict().items() if k not in ("crops_per_image", "augment")}
    assert RunParams.from_dict(old) == tiny_params()


# ----------------------------------------------------------------- ssimsr upscale

def write_inputs(folder: Path) -> None:
    folder.mkdir()
    photo = skdata.astronaut()[:37, :51]  # odd size
    Image.fromarray(photo).save(folder / "odd.png")
    Image.fromarray(photo).convert("L").save(folder / "gray.png")
    rgba = np.concatenate([photo, np.full(photo.shape[:2] + (1,), 128, np.uint8)], axis=2)
    Image.fromarray(rgba, "RGBA").save(folder / "rgba.png")


@pytest.mark.parametrize("model,factor", [("sr", 2), ("irn", 1)])
def test_upscale_cli_handles_odd_gray_and_rgba(trained_runs, tmp_path, model, factor):
    write_inputs(tmp_path / "in")
    assert cli.main(["upscale", str(trained_runs[model]), str(tmp_path / "in"), str(tmp_path / "out")]) == 0
    for name in ("odd", "gray", "rgba"):
        with Image.open(tmp_path / "out" / f"{name}.png") as img:
            assert img.mode == "RGB"
            assert img.size == (51 * factor, 37 * factor)


def test_upscale_cli_single_file_and_errors(trained_runs, tmp_path, capsys):
    write_inputs(tmp_path / "in")
    assert cli.main(["upscale", str(trained_runs["sr"]), str(tmp_path / "in" / "odd.png"),
                     str(tmp_path / "big.png")]) == 0
    assert Image.open(tmp_path / "big.png").size == (102, 74)
    assert cli.main(["upscale", str(tmp_path), str(tmp_path / "in"), str(tmp_path / "o")]) == 1
    assert "not a trained run" in capsys.readouterr().err
    (tmp_path / "in" / "bad.png").write_text("not an image")
    assert cli.main(["upscale", str(trained_runs["sr"]), str(tmp_path / "in" / "bad.png"),
                     str(tmp_path / "o.png")]) == 1
    assert "bad.png: not a readable image" in capsys.readouterr().err


def test_mixed_bfloat16_run_saves_float32_models(dataset, tmp_path):
    import keras

    from ssimsr.models import models  # noqa: F401  registers the custom layers

    history = train(tiny_params("irn", epochs=1, precision="mixed_bfloat16"), dataset, tmp_path)
    assert np.isfinite(history.drop(columns="split").to_numpy(dtype=float)).all()
    upscaler = keras.saving.load_model(tmp_path / "upscaler.keras")
    assert all(w.dtype == np.float32 for w in upscaler.get_weights())
    assert upscaler(np.zeros((1, 8, 8, 4), np.float32)).dtype == "float32"


def test_xla_with_perceptual_loss_is_refused():
    with pytest.raises(ValueError, match="jit_compile"):
        tiny_params(jit_compile=True, lambda_p=1.0, backend="tensorflow")
    # JAX always compiles with XLA; its deterministic VGG gradient is fine
    assert tiny_params(jit_compile=True, lambda_p=1.0, backend="jax").backend == "jax"


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="backend: unknown backend 'mxnet'"):
        tiny_params(backend="mxnet")


# IRN: the same promise through the other architecture, in the slow run (four backend processes: 26 s)
@pytest.mark.parametrize("model", ["sr", pytest.param("irn", marks=pytest.mark.slow)])
def test_saved_models_upscale_under_tensorflow_and_jax(trained_runs, tmp_path, model):
    """A run saved under this session's backend upscales the same under both backends
    (each `ssimsr upscale --backend` runs in its own process: the backend is per process)."""
    import os
    import subprocess
    import sys

    photo = skdata.coffee()[100:164, 200:296]  # 64x96
    Image.fromarray(photo).save(tmp_path / "in.png")
    outputs = {}
    for backend in ("tensorflow", "jax"):
        target = tmp_path / f"{backend}.png"
        env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
        done = subprocess.run([sys.executable, "-m", "ssimsr.cli", "upscale", "--backend", backend,
                               str(trained_runs[model]), str(tmp_path / "in.png"), str(target)],
                              capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        outputs[backend] = np.asarray(Image.open(target), dtype=np.int16)
    factor = 2 if model == "sr" else 1
    assert outputs["jax"].shape == (64 * factor, 96 * factor, 3)
    # same weights, other kernels: 8-bit outputs differ by at most one grey level
    assert np.abs(outputs["jax"] - outputs["tensorflow"]).max() <= 1


def test_a_code_change_retrains_instead_of_resuming_the_old_checkpoint(dataset, tmp_path, monkeypatch, capsys):
    """Snakemake reruns a finished training when its code digest changes; the run must train
    again, not re-export the weights of the old code's last checkpoint."""
    from ssimsr.pipeline import code_digest as digest_module
    from ssimsr.training.train import checkpoint_epoch

    params = tiny_params(epochs=1)
    train(params, dataset, tmp_path)
    ckpt = tmp_path / "checkpoint" / "state.npz"
    assert checkpoint_epoch(ckpt, params.fingerprint()) == 1  # same code: a rerun resumes at the end
    capsys.readouterr()
    real = digest_module.code_digest
    monkeypatch.setattr(digest_module, "code_digest", lambda stage: "edited" + real(stage))
    assert checkpoint_epoch(ckpt, params.fingerprint()) is None
    train(params, dataset, tmp_path)
    assert "epoch 1/1 step" in capsys.readouterr().err  # trained again
