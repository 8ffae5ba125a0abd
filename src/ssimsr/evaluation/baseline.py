"""A model-free baseline: bicubic interpolation of the SR model's low-resolution input.

The SR model's downscaler is decimation, ``hr[::s, ::s]`` (``models.Decimate``; x4 stacks two
x2 steps, which is ``hr[::4, ::4]``). :func:`bicubic_upscale` interpolates that LR image
back to the HR size with Keys' cubic convolution (a = -0.5, the kernel of MATLAB's and
Pillow's bicubic), placed on the decimation grid: LR pixel ``i`` sits on HR pixel ``s * i``
(no half-pixel shift), so the decimated pixels come back exactly and the HR pixels between
them are interpolated; indices outside the image are clamped to the edge. It measures how
hard a split is without any training, so a gap between our results and the paper's can be
told apart from a difference in the data (issue 15).

:func:`baseline_metrics` scores it per image with ``ssimsr.evaluation.metrics.image_metrics`` (the same
columns as a trained run's ``metrics.csv``); :func:`baseline_for_dataset` does that for a
prepared dataset's validation split and adds each image's ``origin`` (``data.image_origins``).

Beside it, the SR literature's bicubic baseline (``psnr_y_matlab`` / ``ssim_y_matlab``):
LR = MATLAB's antialiased ``imresize(HR, 1/s)`` saved as uint8, upscaled by
``imresize(LR, s)`` (``ssimsr.data.imresize.matlab_bicubic``), scored like ``psnr_y`` / ``ssim_y``.
Its Set5 / Set14 x2 means reproduce the widely published bicubic figures, which checks the
metric code; the decimation baseline is the one that matches the paper's own LR. Images
from a grey source (``metrics.grey_images``; column ``grey``) are scored on their grey values.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from PIL import Image

from ..data.data import image_origins, list_split
from ..data.imresize import matlab_bicubic

#: Keys' parameter: -0.5 reproduces polynomials up to degree 2 (third-order accurate).
KEYS_A = -0.5

#: The columns of the MATLAB-protocol bicubic baseline, after ``image_metrics``' own.
MATLAB_METRICS = ("psnr_y_matlab", "ssim_y_matlab")


def keys_kernel(x: np.ndarray, a: float = KEYS_A) -> np.ndarray:
    """Keys' cubic convolution kernel W(x) (support [-2, 2], W(0) = 1, W(+-1) = W(+-2) = 0)."""
    x = np.abs(np.asarray(x, dtype=np.float64))
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return np.where(x <= 1, near, np.where(x < 2, far, 0.0))


def _taps(n_in: int, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices, weights), each (n_in * scale, 4): the four LR samples of every HR position."""
    t = np.arange(n_in * scale, dtype=np.float64) / scale  # HR pixel x sits at LR coordinate x / s
    base = np.floor(t).astype(np.int64)
    offsets = np.arange(-1, 3)
    index = base[:, None] + offsets[None, :]
    weights = keys_kernel(t[:, None] - index)
    return np.clip(index, 0, n_in - 1), weights  # edge clamp


def _upscale_axis(image: np.ndarray, scale: int, axis: int) -> np.ndarray:
    index, weights = _taps(image.shape[axis], scale)
    gathered = np.take(image, index, axis=axis)  # the axis becomes (n_out, 4)
    shape = [1] * gathered.ndim
    shape[axis], shape[axis + 1] = weights.shape
    return (gathered * weights.reshape(shape)).sum(axis=axis + 1)


def bicubic_upscale(lr: np.ndarray, scale: int) -> np.ndarray:
    """Keys bicubic (a = -0.5) x``scale`` of ``lr`` (HxW or HxWxC float), on the decimation grid.

    Returns a float64 array of shape ``(H * scale, W * scale[, C])`` with
    ``out[s * i, s * j] == lr[i, j]``; separable (rows, then columns), edge-clamped.
    """
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ValueError(f"bicubic_upscale: scale must be a positive integer, got {scale!r}")
    arr = np.asarray(lr)
    if arr.ndim not in (2, 3):
        raise ValueError(f"bicubic_upscale: lr must be an HxW or HxWxC array, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"bicubic_upscale: lr must be a float array, got dtype {arr.dtype}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"bicubic_upscale: lr is empty (shape {arr.shape})")
    if not np.all(np.isfinite(arr)):
        raise ValueError("bicubic_upscale: lr contains non-finite values")
    out = arr.astype(np.float64)
    if scale == 1:
        return out
    return _upscale_axis(_upscale_axis(out, int(scale), 0), int(scale), 1)


def decimate(hr: np.ndarray, scale: int) -> np.ndarray:
    """The SR model's downscaler: ``hr[::scale, ::scale]`` (``models.Decimate``)."""
    return np.asarray(hr)[::scale, ::scale]


