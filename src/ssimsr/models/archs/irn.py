"""IRN: a learned downscaler to a 4-channel LR tensor and a small upscaler (invertible blocks)."""

from ...registry import register_architecture


@register_architecture("irn", learned_downscaler=True)
def build_irn(scale=2, down_filters=128, up_filters=32, lr_channels=4):
    """82,052 + 6,691 parameters at x2 with the defaults (the reference code's widths)."""
    from ..models import ModelPair

    return ModelPair(build_downscaler(scale, down_filters, lr_channels),
                     build_upscaler(scale, up_filters, lr_channels))


def build_downscaler(scale=2, filters=128, lr_channels=4):
    """Per x2 step a stride-2 conv then an invertible block; conv to ``lr_channels``."""
    import keras

    from ..layers import conv, invertible_block
    from ..models import scale_steps

    steps = scale_steps(scale)
    hr = keras.Input(shape=(None, None, 3), name="hr_image")
    x = hr
    for i in range(1, steps + 1):
        x = conv(filters, f"down{i}_conv", strides=2)(x)
        x = invertible_block(x, f"down{i}_inv")
    lr = conv(lr_channels, "lr_conv")(x)
    return keras.Model(hr, lr, name="irn_downscaler")


def build_upscaler(scale=2, filters=32, lr_channels=4):
    """Per x2 step a stride-2 transposed conv then an invertible block; sigmoid RGB output."""
    import keras

    from ..layers import invertible_block
    from ..models import scale_steps

    steps = scale_steps(scale)
    lr = keras.Input(shape=(None, None, lr_channels), name="lr_tensor")
    x = lr
    for i in range(1, steps + 1):
        x = keras.layers.Conv2DTranspose(
            filters, 3, strides=2, padding="same", name=f"up{i}_deconv"
        )(x)
        x = invertible_block(x, f"up{i}_inv")
    rec = keras.layers.Conv2DTranspose(
        3, 3, strides=1, padding="same", activation="sigmoid", name="output_deconv"
    )(x)
    return keras.Model(lr, rec, name="irn_upscaler")
