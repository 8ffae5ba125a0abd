"""Downscaler / upscaler networks of the paper (SR and IRN), in Keras 3.

Images are float32 NHWC RGB tensors in [0, 1]. Every model takes inputs of
any spatial size (``input_shape=(None, None, C)``). The scale factor is
``2 ** steps``; the paper's experiments used ``scale=2`` (one step).

The layers and networks of the two registered architectures (``ssimsr/archs``: a
new architecture is one file there), each a pair of separately callable models:

* ``"sr"`` - a weight-free decimating downscaler and a residual
  pixel-shuffle upscaler (742,339 parameters at x2).
* ``"irn"`` - a learned downscaler (82,052 parameters at x2) producing a
  4-channel low-resolution tensor and a small upscaler (6,691 parameters).

Input size: the high-resolution image given to a downscaler must have sides
that are multiples of ``scale``; otherwise the strided convolution / the
decimation round the low-resolution size up and the reconstruction no longer
matches the input. ``reconstruct`` enforces this through ``check_size``. For
inference on arbitrary sizes, ``pad_to_multiple`` reflect-pads the bottom and
right edges, and ``crop_to_size`` removes the padding from the result::

    padded, size = pad_to_multiple(image, scale)
    lr, rec = reconstruct(pair, padded[None])
    rec = crop_to_size(keras.ops.convert_to_numpy(rec)[0], size)

Custom layers are small, registered with Keras under the ``ssimsr`` package
and serialisable, so all models save and load in the ``.keras`` format
without ``safe_mode`` problems (no ``Lambda`` layers).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import keras
import numpy as np
from keras import ops

__all__ = [
    "ChannelSplit",
    "Decimate",
    "ModelPair",
    "PixelShuffle",
    "build_irn_downscaler",
    "build_irn_upscaler",
    "build_pair",
    "build_sr_downscaler",
    "build_sr_upscaler",
    "check_size",
    "crop_to_size",
    "pad_to_multiple",
    "reconstruct",
    "scale_steps",
]


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

    def compute_output_shape(self, input_shape):
        half = input_shape[-1] // 2
        return [(*input_shape[:-1], half), (*input_shape[:-1], input_shape[-1] - half)]


# --------------------------------------------------------------------------
# Size helpers
# --------------------------------------------------------------------------


def scale_steps(scale):
    """Number of x2 steps for ``scale`` (a power of two, at least 2)."""
    scale = int(scale)
    if scale < 2 or scale & (scale - 1):
        raise ValueError(f"scale must be a power of two >= 2, got {scale}")
    return int(math.log2(scale))


def check_size(height, width, scale):
    """Raise ``ValueError`` unless both sides are positive multiples of ``scale``.

    A downscaler fed an odd size rounds the low-resolution side up, so the
    upscaler's output would no longer have the input's size.
    """
    scale_steps(scale)
    if height <= 0 or width <= 0 or height % scale or width % scale:
        raise ValueError(
            f"image size {height}x{width} (height x width) is not a multiple of "
            f"scale {scale}; pad it with pad_to_multiple() or crop it first"
        )


def pad_to_multiple(image, scale):
    """Reflect-pad the bottom/right of an image so both sides divide by ``scale``.

    ``image`` is an array of shape (H, W, C) or (N, H, W, C). Returns
    ``(padded, (H, W))``; undo with ``crop_to_size(result, (H, W))``. Reflect
    padding (edge not repeated) keeps the padded border statistically like
    the image; a side shorter than the padding falls back to symmetric.
    """
    scale_steps(scale)
    image = np.asarray(image)
    if image.ndim not in (3, 4):
        raise ValueError(f"expected an (H, W, C) or (N, H, W, C) array, got shape {image.shape}")
    height, width = image.shape[-3], image.shape[-2]
    pad_h, pad_w = (-height) % scale, (-width) % scale
    if pad_h == 0 and pad_w == 0:
        return image, (height, width)
    pad = [(0, 0)] * image.ndim
    pad[-3], pad[-2] = (0, pad_h), (0, pad_w)
    mode = "reflect" if height > pad_h and width > pad_w else "symmetric"
    return np.pad(image, pad, mode=mode), (height, width)


def crop_to_size(image, size):
    """Crop an (H, W, C) or (N, H, W, C) array back to ``size = (height, width)``."""
    height, width = size
    return image[..., :height, :width, :]


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
# SR: fixed decimation + residual pixel-shuffle upscaler
# --------------------------------------------------------------------------


def build_sr_downscaler(scale=2):
    """Weight-free downscaler: decimation by ``scale``."""
    scale_steps(scale)
    hr = keras.Input(shape=(None, None, 3), name="hr_image")
    lr = Decimate(scale, name="decimate")(hr)
    return keras.Model(hr, lr, name="sr_downscaler")


def build_sr_upscaler(scale=2, filters=64, res_blocks=8):
    """Residual feature extractor, pixel shuffle per x2 step, nearest-neighbour skip.

    Output is linear (not clipped to [0, 1]), as in the reference.
    """
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


# --------------------------------------------------------------------------
# IRN: learned downscaler and upscaler built from invertible blocks
# --------------------------------------------------------------------------


def build_irn_downscaler(scale=2, filters=128, lr_channels=4):
    """Per x2 step a stride-2 conv then an invertible block; conv to ``lr_channels``."""
    steps = scale_steps(scale)
    hr = keras.Input(shape=(None, None, 3), name="hr_image")
    x = hr
    for i in range(1, steps + 1):
        x = conv(filters, f"down{i}_conv", strides=2)(x)
        x = invertible_block(x, f"down{i}_inv")
    lr = conv(lr_channels, "lr_conv")(x)
    return keras.Model(hr, lr, name="irn_downscaler")


def build_irn_upscaler(scale=2, filters=32, lr_channels=4):
    """Per x2 step a stride-2 transposed conv then an invertible block; sigmoid RGB output."""
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


# --------------------------------------------------------------------------
# Pairs
# --------------------------------------------------------------------------


class ModelPair(NamedTuple):
    """A downscaler and the upscaler trained jointly with it."""

    downscaler: keras.Model
    upscaler: keras.Model

    @property
    def trainable_variables(self):
        """Variables an optimiser should update (a frozen downscaler adds none)."""
        return list(self.upscaler.trainable_variables) + list(self.downscaler.trainable_variables)


def build_pair(arch, scale=2, freeze_downscaler=False, **widths):
    """Build the pair of a registered architecture (``ssimsr/archs``: ``"sr"``, ``"irn"``).

    ``widths`` are the architecture builder's keyword arguments (SR: ``filters`` 64,
    ``res_blocks`` 8; IRN: ``down_filters`` 128, ``up_filters`` 32, ``lr_channels`` 4).

    A learned downscaler (IRN) trains end to end with the upscaler (the gradient of the
    reconstruction loss reaches it). ``freeze_downscaler=True`` sets
    ``downscaler.trainable = False``, i.e. a fixed random downscaler: the reference
    code's effective behaviour. The SR downscaler has no weights.
    """
    from .registry import architecture

    spec = architecture(str(arch).lower(), key="architecture")
    unknown = set(widths) - set(spec.widths)
    if unknown:
        raise TypeError(f"unknown width argument(s) for {spec.name!r}: {sorted(unknown)}; "
                        f"allowed: {sorted(spec.widths)}")
    pair = spec.build(scale=scale, **widths)
    if freeze_downscaler:
        pair.downscaler.trainable = False
    return pair


def reconstruct(pair, hr, training=False):
    """Downscale then upscale ``hr``; returns ``(lr, reconstruction)``.

    Call it inside the backend's gradient computation (``train_steps``) to train both
    networks end to end.
    Raises ``ValueError`` (via ``check_size``) if the spatial size is static
    and not a multiple of the pair's scale.
    """
    height, width = hr.shape[1], hr.shape[2]
    if height is not None and width is not None:
        check_size(int(height), int(width), _pair_scale(pair))
    lr = pair.downscaler(hr, training=training)
    return lr, pair.upscaler(lr, training=training)


def _pair_scale(pair):
    """The scale factor of a pair, read from its downscaler's layers."""
    for layer in pair.downscaler.layers:
        if isinstance(layer, Decimate):
            return layer.factor
    strided = [
        layer for layer in pair.downscaler.layers
        if isinstance(layer, keras.layers.Conv2D) and tuple(layer.strides) == (2, 2)
    ]
    return 2 ** len(strided)