def bicubic_baseline(hr: np.ndarray, scale: int) -> np.ndarray:
    """HR -> decimated LR -> bicubic HR: the model-free reconstruction of ``hr``."""
    hr = np.asarray(hr)
    h, w = hr.shape[:2]
    if h % scale or w % scale:
        raise ValueError(f"size {w}x{h} is not a multiple of scale {scale}")
    return bicubic_upscale(decimate(hr, scale), scale)


def baseline_metrics(hr_paths: Sequence[str | os.PathLike], scale: int, image_set: str = "val") -> pd.DataFrame:
    """Per image: ``set`` (``image_set``), ``image`` (file stem), the columns of
    ``ssimsr.evaluation.metrics.image_metrics(hr, bicubic_baseline(hr), scale, grey)`` (the decimation
    protocol), ``psnr_y_matlab`` / ``ssim_y_matlab`` (``metrics.psnr_y`` / ``ssim_y`` of
    ``imresize.matlab_bicubic``: the literature's MATLAB protocol), ``grey`` (the image's
    source is grey, ``metrics.grey_images``: its Y metrics are on the grey values) and ``scale``.

    Images are read as a trained run's evaluation reads them (8-bit RGB / 255). A file
    that is missing, unreadable or not a multiple of ``scale`` raises ValueError naming it.
    """
    from .metrics import grey_images, image_metrics, psnr_y, ssim_y

    paths = [Path(p) for p in hr_paths]
    if not paths:
        raise ValueError(f"baseline_metrics: no images given for set {image_set!r}")
    rows = []
    for path, grey in zip(paths, grey_images(paths)):
        try:
            with Image.open(path) as img:
                hr8 = np.asarray(img.convert("RGB"), dtype=np.uint8)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: cannot read image ({exc})") from exc
        hr = hr8.astype(np.float32) / np.float32(255.0)
        try:
            rec = bicubic_baseline(hr, scale)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
        _, sr8 = matlab_bicubic(hr8, scale)  # hr8 is a multiple of scale: not cropped
        sr = sr8.astype(np.float32) / np.float32(255.0)
        rows.append({"set": image_set, "image": path.stem, **image_metrics(hr, rec, scale, grey=grey),
                     "psnr_y_matlab": psnr_y(hr, sr, scale, grey=grey),
                     "ssim_y_matlab": ssim_y(hr, sr, scale, grey=grey), "grey": bool(grey), "scale": int(scale)})
    return pd.DataFrame(rows)


def baseline_for_dataset(data_dir: str | os.PathLike, scale: int, image_set: str = "val") -> pd.DataFrame:
    """:func:`baseline_metrics` of a prepared dataset's val split, with each image's ``origin``
    (the folder of its source member, from the dataset's manifest) after ``image``."""
    frame = baseline_metrics(list_split(data_dir, "val"), scale, image_set)
    origins = image_origins(data_dir)
    missing = sorted(set(frame["image"]) - set(origins))
    if missing:
        raise ValueError(f"{Path(data_dir) / 'manifest.csv'}: no row for the images {missing[:5]}")
    frame.insert(2, "origin", frame["image"].map(origins))
    return frame


def concat_baselines(paths: Sequence[str | os.PathLike], datasets: Sequence[str]) -> pd.DataFrame:
    """The per-dataset baseline tables in one, ``dataset`` first (``paths[i]`` is ``datasets[i]``'s)."""
    if len(paths) != len(datasets):
        raise ValueError(f"concat_baselines: {len(paths)} files for {len(datasets)} datasets")
    frames = []
    for path, dataset in zip(paths, datasets):
        if not Path(path).is_file():
            raise ValueError(f"{path}: baseline table not found (run the baseline rule)")
        frame = pd.read_csv(path, dtype={"image": str, "origin": str})
        missing = [c for c in ("set", "image", "origin") if c not in frame.columns]
        if missing:
            raise ValueError(f"{path}: lacks the columns {missing}")
        frames.append(frame.assign(dataset=dataset))
    if not frames:
        return pd.DataFrame(columns=["dataset", "set", "image", "origin"])
    out = pd.concat(frames, ignore_index=True)
    return out[["dataset"] + [c for c in out.columns if c != "dataset"]]
