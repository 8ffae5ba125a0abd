"""Shape buckets: whole images of many sizes through few compiled shapes, numbers unchanged.

JAX compiles a step once per input shape. BSDS300 has two shapes, but General100 has
almost one per image, and compiling dominated such a run. So when a split has more than
``MAX_SHAPES`` shapes, each image is zero-padded at the bottom and right to its bucket
(sides rounded up to a multiple of the bucket size, the smallest of ``BUCKET_SIZES``
that leaves at most ``MAX_SHAPES`` shapes), and

* every operation of the networks (and of VGG19) is run on the padded tensor with its
  output zeroed outside the image at that operation's own resolution (``masked_call``),
  so a 'same' convolution, pooling or transposed convolution sees at the image border
  exactly the zeros it sees without padding: inside the image every layer computes what
  it computes unpadded (equal to float rounding; tests/test_buckets.py);
* loss terms and metrics average over the image only (``Region.mean``), SSIM over the
  11x11 windows that lie inside the image.

Requirement: the image sides divide by every resolution step of the networks (the
scale; 16 for VGG19's four poolings when the perceptual term is on). Prepared datasets
are multiples of 16 (``datasets.<name>.multiple``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

BUCKET_SIZES = (32, 64, 128, 256, 512)
MAX_SHAPES = 8


def choose_bucket(shapes, max_shapes: int = MAX_SHAPES) -> int:
    """0 (no padding) when there are few shapes, else the smallest bucket size that
    leaves at most ``max_shapes`` padded shapes."""
    shapes = {tuple(s) for s in shapes}
    if len(shapes) <= max_shapes:
        return 0
    for size in BUCKET_SIZES:
        if len({bucket_shape(h, w, size) for h, w in shapes}) <= max_shapes:
            return size
    return BUCKET_SIZES[-1]


def bucket_shape(height: int, width: int, size: int) -> tuple[int, int]:
    return (math.ceil(height / size) * size, math.ceil(width / size) * size)


def pad_batch(batch: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(batch zero-padded to its bucket, int32 [height, width] of the image in it)."""
    _, height, width, _ = batch.shape
    padded_h, padded_w = bucket_shape(height, width, size)
    padded = np.zeros((batch.shape[0], padded_h, padded_w, batch.shape[3]), batch.dtype)
    padded[:, :height, :width] = batch
    return padded, np.array([height, width], np.int32)


def check_divisible(shapes, divisor: int, what: str) -> None:
    for h, w in shapes:
        if h % divisor or w % divisor:
            raise ValueError(
                f"training.shape_bucket: image size {h}x{w} of {what} is not a multiple of {divisor}, "
                f"so padding would change the numbers; prepare the dataset with `multiple: 16` or set "
                f"training.shape_bucket to 0")


@dataclass(frozen=True)
class Region:
    """The image inside a padded batch: ``valid`` = [height, width] (may be traced),
    ``full`` = the padded (height, width) (static)."""

    valid: object
    full: tuple[int, int]

    def mask(self, tensor):
        """1 inside the image, 0 outside, at ``tensor``'s resolution: [1, h, w, 1]."""
        from keras import ops

        # ops.shape: static under JAX, dynamic in a TensorFlow graph with None sides
        h, w = ops.shape(tensor)[1], ops.shape(tensor)[2]
        # exact: the image sides divide by every resolution step (check_divisible)
        valid_h = self.valid[0] * h // self.full[0]
        valid_w = self.valid[1] * w // self.full[1]
        inside = ops.logical_and(ops.expand_dims(ops.arange(h) < valid_h, 1),
                                 ops.expand_dims(ops.arange(w) < valid_w, 0))
        return ops.cast(inside, tensor.dtype)[None, :, :, None]

    def zero_outside(self, tensor):
        return tensor * self.mask(tensor) if len(tensor.shape) == 4 else tensor

    def mean(self, tensor):
        """Mean over the image's pixels (all batch items and channels)."""
        from keras import ops

        mask = self.mask(tensor)
        shape = ops.shape(tensor)
        count = ops.sum(mask) * ops.cast(shape[0] * shape[-1], tensor.dtype)
        return ops.sum(tensor * mask) / count


def masked_call(model, inputs, region: Region):
    """``model(inputs)`` for a padded batch, every operation's output zeroed outside the
    image (nested functional models too). Uses Keras' graph walk of a functional model."""
    from keras import tree

    def wrap(operation):
        def call(*args, **kwargs):
            if hasattr(operation, "_run_through_graph"):  # a nested functional model
                outputs = masked_call(operation, args[0], region)
            else:
                outputs = operation(*args, **kwargs)
            return tree.map_structure(region.zero_outside, outputs)

        return call

    return model._run_through_graph(region.zero_outside(inputs), operation_fn=wrap)
