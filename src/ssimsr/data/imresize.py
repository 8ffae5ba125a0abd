"""MATLAB's ``imresize`` (bicubic, antialiased) in numpy, and the SR literature's bicubic protocol.

The super-resolution literature (SRCNN, VDSR, EDSR, RCAN, BasicSR's tables) makes its LR
images with MATLAB's ``imresize(HR, 1/s)`` and its bicubic baseline with ``imresize(LR, s)``,
both ``'bicubic'`` with MATLAB's default antialiasing. This project's own LR is decimation,
``hr[::s, ::s]`` (the paper's code, ``ssimsr.evaluation.baseline``); this module reproduces the
literature's protocol so that the metric code can be checked against its published bicubic
figures (x2, Y channel, border = scale: Set5 33.66 dB / 0.9299, Set14 30.24 dB / 0.8688).

MATLAB's algorithm (``imresize.m``, ``contributions``), per axis:

* output sample ``x = 1..n_out`` sits at input coordinate ``u = x / scale + (1 - 1 / scale) / 2``
  (pixel centres aligned, 1-based);
* the kernel is the cubic convolution kernel with a = -0.5 (``cubic``, support [-2, 2]); when
  downscaling (``scale < 1``) with antialiasing it is widened to ``h(x) = scale * cubic(scale * x)``
  with width ``4 / scale``, so it low-passes at the output's Nyquist frequency;
* the taps are ``floor(u - width / 2) + 0 .. ceil(width) + 1``; each row of weights is normalised
  to sum 1; indices outside the image are mirrored (symmetric padding, ``[1:n, n:-1:1]``
  repeated); columns whose weights are all zero are dropped;
* the two axes are resized one after the other, rows (dim 1) first for equal scales; for a
  ``uint8`` image each pass returns ``uint8`` (MATLAB's ``imresizemex`` keeps the input class:
  clipped to 0..255 and rounded half away from zero), so the intermediate image is rounded too.

Vectorised: each axis is one gather (``np.take`` of the ``(n_out, taps)`` index table) and a
weighted sum. Checked in ``tests/test_baseline.py`` against a direct loop implementation,
hand-computed x2 weights and, for integer upscaling, ``ssimsr.evaluation.baseline.bicubic_upscale``
(the same kernel; away from the borders the pixel-centre grid reduces to a fixed phase).
"""

from __future__ import annotations

import math

import numpy as np

#: Width (support) of MATLAB's cubic kernel.
CUBIC_WIDTH = 4.0

#: How the benchmark table and baseline.csv name this LR protocol.
MATLAB_PROTOCOL = "MATLAB imresize bicubic (antialiased), LR saved as uint8"


def cubic(x: np.ndarray) -> np.ndarray:
    """MATLAB's ``cubic`` kernel (Keys, a = -0.5): ``1.5|x|^3 - 2.5|x|^2 + 1`` on ``|x| <= 1``,
    ``-0.5|x|^3 + 2.5|x|^2 - 4|x| + 2`` on ``1 < |x| <= 2``, 0 elsewhere."""
    ax = np.abs(np.asarray(x, dtype=np.float64))
    ax2, ax3 = ax * ax, ax * ax * ax
    return ((1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
            + (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2)))


