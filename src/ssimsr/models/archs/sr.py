"""SR: a weight-free decimating downscaler and a residual pixel-shuffle upscaler."""

from ...registry import register_architecture


@register_architecture("sr", learned_downscaler=False)
def build_sr(scale=2, filters=64, res_blocks=8):
    """742,339 parameters at x2 with the defaults (the reference code's widths)."""
    from ..models import ModelPair

    return ModelPair(build_downscaler(scale), build_upscaler(scale, filters, res_blocks))


def build_downscaler(scale=2):
    """Weight-free downscaler: decimation by ``scale``."""
    import keras

    from ..layers import Decimate
    from ..models import scale_steps

    scale_steps(scale)
    hr = keras.Input(shape=(None, None, 3), name="hr_image")
    lr = Decimate(scale, name="decimate")(hr)
    return keras.Model(hr, lr, name="sr_downscaler")


def build_upscaler(scale=2, filters=64, res_blocks=8):
    """Residual feature extractor, pixel shuffle per x2 step, nearest-neighbour skip.

    Output is linear (not clipped to [0, 1]), as in the reference.
    """
    import keras

    from ..layers import PixelShuffle, conv, residual_block
    from ..models import scale_steps

    steps = scale_steps(scale)
    lr = keras.Input(shape=(None, None, 3), name="lr_image")
    x = conv(filters, "feature_conv", activation="relu")(lr)
    for i in range(1, res_blocks + 1):
        x = residual_block(x, filters, f"res{i}")
    for i in range(1, steps + 1):
        x = conv(filters * 4, f"upsample{i}_conv", activation="relu")(x)
        x = PixelShuffle(2, name=f"upsample{i}_shuffle")(x)
    # The skip branch hands the network a plain enlargement of the input, so
    # the residual path only has to learn the missing detail.
    skip = keras.layers.UpSampling2D(scale, interpolation="nearest", name="skip_nearest")(lr)
    skip = conv(filters, "skip_proj", kernel_size=1)(skip)
    x = keras.layers.Add(name="skip_add")([x, skip])
    sr = conv(3, "output_conv")(x)
    return keras.Model(lr, sr, name="sr_upscaler")
