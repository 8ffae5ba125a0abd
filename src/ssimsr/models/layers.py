"""The networks' layers: small custom Keras layers, building blocks, and each layer's
footprint, the reach into its input that tiled upscaling needs (``upscale.footprint``).

A layer's footprint maps (radius, jump) of its input (how far a pixel reaches into the
network's input, in input pixels; how many input pixels one pixel spans) to those of
its output, as upper bounds. The custom layers here declare it (a ``footprint`` method);
the Keras layers our networks use have theirs in ``KERAS_FOOTPRINTS``. A layer with
neither is an error (:func:`layer_footprint`): tiling would otherwise guess, and a wider
layer would leave seams without a word. A new architecture with a new layer declares
its footprint the same way.

Custom layers are registered with Keras under the ``ssimsr`` package and serialisable,
so all models save and load in the ``.keras`` format without ``safe_mode`` problems (no
``Lambda`` layers).
"""

from __future__ import annotations

import keras
from keras import ops

# --------------------------------------------------------------------------
# Small custom layers
# --------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="ssimsr")
class Decimate(keras.layers.Layer):
    """Keep every ``factor``-th pixel: ``x[:, ::factor, ::factor, :]``.

    This is what the reference code's TF1 legacy bicubic resize computes at
    exactly x2 (no antialiasing), so it is the SR downscaler.
    """

    def __init__(self, factor, **kwargs):
        super().__init__(**kwargs)
        self.factor = int(factor)

    def call(self, images):
        return images[:, :: self.factor, :: self.factor, :]

    def footprint(self, radius, jump):
        return radius, jump * self.factor  # a kept pixel is an input pixel: no reach added

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape

        def reduced(side):
            return None if side is None else -(-side // self.factor)

        return (batch, reduced(height), reduced(width), channels)

    def get_config(self):
        config = super().get_config()
        config.update(factor=self.factor)
        return config


@keras.saving.register_keras_serializable(package="ssimsr")
class PixelShuffle(keras.layers.Layer):
    """Sub-pixel rearrangement (``keras.ops.depth_to_space``): C*r*r -> C, HxW -> rHxrW."""

    def __init__(self, block_size=2, **kwargs):
        super().__init__(**kwargs)
        self.block_size = int(block_size)

    def call(self, features):
        return ops.depth_to_space(features, self.block_size)

    def footprint(self, radius, jump):
        return radius + jump, jump / self.block_size  # an output pixel: one input pixel's block

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        r = self.block_size

        def enlarged(side):
            return None if side is None else side * r

        return (batch, enlarged(height), enlarged(width), channels // (r * r))

    def get_config(self):
        config = super().get_config()
        config.update(block_size=self.block_size)
        return config


@keras.saving.register_keras_serializable(package="ssimsr")
class ChannelSplit(keras.layers.Layer):
    """Split the channel axis into two equal halves ``[x1, x2]``."""

    def call(self, features):
        # One split rather than two slices: on TensorFlow the slices' gradient
        # (StridedSliceGrad) was the costliest non-conv op of the IRN step; ops.split
        # maps to tf.split there and makes the step ~1.3x faster.
        return ops.split(features, 2, axis=-1)

    def footprint(self, radius, jump):
        return radius, jump  # per pixel

    def compute_output_shape(self, input_shape):
        half = input_shape[-1] // 2
        return [(*input_shape[:-1], half), (*input_shape[:-1], input_shape[-1] - half)]


# --------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------


def conv(filters, name, kernel_size=3, strides=1, activation=None):
    return keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding="same", activation=activation, name=name
    )


def residual_block(x, filters, name):
    """conv-ReLU -> conv + identity; no batch norm (as in the reference)."""
    y = conv(filters, f"{name}_conv1", activation="relu")(x)
    y = conv(filters, f"{name}_conv2")(y)
    return keras.layers.Add(name=f"{name}_add")([x, y])


def invertible_block(x, name):
    """Additive coupling: y1 = x1 + F(x2), y2 = x2, output [y1, y2].

    F is conv-ReLU -> conv on half the channels. The block is invertible
    (x1 = y1 - F(y2)) but, as in the paper, its inverse is never used: the
    upscaler is a separate network.
    """
    channels = x.shape[-1]
    if channels % 2:
        raise ValueError(f"invertible block needs an even channel count, got {channels}")
    x1, x2 = ChannelSplit(name=f"{name}_split")(x)
    f = conv(channels // 2, f"{name}_f_conv1", activation="relu")(x2)
    f = conv(channels // 2, f"{name}_f_conv2")(f)
    y1 = keras.layers.Add(name=f"{name}_couple")([x1, f])
    return keras.layers.Concatenate(axis=-1, name=f"{name}_concat")([y1, x2])



# --------------------------------------------------------------------------
# Footprints of the Keras layers the networks use
# --------------------------------------------------------------------------


def _pair_max(value) -> int:
    return max(value) if isinstance(value, (list, tuple)) else int(value if value is not None else 1)


def _conv(layer, radius, jump):
    k, s, d = _pair_max(layer.kernel_size), _pair_max(layer.strides), _pair_max(layer.dilation_rate)
    if s > 1:  # its "same" padding may be one-sided: the whole kernel
        return radius + (k - 1) * d * jump, jump * s
    return radius + (k - 1) * d / 2 * jump, jump


def _conv_transpose(layer, radius, jump):
    k, s = _pair_max(layer.kernel_size), _pair_max(layer.strides)
    return radius + k * jump, jump / s


def _pool(layer, radius, jump):
    k, s = _pair_max(layer.pool_size), _pair_max(layer.strides)
    return radius + (k - 1) * jump, jump * s


def _upsampling(layer, radius, jump):
    reach = jump if layer.interpolation == "nearest" else 2 * jump  # bilinear: a neighbour more
    return radius + reach, jump / _pair_max(layer.size)


def _per_pixel(layer, radius, jump):
    return radius, jump


#: (radius, jump) of a Keras layer's output from its input's, by layer class name
KERAS_FOOTPRINTS = {
    "Conv2D": _conv,
    "Conv2DTranspose": _conv_transpose,
    "MaxPooling2D": _pool,
    "AveragePooling2D": _pool,
    "UpSampling2D": _upsampling,
    **dict.fromkeys(("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate",
                     "Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax", "Rescaling"), _per_pixel),
}


def layer_footprint(layer, radius: float, jump: float) -> tuple[float, float]:
    """(radius, jump) of ``layer``'s output given its input's; a ValueError for a layer
    that declares no footprint."""
    if hasattr(layer, "footprint"):
        return layer.footprint(radius, jump)
    rule = KERAS_FOOTPRINTS.get(type(layer).__name__)
    if rule is None:
        raise ValueError(
            f"layer {layer.name!r} ({type(layer).__name__}) declares no footprint: tiled upscaling "
            "cannot bound how far it reaches; give the layer a footprint(radius, jump) method "
            "(ssimsr.models.layers) or add its class to ssimsr.models.layers.KERAS_FOOTPRINTS")
    return rule(layer, radius, jump)
