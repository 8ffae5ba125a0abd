"""Per-image reconstruction metrics (numpy in, Python floats out).

Images are ``float32`` arrays of shape ``(H, W, 3)`` (RGB) with values in
``[0, 1]``; ``hr`` is the reference (ground truth), ``rec`` the reconstruction.

Two families of metrics are provided:

* RGB metrics as used by the paper and by training (section 2.4):
  :func:`psnr` (data range 1, Eq. 12) and :func:`ssim` (``tf.image.ssim`` with
  ``max_val=1.0`` and TensorFlow's defaults: 11x11 Gaussian window, sigma 1.5,
  k1 0.01, k2 0.03, valid filtering, mean over the three channels) -- exactly the
  SSIM the training loss uses.
* The super-resolution community convention (BasicSR / MATLAB): :func:`psnr_y`
  and :func:`ssim_y`, computed on the BT.601 luma channel ``Y`` (16-235 range,
  on a 0-255 scale, data range 255) after cropping ``border`` pixels from every
  side (``border = scale``). A *grey* image (see below) is scored on its grey values.

Decisions:

* The reconstruction is clipped to ``[0, 1]`` before every metric (``clip=True``
  by default): a reconstruction is evaluated as the image that would be saved.
  The reference is used as given (it is assumed to lie in ``[0, 1]``).
* No 8-bit quantisation is applied inside the metrics; callers who evaluate saved
  PNG files (loaded with :func:`load_image`) get the quantised values naturally.
* PSNR of identical images (MSE = 0) is ``inf`` (``float('inf')``), not an error.
* ``Y`` is not rounded (BasicSR's float path), unlike MATLAB's ``rgb2ycbcr`` on
  ``uint8`` input which rounds to integers.
* Grey images are scored on their grey values, as the SR literature's evaluation scripts do:
  they take a *single-channel* file as its own ``Y`` and pass every three-channel file
  through ``rgb2ycbcr``. With ``grey=True`` (the caller's knowledge of the source file:
  :func:`grey_images`, a single-channel file or a prepared image whose manifest records
  ``gray->RGB``), :func:`psnr_y` and :func:`ssim_y` score both images on the full-range
  luma ``L = 255 (0.299 R + 0.587 G + 0.114 B)`` (:func:`rgb_to_luma`), which is the grey
  value itself for a grey image, instead of MATLAB's range-squeezed ``Y = 16 + 219/255 L``
  (which adds 20 log10(255/219) = 1.32 dB to a grey image's PSNR). The flag rests on the
  reference, and both images go through the same transform, so a reconstruction that is not
  exactly grey (a network's output) is scored on the same luma, unsqueezed. Why not detect
  R = G = B: Set14's ``man`` is a three-channel file with equal channels, and the
  literature scores it through ``rgb2ycbcr`` (squeezed), while ``bridge`` is a
  single-channel file scored on its grey values; only that rule reproduces the published
  Set14 bicubic figure (30.24 dB; equal channels taken as grey give 30.13).

Keras is imported lazily (only :func:`ssim` needs it, on whichever backend is
configured); torch is never imported here.
"""

from __future__ import annotations

import math
from os import PathLike
from pathlib import Path
from typing import Union

import numpy as np

__all__ = [
    "psnr",
    "ssim",
    "rgb_to_y",
    "rgb_to_luma",
    "is_grey",
    "grey_images",
    "psnr_y",
    "ssim_y",
    "ssim_authors",
    "image_metrics",
    "load_image",
    "save_image",
    "crop_border",
    "METRIC_KEYS",
]

#: Keys returned by :func:`image_metrics`, in order.
METRIC_KEYS = ("psnr", "ssim", "psnr_y", "ssim_y", "psnr_authors", "ssim_authors")

#: ITU-R BT.601 luma coefficients for R, G, B in [0, 1], giving Y in [16, 235]
#: (the ``rgb2ycbcr`` of MATLAB and BasicSR).
_Y_COEFFS = np.array([65.481, 128.553, 24.966], dtype=np.float64)
_Y_OFFSET = 16.0

