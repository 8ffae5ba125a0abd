"""The model-free bicubic baseline (ssimsr.evaluation.baseline): Keys interpolation of the decimated HR."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from skimage import data as skdata

from ssimsr.evaluation import baseline
from ssimsr.evaluation.baseline import baseline_for_dataset, baseline_metrics, bicubic_baseline, bicubic_upscale


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
    from ssimsr.evaluation.metrics import image_metrics

    u8 = np.round(photo * 255).astype(np.uint8)
    paths = [_write(tmp_path, "b.png", u8), _write(tmp_path, "a.png", u8[::-1].copy())]
    frame = baseline_metrics(paths, 2, image_set="set5")
    assert list(frame[["set", "image"]].itertuples(index=False, name=None)) == [("set5", "b"), ("set5", "a")]
    hr = u8.astype(np.float32) / 255
    expected = image_metrics(hr, bicubic_baseline(hr, 2), 2)
    assert list(frame.columns) == ["set", "image", *expected, "psnr_y_matlab", "ssim_y_matlab", "grey", "scale"]
    for key, value in expected.items():
        assert frame.loc[0, key] == pytest.approx(value)
    assert 20 < frame.loc[0, "psnr"] < 60
    # the MATLAB protocol's columns: imresize.matlab_bicubic scored by psnr_y / ssim_y
    from ssimsr.data.imresize import matlab_bicubic
    from ssimsr.evaluation.metrics import psnr_y, ssim_y

    sr = matlab_bicubic(u8, 2)[1].astype(np.float32) / 255
    assert frame.loc[0, "psnr_y_matlab"] == pytest.approx(psnr_y(hr, sr, 2))
    assert frame.loc[0, "ssim_y_matlab"] == pytest.approx(ssim_y(hr, sr, 2))
    assert not frame.grey.any() and (frame.scale == 2).all()


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

    from ssimsr.pipeline import jobs

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


def test_a_split_per_seed_gets_a_baseline_per_seed_that_the_tables_average(tmp_path, photo):
    """split.per_seed: rule baseline_seed scores each seed's val images (a `seed` column);
    collect_baseline joins them with a shared-split dataset; Table 1's bicubic row and the
    by-origin table average over the seeds' splits."""
    from types import SimpleNamespace

    from ssimsr.pipeline import jobs
    from ssimsr.tables.baseline import baseline_values
    from ssimsr.tables.benchmarks import by_origin_table

    u8 = np.round(photo * 255).astype(np.uint8)
    folders = {"bsds_seed0": ["a", "b"], "bsds_seed1": ["b", "c"], "set5": ["s"]}
    for folder, stems in folders.items():
        for stem in stems:  # a different image per stem
            _write(tmp_path / folder / "val", f"{stem}.png", np.roll(u8, 7 * (ord(stem) - 97), axis=1))
        pd.DataFrame({"stem": stems, "status": "ok", "source": [f"x.tar:BSDS/{s}.png" for s in stems]}).to_csv(
            tmp_path / folder / "manifest.csv", index=False)

    def smk(rule, input, output, **params):
        return SimpleNamespace(rule=rule, input=input, output=output, log=[str(tmp_path / f"{rule}.log")],
                               params=SimpleNamespace(**params), resources=SimpleNamespace())

    outs = []
    for seed in (0, 1):
        outs.append(str(tmp_path / f"bsds_seed{seed}.csv"))
        jobs.run(smk("baseline_seed", [], [outs[-1]], data=str(tmp_path / f"bsds_seed{seed}"), scale=2, seed=seed))
    outs.append(str(tmp_path / "set5.csv"))
    jobs.run(smk("baseline", [], [outs[-1]], data=str(tmp_path / "set5"), scale=2, image_set="set5"))
    jobs.run(smk("collect_baseline", outs, [str(tmp_path / "baseline.csv")], datasets=["bsds", "bsds", "set5"]))
    combined = pd.read_csv(tmp_path / "baseline.csv", dtype={"image": str})
    assert list(combined.columns[:5]) == ["dataset", "seed", "set", "image", "origin"]
    assert list(zip(combined.dataset, combined.seed.fillna(-1), combined.image)) == [
        ("bsds", 0, "a"), ("bsds", 0, "b"), ("bsds", 1, "b"), ("bsds", 1, "c"), ("set5", -1, "s")]
    per_seed = combined[combined.dataset == "bsds"].groupby("seed").psnr.mean()
    values = baseline_values(combined, ["bsds"]).iloc[0]
    assert values.psnr_end == pytest.approx(per_seed.mean())  # the mean over the seeds' splits
    data = by_origin_table(pd.DataFrame(columns=["set"]), combined, study=None).data
    assert data[data.origin == "all"].psnr.iloc[0] == pytest.approx(per_seed.mean())


