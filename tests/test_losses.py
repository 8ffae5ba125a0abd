import dataclasses
import os
from dataclasses import MISSING

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from conftest import BACKEND, random_images, to_numpy  # noqa: E402
from skimage import data  # noqa: E402
from skimage.filters import gaussian  # noqa: E402
from skimage.metrics import structural_similarity  # noqa: E402

from ssimsr.models import losses  # noqa: E402
from ssimsr.models.archs import irn, sr  # noqa: E402
from ssimsr.models.losses import loss_weights  # noqa: E402

# Keras' own convert_to_numpy (get_weights) triggers a NumPy 2 copy-keyword warning.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

RNG = np.random.default_rng(1)
IMAGENET_BGR_MEAN = np.array([103.939, 116.779, 123.68], np.float32)


def astronaut_pairs():
    """Three (hr, rec) crops of skimage's astronaut: noisy, blurred, shifted."""
    image = data.astronaut().astype(np.float32) / 255.0
    hr = np.stack([image[100:164, 150:214], image[300:364, 50:114], image[200:264, 300:364]])
    noisy = np.clip(hr[0] + RNG.normal(0, 0.05, hr[0].shape), 0, 1)
    blurred = gaussian(hr[1], sigma=1.2, channel_axis=-1)
    shifted = image[203:267, 302:366]
    return hr, np.stack([noisy, blurred, shifted]).astype(np.float32)


def skimage_ssim(a, b):
    return structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
        data_range=1.0, channel_axis=-1,
    )


# ---------------------------------------------------------------- SSIM


def test_ssim_matches_skimage():
    """keras.ops.image.ssim (valid windows) vs skimage's Gaussian SSIM cropped to the same
    windows: skimage pads and averages over the whole image, so crop its map by 5 px."""
    hr, rec = astronaut_pairs()
    for a, b in zip(hr, rec):
        _, full = structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                        data_range=1.0, channel_axis=-1, full=True)
        expected = full[5:-5, 5:-5].mean()  # the centres of the 11x11 windows inside the image
        assert abs(float(losses.ssim(a[None], b[None])) - expected) < 1e-4
        assert abs(float(losses.ssim(a[None], b[None])) - skimage_ssim(a, b)) < 1e-2


def test_ssim_equals_tf_image_ssim():
    """The training SSIM, on any backend, is tf.image.ssim's definition.

    Both compute in float32, so each is compared with the same formula in float64 (skimage,
    valid 11x11 Gaussian filtering) within a float32 error bound, never with the other's
    rounding (which one lands closer depends on the CPU's kernels: AVX2 vs AVX-512). The
    bound: SSIM's variances are E[x^2] - E[x]^2 of 121-tap sums, a cancellation that loses
    up to mu^2 / sigma^2 (~100 in smooth regions of these photos) of float32's 6e-8 relative
    precision per window, i.e. ~1e-5 per window, averaging down over the image; 1e-4 leaves
    room for every kernel order and is still 100x below the smallest ΔSSIM the study reads
    (0.01 between λ_s variants). tf.image.ssim itself is within 2e-4 of the float64 value."""
    tf = pytest.importorskip("tensorflow")
    hr, rec = astronaut_pairs()
    expected = tf.image.ssim(tf.constant(hr), tf.constant(rec), max_val=1.0).numpy()
    exact = [structural_similarity(a.astype(np.float64), b.astype(np.float64), gaussian_weights=True, sigma=1.5,
                                   use_sample_covariance=False, data_range=1.0, channel_axis=-1,
                                   full=True)[1][5:-5, 5:-5].mean() for a, b in zip(hr, rec)]
    for i in range(len(hr)):
        ours = float(losses.ssim(hr[i:i + 1], rec[i:i + 1]))
        assert abs(ours - float(expected[i])) < 2e-4
        assert abs(ours - exact[i]) < 1e-4
        assert abs(float(expected[i]) - exact[i]) < 2e-4


def test_ssim_n_range_and_relation():
    hr, rec = astronaut_pairs()
    assert abs(float(losses.ssim_n(hr, hr))) < 1e-6
    for other in (rec, 1.0 - hr, random_images(3, 64, 64), np.zeros_like(hr)):
        value = float(losses.ssim_n(hr, other))
        assert 0.0 <= value <= 1.0
        np.testing.assert_allclose(2 * value, 1 - float(losses.ssim(hr, other)), atol=1e-6)
    assert float(losses.ssim_n(hr, 1.0 - hr)) > 0.5  # anti-correlated: SSIM < 0


# ---------------------------------------------------------------- MSE terms


def test_bw_mse_matches_numpy():
    hr, rec = random_images(2), random_images(2)
    np.testing.assert_allclose(float(losses.bw_mse(hr, rec)), np.mean((hr - rec) ** 2), rtol=1e-5)
    assert float(losses.bw_mse(hr, hr)) == 0.0


