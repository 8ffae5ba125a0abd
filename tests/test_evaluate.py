"""Evaluation of trained runs, showcase crops, collection, comparisons and weight fetching."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from conftest import BACKEND, TINY_WIDTHS, ssim_float32_tolerance, to_numpy, write_photo_dataset
from ssimsr import evaluate, weights
from ssimsr.download import ChecksumMismatch
from ssimsr.stats import compare_studies
from ssimsr.experiments import run_params
from ssimsr.runs import Run
from ssimsr.train import train


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


def test_evaluate_run_matches_independent_references(workspace, capsys):
    """Every per-image metric of evaluate_run against references computed here: the run's saved
    networks applied to the whole image (evaluate tiles it), skimage's metrics in float64 with the
    conventions metrics.py documents, and metrics.csv read back."""
    import keras

    from ssimsr import models  # noqa: F401  registers the custom layers of the saved networks

    root, runs = workspace
    run = runs[1]
    val = sorted((root / "results/data/tiny/val").glob("*.png"))
    out = root / "results/eval" / run.relative_to(root / "results/train")
    frame = evaluate.evaluate_run(run, {"val": val}, out)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith(f"evaluate {run}: ")]
    assert lines[0].startswith(f"evaluate {run}: 1/3 images, ") and " eta " in lines[0]  # progress
    assert lines[-1].startswith(f"evaluate {run}: 3/3 images, ") and " done in " in lines[-1]
    assert list(frame.image) == [p.stem for p in val] and set(frame.set) == {"val"}
    assert list(frame.columns) == ["set", "image", "psnr", "ssim", "psnr_y", "ssim_y", "psnr_authors",
                                   "ssim_authors", "bw_mse", "fw_mse", "ssim_n"]
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
        assert row.bw_mse == pytest.approx(np.mean((hr - rec) ** 2), rel=1e-9), path
        assert row.fw_mse == pytest.approx(np.mean((lr_hr - lr_rec) ** 2), rel=1e-9), path
        assert abs(row.ssim_n - (1 - _gaussian_ssim(hr, rec, 1.0)) / 2) <= ssim_float32_tolerance(hr, rec) / 2, path


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