def test_evaluate_cli_adds_each_benchmark_as_an_image_set(tmp_path, photo):
    from ssimsr import cli
    from ssimsr.data.data import image_sets

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


# ============================================================================ MATLAB imresize and
# the SR literature's bicubic protocol (ssimsr.data.imresize), grey images (issue 23, deliverable 8)

def _matlab_weights_loop(n_in: int, n_out: int, scale: float, antialias: bool = True) -> np.ndarray:
    """A dense (n_out, n_in) matrix of MATLAB's resize weights, one output sample and one
    tap at a time: the cubic written out, the mirror written as a case split."""
    def cubic(x):
        x = abs(x)
        if x <= 1:
            return 1.5 * x ** 3 - 2.5 * x ** 2 + 1
        if x <= 2:
            return -0.5 * x ** 3 + 2.5 * x ** 2 - 4 * x + 2
        return 0.0

    widen = scale < 1 and antialias
    half = 2.0 / scale if widen else 2.0
    matrix = np.zeros((n_out, n_in))
    for x in range(1, n_out + 1):  # 1-based, as MATLAB
        u = x / scale + 0.5 * (1 - 1 / scale)  # pixel centres aligned
        taps = []
        for j in range(math.floor(u - half) - 1, math.ceil(u + half) + 2):
            w = scale * cubic(scale * (u - j)) if widen else cubic(u - j)
            # symmetric padding: ... x2 x1 | x1 x2 ... xn | xn xn-1 ...
            k = j
            while not 1 <= k <= n_in:
                k = 1 - k if k < 1 else 2 * n_in + 1 - k
            taps.append((k - 1, w))
        total = sum(w for _, w in taps)
        for k, w in taps:
            matrix[x - 1, k] += w / total
    return matrix


def _resize_loop(image: np.ndarray, n_out: tuple[int, int], antialias: bool = True) -> np.ndarray:
    """Rows then columns with the dense loop matrices (float64, no rounding)."""
    h, w = image.shape[:2]
    rows = _matlab_weights_loop(h, n_out[0], n_out[0] / h, antialias)
    cols = _matlab_weights_loop(w, n_out[1], n_out[1] / w, antialias)
    return np.einsum("ai,ij...->aj...", rows, np.einsum("bj,ij...->ib...", cols, image.astype(np.float64)))


def test_matlab_cubic_is_the_keys_kernel():
    from ssimsr.data.imresize import cubic

    x = np.linspace(-2.6, 2.6, 521)
    np.testing.assert_allclose(cubic(x), baseline.keys_kernel(x), rtol=0, atol=1e-14)  # two float forms


def test_x2_downscale_weights_by_hand():
    """MATLAB's antialiased x1/2 filter: (1/2) cubic(d/2) at the distances d = ±0.5, ±1.5,
    ±2.5, ±3.5 input pixels, i.e. cubic(±0.25, ±0.75, ±1.25, ±1.75) / 2, already summing to 1."""
    from ssimsr.data.imresize import contributions

    by_hand = np.array([-0.0234375, -0.0703125, 0.2265625, 0.8671875,
                        0.8671875, 0.2265625, -0.0703125, -0.0234375]) / 2
    assert by_hand.sum() == 1.0
    index, weights = contributions(20, 10, 0.5)
    assert weights.shape == index.shape
    for out in range(10):  # output k (0-based) sits between inputs 2k and 2k + 1
        dense = np.zeros(20)
        np.add.at(dense, index[out], weights[out])
        expected = np.zeros(20)
        np.add.at(expected, [min(max(j, -1 - j), 39 - j) for j in range(2 * out - 3, 2 * out + 5)], by_hand)
        np.testing.assert_allclose(dense, expected, rtol=0, atol=1e-15, err_msg=str(out))
    # x2 upscale: cubic at ±0.25, ±0.75 ... (the 4 taps of a quarter-pixel phase)
    index, weights = contributions(10, 20, 2.0)
    dense = np.zeros(10)
    np.add.at(dense, index[9], weights[9])  # output 9 (0-based) sits at input 4.25
    np.testing.assert_allclose(dense[3:7], [-0.0703125, 0.8671875, 0.2265625, -0.0234375], rtol=0, atol=1e-15)