def test_fw_mse_sr_decimation():
    downscaler = sr.build_downscaler(2)
    hr, rec = random_images(2), random_images(2)
    expected = np.mean((hr[:, ::2, ::2] - rec[:, ::2, ::2]) ** 2)
    np.testing.assert_allclose(float(losses.fw_mse(hr, rec, downscaler)), expected, rtol=1e-5)
    assert float(losses.fw_mse(hr, rec, downscaler)) > 0
    assert float(losses.fw_mse(hr, hr, downscaler)) == 0.0
    # Documented: decimation only sees the decimated grid.
    off_grid = hr.copy()
    off_grid[:, 1::2, :, :] = 0.0
    assert float(losses.fw_mse(hr, off_grid, downscaler)) == 0.0


def test_fw_mse_irn_learned_downscaler():
    downscaler = irn.build_downscaler(2)
    hr, rec = random_images(2), random_images(2)
    lr_hr, lr_rec = to_numpy(downscaler(hr)), to_numpy(downscaler(rec))
    value = float(losses.fw_mse(hr, rec, downscaler))
    assert value > 0
    np.testing.assert_allclose(value, np.mean((lr_hr - lr_rec) ** 2), rtol=1e-4)
    np.testing.assert_allclose(float(losses.fw_mse(hr, rec, downscaler, lr=lr_hr)), value, rtol=1e-5)
    assert float(losses.fw_mse(hr, hr, downscaler)) == 0.0


# ---------------------------------------------------------------- VGG19


# `vgg_weights` (a legacy-h5 VGG19 file of random weights) is in conftest.py.


@pytest.fixture(scope="session")
def vgg(vgg_weights):
    return losses.load_vgg19(vgg_weights[0])


@pytest.fixture(scope="session")
def extractor(vgg):
    return losses.build_feature_extractor(vgg)


def test_load_vgg19_reads_the_written_weights(vgg_weights, vgg):
    written = vgg_weights[1]
    loaded = vgg.get_weights()
    assert len(loaded) == len(written) == 32
    for a, b in zip(loaded, written):
        np.testing.assert_array_equal(a, b)
    fresh = keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
    assert not np.array_equal(fresh.get_weights()[0], written[0])
    assert vgg.trainable_weights == []


@pytest.mark.parametrize("path", [None, "/nonexistent/vgg19_notop.h5"])
def test_load_vgg19_missing_weights(path):
    with pytest.raises(FileNotFoundError, match="fetch_vgg19") as info:
        losses.load_vgg19(path)
    assert losses.VGG19_NOTOP_MD5 in str(info.value)
    assert "losses.vgg_weights" in str(info.value)


def test_feature_extractor_is_frozen_list_of_layers(extractor):
    assert extractor.trainable_weights == []
    outputs = extractor(np.zeros((1, 32, 32, 3), np.float32))
    assert isinstance(outputs, (list, tuple)) and len(outputs) == 2
    assert outputs[0].shape[-1] == 512 and outputs[1].shape[-1] == 512
    single = losses.build_feature_extractor(extractor, layers=("block1_conv1",))
    assert float(losses.perceptual(random_images(1, 32, 32), random_images(1, 32, 32), single, norm="raw")) > 0


@pytest.mark.parametrize("norm", losses.PERCEPTUAL_NORMS)
def test_perceptual_zero_for_identical_positive_otherwise(extractor, norm):
    hr = random_images(2, 32, 32)
    rec = np.clip(hr + RNG.normal(0, 0.1, hr.shape), 0, 1).astype(np.float32)
    assert float(losses.perceptual(hr, hr, extractor, norm=norm)) == 0.0
    assert float(losses.perceptual(hr, rec, extractor, norm=norm)) > 0.0
    assert float(losses.perceptual(hr, rec, extractor, resize_to=48, norm=norm)) > 0.0


def test_perceptual_norm_default_is_the_schema_s_alone():
    """The library takes the norm as an argument: its default (``relative``) is written in
    the config schema only, and its names in run_params (the Keras-free run parameters)."""
    import inspect

    import yaml

    from ssimsr.training import run_params
    from ssimsr.config import SCHEMA_PATH, defaults

    assert losses.PERCEPTUAL_NORMS is run_params.PERCEPTUAL_NORMS
    assert losses.check_perceptual_norm is run_params.check_perceptual_norm  # one list, one check
    for function, name in ((losses.perceptual, "norm"), (losses.loss_terms, "perceptual_norm")):
        assert inspect.signature(function).parameters[name].default is inspect.Parameter.empty, function
    assert "perceptual_norm" not in {f.name for f in dataclasses.fields(losses.LossBatch) if f.default is not MISSING}
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    assert schema["$defs"]["perceptual_norm"]["enum"] == list(losses.PERCEPTUAL_NORMS)  # JSON Schema's copy
    for where in (schema["properties"]["losses"], schema["$defs"]["preset"]):  # both refer to it
        assert where["properties"]["perceptual_norm"]["$ref"] == "#/$defs/perceptual_norm"
    assert SCHEMA_PATH.read_text().count(str(list(losses.PERCEPTUAL_NORMS)).replace("'", "")) == 1
    assert defaults("losses")["perceptual_norm"] == "relative"


