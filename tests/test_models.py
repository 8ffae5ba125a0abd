import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from conftest import BACKEND, random_images, to_numpy  # noqa: E402

from ssimsr.models import layers, models  # noqa: E402
from ssimsr.models.archs import irn, sr  # noqa: E402

def trainable_count(model):
    return int(sum(np.prod(v.shape) for v in model.trainable_weights))


def conv_params(cin, cout, k=3):
    return k * k * cin * cout + cout


# ---------------------------------------------------------------- sizes


def test_parameter_counts_at_scale_2():
    assert trainable_count(sr.build_upscaler(2)) == 742_339
    assert sr.build_downscaler(2).count_params() == 0
    assert trainable_count(irn.build_downscaler(2)) == 82_052
    assert trainable_count(irn.build_upscaler(2)) == 6_691


def test_parameter_counts_follow_widths():
    pair = models.build_pair("sr", 2, filters=16, res_blocks=2)
    expected = (
        conv_params(3, 16)
        + 2 * 2 * conv_params(16, 16)
        + conv_params(16, 64)
        + conv_params(3, 16, k=1)
        + conv_params(16, 3)
    )
    assert trainable_count(pair.upscaler) == expected

    pair = models.build_pair("irn", 2, down_filters=8, up_filters=6, lr_channels=2)
    assert trainable_count(pair.downscaler) == (
        conv_params(3, 8) + 2 * conv_params(4, 4) + conv_params(8, 2)
    )
    assert trainable_count(pair.upscaler) == (
        conv_params(2, 6) + 2 * conv_params(3, 3) + conv_params(6, 3)
    )


@pytest.mark.parametrize("arch, lr_channels", [("sr", 3), ("irn", 4)])
@pytest.mark.parametrize("scale", [2, 4])
def test_output_shapes(arch, lr_channels, scale):
    pair = models.build_pair(arch, scale)
    hr = random_images(2, 32, 48)
    lr, rec = models.reconstruct(pair, hr)
    assert tuple(lr.shape) == (2, 32 // scale, 48 // scale, lr_channels)
    assert tuple(rec.shape) == hr.shape
    assert keras.backend.standardize_dtype(rec.dtype) == "float32"


def test_irn_output_is_in_unit_range():
    pair = models.build_pair("irn")
    _, rec = models.reconstruct(pair, random_images())
    rec = to_numpy(rec)
    assert rec.min() >= 0.0 and rec.max() <= 1.0


@pytest.mark.parametrize("height, width, scale", [(33, 48, 2), (32, 47, 2), (32, 42, 4)])
def test_check_size_rejects_non_multiples(height, width, scale):
    with pytest.raises(ValueError, match=rf"{height}x{width}.*scale {scale}"):
        models.check_size(height, width, scale)


def test_check_size_accepts_multiples_and_rejects_bad_scale():
    models.check_size(32, 48, 2)
    models.check_size(32, 48, 4)
    with pytest.raises(ValueError):
        models.check_size(32, 48, 3)
    with pytest.raises(ValueError):
        models.scale_steps(1)


@pytest.mark.parametrize("arch, scale, height", [("sr", 2, 33), ("irn", 2, 33), ("sr", 4, 34), ("irn", 4, 34)])
def test_reconstruct_rejects_sizes_not_multiple_of_scale(arch, scale, height):
    pair = models.build_pair(arch, scale)
    with pytest.raises(ValueError, match=rf"{height}x48.*scale {scale}"):
        models.reconstruct(pair, random_images(1, height, 48))


@pytest.mark.parametrize("scale", [2, 4])
def test_pad_to_multiple_round_trip(scale):
    image = random_images(1, 33, 47)[0]
    padded, size = models.pad_to_multiple(image, scale)
    assert size == (33, 47)
    assert padded.shape[0] % scale == 0 and padded.shape[1] % scale == 0
    assert padded.shape[0] - 33 < scale and padded.shape[1] - 47 < scale
    np.testing.assert_array_equal(models.crop_to_size(padded, size), image)
    # Reflect padding: the first padded row mirrors the row before the last one.
    np.testing.assert_array_equal(padded[33, :47], image[31])
    np.testing.assert_array_equal(padded[:33, 47], image[:, 45])
    models.check_size(*padded.shape[:2], scale)


def test_pad_to_multiple_batched_and_noop():
    batch = random_images(2, 31, 32)
    padded, size = models.pad_to_multiple(batch, 2)
    assert padded.shape == (2, 32, 32, 3) and size == (31, 32)
    np.testing.assert_array_equal(models.crop_to_size(padded, size), batch)
    same, size = models.pad_to_multiple(batch[:, :30], 2)
    assert same.shape == (2, 30, 32, 3) and size == (30, 32)


def test_padded_inference_gives_original_size():
    pair = models.build_pair("irn")
    image = random_images(1, 31, 45)[0]
    padded, size = models.pad_to_multiple(image, 2)
    _, rec = models.reconstruct(pair, padded[None])
    assert models.crop_to_size(to_numpy(rec)[0], size).shape == image.shape


# ---------------------------------------------------------------- layers


@pytest.mark.parametrize("scale", [2, 4])
def test_sr_downscaler_is_decimation(scale):
    hr = random_images(2, 32, 48)
    lr = to_numpy(sr.build_downscaler(scale)(hr))
    np.testing.assert_array_equal(lr, hr[:, ::scale, ::scale, :])


def test_pixel_shuffle_matches_numpy_reference():
    r, channels = 2, 3
    features = random_images(2, 4, 5, channels * r * r)
    out = to_numpy(layers.PixelShuffle(r)(features))
    # depth_to_space: out[b, h*r+i, w*r+j, c] = in[b, h, w, (i*r + j)*C + c]
    expected = np.empty((2, 4 * r, 5 * r, channels), np.float32)
    for i in range(r):
        for j in range(r):
            expected[:, i::r, j::r, :] = features[..., (i * r + j) * channels:(i * r + j + 1) * channels]
    np.testing.assert_array_equal(out, expected)


def test_invertible_block_is_additive_coupling():
    inputs = keras.Input((None, None, 8))
    block = keras.Model(inputs, layers.invertible_block(inputs, "inv"))
    x = random_images(1, 6, 7, 8)
    y = to_numpy(block(x))
    x1, x2 = x[..., :4], x[..., 4:]
    f1, f2 = block.get_layer("inv_f_conv1"), block.get_layer("inv_f_conv2")
    np.testing.assert_array_equal(y[..., 4:], x2)
    # Inverting with the same F recovers x1: y1 - F(y2) == x1.
    recovered = y[..., :4] - to_numpy(f2(f1(y[..., 4:])))
    np.testing.assert_allclose(recovered, x1, atol=1e-5)


def test_sr_upscaler_skip_branch_is_nearest_neighbour():
    upscaler = sr.build_upscaler(2, filters=8, res_blocks=1)
    assert upscaler.get_layer("skip_nearest").interpolation == "nearest"
    lr = random_images(1, 5, 6)
    skip = to_numpy(upscaler.get_layer("skip_nearest")(lr))
    np.testing.assert_array_equal(skip, np.repeat(np.repeat(lr, 2, axis=1), 2, axis=2))


# ---------------------------------------------------------------- saving


@pytest.mark.parametrize(
    "builder",
    [
        sr.build_downscaler,
        sr.build_upscaler,
        irn.build_downscaler,
        irn.build_upscaler,
    ],
)
# Keras' own convert_to_numpy triggers a NumPy 2 copy-keyword warning while saving.
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_keras_save_load_round_trip(builder, tmp_path):
    model = builder(2)
    inputs = random_images(1, 16, 24, model.input_shape[-1])
    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)  # safe_mode=True (default)
    assert loaded.name == model.name
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in loaded.layers)
    np.testing.assert_array_equal(to_numpy(loaded(inputs)), to_numpy(model(inputs)))


