"""The model-free bicubic baseline (ssimsr.baseline): Keys interpolation of the decimated HR."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from skimage import data as skdata

from ssimsr import baseline
from ssimsr.baseline import baseline_for_dataset, baseline_metrics, bicubic_baseline, bicubic_upscale


def keys_1d_loop(signal: np.ndarray, scale: int, a: float = -0.5) -> np.ndarray:
    """An independent, deliberately plain 1-D Keys interpolation: one output sample at a time."""
    def w(x):
        x = abs(x)
        if x <= 1:
            return (a + 2) * x ** 3 - (a + 3) * x ** 2 + 1
        if x < 2:
            return a * x ** 3 - 5 * a * x ** 2 + 8 * a * x - 4 * a
        return 0.0

    n = len(signal)
    out = []
    for hr_x in range(n * scale):
        t = hr_x / scale  # LR pixel i sits on HR pixel scale * i
        total = 0.0
        for k in range(math.floor(t) - 1, math.floor(t) + 3):
            total += signal[min(max(k, 0), n - 1)] * w(t - k)
        out.append(total)
    return np.array(out)


@pytest.fixture(scope="module")
def photo():
    return skdata.astronaut()[100:164, 120:200].astype(np.float64) / 255.0  # 64x80 RGB


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_decimated_pixels_are_reproduced_exactly(photo, scale):
    h, w = (photo.shape[0] // scale) * scale, (photo.shape[1] // scale) * scale
    hr = photo[:h, :w]
    rec = bicubic_baseline(hr, scale)
    assert rec.shape == hr.shape and rec.dtype == np.float64
    np.testing.assert_allclose(rec[::scale, ::scale], hr[::scale, ::scale], rtol=0, atol=1e-12)
    assert not np.allclose(rec, hr)  # the pixels between them are interpolated


@pytest.mark.parametrize("scale", [2, 3])
def test_a_quadratic_ramp_is_reproduced_away_from_the_borders(scale):
    y, x = np.mgrid[0:48, 0:48].astype(np.float64)
    hr = 0.3 + 0.01 * x + 0.02 * y + 0.0004 * x * x - 0.0003 * y * y + 0.0002 * x * y
    rec = bicubic_upscale(hr[::scale, ::scale], scale)
    inner = (slice(2 * scale, -2 * scale), slice(2 * scale, -2 * scale))  # two LR taps from the clamped edge
    np.testing.assert_allclose(rec[inner], hr[inner], rtol=0, atol=1e-12)
    # degree 4 is not reproduced (at x2 the midpoints coincide with cubic Lagrange interpolation,
    # exact up to degree 3): the check above is not vacuous
    quartic = hr + 1e-6 * x ** 4
    assert np.abs(bicubic_upscale(quartic[::scale, ::scale], scale)[inner] - quartic[inner]).max() > 1e-6


@pytest.mark.parametrize("scale", [2, 4])
def test_equals_an_independent_1d_kernel_loop(photo, scale):
    lr = photo[::scale, ::scale]
    # separable: rows with the loop, then columns with the loop
    rows = np.stack([keys_1d_loop(lr[:, j, c], scale) for j in range(lr.shape[1]) for c in range(3)], axis=1)
    rows = rows.reshape(lr.shape[0] * scale, lr.shape[1], 3)
    expected = np.stack([keys_1d_loop(rows[i, :, c], scale) for i in range(rows.shape[0]) for c in range(3)])
    expected = expected.reshape(rows.shape[0], 3, lr.shape[1] * scale).transpose(0, 2, 1)
    np.testing.assert_allclose(bicubic_upscale(lr, scale), expected, rtol=0, atol=1e-12)
    # a grayscale (HxW) image gives the first channel's result
    np.testing.assert_allclose(bicubic_upscale(lr[..., 0], scale), expected[..., 0], rtol=0, atol=1e-12)


def test_constant_image_stays_constant_at_the_edges():
    rec = bicubic_upscale(np.full((3, 5, 3), 0.25), 2)
    np.testing.assert_allclose(rec, 0.25, rtol=0, atol=1e-15)  # the kernel's weights sum to 1


@pytest.mark.parametrize("lr, scale, message", [
    (np.zeros((4, 4, 3), np.uint8), 2, "float array, got dtype uint8"),
    (np.zeros((4,)), 2, "HxW or HxWxC array, got shape"),
    (np.zeros((4, 4, 3)), 0, "positive integer, got 0"),
    (np.zeros((4, 4, 3)), 2.0, "positive integer, got 2.0"),
    (np.full((4, 4), np.nan), 2, "non-finite"),
    (np.zeros((0, 4)), 2, "empty"),
])
def test_bad_input_is_refused(lr, scale, message):
    with pytest.raises(ValueError, match=message):
        bicubic_upscale(lr, scale)


def _write(folder, name, array):
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(folder / name)
    return folder / name


def test_baseline_metrics_per_image(tmp_path, photo):
    from ssimsr.metrics import image_metrics

    u8 = np.round(photo * 255).astype(np.uint8)
    paths = [_write(tmp_path, "b.png", u8), _write(tmp_path, "a.png", u8[::-1].copy())]
    frame = baseline_metrics(paths, 2, image_set="set5")
    assert list(frame[["set", "image"]].itertuples(index=False, name=None)) == [("set5", "b"), ("set5", "a")]
    hr = u8.astype(np.float32) / 255
    expected = image_metrics(hr, bicubic_baseline(hr, 2), 2)
    assert list(frame.columns) == ["set", "image", *expected]
    for key, value in expected.items():
        assert frame.loc[0, key] == pytest.approx(value)
    assert 20 < frame.loc[0, "psnr"] < 60


def test_baseline_bad_files_are_named(tmp_path, photo):
    odd = _write(tmp_path, "odd.png", np.zeros((33, 40, 3), np.uint8))
    with pytest.raises(ValueError, match="odd.png: size 40x33 is not a multiple of scale 2"):
        baseline_metrics([odd], 2)
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(ValueError, match="text.png: cannot read image"):
        baseline_metrics([tmp_path / "text.png"], 2)
    with pytest.raises(ValueError, match="missing.png: cannot read image"):
        baseline_metrics([tmp_path / "missing.png"], 2)
    with pytest.raises(ValueError, match="no images given"):
        baseline_metrics([], 2)


def test_baseline_for_a_prepared_dataset_carries_the_origin(tmp_path, photo):
    u8 = np.round(photo * 255).astype(np.uint8)
    data_dir = tmp_path / "bsds"
    _write(data_dir / "val", "101.png", u8)
    _write(data_dir / "val", "202.png", u8[:, ::-1].copy())
    pd.DataFrame({"stem": ["101", "202", "303"], "status": ["ok", "ok", "ok"],
                  "source": ["/a/BSDS300-images.tgz:BSDS300/images/test/101.jpg",
                             "/a/BSDS300-images.tgz:BSDS300/images/train/202.jpg",
                             "/a/BSDS300-images.tgz:BSDS300/images/train/303.jpg"]}).to_csv(
        data_dir / "manifest.csv", index=False)
    frame = baseline_for_dataset(data_dir, 2)
    assert list(frame.columns[:3]) == ["set", "image", "origin"]
    assert dict(zip(frame.image, frame.origin)) == {"101": "BSDS300/images/test", "202": "BSDS300/images/train"}
    (data_dir / "manifest.csv").write_text("stem,status,source\n")
    with pytest.raises(ValueError, match=r"manifest.csv: no row for the images \['101', '202'\]"):
        baseline_for_dataset(data_dir, 2)


def test_keys_kernel_values():
    k = baseline.keys_kernel(np.array([0.0, 0.5, 1.0, 1.5, 2.0, 2.5]))
    np.testing.assert_allclose(k, [1.0, 0.5625, 0.0, -0.0625, 0.0, 0.0], atol=1e-15)


def test_baseline_jobs_write_per_dataset_and_combined_tables(tmp_path, photo):
    from types import SimpleNamespace

    from ssimsr import jobs

    u8 = np.round(photo * 255).astype(np.uint8)
    for name in ("bsds", "set5"):
        _write(tmp_path / name / "val", "img.png", u8)
        pd.DataFrame({"stem": ["img"], "status": ["ok"], "source": [f"x.tar:{name}/HR/img.png"]}).to_csv(
            tmp_path / name / "manifest.csv", index=False)

    def smk(rule, input, output, **params):
        return SimpleNamespace(rule=rule, input=input, output=output, log=[str(tmp_path / f"{rule}.log")],
                               params=SimpleNamespace(**params), resources=SimpleNamespace())

    outs = []
    for name, image_set in (("bsds", "val"), ("set5", "set5")):
        outs.append(str(tmp_path / f"{name}.csv"))
        jobs.run(smk("baseline", [str(tmp_path / name / "manifest.csv")], [outs[-1]], data=str(tmp_path / name),
                     scale=2, image_set=image_set))
    jobs.run(smk("collect_baseline", outs, [str(tmp_path / "baseline.csv")], datasets=["bsds", "set5"]))
    combined = pd.read_csv(tmp_path / "baseline.csv")
    assert list(combined.columns[:4]) == ["dataset", "set", "image", "origin"]
    assert list(zip(combined.dataset, combined.set, combined.origin)) == [("bsds", "val", "bsds/HR"),
                                                                          ("set5", "set5", "set5/HR")]
    assert "bicubic baseline of" in (tmp_path / "baseline.log").read_text()
    with pytest.raises(SystemExit):  # a missing input: one line naming it
        jobs.run(smk("collect_baseline", [str(tmp_path / "nope.csv")], [str(tmp_path / "b2.csv")], datasets=["x"]))
    line = (tmp_path / "collect_baseline.log").read_text().strip()
    assert line.startswith("ssimsr collect_baseline: error: ") and "nope.csv: baseline table not found" in line


def test_evaluate_cli_adds_each_benchmark_as_an_image_set(tmp_path, photo):
    from ssimsr import cli
    from ssimsr.data import image_sets

    u8 = np.round(photo * 255).astype(np.uint8)
    for name in ("bsds", "set5", "set14"):
        _write(tmp_path / name / "val", "a.png", u8)
        (tmp_path / name / "train").mkdir()
    sets = image_sets(str(tmp_path / "bsds"), None, [str(tmp_path / "set5"), str(tmp_path / "set14")])
    assert list(sets) == ["val", "set5", "set14"] and sets["set5"] == [tmp_path / "set5" / "val" / "a.png"]
    parsed = cli.build_parser().parse_args(["evaluate", "--run", "r", "--data", "d", "--out", "o",
                                            "--benchmarks", "results/data/set5", "results/data/set14"])
    assert parsed.benchmarks == ["results/data/set5", "results/data/set14"]
    (tmp_path / "val" / "val").mkdir(parents=True)
    with pytest.raises(ValueError, match="cannot be named 'val'"):
        image_sets(str(tmp_path / "bsds"), None, [str(tmp_path / "val")])
