"""Evaluation of trained runs, showcase crops, collection, comparisons and weight fetching."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from conftest import BACKEND, FLOAT32_U, TINY_WIDTHS, ssim_float32_tolerance, to_numpy, write_photo_dataset
from ssimsr.evaluation import evaluate
from ssimsr import registry
from ssimsr.data import weights
from ssimsr.data.download import ChecksumMismatch
from ssimsr.analysis.stats import compare_studies
from ssimsr.pipeline.experiments import run_params
from ssimsr.pipeline.runs import Run
from ssimsr.training.train import train


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """results/{data,train,eval} with two tiny SR runs (lambda_s 0 and 1) on 4+3 real crops."""
    root = tmp_path_factory.mktemp("ws")
    data = write_photo_dataset(root / "results/data/tiny", n_train=4, n_val=3, top=50, left=60)
    runs = []
    for ls in (0.0, 1.0):
        run = root / f"results/train/s/corrected/sr/tiny/ls{ls:g}/b4c4-b5c4/seed0"
        params = run_params("sr", dataset="tiny", lambda_s=ls, crop=32, batch_size=2, lambda_p=0.0,
                            widths=TINY_WIDTHS["sr"], backend=BACKEND, perceptual_norm="raw",
                            run=Run.parse(run).as_dict())
        train(params, data, run)
        runs.append(run)
    return root, runs


def _y(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma on the 0-255 scale (16-235) of RGB in [0, 1], written out here:
    ``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` (MATLAB's and BasicSR's rgb2ycbcr), not rounded."""
    return 16.0 + 65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]


def _gaussian_ssim(a: np.ndarray, b: np.ndarray, data_range: float) -> float:
    """skimage's Gaussian SSIM (sigma 1.5, population covariance): its 5-px crop of the map keeps
    exactly the valid 11x11 windows, i.e. tf.image.ssim's definition, here in float64."""
    return structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 data_range=data_range, channel_axis=-1 if a.ndim == 3 else None)


def _mse_float32_rtol(n: int, sds: float = 6.0) -> float:
    """How far a float32 mean of ``n`` squared float32 differences may lie from the float64 one,
    relatively: each term carries ~3 roundings (difference, square, sum: 3u), and the sum's
    roundings add up like a random walk, SD sqrt(n) u of the sum in whatever order a backend's
    kernel adds (Higham & Mary 2019; blocked/pairwise reductions do better, log2(n) u). For a
    48x64 RGB image (n = 9216): 3.5e-5, 10^4 x below the differences between λ_s variants."""
    return 3 * FLOAT32_U + sds * np.sqrt(n) * FLOAT32_U


def _numpy_loss_values(downscaler, hr32: np.ndarray, rec32: np.ndarray) -> dict[str, float]:
    """The per-image loss terms as evaluate.py computed them in NumPy before they went through
    the registered terms (``bw_mse`` and ``fw_mse`` as float64 means of the float32 images and
    downscaled images; ``ssim_n`` from SSIM, here skimage's in float64): the reference."""
    lr_hr, lr_rec = (to_numpy(downscaler(x[None].astype(np.float32), training=False))[0].astype(np.float64)
                     for x in (hr32, rec32))
    hr, rec = hr32.astype(np.float64), rec32.astype(np.float64)
    return {"bw_mse": float(np.mean((hr - rec) ** 2)), "fw_mse": float(np.mean((lr_hr - lr_rec) ** 2)),
            "ssim_n": (1.0 - _gaussian_ssim(hr, rec, 1.0)) / 2.0}


def _assert_pixel_terms_match_numpy(values: dict, downscaler, hr32: np.ndarray, rec32: np.ndarray, label="") -> None:
    """``values``' bw_mse / fw_mse / ssim_n equal the NumPy reference within float32 rounding."""
    ref = _numpy_loss_values(downscaler, hr32, rec32)
    n_lr = to_numpy(downscaler(hr32[None], training=False)).size
    assert values["bw_mse"] == pytest.approx(ref["bw_mse"], rel=_mse_float32_rtol(hr32.size)), label
    assert values["fw_mse"] == pytest.approx(ref["fw_mse"], rel=_mse_float32_rtol(n_lr)), label
    tol = ssim_float32_tolerance(hr32.astype(np.float64), rec32.astype(np.float64)) / 2
    assert abs(values["ssim_n"] - ref["ssim_n"]) <= tol, (label, values["ssim_n"], ref["ssim_n"], tol)