PathType = Union[str, "PathLike[str]", Path]


# ----------------------------------------------------------------------------
# input handling
# ----------------------------------------------------------------------------
def _as_image(img, name: str) -> np.ndarray:
    arr = np.asarray(img)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"{name} must be an HxWx3 RGB array, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(
            f"{name} must be a float array with values in [0, 1], got dtype {arr.dtype}"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains non-finite values")
    return arr


def _pair(hr, rec, clip: bool = True) -> tuple[np.ndarray, np.ndarray]:
    hr = _as_image(hr, "hr")
    rec = _as_image(rec, "rec")
    if hr.shape != rec.shape:
        raise ValueError(f"hr and rec shapes differ: {hr.shape} vs {rec.shape}")
    if clip:
        rec = np.clip(rec, 0.0, 1.0)
    return hr, rec


def _psnr_from_mse(mse: float, data_range: float) -> float:
    if mse == 0.0:
        return math.inf
    return float(10.0 * math.log10(data_range**2 / mse))


def crop_border(img: np.ndarray, border: int) -> np.ndarray:
    """Remove ``border`` pixels from every side of ``img`` (``border=0``: no crop)."""
    border = int(border)
    if border < 0:
        raise ValueError(f"border must be >= 0, got {border}")
    if border == 0:
        return img
    h, w = img.shape[:2]
    if 2 * border >= h or 2 * border >= w:
        raise ValueError(f"border {border} too large for an image of size {h}x{w}")
    return img[border:-border, border:-border, ...]


# ----------------------------------------------------------------------------
# RGB metrics (paper / training)
# ----------------------------------------------------------------------------
def psnr(hr: np.ndarray, rec: np.ndarray, clip: bool = True) -> float:
    """PSNR in dB on RGB with data range 1 (paper Eq. 12: ``10 log10(L^2 / MSE)``).

    The MSE is the mean over all pixels and channels, computed in float64 on
    ``rec`` clipped to ``[0, 1]`` (unless ``clip=False``).  Returns ``inf`` when
    the two images are identical (MSE = 0).
    """
    hr, rec = _pair(hr, rec, clip)
    mse = float(np.mean((hr.astype(np.float64) - rec.astype(np.float64)) ** 2))
    return _psnr_from_mse(mse, 1.0)


def ssim(hr: np.ndarray, rec: np.ndarray, clip: bool = True) -> float:
    """SSIM on RGB exactly as training computes it: ``keras.ops.image.ssim(max_val=1.0)``.

    The definition and defaults of ``tf.image.ssim``, on any Keras backend: 11x11 Gaussian window with sigma 1.5, k1 = 0.01,
    k2 = 0.03, valid filtering (no padding), mean over the SSIM map and the three
    channels.  ``rec`` is clipped to ``[0, 1]`` first (unless ``clip=False``).
    Both sides must be at least 11 pixels high and wide.
    """
    hr, rec = _pair(hr, rec, clip)
    if min(hr.shape[:2]) < 11:
        raise ValueError(f"ssim needs images of at least 11x11 pixels, got {hr.shape[:2]}")
    from keras import ops  # lazy: keep `import ssimsr.evaluation.metrics` light

    val = ops.image.ssim(hr.astype(np.float32), rec.astype(np.float32), max_val=1.0)
    return float(ops.convert_to_numpy(val))


# ----------------------------------------------------------------------------
# Y-channel metrics (SR community convention, BasicSR)
# ----------------------------------------------------------------------------
def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """BT.601 luma of an RGB image in ``[0, 1]``, on the 0-255 scale (16-235 range).

    ``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` for R, G, B in ``[0, 1]`` (MATLAB's
    and BasicSR's ``rgb2ycbcr``), so black maps to 16 and white to 235.  The result
    is a float64 ``HxW`` array *not* rounded to integers, on the 0-255 scale that
    :func:`psnr_y` / :func:`ssim_y` use with data range 255.
    """
    arr = np.asarray(img, dtype=np.float64)
    if arr.ndim < 1 or arr.shape[-1] != 3:
        raise ValueError(f"rgb_to_y expects an array whose last axis is RGB, got shape {arr.shape}")
    return arr @ _Y_COEFFS + _Y_OFFSET


