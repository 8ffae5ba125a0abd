"""Tiled upscaling: the overlap covers the receptive field, so tiles == whole image.

Models have the paper's shapes (SR: 64 filters, 8 residual blocks; IRN: 128 / 32) with
random weights: no training is needed to check that tiling does not change the result.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from conftest import save_run
from ssimsr import cli
from ssimsr.models import models
from ssimsr.evaluation.upscale import Footprint, apply, auto_tile, footprint, reconstruct_tiled, run_tiled

SRC = Path(models.__file__).resolve().parents[2]  # the ssimsr this session imports, for subprocesses


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
    """A run folder of the paper-sized SR pair (random weights)."""
    return save_run(pairs["sr"], tmp_path_factory.mktemp("sr_run"))


def test_upscale_cli_tiles_with_progress_and_matches_whole(sr_run, pairs, photo, tmp_path, caplog):
    Image.fromarray(photo).save(tmp_path / "photo.png")
    with caplog.at_level(logging.INFO, logger="ssimsr.evaluation.upscale"):
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


def _out_of_memory_errors():
    """What running out of memory raises: Python's MemoryError and each installed backend's own
    error (they share no base class), as their runtimes word them."""
    errors = [MemoryError()]
    try:
        import tensorflow as tf

        errors.append(tf.errors.ResourceExhaustedError(
            None, None, "OOM when allocating tensor with shape[1,64,1356,2040] and type float"))
    except ImportError:  # pragma: no cover
        pass
    try:
        import jax

        errors.append(jax.errors.JaxRuntimeError(
            "RESOURCE_EXHAUSTED: Out of memory while trying to allocate 11.35GiB."))
    except (ImportError, AttributeError):  # pragma: no cover
        pass
    try:
        import torch

        errors.append(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 11.35 GiB"))
    except (ImportError, AttributeError):  # pragma: no cover
        pass
    return errors


@pytest.mark.parametrize("error", _out_of_memory_errors(), ids=lambda e: type(e).__name__)
def test_out_of_memory_suggests_a_smaller_tile(tiny_sr_run, tmp_path, monkeypatch, capsys, error):
    """Running out of memory on a tile ends in one line that names --tile and a smaller value."""
    from ssimsr.evaluation import upscale

    real = upscale._networks

    def out_of_memory(*args, **kwargs):
        _, fp = real(*args, **kwargs)

        def network(x):
            raise error

        return network, fp

    monkeypatch.setattr(upscale, "_networks", out_of_memory)
    Image.fromarray(skdata.coffee()[:40, :56]).save(tmp_path / "p.png")
    # one tile (the whole 56x40 image), so that no progress line is logged before the error
    assert cli.main(["upscale", str(tiny_sr_run), str(tmp_path / "p.png"), str(tmp_path / "o.png"),
                     "--tile", "64"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"ssimsr upscale: error: {tmp_path / 'p.png'}: out of memory on a tile of 56x40 px; "
                   "rerun with a smaller --tile (now 64), e.g. --tile 32"], err
    assert not (tmp_path / "o.png").exists()


def test_a_full_disk_names_the_output_and_leaves_no_temporary_file(tiny_sr_run, tmp_path, monkeypatch, capsys):
    """"No space left on device" alone does not say where: the error names the output file."""
    import errno

    def full_disk(self, fp, *args, **kwargs):
        Path(fp).write_bytes(b"\x89PNG\r\n")  # the first bytes, then the disk is full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    Image.fromarray(skdata.coffee()[:24, :32]).save(tmp_path / "p.png")
    monkeypatch.setattr(Image.Image, "save", full_disk)
    out = tmp_path / "out" / "x2.png"
    assert cli.main(["upscale", str(tiny_sr_run), str(tmp_path / "p.png"), str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("ssimsr ")]  # not the log lines before it
    assert errors == [f"ssimsr upscale: error: [Errno {errno.ENOSPC}] {out}: No space left on device"], err
    assert list(out.parent.iterdir()) == []


def test_other_errors_of_the_network_are_not_reported_as_out_of_memory(pairs, photo):
    """Only out-of-memory errors are translated: a bug keeps its type and message."""
    fp = footprint(pairs["sr"].upscaler)

    def broken(x):
        raise ValueError("Input 0 of layer conv is incompatible with the layer")

    with pytest.raises(ValueError, match="incompatible"):
        run_tiled(broken, as_float(photo), fp, tile=32)


#: Run in a fresh process: the CLI upscaling one image with a given --tile, after a warm-up
#: (the runtime's own allocations). The kernel's peak-RSS mark is reset just before (writing
#: 5 to /proc/self/clear_refs, Linux >= 4.0), so the peak's growth over the RSS of that moment
#: is what upscaling this image took (ru_maxrss cannot be reset: importing TensorFlow peaks
#: higher than a tiled run, which would then show no growth at all).
PEAK_RSS_SCRIPT = """
import json, re, sys
from pathlib import Path
import numpy as np
from PIL import Image
from ssimsr import cli

