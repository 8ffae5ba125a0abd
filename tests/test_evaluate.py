"""Evaluation of trained runs, showcase crops, collection, comparisons and weight fetching."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from skimage import data as skdata
from skimage.metrics import peak_signal_noise_ratio

from conftest import BACKEND
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
    data = root / "results/data/tiny"
    photos = [skdata.astronaut(), skdata.coffee(), skdata.rocket(), skdata.chelsea(),
              skdata.immunohistochemistry(), skdata.hubble_deep_field(), skdata.retina()]
    for i, img in enumerate(photos):
        split = "val" if i >= 4 else "train"
        (data / split).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img[50:98, 60:124]).save(data / split / f"img{i}.png")
    runs = []
    for ls in (0.0, 1.0):
        run = root / f"results/train/s/corrected/sr/tiny/ls{ls:g}/b4c4-b5c4/seed0"
        params = run_params("sr", dataset="tiny", lambda_s=ls, crop=32, batch_size=2, lambda_p=0.0,
                            widths={"filters": 8, "res_blocks": 1}, backend=BACKEND, perceptual_norm="raw",
                            run=Run.parse(run).as_dict())
        train(params, data, run)
        runs.append(run)
    return root, runs


def test_evaluate_run_matches_independent_psnr(workspace, capsys):
    root, runs = workspace
    val = sorted((root / "results/data/tiny/val").glob("*.png"))
    out = root / "results/eval" / runs[1].relative_to(root / "results/train")
    frame = evaluate.evaluate_run(runs[1], {"val": val}, out)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith(f"evaluate {runs[1]}: ")]
    assert lines[0].startswith(f"evaluate {runs[1]}: 1/3 images, ") and " eta " in lines[0]  # progress
    assert lines[-1].startswith(f"evaluate {runs[1]}: 3/3 images, ") and " done in " in lines[-1]
    assert list(frame.image) == [p.stem for p in val]
    assert set(frame.columns) == {"set", "image", "psnr", "ssim", "psnr_y", "ssim_y", "psnr_authors", "ssim_authors",
                                  "bw_mse", "fw_mse", "ssim_n"}
    # like for like with training's last validation (same weights, same images, float32 sums)
    last = pd.read_csv(runs[1] / "history.csv").query("split == 'val'").iloc[-1]
    for column in ("bw_mse", "fw_mse", "ssim_n", "psnr", "ssim"):
        assert frame[column].mean() == pytest.approx(last[column], rel=1e-4, abs=1e-6), column
    # the authors' PSNR is that of the unclipped output, i.e. of bw_mse
    np.testing.assert_allclose(frame.psnr_authors, -10 * np.log10(frame.bw_mse), atol=1e-9)
    hr = np.asarray(Image.open(val[0]), dtype=np.float64) / 255
    rec8 = np.asarray(Image.open(out / "recon/val" / val[0].name), dtype=np.float64) / 255
    # metrics use the float output; the 8-bit PNG differs by quantisation only
    assert frame.psnr.iloc[0] == pytest.approx(peak_signal_noise_ratio(hr, rec8, data_range=1), abs=0.05)
    assert (out / "metrics.csv").exists()


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