def rgb_to_luma(img: np.ndarray) -> np.ndarray:
    """Full-range BT.601 luma on the 0-255 scale: ``255 (0.299 R + 0.587 G + 0.114 B)``,
    i.e. ``(rgb_to_y(img) - 16) * 255 / 219``; for a grey image (R = G = B = g) it is
    ``255 g``, the grey value itself (to float64 rounding). Float64 ``HxW``, not rounded."""
    arr = np.asarray(img, dtype=np.float64)
    if arr.ndim < 1 or arr.shape[-1] != 3:
        raise ValueError(f"rgb_to_luma expects an array whose last axis is RGB, got shape {arr.shape}")
    return arr @ (_Y_COEFFS * (255.0 / 219.0))


def is_grey(img: np.ndarray) -> bool:
    """Whether an ``HxWx3`` image has its three channels equal at every pixel (what a grey
    file read as RGB gives; a precondition of ``grey=True``, not its definition)."""
    arr = np.asarray(img)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"is_grey expects an HxWx3 array, got shape {arr.shape}")
    return bool(np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2]))


def _luma_pair(hr: np.ndarray, rec: np.ndarray, border: int, grey: bool) -> tuple[np.ndarray, np.ndarray]:
    """Both images' luma on the 0-255 scale, ``border`` cropped: the grey values
    (:func:`rgb_to_luma`) when ``grey``, else ``Y`` (:func:`rgb_to_y`)."""
    if not isinstance(grey, (bool, np.bool_)):
        raise ValueError(f"grey must be True or False, got {grey!r}")
    if grey and not is_grey(hr):
        raise ValueError("grey=True but hr's three channels differ: not a grey image")
    to_luma = rgb_to_luma if grey else rgb_to_y
    return crop_border(to_luma(hr), border), crop_border(to_luma(rec), border)


def psnr_y(hr: np.ndarray, rec: np.ndarray, border: int, clip: bool = True, grey: bool = False) -> float:
    """PSNR (dB) on the luma channel ``Y`` (0-255 scale, data range 255).

    ``border`` pixels are removed from every side first (SR convention:
    ``border = scale``).  Matches BasicSR's ``calculate_psnr(..., crop_border=border,
    test_y_channel=True)`` on float input.  Returns ``inf`` for identical images.
    ``grey=True`` (``hr`` from a grey file) scores both images on the grey scale instead
    (:func:`rgb_to_luma`, unsqueezed; module docstring); ``hr`` must then have equal channels.
    """
    hr, rec = _pair(hr, rec, clip)
    y1, y2 = _luma_pair(hr, rec, border, grey)
    mse = float(np.mean((y1 - y2) ** 2))
    return _psnr_from_mse(mse, 255.0)


def _gaussian_kernel_1d(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    # same as cv2.getGaussianKernel(size, sigma)
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x**2) / (2.0 * sigma**2))
    return g / g.sum()