def contributions(n_in: int, n_out: int, scale: float, antialias: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB's ``contributions``: ``(indices, weights)``, each ``(n_out, taps)``; ``indices``
    0-based into the input axis (mirrored at the edges), each row of ``weights`` summing to 1."""
    if n_in < 1 or n_out < 1:
        raise ValueError(f"imresize: empty axis (from {n_in} to {n_out} samples)")
    if scale < 1 and antialias:
        def kernel(t):
            return scale * cubic(scale * t)
        width = CUBIC_WIDTH / scale
    else:
        kernel, width = cubic, CUBIC_WIDTH
    x = np.arange(1, n_out + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - width / 2.0)
    taps = int(math.ceil(width)) + 2
    index = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]  # 1-based
    weights = kernel(u[:, None] - index)
    weights = weights / weights.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(n_in), np.arange(n_in)[::-1]])  # [1:n, n:-1:1], 0-based
    index = mirror[np.mod(index.astype(np.int64) - 1, 2 * n_in)]
    keep = np.any(weights != 0, axis=0)
    return index[:, keep], weights[:, keep]


def _round_uint8(values: np.ndarray) -> np.ndarray:
    """MATLAB's conversion to uint8: saturate to 0..255, round half away from zero."""
    return np.floor(np.clip(values, 0.0, 255.0) + 0.5).astype(np.uint8)


def _resize_axis(image: np.ndarray, axis: int, index: np.ndarray, weights: np.ndarray) -> np.ndarray:
    gathered = np.take(image.astype(np.float64, copy=False), index, axis=axis)  # axis -> (n_out, taps)
    shape = [1] * gathered.ndim
    shape[axis], shape[axis + 1] = weights.shape
    out = (gathered * weights.reshape(shape)).sum(axis=axis + 1)
    return _round_uint8(out) if image.dtype == np.uint8 else out


def imresize(image: np.ndarray, scale: float | None = None, output_shape: tuple[int, int] | None = None,
             antialias: bool = True) -> np.ndarray:
    """MATLAB's ``imresize(image, scale, 'bicubic')`` (or ``imresize(image, output_shape, ...)``).

    ``image``: ``HxW`` or ``HxWxC``, ``uint8`` (result ``uint8``, each axis's pass rounded
    as MATLAB does) or float (result float64, not rounded or clipped). ``scale``: one factor
    for both axes, the output size ``ceil(scale * size)`` (MATLAB's rule); or ``output_shape``
    ``(H_out, W_out)``, the per-axis scale then ``H_out / H`` and ``W_out / W``. ``antialias``:
    MATLAB's ``'Antialiasing'`` (default true; it only acts when shrinking).
    """
    arr = np.asarray(image)
    if arr.ndim not in (2, 3):
        raise ValueError(f"imresize: image must be an HxW or HxWxC array, got shape {arr.shape}")
    if arr.dtype != np.uint8 and not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"imresize: image must be uint8 or float, got dtype {arr.dtype}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"imresize: image is empty (shape {arr.shape})")
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        raise ValueError("imresize: image contains non-finite values")
    if (scale is None) == (output_shape is None):
        raise ValueError("imresize: give exactly one of scale and output_shape")
    n_in = arr.shape[:2]
    if scale is not None:
        if isinstance(scale, bool) or not isinstance(scale, (int, float, np.integer, np.floating)) \
                or not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"imresize: scale must be a positive number, got {scale!r}")
        scales = (float(scale), float(scale))
        n_out = tuple(int(math.ceil(float(scale) * n)) for n in n_in)
    else:
        n_out = tuple(int(n) for n in output_shape)
        if len(n_out) != 2 or min(n_out) < 1:
            raise ValueError(f"imresize: output_shape must be two positive sizes, got {output_shape!r}")
        scales = (n_out[0] / n_in[0], n_out[1] / n_in[1])
    out = arr if arr.dtype == np.uint8 else arr.astype(np.float64)
    # MATLAB resizes the axis with the smaller scale first (a stable sort: rows first on a tie)
    for axis in sorted((0, 1), key=lambda a: scales[a]):
        index, weights = contributions(n_in[axis], n_out[axis], scales[axis], antialias)
        out = _resize_axis(out, axis, index, weights)
    return out


def modcrop(image: np.ndarray, scale: int) -> np.ndarray:
    """The SR literature's ``modcrop``: the top-left ``(H - H % s) x (W - W % s)`` part."""
    arr = np.asarray(image)
    h, w = arr.shape[:2]
    return arr[:h - h % scale, :w - w % scale]


def matlab_bicubic(hr: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """The literature's bicubic baseline of an 8-bit HR image: ``(hr_cropped, sr)``, both uint8.

    HR cropped to a multiple of ``scale`` (:func:`modcrop`); LR = ``imresize(HR, 1/scale)``
    bicubic, antialiased, as uint8 (the saved LR PNGs); SR = ``imresize(LR, scale)`` bicubic,
    as uint8 (clipped and rounded).
    """
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ValueError(f"matlab_bicubic: scale must be a positive integer, got {scale!r}")
    arr = np.asarray(hr)
    if arr.dtype != np.uint8:
        raise ValueError(f"matlab_bicubic: hr must be a uint8 image (the saved HR file), got dtype {arr.dtype}")
    hr_c = modcrop(arr, int(scale))
    h, w = hr_c.shape[:2]
    if h < scale or w < scale:
        raise ValueError(f"matlab_bicubic: image of {arr.shape[1]}x{arr.shape[0]} is smaller than scale {scale}")
    lr = imresize(hr_c, output_shape=(h // scale, w // scale))
    sr = imresize(lr, output_shape=(h, w))
    return hr_c, sr
