"""Downscaler / upscaler pairs, in Keras 3: building one, running it, image sizes.

Images are float32 NHWC RGB tensors in [0, 1]. Every model takes inputs of
any spatial size (``input_shape=(None, None, C)``). The scale factor is
``2 ** steps``; the paper's experiments used ``scale=2`` (one step).

The networks are the registered architectures, one file each in ``ssimsr/models/archs`` (a
new architecture is one file there), each a pair of separately callable models:

* ``"sr"`` (``archs/sr.py``) - a weight-free decimating downscaler and a residual
  pixel-shuffle upscaler (742,339 parameters at x2).
* ``"irn"`` (``archs/irn.py``) - a learned downscaler (82,052 parameters at x2)
  producing a 4-channel low-resolution tensor and a small upscaler (6,691 parameters).

Their layers and building blocks are in ``layers.py``.

Input size: the high-resolution image given to a downscaler must have sides
that are multiples of ``scale``; otherwise the strided convolution / the
decimation round the low-resolution size up and the reconstruction no longer
matches the input. ``reconstruct`` enforces this through ``check_size``. For
inference on arbitrary sizes, ``pad_to_multiple`` reflect-pads the bottom and
right edges, and ``crop_to_size`` removes the padding from the result::

    padded, size = pad_to_multiple(image, scale)
    lr, rec = reconstruct(pair, padded[None])
    rec = crop_to_size(keras.ops.convert_to_numpy(rec)[0], size)
"""

from __future__ import annotations

import math
from typing import NamedTuple

import keras
import numpy as np

from .layers import Decimate  # also registers the custom layers with Keras, for loading

__all__ = [
    "ModelPair",
    "build_pair",
    "check_size",
    "crop_to_size",
    "pad_to_multiple",
    "reconstruct",
    "scale_steps",
]


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
    """Build the pair of a registered architecture (``ssimsr/models/archs``: ``"sr"``, ``"irn"``).

    ``widths`` are the architecture builder's keyword arguments (SR: ``filters`` 64,
    ``res_blocks`` 8; IRN: ``down_filters`` 128, ``up_filters`` 32, ``lr_channels`` 4).

    A learned downscaler (IRN) trains end to end with the upscaler (the gradient of the
    reconstruction loss reaches it). ``freeze_downscaler=True`` sets
    ``downscaler.trainable = False``, i.e. a fixed random downscaler: the reference
    code's effective behaviour. The SR downscaler has no weights.
    """
    from ..registry import architecture

    spec = architecture(str(arch).lower(), key="architecture")
    spec.check_widths(widths, key="widths")
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