def _filter_valid(img: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable 2-D filtering with ``outer(g, g)``, 'valid' output (no padding)."""
    k = g.size
    # rows then columns; the kernel is symmetric so correlation == convolution
    rows = np.lib.stride_tricks.sliding_window_view(img, k, axis=0)  # (H-k+1, W, k)
    tmp = rows @ g
    cols = np.lib.stride_tricks.sliding_window_view(tmp, k, axis=1)  # (H-k+1, W-k+1, k)
    return cols @ g


def _ssim_single_channel(img1: np.ndarray, img2: np.ndarray, data_range: float) -> float:
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    g = _gaussian_kernel_1d(11, 1.5)
    mu1 = _filter_valid(img1, g)
    mu2 = _filter_valid(img2, g)
    mu1_sq, mu2_sq, mu1_mu2 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    sigma1_sq = _filter_valid(img1 * img1, g) - mu1_sq
    sigma2_sq = _filter_valid(img2 * img2, g) - mu2_sq
    sigma12 = _filter_valid(img1 * img2, g) - mu1_mu2
    ssim_map = ((2 * mu1_mu2 + c1) * (2 * sigma12 + c2)) / (
        (mu1_sq + mu2_sq + c1) * (sigma1_sq + sigma2_sq + c2)
    )
    return float(ssim_map.mean())


def ssim_numpy(hr: np.ndarray, rec: np.ndarray, clip: bool = True) -> float:
    """:func:`ssim`'s definition (11x11 Gaussian, valid filtering, data range 1, mean over
    the RGB channels) in numpy float64, for jobs that do not start Keras (the figures)."""
    hr, rec = _pair(hr, rec, clip)
    if min(hr.shape[:2]) < 11:
        raise ValueError(f"ssim needs images of at least 11x11 pixels, got {hr.shape[:2]}")
    return float(np.mean([_ssim_single_channel(hr[..., c].astype(np.float64), rec[..., c].astype(np.float64), 1.0)
                          for c in range(hr.shape[-1])]))


def ssim_y(hr: np.ndarray, rec: np.ndarray, border: int, clip: bool = True, grey: bool = False) -> float:
    """SSIM on the luma channel ``Y`` as BasicSR's ``calculate_ssim(test_y_channel=True)``.

    Steps: ``Y`` from :func:`rgb_to_y` (0-255 scale, not rounded), ``border``
    pixels cropped on every side, then the Wang et al. SSIM with an 11x11 Gaussian
    window (sigma 1.5, i.e. ``cv2.getGaussianKernel(11, 1.5)`` outer product),
    data range 255 (C1 = (0.01*255)^2, C2 = (0.03*255)^2), *valid* filtering (the
    SSIM map is ``(H-10) x (W-10)``), mean of the map.  Implemented in numpy
    (float64, separable filter).  The cropped image must be at least 11x11.  ``grey=True``
    scores both images on the grey scale (:func:`rgb_to_luma`), as :func:`psnr_y`.
    """
    hr, rec = _pair(hr, rec, clip)
    y1, y2 = _luma_pair(hr, rec, border, grey)
    if min(y1.shape) < 11:
        raise ValueError(
            f"ssim_y needs at least 11x11 pixels after cropping border {border}, got {y1.shape}"
        )
    return _ssim_single_channel(y1, y2, 255.0)


# ----------------------------------------------------------------------------
# The authors' inference convention (their per-image numbers: Tables 2-4)
# ----------------------------------------------------------------------------
def ssim_authors(hr: np.ndarray, rec: np.ndarray) -> float:
    """SSIM as the authors' inference script computed it: scikit-image's defaults.

    ``skimage.metrics.structural_similarity(hr, rec, data_range=1.0)`` over the RGB
    channels (their ``multichannel=True``): a 7x7 *uniform* window, sample covariance,
    k1 0.01, k2 0.03, mean over the cropped SSIM map and the channels, on the
    *unclipped* output. Not the 11x11 Gaussian SSIM of training (:func:`ssim`).
    """
    hr, rec = _pair(hr, rec, clip=False)
    if min(hr.shape[:2]) < 7:
        raise ValueError(f"ssim_authors needs images of at least 7x7 pixels, got {hr.shape[:2]}")
    from skimage.metrics import structural_similarity

    return float(structural_similarity(hr.astype(np.float64), rec.astype(np.float64), data_range=1.0,
                                       channel_axis=-1))


def image_metrics(hr: np.ndarray, rec: np.ndarray, scale: int, grey: bool = False) -> dict[str, float]:
    """All per-image metrics (:data:`METRIC_KEYS`).

    ``psnr`` / ``ssim`` are the project's RGB metrics, as training validates (output
    clipped, no border crop); ``psnr_y`` / ``ssim_y`` follow the SR convention with
    ``border = scale`` (``grey``: ``hr`` comes from a grey file, scored on its grey values);
    ``psnr_authors`` / ``ssim_authors`` are the authors' inference convention (unclipped
    output; scikit-image's default SSIM, :func:`ssim_authors`), the one their per-image
    numbers (Tables 2-4) came from.
    """
    border = int(scale)
    return {
        "psnr": psnr(hr, rec),
        "ssim": ssim(hr, rec),
        "psnr_y": psnr_y(hr, rec, border, grey=grey),
        "ssim_y": ssim_y(hr, rec, border, grey=grey),
        "psnr_authors": psnr(hr, rec, clip=False),
        "ssim_authors": ssim_authors(hr, rec),
    }


#: A prepared dataset manifest's record of a grey source image (``data.decode_rgb8``).
GREY_CONVERSION = "gray->RGB"


def grey_images(paths) -> list[bool]:
    """Per image file: whether its *source* was grey, the images the SR literature scores on
    their grey values (``psnr_y(grey=True)``). A prepared image (``<data>/<split>/<stem>.png``
    beside ``<data>/manifest.csv``) is grey when its manifest row records ``gray->RGB`` among
    its ``conversions``; a file without such a manifest when the file itself is
    single-channel (Pillow mode ``L``, ``LA``, ``1``, ``I``, ``I;16``). A three-channel file
    whose channels happen to be equal is not grey (the literature passes it through
    ``rgb2ycbcr``). Each manifest is read once; an image its manifest lacks, or an unreadable
    file, counts as not grey (the caller's own reading reports it). Here rather than in
    ``data`` so that the prepare and train stages' code digests stay as they are."""
    import pandas as pd
    from PIL import Image

    manifests: dict[Path, set | None] = {}
    out = []
    for path in map(Path, paths):
        manifest = path.parent.parent / "manifest.csv"
        if manifest not in manifests:
            grey = None
            if manifest.is_file():
                frame = pd.read_csv(manifest, dtype=str, keep_default_na=False)
                if {"stem", "conversions"} <= set(frame.columns):
                    flagged = frame["conversions"].map(lambda c: GREY_CONVERSION in [x.strip() for x in c.split(";")])
                    grey = set(frame.loc[flagged, "stem"])
            manifests[manifest] = grey
        known = manifests[manifest]
        if known is not None:
            out.append(path.stem in known)
            continue
        try:
            with Image.open(path) as img:
                out.append(img.mode in ("L", "LA", "La", "1", "I") or img.mode.startswith("I;16"))
        except (OSError, ValueError):
            out.append(False)
    return out


# ----------------------------------------------------------------------------
# image I/O
# ----------------------------------------------------------------------------
def load_image(path: PathType) -> np.ndarray:
    """Read an image file with Pillow as RGB, returned as float32 ``HxWx3`` in ``[0, 1]``.

    Grey-scale, palette and RGBA files are converted to RGB (alpha dropped).
    """
    from PIL import Image

    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"), dtype=np.float32)
    return arr / np.float32(255.0)


def save_image(path: PathType, img: np.ndarray) -> None:
    """Write a float ``HxWx3`` image in ``[0, 1]`` as 8-bit RGB (format from the suffix).

    Values are clipped to ``[0, 1]`` and rounded to the nearest of 0..255, so
    ``load_image(path)`` returns the 8-bit quantised image.  Parent folders are
    created.
    """
    from PIL import Image

    arr = np.asarray(img, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"save_image expects an HxWx3 array, got shape {arr.shape}")
    u8 = np.round(np.clip(arr, 0.0, 1.0) * 255.0).astype(np.uint8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(u8).save(path)