@pytest.mark.parametrize("shape, n_out, antialias", [
    ((24, 30), (12, 15), True),  # x1/2, antialiased
    ((27, 21), (9, 7), True),  # x1/3
    ((20, 16), (15, 12), True),  # x3/4, not an integer ratio
    ((20, 16), (15, 12), False),  # the same without antialiasing
    ((9, 11), (18, 22), True),  # x2 up: antialiasing does nothing
    ((7, 5), (21, 15), True),  # x3 up
    ((5, 4), (2, 2), True),  # shorter than the kernel: the mirror wraps more than once
])
def test_imresize_equals_a_direct_loop(photo, shape, n_out, antialias):
    from ssimsr.data.imresize import imresize

    image = photo[:shape[0], :shape[1]]
    expected = _resize_loop(image, n_out, antialias)
    got = imresize(image, output_shape=n_out, antialias=antialias)
    assert got.dtype == np.float64 and got.shape == (*n_out, 3)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(imresize(image[..., 1], output_shape=n_out, antialias=antialias), expected[..., 1],
                               rtol=0, atol=1e-12)  # a single-channel image


def test_imresize_uint8_rounds_each_pass_as_matlab(photo):
    from ssimsr.data.imresize import imresize

    u8 = np.round(photo * 255).astype(np.uint8)
    h, w = u8.shape[:2]

    def to_u8(values):  # MATLAB: saturate, round half away from zero
        return np.floor(np.clip(values, 0, 255) + 0.5).astype(np.uint8)

    rows = to_u8(np.einsum("ai,ij...->aj...", _matlab_weights_loop(h, h // 2, 0.5), u8.astype(np.float64)))
    expected = to_u8(np.einsum("bj,ij...->ib...", _matlab_weights_loop(w, w // 2, 0.5), rows.astype(np.float64)))
    got = imresize(u8, 0.5)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, expected)
    # not just the float result rounded once: the intermediate image is uint8 too
    assert (got != to_u8(_resize_loop(u8, (h // 2, w // 2)))).any()
    assert imresize(u8, scale=0.3).shape == (20, 24, 3)  # ceil(scale * n), MATLAB's output size


def test_integer_upscale_is_the_keys_bicubic_on_a_shifted_grid(photo):
    """MATLAB's x2 output i sits at LR coordinate i / 2 - 1/4 (0-based), where the project's
    bicubic_upscale x4 puts its output 2i - 1: the same kernel must give the same values away
    from the borders (MATLAB mirrors, bicubic_upscale clamps)."""
    from ssimsr.data.imresize import imresize

    lr = photo[:16, :20]
    ours = imresize(lr, 2, antialias=False)
    keys = bicubic_upscale(lr, 4)
    inner = np.arange(4, 2 * 16 - 4)
    inner_w = np.arange(4, 2 * 20 - 4)
    np.testing.assert_allclose(ours[np.ix_(inner, inner_w)], keys[np.ix_(2 * inner - 1, 2 * inner_w - 1)],
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(imresize(lr, 2), ours, rtol=0, atol=0)  # antialias acts only when shrinking


def test_matlab_bicubic_protocol(photo):
    from ssimsr.data.imresize import imresize, matlab_bicubic, modcrop

    u8 = np.round(photo * 255).astype(np.uint8)[:63, :79]  # odd sizes: cropped to 62x78 first
    hr, sr = matlab_bicubic(u8, 2)
    assert hr.shape == sr.shape == (62, 78, 3) and sr.dtype == np.uint8
    np.testing.assert_array_equal(hr, modcrop(u8, 2))
    np.testing.assert_array_equal(sr, imresize(imresize(hr, output_shape=(31, 39)), output_shape=(62, 78)))
    # a grey image stays grey (each channel resized alike)
    grey = np.repeat(u8[..., :1], 3, axis=2)
    sr_grey = matlab_bicubic(grey, 2)[1]
    assert (sr_grey == sr_grey[..., :1]).all()


@pytest.mark.parametrize("call, message", [
    (lambda f: f.imresize(np.zeros((4, 4), np.int16), 0.5), "uint8 or float"),
    (lambda f: f.imresize(np.zeros(4), 0.5), "HxW or HxWxC"),
    (lambda f: f.imresize(np.zeros((0, 4)), 0.5), "empty"),
    (lambda f: f.imresize(np.full((4, 4), np.nan), 0.5), "non-finite"),
    (lambda f: f.imresize(np.zeros((4, 4)), 0.5, output_shape=(2, 2)), "exactly one"),
    (lambda f: f.imresize(np.zeros((4, 4))), "exactly one"),
    (lambda f: f.imresize(np.zeros((4, 4)), -1.0), "positive number"),
    (lambda f: f.imresize(np.zeros((4, 4)), True), "positive number"),
    (lambda f: f.imresize(np.zeros((4, 4)), output_shape=(0, 2)), "two positive sizes"),
    (lambda f: f.matlab_bicubic(np.zeros((4, 4, 3)), 2), "uint8 image"),
    (lambda f: f.matlab_bicubic(np.zeros((4, 4, 3), np.uint8), 0), "positive integer"),
    (lambda f: f.matlab_bicubic(np.zeros((1, 4, 3), np.uint8), 2), "smaller than scale"),
])
def test_imresize_bad_input_is_refused(call, message):
    from ssimsr.data import imresize

    with pytest.raises(ValueError, match=message):
        call(imresize)


def test_grey_images_from_the_file_or_the_manifest(tmp_path, photo):
    from ssimsr.evaluation.metrics import grey_images

    u8 = np.round(photo * 255).astype(np.uint8)
    raw = [_write(tmp_path / "raw", "grey.png", u8[..., 0]), _write(tmp_path / "raw", "rgb.png", u8),
           _write(tmp_path / "raw", "equal.png", np.repeat(u8[..., :1], 3, axis=2))]
    assert grey_images(raw) == [True, False, False]  # equal channels in an RGB file are not a grey file
    prepared = [_write(tmp_path / "set14" / "val", f"{n}.png", np.repeat(u8[..., :1], 3, axis=2)) for n in "ab"]
    pd.DataFrame({"stem": ["a", "b"], "status": ["ok", "ok"],
                  "conversions": ["gray->RGB", ""]}).to_csv(tmp_path / "set14" / "manifest.csv", index=False)
    assert grey_images(prepared) == [True, False]  # the manifest decides for prepared images
    assert grey_images([tmp_path / "raw" / "missing.png"]) == [False]


def test_baseline_scores_grey_sources_on_their_grey_values(tmp_path, photo):
    from ssimsr.evaluation.metrics import psnr_y

    grey = np.round(photo[..., 1] * 255).astype(np.uint8)
    frame = baseline_metrics([_write(tmp_path, "grey.png", grey)], 2, "set14")
    assert frame.grey.tolist() == [True]
    hr = np.repeat(grey[..., None], 3, axis=2).astype(np.float32) / 255
    rec = bicubic_baseline(hr, 2)
    y1, y2 = grey[2:-2, 2:-2].astype(np.float64), np.clip(rec[2:-2, 2:-2, 0], 0, 1) * 255
    # (the HR is read as float32 / 255, as evaluation reads it: equal to the 8-bit grey values to ~1e-7)
    assert frame.psnr_y[0] == pytest.approx(10 * np.log10(255 ** 2 / np.mean((y1 - y2) ** 2)), abs=1e-6)
    # the range-squeezed Y of the same images: 20 log10(255 / 219) = 1.32 dB higher
    assert psnr_y(hr, rec, 2) - frame.psnr_y[0] == pytest.approx(20 * np.log10(255 / 219), abs=1e-9)


#: The x2 bicubic figures the SR literature publishes (MATLAB protocol, Y, border 2; SRCNN,
#: VDSR, EDSR, RCAN; BasicSR): Set5 / Set14 PSNR and SSIM.
PUBLISHED_X2 = {"Set5": (33.66, 0.9299), "Set14": (30.24, 0.8688)}


@pytest.mark.parametrize("name", ["Set5", "Set14"])
def test_matlab_protocol_reproduces_the_published_bicubic_figures(name):
    """Acceptance (issue 23): the x2 bicubic row under MATLAB's protocol within 0.05 dB (SSIM
    within 0.002) of the published figures, grey files (Set14's bridge) scored on their grey
    values. Measured: Set5 33.673 / 0.9303, Set14 30.227 / 0.8690."""
    import os

    from conftest import SHARED
    from ssimsr.evaluation.metrics import grey_images
    from ssimsr.data.imresize import matlab_bicubic
    from ssimsr.evaluation.metrics import psnr_y, ssim_y

    paths = sorted((SHARED / "data" / name).glob("*.png"))
    if not paths:
        if os.environ.get("SSIMSR_REQUIRE_SHARED") == "1":
            pytest.fail(f"SSIMSR_REQUIRE_SHARED=1 but {SHARED / 'data' / name} has no PNG")
        pytest.skip(f"{SHARED / 'data' / name}: not here (../shared)")
    psnrs, ssims, squeezed, equal_as_grey = [], [], [], []
    for path, grey in zip(paths, grey_images(paths)):
        with Image.open(path) as img:
            hr8, sr8 = matlab_bicubic(np.asarray(img.convert("RGB")), 2)
        hr, sr = hr8.astype(np.float32) / 255, sr8.astype(np.float32) / 255
        psnrs.append(psnr_y(hr, sr, 2, grey=grey))
        ssims.append(ssim_y(hr, sr, 2, grey=grey))
        squeezed.append(psnr_y(hr, sr, 2))
        equal_as_grey.append(psnr_y(hr, sr, 2, grey=bool((hr8 == hr8[..., :1]).all())))
    psnr, ssim = float(np.mean(psnrs)), float(np.mean(ssims))
    assert abs(psnr - PUBLISHED_X2[name][0]) <= 0.05, psnr
    assert abs(ssim - PUBLISHED_X2[name][1]) <= 0.002, ssim
    if name == "Set14":  # one grey file (bridge) and one RGB file of equal channels (man)
        assert sum(grey_images(paths)) == 1
        # scoring bridge on the squeezed Y, or man on its grey values, would miss the figure
        assert np.mean(squeezed) - PUBLISHED_X2[name][0] > 0.05
        assert PUBLISHED_X2[name][0] - np.mean(equal_as_grey) > 0.05


def test_benchmarks_table_names_the_lr_protocol_and_adds_the_matlab_row():
    from ssimsr.tables.benchmarks import BICUBIC_MATLAB, benchmarks_table

    images = ("img_001", "img_002")
    baseline = pd.DataFrame([dict(dataset="set14", set="set14", image=img, origin=".", psnr_y=29.9 + k,
                                  ssim_y=0.87, psnr_y_matlab=30.0 + k, ssim_y_matlab=0.99, grey=k == 0, scale=2)
                             for k, img in enumerate(images)])
    per_image = pd.DataFrame([dict(study="table1", preset="as_run", model=model, dataset="bsds300", lambda_s=0.0,
                                   seed=0, set="set14", image=img, psnr_y=31.0, ssim_y=0.9)
                              for model in ("sr", "irn") for img in images])
    table = benchmarks_table(per_image, baseline, ["set14"], study="table1")
    data = table.data.set_index("method")
    assert list(table.data.method) == ["bicubic", BICUBIC_MATLAB, "irn", "sr"]
    assert data.at["bicubic", "lr_protocol"] == data.at["sr", "lr_protocol"] == "decimation x[::2, ::2] (the paper's)"
    assert data.at[BICUBIC_MATLAB, "lr_protocol"].startswith("MATLAB imresize(HR, 1/2) bicubic, antialiased")
    assert data.at["irn", "lr_protocol"] == "the model's own downscaler"
    assert data.at[BICUBIC_MATLAB, "psnr_y_mean"] == pytest.approx(30.5)
    assert data.at["bicubic", "psnr_y_mean"] == pytest.approx(30.4)
    md = table.to_markdown()
    assert "LR protocol" in md and "decimation x[::2, ::2] (the paper's)" in md and "grey values" in md
    assert "**0.9900" not in md  # the MATLAB row is another degradation: never bold
    assert "published x2 bicubic 30.24 / 0.8688 (difference +0.26 dB" in " ".join(table.notes)
    # a baseline.csv from before the MATLAB columns: the decimation row alone, and a note
    old = baseline.drop(columns=["psnr_y_matlab", "ssim_y_matlab", "scale", "grey"])
    table = benchmarks_table(per_image, old, ["set14"], study="table1")
    assert BICUBIC_MATLAB not in set(table.data.method)
    assert "rerun the baseline rule" in " ".join(table.notes)
    assert table.data.lr_protocol.iloc[0] == "decimation x[::s, ::s] (the paper's)"
