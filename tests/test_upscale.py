"""Tiled upscaling: the overlap covers the receptive field, so tiles == whole image.

Models have the paper's shapes (SR: 64 filters, 8 residual blocks; IRN: 128 / 32) with
random weights: no training is needed to check that tiling does not change the result.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from ssimsr import cli, models
from ssimsr.upscale import Footprint, apply, auto_tile, footprint, reconstruct_tiled, run_tiled

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(scope="module")
def pairs():
    import keras

    keras.utils.set_random_seed(0)
    return {"sr": models.build_pair("sr", 2), "irn": models.build_pair("irn", 2)}


@pytest.fixture(scope="module")
def photo():
    return skdata.astronaut()[60:136, 150:250]  # 100x76 crop of a real photograph


def as_float(rgb):
    return rgb.astype(np.float32) / 255.0


def test_footprint_of_the_paper_models(pairs):
    sr = footprint(pairs["sr"].upscaler)
    # 18 LR 3x3 convs (feature, 8 x 2 residual, upsample) + pixel shuffle + 1 HR conv (half an LR px)
    assert (sr.radius, sr.zoom, sr.align, sr.margin) == (19.5, 2.0, 1, 20)
    irn = footprint(pairs["irn"].downscaler).then(footprint(pairs["irn"].upscaler))
    assert (irn.zoom, irn.align, irn.margin) == (1.0, 2, 20) and irn.radius == 19.0
    sr_trip = footprint(pairs["sr"].downscaler).then(sr)
    assert (sr_trip.radius, sr_trip.zoom, sr_trip.align, sr_trip.margin) == (39.0, 1.0, 2, 40)


def test_footprint_bounds_the_measured_impulse_response(pairs):
    """Change one input pixel; no output pixel farther than the radius may change."""
    rng = np.random.default_rng(0)
    up = pairs["sr"].upscaler
    x = rng.random((1, 64, 64, 3), np.float32)
    y = x.copy()
    y[0, 32, 32] += 0.5
    diff = np.abs(np.asarray(up(y)) - np.asarray(up(x))).max(axis=-1)[0]
    rows, cols = np.nonzero(diff > 0)
    reach = max(np.abs(rows / 2 - 32).max(), np.abs(cols / 2 - 32).max())  # in LR pixels
    radius = footprint(up).radius
    assert 17 <= reach <= radius  # the bound is tight, not a guess


def test_sr_tiles_equal_the_whole_image(pairs, photo):
    up = pairs["sr"].upscaler
    x = as_float(photo)
    whole = np.asarray(up(x[None], training=False))[0]
    fp = footprint(up)
    tiled = run_tiled(lambda t: up(t, training=False), x, fp, tile=32)  # 4 x 3 tiles
    assert tiled.shape == whole.shape == (152, 200, 3)
    assert np.abs(tiled - whole).max() < 1e-5
    # and the overlap is needed: half the receptive field as the margin shows the seams
    short = Footprint(fp.radius / 2, fp.zoom, fp.align, fp.floats_per_pixel)
    seams = run_tiled(lambda t: up(t, training=False), x, short, tile=32)
    assert np.abs(seams - whole).max() > 1e-3


@pytest.mark.parametrize("model", ["irn", "sr"])
def test_round_trip_tiles_equal_the_whole_image(pairs, photo, model):
    pair = pairs[model]
    params = {"model": model, "scale": 2}
    hr = as_float(photo)
    whole = np.asarray(pair.upscaler(pair.downscaler(hr[None], training=False), training=False))[0]
    tiled = reconstruct_tiled(params, pair.downscaler, pair.upscaler, hr, tile=24)
    assert tiled.shape == whole.shape == hr.shape
    assert np.abs(tiled - whole).max() < 1e-5


def test_odd_sized_irn_input_is_padded_and_cropped(pairs):
    pair = pairs["irn"]
    rgb = skdata.coffee()[:45, :67]
    out = apply({"model": "irn", "scale": 2}, pair.downscaler, pair.upscaler, rgb, tile=16)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    whole = apply({"model": "irn", "scale": 2}, pair.downscaler, pair.upscaler, rgb, tile=1024)
    assert np.abs(out.astype(int) - whole.astype(int)).max() <= 1  # rounding of equal floats


def test_auto_tile_follows_the_memory(pairs):
    fp = footprint(pairs["sr"].upscaler)
    small, large = auto_tile(fp, memory=1 << 30), auto_tile(fp, memory=16 << 30)
    assert 16 <= small < large
    # the estimate counts every activation of the tile (margins included) as alive at once
    assert (large + 2 * fp.margin) ** 2 * fp.floats_per_pixel * 4 <= 0.35 * (16 << 30)
    assert auto_tile(fp, memory=1 << 20) == 16  # never below the minimum


# ----------------------------------------------------------------- the CLI

@pytest.fixture(scope="module")
def sr_run(pairs, tmp_path_factory):
    run = tmp_path_factory.mktemp("sr_run")
    (run / "params.json").write_text(json.dumps({"model": "sr", "scale": 2}))
    pairs["sr"].upscaler.save(run / "upscaler.keras")
    pairs["sr"].downscaler.save(run / "downscaler.keras")
    return run


def test_upscale_cli_tiles_with_progress_and_matches_whole(sr_run, pairs, photo, tmp_path, caplog):
    Image.fromarray(photo).save(tmp_path / "photo.png")
    with caplog.at_level(logging.INFO, logger="ssimsr.upscale"):
        assert cli.main(["upscale", str(sr_run), str(tmp_path / "photo.png"), str(tmp_path / "x2.png"),
                         "--tile", "40"]) == 0
    messages = [r.message for r in caplog.records]
    assert any("in 6 tiles of 40 px (overlap 20 px" in m for m in messages)
    assert any("tile 6/6 (100%)" in m for m in messages)
    whole = np.asarray(pairs["sr"].upscaler(as_float(photo)[None]))[0]
    expected = np.round(np.clip(whole, 0, 1) * 255).astype(np.uint8)
    with Image.open(tmp_path / "x2.png") as img:
        got = np.asarray(img)
    assert got.shape == (152, 200, 3)
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1


def test_upscale_cli_errors_are_one_line(sr_run, tmp_path, capsys):
    Image.fromarray(skdata.coffee()[:40, :40]).save(tmp_path / "p.png")
    assert cli.main(["upscale", str(sr_run), str(tmp_path / "p.png"), str(tmp_path / "o.png"), "--tile", "4"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["ssimsr upscale: error: --tile 4: must be at least 16 pixels"]
    assert not (tmp_path / "o.png").exists() and not list(tmp_path.glob(".o.tmp*"))
    assert cli.main(["upscale", str(sr_run), str(tmp_path / "missing.png"), str(tmp_path / "o.png")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith("missing.png: no such file or folder")


@pytest.mark.slow
def test_2040x1356_photo_upscales_x2(sr_run, tmp_path):
    """The issue's case: a DIV2K-sized photo crashed TensorFlow; tiles fit in memory."""
    photo = np.asarray(Image.fromarray(skdata.astronaut()).resize((2040, 1356), Image.Resampling.BICUBIC))
    Image.fromarray(photo).save(tmp_path / "photo.png")
    env = dict(os.environ, PYTHONPATH=str(SRC))
    t0 = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "ssimsr.cli", "upscale", str(sr_run), str(tmp_path / "photo.png"),
                             str(tmp_path / "x2.png")], capture_output=True, text=True, env=env, timeout=1800)
    seconds = time.monotonic() - t0
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e6
    tiles = [line for line in result.stderr.splitlines() if "tiles of" in line]
    print(f"2040x1356 x2: {seconds:.0f} s, peak RSS {peak_gb:.1f} GB; {tiles[0] if tiles else 'one tile'}")
    assert result.returncode == 0, result.stderr[-2000:]
    with Image.open(tmp_path / "x2.png") as img:
        assert img.size == (4080, 2712)
