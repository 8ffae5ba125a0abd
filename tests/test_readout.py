"""The downscaler read-out diagnostic (readout.py) and its hook in training."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from skimage import data as skdata

from conftest import BACKEND
from ssimsr.pipeline.experiments import run_params
from ssimsr.training.readout import describe, readout_psnr


def _photos(n: int, h: int = 24, w: int = 32, seed: int = 0) -> list[np.ndarray]:
    """Real photo crops (uint8), different for each index."""
    rng = np.random.default_rng(seed)
    sources = [skdata.astronaut(), skdata.coffee(), skdata.chelsea(), skdata.rocket()]
    out = []
    for i in range(n):
        src = sources[i % len(sources)]
        top, left = rng.integers(0, src.shape[0] - h), rng.integers(0, src.shape[1] - w)
        out.append(src[top:top + h, left:left + w].copy())
    return out


def space_to_depth(scale: int):
    """Exactly linear and invertible per block: (1, H, W, 3) -> (1, H/s, W/s, s*s*3)."""
    def down(batch):
        _, h, w, c = batch.shape
        return (batch.reshape(1, h // scale, scale, w // scale, scale, c).transpose(0, 1, 3, 2, 4, 5)
                .reshape(1, h // scale, w // scale, scale * scale * c))
    return down


def _psnr(a, b) -> float:
    return 10 * math.log10(1.0 / float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)))


@pytest.mark.parametrize("scale", [2, 4])
def test_invertible_downscaler_is_read_out_perfectly(scale):
    # 3 x 12 x 16 = 576 training blocks at x4: more than the 9 x 48 + 1 = 433 features
    train, val = _photos(3, 48, 64), _photos(2, 48, 64, seed=1)
    result = readout_psnr(space_to_depth(scale), train, val, scale=scale)
    assert result["psnr"] > 100, result["psnr"]
    assert result["lr_channels"] == scale * scale * 3 and result["features"] == 9 * scale * scale * 3 + 1
    assert result["train_images"] == 3 and result["val_images"] == 2
    assert result["train_blocks"] == result["fit_rows"] == 3 * (48 // scale) * (64 // scale)
    assert result["val_blocks"] == 2 * (48 // scale) * (64 // scale)


def test_zero_downscaler_predicts_the_mean_block_of_the_training_images():
    scale = 2
    train, val = _photos(4), _photos(3, seed=2)
    result = readout_psnr(lambda b: np.zeros((1, b.shape[1] // 2, b.shape[2] // 2, 4), np.float32),
                          train, val, scale=scale)
    # independent reference: the mean 2x2x3 block of the training images, tiled
    # (pixels as the read-out sees them: uint8 / 255 in float32)
    train = [(t.astype(np.float32) / 255).astype(np.float64) for t in train]
    val = [(v.astype(np.float32) / 255).astype(np.float64) for v in val]
    blocks = np.concatenate([t.reshape(12, 2, 16, 2, 3).transpose(0, 2, 1, 3, 4).reshape(-1, 12) for t in train])
    mean = blocks.mean(axis=0).reshape(2, 2, 3)
    expected = [_psnr(np.tile(mean, (12, 16, 1)), v) for v in val]
    assert result["psnr"] == pytest.approx(np.mean(expected), abs=1e-9)
    np.testing.assert_allclose(result["psnr_per_image"], expected, atol=1e-9)


def test_least_squares_fit_matches_a_hand_built_solution():
    """A random (non-invertible) linear-plus-noise downscaler on tiny images: the read-out's
    reconstruction equals a fit built with loops and scipy's least squares."""
    from scipy.linalg import lstsq

    rng = np.random.default_rng(3)
    mix = rng.normal(size=(12, 2))

    def down(batch):  # 2 channels from each 2x2x3 block, plus a non-linearity
        _, h, w, _ = batch.shape
        blocks = batch[0].reshape(h // 2, 2, w // 2, 2, 3).transpose(0, 2, 1, 3, 4).reshape(h // 2, w // 2, 12)
        return np.tanh(blocks @ mix)[None]

    train = [rng.random((8, 10, 3)) for _ in range(2)]
    val = [rng.random((6, 8, 3))]

    def features(lr):
        h, w, _ = lr.shape
        rows = []
        for i in range(h):
            for j in range(w):
                f = [lr[min(max(i + di, 0), h - 1), min(max(j + dj, 0), w - 1), c]
                     for di in (-1, 0, 1) for dj in (-1, 0, 1) for c in range(lr.shape[2])]
                rows.append(f + [1.0])
        return np.array(rows)

    def blocks(img):
        h, w, _ = img.shape
        return np.array([img[2 * i:2 * i + 2, 2 * j:2 * j + 2].ravel() for i in range(h // 2) for j in range(w // 2)])

    x = np.concatenate([features(down(t[None].astype(np.float32))[0].astype(np.float32).astype(np.float64))
                        for t in train])
    y = np.concatenate([blocks(t.astype(np.float32).astype(np.float64)) for t in train])
    coef = lstsq(x, y)[0]
    v = val[0].astype(np.float32).astype(np.float64)
    pred = np.clip(features(down(v[None].astype(np.float32))[0].astype(np.float32).astype(np.float64)) @ coef, 0, 1)
    rec = np.zeros_like(v)
    for k, (i, j) in enumerate((i, j) for i in range(3) for j in range(4)):
        rec[2 * i:2 * i + 2, 2 * j:2 * j + 2] = pred[k].reshape(2, 2, 3)
    result = readout_psnr(lambda b: down(b).astype(np.float32), train, val, scale=2)
    assert result["psnr"] == pytest.approx(_psnr(rec, v), abs=1e-6)
    assert result["fit_rows"] == 2 * 20 and result["lr_channels"] == 2
    assert describe(result).endswith("dB (linear 3x3x2 -> 2x2x3, fitted on 2 train images, scored on 1 val images)")


def test_row_limit_and_image_limit_are_deterministic():
    train, val = _photos(10), _photos(10, seed=4)
    down = space_to_depth(2)
    a = readout_psnr(lambda b: np.tanh(3 * down(b))[..., :4], train, val, max_images=8, max_rows=500)
    b = readout_psnr(lambda b: np.tanh(3 * down(b))[..., :4], train, val, max_images=8, max_rows=500)
    assert a == b and a["fit_rows"] == 500 and a["train_blocks"] == 8 * 12 * 16
    assert a["train_images"] == 8 and a["val_images"] == 8 and len(a["psnr_per_image"]) == 8


def test_bad_input_is_named():
    good = _photos(1)
    down = space_to_depth(2)
    with pytest.raises(ValueError, match="train_images: no images"):
        readout_psnr(down, [], good)
    with pytest.raises(ValueError, match="val_images: no images"):
        readout_psnr(down, good, [])
    with pytest.raises(ValueError, match=r"train_images\[0\]: size 31x24 is not a multiple of scale 2"):
        readout_psnr(down, [good[0][:, :31]], good)
    with pytest.raises(ValueError, match=r"val_images\[0\]: expected an H x W x 3 RGB image, got shape \(24, 32, 4\)"):
        readout_psnr(down, good, [np.zeros((24, 32, 4), np.uint8)])
    with pytest.raises(ValueError, match=r"expected an H x W x 3 RGB image, got shape \(24, 32\)"):
        readout_psnr(down, [good[0][..., 0]], good)
    with pytest.raises(ValueError, match="scale: expected an integer >= 1"):
        readout_psnr(down, good, good, scale=0)
    with pytest.raises(ValueError, match="max_images: expected an integer >= 1"):
        readout_psnr(down, good, good, max_images=0)
    with pytest.raises(ValueError, match=r"returned shape \(1, 24, 32, 3\) .* expected \(1, 12, 16, C\)"):
        readout_psnr(lambda b: b, good, good)
    with pytest.raises(ValueError, match=r"val_images\[0\]: the downscaler returned 3 channels, 4 for the training"):
        readout_psnr(lambda b: np.zeros((1, b.shape[1] // 2, b.shape[2] // 2, 4 if b.shape[1] == 24 else 3)),
                     good, _photos(1, h=16))


# --------------------------------------------------------------------------- training hook

def _tiny(model="irn", **overrides):
    values = dict(dataset="tiny", epochs=2, crop=32, batch_size=2, lambda_p=0.0, log_every=100,
                  widths={"sr": {"filters": 8, "res_blocks": 1}, "irn": {"down_filters": 8, "up_filters": 4}}[model],
                  backend=BACKEND)
    values.update(overrides)
    return run_params(model, **values)


def test_irn_run_writes_readout_on_a_fresh_start_and_keeps_it_on_resume(dataset, tmp_path, capsys):
    from ssimsr.training.readout import keras_downscale
    from ssimsr.training.train import Trainer, initial_downscaler, load_split, train

    params = _tiny(train_downscaler=False)  # as_run: the downscaler stays at its initialisation
    train(params, dataset, tmp_path, stop_after_epoch=1)
    path = tmp_path / "readout.json"
    first = json.loads(path.read_text())
    assert first["train_images"] == 4 and first["val_images"] == 2 and first["lr_channels"] == 4
    assert first["weights"] == "init" and math.isfinite(first["psnr"]) and 10 < first["psnr"] < 60
    err = capsys.readouterr().err
    assert err.count("downscaler read-out at init: ") == 1
    assert (f"downscaler read-out at init: {first['psnr']:.2f} dB (linear 3x3x4 -> 2x2x3, "
            "fitted on 4 train images, scored on 2 val images)") in err

    # the same numbers as an independent read-out of the Trainer's initial downscaler
    _, train_images = load_split(dataset, "train")
    _, val_images = load_split(dataset, "val")
    again = readout_psnr(keras_downscale(Trainer(params).pair.downscaler), train_images, val_images)
    assert again["psnr"] == pytest.approx(first["psnr"], abs=1e-9)
    # initial_downscaler rebuilds exactly those weights
    for a, b in zip(initial_downscaler(params).get_weights(), Trainer(params).pair.downscaler.get_weights()):
        np.testing.assert_array_equal(a, b)

    before = path.read_bytes()
    train(params, dataset, tmp_path)  # resume: the file is kept, not recomputed
    # (a log line may say it was kept; none says it was computed)
    assert path.read_bytes() == before and "(linear 3x3x4" not in capsys.readouterr().err
    assert (tmp_path / "upscaler.keras").exists()


def test_missing_readout_is_recomputed_on_resume_and_sr_writes_none(dataset, tmp_path, capsys):
    from ssimsr.training.train import train

    params = _tiny(epochs=2)
    train(params, dataset, tmp_path, stop_after_epoch=1)
    original = json.loads((tmp_path / "readout.json").read_text())
    (tmp_path / "readout.json").unlink()
    capsys.readouterr()
    train(params, dataset, tmp_path)
    recomputed = json.loads((tmp_path / "readout.json").read_text())
    assert recomputed["psnr"] == pytest.approx(original["psnr"], abs=1e-9)
    assert recomputed["weights"].startswith("recomputed on resume") and "[recomputed" in capsys.readouterr().err

    train(_tiny("sr", epochs=1), dataset, tmp_path / "sr")
    assert not (tmp_path / "sr" / "readout.json").exists()


def test_collect_adds_the_readout_psnr_to_each_runs_history(tmp_path):
    """IRN run with readout.json: its value on every history row; SR run without: NaN."""
    import warnings

    import pandas as pd

    from ssimsr.evaluation import evaluate
    from ssimsr.pipeline.runs import Run
    from ssimsr.training.train import history_columns

    (tmp_path / "data/tiny/train").mkdir(parents=True)
    train_dirs, eval_dirs = [], []
    for model in ("irn", "sr"):
        run = tmp_path / f"train/s/as_run/{model}/tiny/ls0/b4c4-b5c4/seed0"
        run.mkdir(parents=True)
        params = _tiny(model, run=Run.parse(run).as_dict())
        (run / "params.json").write_text(json.dumps(params.as_dict()))
        pd.DataFrame([dict.fromkeys(history_columns(), 0.0) | {"epoch": e, "split": "val"} for e in (0, 1)]) \
            .to_csv(run / "history.csv", index=False)
        if model == "irn":
            (run / "readout.json").write_text(json.dumps({"psnr": 27.5, "train_images": 8}))
        ev = tmp_path / "eval" / run.relative_to(tmp_path / "train")
        ev.mkdir(parents=True)
        pd.DataFrame({"set": ["val"], "image": ["a"], "psnr": [30.0]}).to_csv(ev / "metrics.csv", index=False)
        train_dirs.append(run)
        eval_dirs.append(ev)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no manifest: no image origins
        _, history = evaluate.collect(train_dirs, eval_dirs, tmp_path / "data")
    assert list(history[history.model == "irn"].readout_psnr) == [27.5, 27.5]
    assert history[history.model == "sr"].readout_psnr.isna().all() and len(history) == 4


def test_fit_readout_predicts_as_lstsq_on_the_tall_matrix():
    """fit_readout (normal equations of standardised features + refinement) against SciPy's
    least squares of the full matrix, also with collinear and constant features."""
    from scipy.linalg import lstsq

    from ssimsr.training.readout import fit_readout

    rng = np.random.default_rng(5)
    base = rng.normal(size=(3000, 6)) @ rng.normal(size=(6, 10))  # rank 6 of 10: collinear
    x = np.column_stack([base, np.full(3000, 0.3), base[:, 0] + 1e-3 * rng.normal(size=3000), np.ones(3000)])
    y = np.tanh(base[:, :4]) + 0.1 * rng.normal(size=(3000, 4))
    np.testing.assert_allclose(x @ fit_readout(x, y), x @ lstsq(x, y)[0], atol=1e-9)
    zero = np.column_stack([np.zeros((50, 9)), np.ones(50)])  # a zero downscaler: the mean
    np.testing.assert_allclose(zero @ fit_readout(zero, y[:50]), np.tile(y[:50].mean(axis=0), (50, 1)), atol=1e-12)
