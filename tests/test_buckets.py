"""Shape buckets leave the numbers unchanged: a padded batch through masked layers and
masked loss terms gives the terms of the unpadded image, and the same training step."""

import numpy as np
import pytest
from skimage import data as skdata

from conftest import BACKEND, to_numpy
from ssimsr.training import buckets
from ssimsr.models import losses
from ssimsr.pipeline.experiments import run_params
from ssimsr.training.train import Trainer

TINY = {"sr": {"filters": 8, "res_blocks": 2}, "irn": {"down_filters": 8, "up_filters": 4}}


def photo(height=48, width=64):
    return (skdata.astronaut()[60:60 + height, 120:120 + width].astype(np.float32) / 255.0)[None]


def test_choose_bucket_keeps_few_shapes_unpadded():
    assert buckets.choose_bucket([(496, 320), (320, 496)]) == 0  # BSDS300: two shapes, no padding
    shapes = [(16 * i, 16 * j) for i in range(8, 30, 3) for j in range(8, 30, 4)]  # General100-like
    size = buckets.choose_bucket(shapes)
    assert size in buckets.BUCKET_SIZES
    assert len({buckets.bucket_shape(h, w, size) for h, w in shapes}) <= buckets.MAX_SHAPES


def test_pad_batch_and_region_mean():
    batch = np.ones((1, 48, 64, 3), np.float32)
    padded, valid = buckets.pad_batch(batch, 64)
    assert padded.shape == (1, 64, 64, 3) and list(valid) == [48, 64]
    assert padded[:, 48:].sum() == 0
    region = buckets.Region(valid, (64, 64))
    noise = np.random.default_rng(0).random((1, 64, 64, 3), dtype=np.float32)
    assert float(region.mean(noise)) == pytest.approx(noise[:, :48].mean(), rel=1e-6)
    half = np.random.default_rng(1).random((1, 32, 32, 4), dtype=np.float32)  # a 1/2-resolution map
    assert float(region.mean(half)) == pytest.approx(half[:, :24].mean(), rel=1e-6)


def test_masked_ssim_equals_keras_ssim_of_the_image():
    hr = photo()
    rec = np.clip(hr + np.random.default_rng(2).normal(0, 0.05, hr.shape), 0, 1).astype(np.float32)
    hr_p, valid = buckets.pad_batch(hr, 64)
    rec_p, _ = buckets.pad_batch(rec, 64)
    region = buckets.Region(valid, (64, 64))
    expected = float(losses.ssim(hr, rec))  # keras.ops.image.ssim, unpadded
    assert float(losses.ssim(hr_p, rec_p, region)) == pytest.approx(expected, abs=1e-6)
    assert float(losses.bw_mse(hr_p, rec_p, region)) == pytest.approx(float(losses.bw_mse(hr, rec)), rel=1e-6)


@pytest.mark.parametrize("model, lambda_p", [("sr", 0.0), ("irn", 0.0), ("irn", 1.0)])
def test_bucketed_terms_and_step_equal_the_unpadded_ones(model, lambda_p, vgg_weights):
    params = dict(model=model, lambda_p=lambda_p, widths=TINY[model],
                  vgg_weights=str(vgg_weights[0]), perceptual_norm="relative", backend=BACKEND)
    whole, padded = Trainer(run_params(**params)), Trainer(run_params(**params))
    hr = photo()
    hr_p, valid = buckets.pad_batch(hr, 64)
    a = whole.steps.fetch([whole.steps.evaluate(hr)])[0]
    b = padded.steps.fetch([padded.steps.evaluate(hr_p, valid)])[0]
    for key in a:
        assert b[key] == pytest.approx(a[key], rel=2e-5, abs=1e-6), key
    # one training step: same loss, same updated weights
    ta = whole.steps.fetch([whole.steps.train(hr)])[0]
    tb = padded.steps.fetch([padded.steps.train(hr_p, valid)])[0]
    assert tb["total"] == pytest.approx(ta["total"], rel=2e-5)
    whole.steps.sync()
    padded.steps.sync()
    for wa, wb in zip(whole.pair.upscaler.weights + whole.pair.downscaler.weights,
                      padded.pair.upscaler.weights + padded.pair.downscaler.weights):
        np.testing.assert_allclose(to_numpy(wb), to_numpy(wa), rtol=1e-4, atol=1e-6)


def test_sizes_that_padding_would_change_are_refused():
    with pytest.raises(ValueError, match="not a multiple of 16"):
        buckets.check_divisible([(48, 40)], 16, "a split")


def test_bad_shape_bucket_value():
    with pytest.raises(ValueError, match="shape_bucket"):
        run_params("sr", shape_bucket=-3)


def test_auto_buckets_bound_the_compilations(tmp_path):
    """General100-like split (12 sizes): shape_bucket auto compiles at most MAX_SHAPES train
    steps under JAX; without buckets one per size. (TensorFlow traces once: no buckets.)"""
    import json

    from PIL import Image

    from ssimsr.training.train import train

    if BACKEND != "jax":
        pytest.skip("compilation per shape is JAX's; run with KERAS_BACKEND=jax (.ci/run does)")
    image = skdata.astronaut()
    for split, sizes in (("train", [(32 + 16 * (i % 4), 48 + 16 * (i // 4)) for i in range(12)]),
                         ("val", [(48, 48)])):
        (tmp_path / "data" / split).mkdir(parents=True)
        for i, (h, w) in enumerate(sizes):
            Image.fromarray(image[i * 10:i * 10 + h, 100:100 + w]).save(tmp_path / "data" / split / f"{i}.png")
    compiles = {}
    for bucket in ("auto", 0):
        params = run_params("sr", lambda_p=0.0, widths=TINY["sr"], backend=BACKEND, shape_bucket=bucket,
                            log_every=100)
        out = tmp_path / f"run_{bucket}"
        train(params, tmp_path / "data", out)
        timing = json.loads((out / "timing.json").read_text())
        compiles[bucket] = sum(c["step"].startswith("train") for c in timing["compile_detail"])
    assert compiles[0] == 12
    assert compiles["auto"] <= buckets.MAX_SHAPES