def test_perceptual_matches_manual_caffe_preprocessing(extractor):
    hr, rec = random_images(1, 32, 32), random_images(1, 32, 32)

    def features(images):  # RGB [0,1] -> BGR [0,255] minus ImageNet mean
        bgr = images[..., ::-1] * 255.0 - IMAGENET_BGR_MEAN
        return [to_numpy(f) for f in extractor(bgr.astype(np.float32))]

    expected = sum(np.mean((a - b) ** 2) for a, b in zip(features(hr), features(rec)))
    np.testing.assert_allclose(float(losses.perceptual(hr, rec, extractor, norm="raw")), expected, rtol=1e-4)


def _caffe_features(extractor, images):
    """The extractor's layers of RGB [0,1] images after the Caffe preprocessing, in NumPy."""
    bgr = images[..., ::-1] * 255.0 - IMAGENET_BGR_MEAN
    return [to_numpy(f).astype(np.float64) for f in extractor(bgr.astype(np.float32))]


def test_perceptual_relative_matches_numpy(extractor):
    """norm="relative": per layer mean|a - b| / mean|a| (a: the target's features), averaged
    over the layers, computed independently in float64 NumPy."""
    hr, rec = astronaut_pairs()
    a, b = _caffe_features(extractor, hr), _caffe_features(extractor, rec)
    expected = np.mean([np.mean(np.abs(x - y)) / np.mean(np.abs(x)) for x, y in zip(a, b)])
    value = float(losses.perceptual(hr, rec, extractor, norm="relative"))
    np.testing.assert_allclose(value, expected, rtol=1e-4)
    assert float(losses.perceptual(hr, hr, extractor, norm="relative")) == 0.0
    # the reconstruction's features in place of the target's: not symmetric (the target scales)
    swapped = np.mean([np.mean(np.abs(x - y)) / np.mean(np.abs(y)) for x, y in zip(a, b)])
    np.testing.assert_allclose(float(losses.perceptual(rec, hr, extractor, norm="relative")), swapped, rtol=1e-4)


def test_perceptual_relative_is_invariant_to_feature_scale(extractor):
    """Scaling a layer's features by c multiplies its raw MSE by c^2 and leaves the relative
    term unchanged: the property that makes lambda_p = 1 mean the same for any layers."""
    hr, rec = astronaut_pairs()
    raw_layers = [np.mean((x - y) ** 2) for x, y in zip(_caffe_features(extractor, hr),
                                                         _caffe_features(extractor, rec))]
    scales = (10.0, 1000.0)
    scaled = keras.Model(extractor.input, [keras.layers.Rescaling(c)(out)
                                           for c, out in zip(scales, extractor.outputs)])
    np.testing.assert_allclose(float(losses.perceptual(hr, rec, scaled, norm="raw")),
                               sum(c * c * m for c, m in zip(scales, raw_layers)), rtol=1e-4)
    np.testing.assert_allclose(float(losses.perceptual(hr, rec, scaled, norm="relative")),
                               float(losses.perceptual(hr, rec, extractor, norm="relative")), rtol=1e-5)


def test_perceptual_relative_magnitude_random_init_weights(extractor):
    """Magnitudes with these *random-init* test weights (not ImageNet): the relative term is
    O(0.1-1) for the astronaut pairs, while raw is the scale of the features."""
    hr, rec = astronaut_pairs()
    relative = float(losses.perceptual(hr, rec, extractor, norm="relative"))
    assert 0.0 < relative < 2.0
    a = _caffe_features(extractor, hr)
    raw = float(losses.perceptual(hr, rec, extractor, norm="raw"))
    np.testing.assert_allclose(raw, sum(np.mean((x - y) ** 2) for x, y in zip(a, _caffe_features(extractor, rec))),
                               rtol=1e-4)


def test_unknown_perceptual_norm_names_the_key(extractor):
    hr = random_images(1, 32, 32)
    with pytest.raises(ValueError, match=r"perceptual_norm: unknown value 'basicsr' \(one of relative, raw\)"):
        losses.perceptual(hr, hr, extractor, norm="basicsr")
    with pytest.raises(ValueError, match="perceptual_norm: unknown value 'l2'"):
        losses.loss_terms(hr, hr, sr.build_downscaler(2), loss_weights(), extractor, perceptual_norm="l2")