# ---------------------------------------------------------------- training


def test_irn_downscaler_receives_gradients():
    """One step of this backend's train step moves every downscaler kernel and bias."""
    from ssimsr.pipeline.experiments import run_params
    from ssimsr.training.train import Trainer

    trainer = Trainer(run_params("irn", lambda_p=0.0, backend=BACKEND))
    before = [np.array(w) for w in trainer.pair.downscaler.get_weights()]
    trainer.steps.train(random_images())
    trainer.steps.sync()
    after = trainer.pair.downscaler.get_weights()
    assert len(after) == len(before) > 0
    assert all(not np.array_equal(a, b) for a, b in zip(after, before))


def test_freeze_downscaler_flag():
    pair = models.build_pair("irn", freeze_downscaler=True)
    assert not pair.downscaler.trainable
    assert pair.downscaler.trainable_variables == []
    assert len(pair.trainable_variables) == len(pair.upscaler.trainable_variables)
    trainable = models.build_pair("irn")
    assert len(trainable.trainable_variables) == (
        len(trainable.upscaler.trainable_variables) + len(trainable.downscaler.trainable_variables)
    )


def test_build_pair_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown architecture"):
        models.build_pair("edsr")
    with pytest.raises(ValueError, match=r"widths.irn: unknown width\(s\) \['res_blocks'\]"):
        models.build_pair("irn", res_blocks=4)
    pair = models.build_pair("SR")
    assert isinstance(pair, models.ModelPair)
    down, up = pair
    assert down.name == "sr_downscaler" and up.name == "sr_upscaler"


# ---------------------------------------------------------------- footprints (tiling)


def test_footprint_of_a_small_sr_upscaler_is_the_hand_computed_reach():
    from ssimsr.evaluation.upscale import footprint

    # feature conv 3x3 (+1), one residual block (+1 +1), upsample conv (+1), pixel shuffle
    # (+1 LR pixel) = 5 LR pixels; the nearest skip (+1) is narrower; the output conv adds
    # one HR pixel = 0.5 LR pixel: 5.5, at zoom 2
    fp = footprint(sr.build_upscaler(2, filters=8, res_blocks=1))
    assert (fp.radius, fp.zoom, fp.align) == (5.5, 2.0, 1)


def test_a_layer_that_declares_no_footprint_cannot_be_tiled():
    from ssimsr.evaluation.upscale import footprint

    class Blur(keras.layers.Layer):  # reaches its neighbours, but says nothing about it
        def call(self, x):
            return x

    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, Blur(name="blur")(layers.conv(3, "c")(inputs)))
    with pytest.raises(ValueError, match=r"layer 'blur' \(Blur\) declares no footprint"):
        footprint(model)