def test_evaluate_run_matches_independent_references(workspace, capsys):
    """Every per-image metric of evaluate_run against references computed here: the run's saved
    networks applied to the whole image (evaluate tiles it), skimage's metrics in float64 with the
    conventions metrics.py documents, and metrics.csv read back."""
    import keras

    from ssimsr.models import models  # noqa: F401  registers the custom layers of the saved networks

    root, runs = workspace
    run = runs[1]
    val = sorted((root / "results/data/tiny/val").glob("*.png"))
    out = root / "results/eval" / run.relative_to(root / "results/train")
    frame = evaluate.evaluate_run(run, {"val": val}, out)
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.startswith(f"evaluate {run}: ")]
    assert lines[0].startswith(f"evaluate {run}: 1/3 images, ") and " eta " in lines[0]  # progress
    assert lines[-1].startswith(f"evaluate {run}: 3/3 images, ") and " done in " in lines[-1]
    assert list(frame.image) == [p.stem for p in val] and set(frame.set) == {"val"}
    # a column per registered loss term, under its registry name, after the image metrics
    assert list(frame.columns) == ["set", "image", "psnr", "ssim", "psnr_y", "ssim_y", "psnr_authors",
                                   "ssim_authors", "bw_mse", "fw_mse", "perceptual", "ssim_n"]
    assert frame.perceptual.isna().all()  # lambda_p = 0: trained without VGG19 features, not computed
    assert "perceptual: not computed (weight 0" in captured.out
    # like for like with training's last validation (same weights, same images, float32 sums)
    last = pd.read_csv(run / "history.csv").query("split == 'val'").iloc[-1]
    for column in ("bw_mse", "fw_mse", "ssim_n", "psnr", "ssim"):
        assert frame[column].mean() == pytest.approx(last[column], rel=1e-4, abs=1e-6), column

    # metrics.csv is the frame: same columns in order, one row per image, the same values
    written = pd.read_csv(out / "metrics.csv", dtype={"image": str})
    pd.testing.assert_frame_equal(written, frame, check_exact=True)
    assert not written.duplicated(["set", "image"]).any() and len(written) == len(val)

    downscaler = keras.saving.load_model(run / "downscaler.keras")
    upscaler = keras.saving.load_model(run / "upscaler.keras")
    for path, row in zip(val, frame.itertuples()):
        hr32 = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
        rec32 = to_numpy(upscaler(downscaler(hr32[None], training=False), training=False))[0]
        # the written reconstruction is this float output, clipped and rounded to 8 bits
        png = np.asarray(Image.open(out / "recon/val" / path.name))
        np.testing.assert_array_equal(png, np.round(np.clip(rec32, 0, 1) * 255).astype(np.uint8), err_msg=path.name)
        hr, rec = hr32.astype(np.float64), rec32.astype(np.float64)
        clipped = np.clip(rec, 0.0, 1.0)  # metrics.py: the output is clipped before every metric but *_authors
        y_hr, y_rec = (_y(img)[2:-2, 2:-2] for img in (hr, clipped))  # border = scale = 2
        lr_hr, lr_rec = (to_numpy(downscaler(img[None].astype(np.float32), training=False))[0].astype(np.float64)
                         for img in (hr32, rec32))
        # Tolerances. The reference reconstruction is the same float32 array evaluate scores (a
        # 48x64 image is one tile: the same network call), so the metrics computed in float64
        # here (PSNR, PSNR-Y, SSIM-Y, the authors' pair, the MSEs) agree with the library's
        # float64 ones to float64 rounding of sums over ~10^4 values: 1e-9 is 10^5 x that and
        # 10^7 x below the 0.05 dB the 8-bit PNG alone would move PSNR. SSIM (and SSIM_N) the
        # library computes in float32 (keras.ops.image.ssim): within the float32 bound derived
        # from these images (conftest.ssim_float32_tolerance, a few 1e-5).
        tol = ssim_float32_tolerance(hr, clipped)
        assert row.psnr == pytest.approx(peak_signal_noise_ratio(hr, clipped, data_range=1.0), abs=1e-9), path
        assert abs(row.ssim - _gaussian_ssim(hr, clipped, 1.0)) <= tol, (path, row.ssim, tol)
        assert row.psnr_y == pytest.approx(peak_signal_noise_ratio(y_hr, y_rec, data_range=255.0), abs=1e-9), path
        assert row.ssim_y == pytest.approx(_gaussian_ssim(y_hr, y_rec, 255.0), abs=1e-9), path
        # the authors' convention: the unclipped output, skimage's default SSIM (7x7 uniform window)
        assert row.psnr_authors == pytest.approx(peak_signal_noise_ratio(hr, rec, data_range=1.0), abs=1e-9), path
        assert row.ssim_authors == pytest.approx(structural_similarity(hr, rec, data_range=1.0, channel_axis=-1),
                                                 abs=1e-9), path
        # the loss terms: each computed by the registered term in float32 (evaluate.loss_values), so
        # within float32 rounding of the float64 means (_mse_float32_rtol), not 1e-9
        assert row.bw_mse == pytest.approx(np.mean((hr - rec) ** 2), rel=_mse_float32_rtol(hr.size)), path
        assert row.fw_mse == pytest.approx(np.mean((lr_hr - lr_rec) ** 2), rel=_mse_float32_rtol(lr_hr.size)), path
        assert abs(row.ssim_n - (1 - _gaussian_ssim(hr, rec, 1.0)) / 2) <= ssim_float32_tolerance(hr, rec) / 2, path