# ---------------------------------------------------------------- composite


def test_loss_terms_weighted_sum(extractor):
    downscaler = sr.build_downscaler(2)
    hr, rec = random_images(1, 32, 32), random_images(1, 32, 32)
    weights = loss_weights(lambda_b=0.5, lambda_f=2.0, lambda_p=3.0, lambda_s=1.5)
    terms = {k: float(v) for k, v in losses.loss_terms(hr, rec, downscaler, weights, extractor,
                                                       perceptual_norm="raw").items()}
    assert set(terms) == {"total", "bw_mse", "fw_mse", "perceptual", "ssim_n"}
    np.testing.assert_allclose(terms["bw_mse"], float(losses.bw_mse(hr, rec)), rtol=1e-6)
    np.testing.assert_allclose(terms["fw_mse"], float(losses.fw_mse(hr, rec, downscaler)), rtol=1e-6)
    np.testing.assert_allclose(terms["perceptual"], float(losses.perceptual(hr, rec, extractor, norm="raw")),
                               rtol=1e-5)
    np.testing.assert_allclose(terms["ssim_n"], float(losses.ssim_n(hr, rec)), rtol=1e-6)
    expected = (0.5 * terms["bw_mse"] + 2.0 * terms["fw_mse"]
                + 3.0 * terms["perceptual"] + 1.5 * terms["ssim_n"])
    np.testing.assert_allclose(terms["total"], expected, rtol=1e-5)
    relative = {k: float(v) for k, v in losses.loss_terms(hr, rec, downscaler, weights, extractor,
                                                          perceptual_norm="relative").items()}
    np.testing.assert_allclose(relative["perceptual"],
                               float(losses.perceptual(hr, rec, extractor, norm="relative")), rtol=1e-5)
    np.testing.assert_allclose(relative["total"], expected + 3.0 * (relative["perceptual"] - terms["perceptual"]),
                               rtol=1e-5)


def test_loss_terms_skips_zero_weighted_terms():
    downscaler = sr.build_downscaler(2)
    hr, rec = random_images(), random_images()
    weights = loss_weights(lambda_b=1.0, lambda_f=0.0, lambda_p=0.0, lambda_s=2.0)
    terms = losses.loss_terms(hr, rec, downscaler, weights, perceptual_norm="relative")  # no extractor needed
    assert float(terms["fw_mse"]) == 0.0 and float(terms["perceptual"]) == 0.0
    assert float(terms["ssim_n"]) > 0 and float(terms["bw_mse"]) > 0
    # lambda_s = 2 is the non-normalised 1 - SSIM loss.
    np.testing.assert_allclose(
        float(terms["total"]), float(losses.bw_mse(hr, rec)) + 1 - float(losses.ssim(hr, rec)), rtol=1e-5
    )
    with pytest.raises(ValueError, match="extractor"):
        losses.loss_terms(hr, rec, downscaler, loss_weights(), perceptual_norm="relative")


def snapshot(variables):
    return [np.array(to_numpy(v), copy=True) for v in variables]


def train_step(arch, freeze, vgg_path, widths):
    """One step of this backend's train step (train_steps) with all four terms live."""
    from ssimsr.pipeline.experiments import run_params
    from ssimsr.training.train import Trainer

    params = run_params(arch, vgg_weights=str(vgg_path), widths=widths, train_downscaler=not freeze,
                        learning_rate=1e-3, backend=BACKEND)
    trainer = Trainer(params)
    vgg = trainer.extractor
    before = [snapshot(m.weights) for m in (vgg, trainer.pair.downscaler, trainer.pair.upscaler)]
    terms = trainer.steps.fetch([trainer.steps.train(random_images(1, 32, 32))])[0]
    trainer.steps.sync()
    return trainer, before, terms


@pytest.mark.parametrize("arch, freeze", [("irn", False), ("irn", True), ("sr", False)])
def test_optimiser_step_updates_only_the_pair(arch, freeze, vgg_weights):
    widths = {"res_blocks": 1} if arch == "sr" else {}
    trainer, (vgg_before, down_before, up_before), terms = train_step(arch, freeze, vgg_weights[0], widths)
    assert terms["perceptual"] > 0 and terms["fw_mse"] > 0

    for before, variable in zip(vgg_before, trainer.extractor.weights):
        np.testing.assert_array_equal(before, to_numpy(variable))
    assert any(not np.array_equal(b, to_numpy(v)) for b, v in zip(up_before, trainer.pair.upscaler.weights))
    down_changed = [not np.array_equal(b, to_numpy(v))
                    for b, v in zip(down_before, trainer.pair.downscaler.weights)]
    if arch == "irn" and not freeze:
        assert all(down_changed)  # trained end to end: every kernel and bias moved
    else:
        assert not any(down_changed)