def status(key):
    return int(re.search(key + r":\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1)) * 1024

run, src, dest, tile = sys.argv[1:5]
warm = Path(dest).with_name("warm.png")
Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(warm)
assert cli.main(["upscale", run, str(warm), str(warm.with_name("warm_x2.png")), "--tile", "16", "--overwrite"]) == 0
try:
    Path("/proc/self/clear_refs").write_text("5")
except OSError as exc:
    print(json.dumps({"unsupported": str(exc)}))
    sys.exit(0)
before = status("VmRSS")
code = cli.main(["upscale", run, src, dest, "--tile", tile])
print(json.dumps({"code": code, "growth": status("VmHWM") - before}))
"""


def _peak_growth(run: Path, src: Path, dest: Path, tile: int) -> int:
    """Bytes the peak RSS of an upscaling process grew by while ``ssimsr upscale`` processed ``src``."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    result = subprocess.run([sys.executable, "-c", PEAK_RSS_SCRIPT, str(run), str(src), str(dest), str(tile)],
                            capture_output=True, text=True, env=env, timeout=1800)
    assert result.returncode == 0, result.stderr[-2000:]
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    if "unsupported" in measured:
        pytest.skip(f"cannot reset the peak RSS here: {measured['unsupported']}")
    assert measured["code"] == 0, result.stderr[-2000:]
    return measured["growth"]


def _buffers(width: int, height: int, zoom: int = 2) -> int:
    """The whole-image arrays of one upscale (bytes): the decoded input (uint8) and its float32
    copy, the uint8 result and Pillow's copy of it for saving, and the encoded file (<= raw)."""
    pixels_in, pixels_out = width * height * 3, width * height * 3 * zoom ** 2
    return pixels_in + 4 * pixels_in + pixels_in + 2 * pixels_out


@pytest.mark.slow
def test_2040x1356_photo_upscales_x2_in_memory_bounded_by_the_tile(sr_run, pairs, tmp_path):
    """The issue's case: a DIV2K-sized photo crashed TensorFlow (the paper's SR at x2 needs
    ~29 GB of activations for it whole); with --tile 128 its peak memory stays within a bound
    set by the tile, and an untiled run of an image 14x smaller already exceeds that bound.

    The bound is measured, not taken from the library's own estimate: an untiled run of a
    512x384 crop gives the network's activation bytes per input pixel; the tiled run may use
    its whole-image buffers plus twice the activations of one tile with its margins (every
    tile has the same size, so its activations are freed and reused), plus 100 MB for the
    allocator's and oneDNN's caches of the few tile shapes."""
    photo = np.asarray(Image.fromarray(skdata.astronaut()).resize((2040, 1356), Image.Resampling.BICUBIC))
    Image.fromarray(photo).save(tmp_path / "photo.png")
    Image.fromarray(photo[:384, :512]).save(tmp_path / "crop.png")

    # negative control, and the per-pixel cost: the crop in one tile (no tiling)
    untiled = _peak_growth(sr_run, tmp_path / "crop.png", tmp_path / "crop_x2.png", tile=1024)
    per_pixel = (untiled - _buffers(512, 384)) / (512 * 384)
    margin = footprint(pairs["sr"].upscaler).margin
    tile = 128
    bound = _buffers(2040, 1356) + 2 * per_pixel * (tile + 2 * margin) ** 2 + 100e6
    assert untiled > bound, (untiled, bound)  # without tiling, a 14x smaller image needs more

    tiled = _peak_growth(sr_run, tmp_path / "photo.png", tmp_path / "x2.png", tile=tile)
    print(f"peak RSS growth: 512x384 untiled {untiled / 1e9:.2f} GB ({per_pixel / 1e3:.1f} kB/px); "
          f"2040x1356 in {tile}-px tiles {tiled / 1e9:.2f} GB, bound {bound / 1e9:.2f} GB "
          f"(whole image: {per_pixel * 2040 * 1356 / 1e9:.0f} GB)")
    assert tiled <= bound, (tiled, bound)
    with Image.open(tmp_path / "x2.png") as img:
        assert img.size == (4080, 2712)