@pytest.fixture
def scratch_registry(monkeypatch):
    """Loss terms registered in a test vanish after it."""
    registry.discover()
    monkeypatch.setattr(registry.LOSS_TERMS, "_entries", dict(registry.LOSS_TERMS._entries))


def _photo_pair(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A 48x64 crop of a real photo and a noisy "reconstruction" that leaves [0, 1] (unclipped)."""
    from skimage import data as skdata

    hr = skdata.astronaut()[100:148, 150:214].astype(np.float32) / 255.0
    rec = hr + np.random.default_rng(seed).normal(0.0, 0.05, hr.shape).astype(np.float32)
    return hr, rec


@pytest.mark.parametrize("model", ["sr", "irn"])
def test_loss_values_are_the_registered_terms_and_equal_the_numpy_formulas(model, vgg_weights, scratch_registry):
    """evaluate.loss_values computes every registered term by the term itself (a term registered
    here gets its value too, last); bw_mse / fw_mse / ssim_n equal the NumPy formulas evaluate
    used before (float64) within float32 rounding, for a fixed (SR: decimation) and a learned
    (IRN) downscaler; perceptual is NaN without the VGG19 extractor (never from random weights)
    and, with one, the relative / raw feature distances written out here in NumPy."""
    import keras
    from keras.applications.vgg19 import preprocess_input

    from ssimsr.models import losses, models

    @registry.register_loss_term("tv", weight="lambda_tv", label="TV")
    def total_variation(batch):
        from keras import ops

        rec = batch.rec
        return ops.mean(ops.abs(rec[:, 1:] - rec[:, :-1])) + ops.mean(ops.abs(rec[:, :, 1:] - rec[:, :, :-1]))

    keras.utils.set_random_seed(0)
    downscaler = models.build_pair(model, 2, **TINY_WIDTHS[model]).downscaler
    hr, rec = _photo_pair()
    values = evaluate.loss_values(downscaler, hr, rec)
    assert list(values) == [*registry.loss_terms()] == ["bw_mse", "fw_mse", "perceptual", "ssim_n", "tv"]
    assert np.isnan(values["perceptual"])
    _assert_pixel_terms_match_numpy(values, downscaler, hr, rec, model)
    r = rec.astype(np.float64)
    tv = np.mean(np.abs(r[1:] - r[:-1])) + np.mean(np.abs(r[:, 1:] - r[:, :-1]))
    assert values["tv"] == pytest.approx(tv, rel=_mse_float32_rtol(r.size))
    assert evaluate.loss_values(downscaler, hr, hr)["bw_mse"] == 0.0

    layers = ["block1_conv2", "block3_conv2"]
    extractor = losses.build_feature_extractor(losses.load_vgg19(vgg_weights[0]), layers)
    caffe = preprocess_input(np.stack([hr, rec]) * 255.0)  # BGR, ImageNet mean subtracted
    features = [to_numpy(f).astype(np.float64) for f in extractor(caffe)]
    relative = np.mean([np.mean(np.abs(f[0] - f[1])) / max(np.mean(np.abs(f[0])), losses.RELATIVE_EPS)
                        for f in features])
    raw = sum(np.mean((f[0] - f[1]) ** 2) for f in features)
    for norm, expected in (("relative", relative), ("raw", raw)):
        with_vgg = evaluate.loss_values(downscaler, hr, rec, extractor, perceptual_norm=norm)
        assert with_vgg["perceptual"] == pytest.approx(expected, rel=1e-4), norm
        assert {k: v for k, v in with_vgg.items() if k != "perceptual"} == pytest.approx(
            {k: v for k, v in values.items() if k != "perceptual"}, rel=1e-6)
    with pytest.raises(ValueError, match="perceptual_norm: unknown value None"):
        evaluate.loss_values(downscaler, hr, rec, extractor)


def test_evaluate_run_computes_perceptual_only_with_the_run_s_vgg19_weights(workspace, vgg_weights, tmp_path):
    """A run that trained with the perceptual term (lambda_p > 0) gets its per-image values from the
    VGG19 file its params.json names, with its layers and norm; where that file is missing they
    are empty, with a warning naming it (never computed from random weights)."""
    import shutil

    from ssimsr.models import losses

    root, runs = workspace
    val = sorted((root / "results/data/tiny/val").glob("*.png"))[:1]
    run = tmp_path / "run"
    shutil.copytree(runs[1], run)
    params = json.loads((run / "params.json").read_text())
    params["loss_weights"]["lambda_p"] = 0.5
    params.update(vgg_weights=str(vgg_weights[0]), vgg_layers=["block2_conv2"], perceptual_norm="relative",
                  jit_compile=False)
    (run / "params.json").write_text(json.dumps(params))
    frame = evaluate.evaluate_run(run, {"val": val}, tmp_path / "eval")
    import keras

    from ssimsr.models import models  # noqa: F401  registers the custom layers of the saved networks

    hr = np.asarray(Image.open(val[0]).convert("RGB"), dtype=np.float32) / 255.0
    pair = [keras.saving.load_model(run / f"{n}.keras") for n in ("downscaler", "upscaler")]
    rec = to_numpy(pair[1](pair[0](hr[None], training=False), training=False))  # one tile: what evaluate scored
    extractor = losses.build_feature_extractor(losses.load_vgg19(vgg_weights[0]), ["block2_conv2"])
    expected = float(losses.perceptual(hr[None], rec, extractor, norm="relative"))
    assert expected > 0 and frame.perceptual.iloc[0] == pytest.approx(expected, rel=1e-5)

    params["vgg_weights"] = str(tmp_path / "gone.h5")
    (run / "params.json").write_text(json.dumps(params))
    with pytest.warns(UserWarning, match=r"perceptual: unavailable, the run's VGG19 weights file .*gone\.h5"):
        frame = evaluate.evaluate_run(run, {"val": val}, tmp_path / "eval2")
    assert frame.perceptual.isna().all() and frame.bw_mse.notna().all()


def test_collect_and_compare_studies(workspace):
    root, runs = workspace
    val = sorted((root / "results/data/tiny/val").glob("*.png"))
    eval_dirs = []
    for run in runs:
        out = root / "results/eval" / run.relative_to(root / "results/train")
        evaluate.evaluate_run(run, {"val": val}, out)
        eval_dirs.append(out)
    per_image, history = evaluate.collect(runs, eval_dirs, root / "results/data")
    assert len(per_image) == 2 * len(val)
    assert set(per_image.lambda_s) == {0.0, 1.0} and (per_image.study == "s").all()
    assert set(history.dataset_size) == {4} and set(history.epochs) == {1}
    # the loss-share table needs each run's lambdas; epoch 0 is one val row per run
    assert set(history.lambda_p) == {0.0} and set(history.lambda_b) == {1.0} and set(history.perceptual_norm) == {"raw"}
    assert list(history[history.epoch == 0].split) == ["val", "val"]
    table = compare_studies(per_image)
    assert list(table.comparison.unique()) == ["ls1_vs_ls0"]
    psnr = table.set_index("metric").loc["psnr"]
    a = per_image[per_image.lambda_s == 1.0].sort_values("image").psnr.to_numpy()
    b = per_image[per_image.lambda_s == 0.0].sort_values("image").psnr.to_numpy()
    assert psnr.mean_diff == pytest.approx((a - b).mean())
    assert psnr.n == len(val)


def test_showcase_crops(workspace, tmp_path):
    root, _ = workspace
    entries = [{"name": "first", "dataset": "tiny", "split": "val", "index": 0}]
    written = evaluate.prepare_showcase(entries, root / "results/data", 40, 2, tmp_path / "show")
    assert Image.open(written[0]).size == (40, 40)
    with pytest.raises(ValueError, match="index 9 but tiny/val has 3 images"):
        evaluate.prepare_showcase([{"name": "x", "dataset": "tiny", "index": 9}], root / "results/data", 40, 2, tmp_path / "x")
    crop = evaluate.showcase_crop(np.zeros((321, 481, 3), np.uint8), 400, 2)
    assert crop.shape == (320, 320, 3)


def test_lpips_backbones_from_local_dir_and_bad_hash(tmp_path):
    import torch
    import torchvision

    local = tmp_path / "local"
    local.mkdir()
    state = torchvision.models.alexnet(weights=None).state_dict()
    torch.save(state, local / "alexnet-owt-7be5be79.pth")
    status = weights.fetch_lpips_backbones(tmp_path / "w", ["alex", "squeeze"], tmp_path / "s.json",
                                           base_url=None, local_dir=str(local))
    # a file we wrote cannot have torchvision's sha256: it is refused, not used
    assert status["alex"].startswith("unavailable") and "7be5be79" in status["alex"]
    assert "squeezenet1_1-b8a52dc0.pth" in status["squeeze"]
    assert json.loads((tmp_path / "s.json").read_text()) == status
    assert not (tmp_path / "w/torch/hub/checkpoints/alexnet-owt-7be5be79.pth").exists()


def test_weight_file_md5_is_checked(tmp_path):
    src = tmp_path / "vgg.h5"
    src.write_bytes(b"weights")
    md5 = hashlib.md5(b"weights").hexdigest()
    assert weights.fetch_weight_file(str(src), tmp_path / "out/vgg.h5", md5, "md5") == md5
    with pytest.raises(ChecksumMismatch, match=f"expected md5 {'0' * 32}, actual md5 {md5}"):
        weights.fetch_weight_file(str(src), tmp_path / "out/other.h5", "0" * 32, "md5")
    assert not (tmp_path / "out/other.h5").exists()


# ----------------------------------------------------------------- image origin (issue 15)

def test_per_image_rows_get_the_origin_of_their_source_member(tmp_path):
    import pandas as pd

    root = tmp_path / "data"
    for name, sources in (("bsds", ["u.tgz:BSDS300/images/test/0001.jpg", "u.tgz:BSDS300/images/train/0002.jpg"]),
                          ("set5", ["../shared/data/Set5:img_001.png"])):
        (root / name).mkdir(parents=True)
        stems = [s.rsplit("/", 1)[-1].rsplit(":", 1)[-1].split(".")[0] for s in sources]
        pd.DataFrame({"stem": stems, "status": "ok", "source": sources}).to_csv(root / name / "manifest.csv",
                                                                               index=False)
    metrics = pd.DataFrame({"set": ["val", "val", "set5", "showcase"], "image": ["0001", "0002", "img_001", "fig"],
                            "psnr": [30.0, 31.0, 32.0, 33.0]})
    out = evaluate.with_origin(metrics, "bsds", root)
    assert list(out.columns) == ["set", "image", "origin", "psnr"]
    assert list(out.origin) == ["BSDS300/images/test", "BSDS300/images/train", ".", ""]
    with pytest.raises(ValueError, match=r"bsds/manifest.csv: no row for the images \['0003'\] of set 'val'"):
        evaluate.with_origin(metrics.assign(image=["0001", "0003", "img_001", "fig"]), "bsds", root)
    with pytest.warns(UserWarning, match="nothing/manifest.csv: not found"):
        assert list(evaluate.with_origin(metrics[:2], "nothing", root).origin) == ["", ""]
