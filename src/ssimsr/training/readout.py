"""How much of the image a downscaler's LR tensor keeps: the PSNR of a linear read-out.

Under the ``as_run`` preset the IRN downscaler stays at its random initialisation, so the
information its C-channel LR output keeps (and with it the best reconstruction any
upscaler can reach) is decided by the seed. This diagnostic measures it without training
an upscaler: every s x s HR block (s*s*3 values) is predicted by an affine map (least
squares, with bias: :func:`fit_readout`) of the 3 x 3 x C LR neighbourhood of the block's LR pixel (edge
padded), fitted on the blocks of a few training images and scored on validation images.

The read-out is a lower bound of what a decoder can recover from the LR tensor (a linear
one, with a 3 x 3 receptive field); for a downscaler that is linear and invertible per
block (space-to-depth) it is exact. NumPy only: Keras is imported by :func:`keras_downscale`.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

#: side of the LR neighbourhood each HR block is read from
NEIGHBOURHOOD = 3


def _as_float_image(image, what: str) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"{what}: expected an H x W x 3 RGB image, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{what}: expected uint8 or float pixels in [0, 1], got dtype {arr.dtype}")
    return arr.astype(np.float32)


def _check_images(images: Sequence, name: str, scale: int) -> None:
    if images is None or len(images) == 0:
        raise ValueError(f"{name}: no images (empty list)")
    for i, image in enumerate(images):
        shape = np.shape(image)
        if len(shape) != 3 or shape[2] != 3:
            raise ValueError(f"{name}[{i}]: expected an H x W x 3 RGB image, got shape {shape}")
        if shape[0] % scale or shape[1] % scale:
            raise ValueError(f"{name}[{i}]: size {shape[1]}x{shape[0]} is not a multiple of scale {scale}")


def hr_blocks(hr: np.ndarray, scale: int) -> np.ndarray:
    """(H/s * W/s, s*s*3): each row one s x s block, in the LR pixels' raster order."""
    h, w, c = hr.shape
    return (hr.reshape(h // scale, scale, w // scale, scale, c).transpose(0, 2, 1, 3, 4)
            .reshape((h // scale) * (w // scale), scale * scale * c))


def blocks_to_image(blocks: np.ndarray, height: int, width: int, scale: int) -> np.ndarray:
    """The inverse of :func:`hr_blocks`."""
    c = blocks.shape[1] // (scale * scale)
    return (blocks.reshape(height // scale, width // scale, scale, scale, c).transpose(0, 2, 1, 3, 4)
            .reshape(height, width, c))


def lr_features(lr: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """(h*w, 9*C + 1) float64: each LR pixel's edge-padded 3 x 3 x C neighbourhood and a 1 (bias).

    ``rows``: the raster indices of the pixels wanted (all if None).
    """
    h, w, c = lr.shape
    r = NEIGHBOURHOOD // 2
    padded = np.pad(lr, ((r, r), (r, r), (0, 0)), mode="edge")
    if rows is None:
        rows = np.arange(h * w)
    y, x = np.divmod(rows, w)
    out = np.empty((len(rows), NEIGHBOURHOOD * NEIGHBOURHOOD * c + 1), np.float64)
    k = 0
    for dy in range(NEIGHBOURHOOD):
        for dx in range(NEIGHBOURHOOD):
            out[:, k:k + c] = padded[y + dy, x + dx]
            k += c
    out[:, -1] = 1.0
    return out


def fit_readout(features: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Least-squares coefficients (p, k) of ``targets`` (n, k) on ``features`` (n, p) whose last
    column is the bias (all ones, as :func:`lr_features` makes it).

    Solved as the normal equations of the centred, unit-variance features with
    ``np.linalg.lstsq`` (the minimum-norm solution when features are collinear, e.g. a
    downscaler that outputs a constant) and one step of iterative refinement, the products
    taken with ``np.einsum``: a LAPACK least squares of the tall matrix itself wakes
    OpenBLAS's threads for every panel, and inside a training process, whose TensorFlow
    threads keep spinning after the downscaler's calls, that took 0.5 s for 10,000 rows on
    2 cores instead of 10 ms. The predictions equal those of ``lstsq`` on the tall matrix
    (the tests check it against SciPy's).
    """
    x, y = features[:, :-1], targets.astype(np.float64)
    mean, std = x.mean(axis=0), x.std(axis=0)
    std[std == 0] = 1.0  # a constant feature: zero after centring, the bias carries it
    xs = (x - mean) / std
    y_mean = y.mean(axis=0)
    yc = y - y_mean
    gram = np.einsum("ij,ik->jk", xs, xs)
    w = np.linalg.lstsq(gram, np.einsum("ij,ik->jk", xs, yc), rcond=None)[0]
    residual = yc - np.einsum("ij,jk->ik", xs, w)
    w = w + np.linalg.lstsq(gram, np.einsum("ij,ik->jk", xs, residual), rcond=None)[0]
    coef = w / std[:, None]
    return np.vstack([coef, y_mean - mean @ coef])


def _lr_of(downscale: Callable, image: np.ndarray, scale: int, what: str) -> np.ndarray:
    h, w = image.shape[:2]
    lr = np.asarray(downscale(image[None]))
    if lr.ndim != 4 or lr.shape[0] != 1 or lr.shape[1:3] != (h // scale, w // scale) or lr.shape[3] < 1:
        raise ValueError(f"{what}: the downscaler returned shape {lr.shape} for a (1, {h}, {w}, 3) batch; "
                         f"expected (1, {h // scale}, {w // scale}, C) at scale {scale}")
    if not np.all(np.isfinite(lr)):
        raise ValueError(f"{what}: the downscaler returned non-finite values")
    return lr[0].astype(np.float64)


def readout_psnr(downscale: Callable, train_images: Sequence, val_images: Sequence, scale: int = 2,
                 max_images: int = 8, max_rows: int = 200_000) -> dict:
    """PSNR (dB, data range 1) of the linear read-out of ``downscale``'s LR tensor.

    ``downscale`` maps a float32 batch (1, H, W, 3) in [0, 1] to (1, H/s, W/s, C) (NumPy or
    anything ``np.asarray`` converts). Images: H x W x 3, uint8 (divided by 255) or float in
    [0, 1]; the first ``max_images`` of each list are used. The read-out is fitted on all
    blocks of the training images, or on ``max_rows`` of them drawn without replacement by
    ``default_rng(0)`` when there are more; it is scored on every block of the validation
    images: the reconstruction is clipped to [0, 1], ``psnr`` is the mean of the per-image
    PSNRs (``psnr_per_image``).
    """
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ValueError(f"scale: expected an integer >= 1, got {scale!r}")
    for name, value in (("max_images", max_images), ("max_rows", max_rows)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
    scale = int(scale)
    _check_images(train_images, "train_images", scale)
    _check_images(val_images, "val_images", scale)
    train = [_as_float_image(img, f"train_images[{i}]") for i, img in enumerate(list(train_images)[:max_images])]
    val = [_as_float_image(img, f"val_images[{i}]") for i, img in enumerate(list(val_images)[:max_images])]
    x, y, channels, total = _training_blocks(downscale, train, scale, max_rows)
    coef = fit_readout(x, y)
    per_image, val_blocks = _scored(downscale, val, coef, channels, scale)
    return {
        "psnr": float(np.mean(per_image)),
        "psnr_per_image": per_image,
        "scale": scale,
        "lr_channels": int(channels),
        "neighbourhood": NEIGHBOURHOOD,
        "features": int(x.shape[1]),
        "train_images": len(train),
        "val_images": len(val),
        "train_blocks": int(total),
        "fit_rows": int(x.shape[0]),
        "val_blocks": int(val_blocks),
    }


def _training_blocks(downscale: Callable, train: list[np.ndarray], scale: int,
                     max_rows: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(features, targets, LR channels, blocks in all) the read-out is fitted on: all blocks of
    the training images, or ``max_rows`` of them drawn by ``default_rng(0)``."""
    counts = [(img.shape[0] // scale) * (img.shape[1] // scale) for img in train]
    total = sum(counts)
    if total > max_rows:
        chosen = np.sort(np.random.default_rng(0).choice(total, size=max_rows, replace=False))
    else:
        chosen = np.arange(total)
    starts = np.cumsum([0, *counts])

    channels = None
    features, targets = [], []
    for i, img in enumerate(train):
        lr = _lr_of(downscale, img, scale, f"train_images[{i}]")
        if channels is None:
            channels = lr.shape[2]
        elif lr.shape[2] != channels:
            raise ValueError(f"train_images[{i}]: the downscaler returned {lr.shape[2]} channels, "
                             f"{channels} for the first image")
        rows = chosen[(chosen >= starts[i]) & (chosen < starts[i + 1])] - starts[i]
        if len(rows):
            features.append(lr_features(lr, rows))
            targets.append(hr_blocks(img, scale)[rows].astype(np.float64))
    return np.concatenate(features), np.concatenate(targets), channels, total


def _scored(downscale: Callable, val: list[np.ndarray], coef: np.ndarray, channels: int,
            scale: int) -> tuple[list[float], int]:
    """The read-out's PSNR on each validation image (reconstruction clipped to [0, 1]), and
    the number of blocks scored."""
    per_image, val_blocks = [], 0
    for i, img in enumerate(val):
        lr = _lr_of(downscale, img, scale, f"val_images[{i}]")
        if lr.shape[2] != channels:
            raise ValueError(f"val_images[{i}]: the downscaler returned {lr.shape[2]} channels, "
                             f"{channels} for the training images")
        pred = np.clip(np.einsum("ij,jk->ik", lr_features(lr), coef), 0.0, 1.0)
        rec = blocks_to_image(pred, img.shape[0], img.shape[1], scale)
        mse = float(np.mean((rec - img.astype(np.float64)) ** 2))
        per_image.append(10.0 * math.log10(1.0 / mse) if mse > 0 else math.inf)
        val_blocks += pred.shape[0]
    return per_image, val_blocks


def describe(result: dict) -> str:
    """``27.31 dB (linear 3x3x4 -> 2x2x3, fitted on 8 train images, scored on 8 val images)``."""
    n, s = result["neighbourhood"], result["scale"]
    return (f"{result['psnr']:.2f} dB (linear {n}x{n}x{result['lr_channels']} -> {s}x{s}x3, "
            f"fitted on {result['train_images']} train images, scored on {result['val_images']} val images)")


def keras_downscale(model) -> Callable[[np.ndarray], np.ndarray]:
    """A Keras downscaler as a NumPy function (inference mode), for :func:`readout_psnr`."""
    import warnings

    import keras

    def downscale(batch: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            # a model rewrapped with a list of one input (train._float32_outputs, mixed
            # precision) warns about the structure of a plain tensor; the call is right
            warnings.filterwarnings("ignore", message="The structure of `inputs`", category=UserWarning)
            out = model(batch, training=False)
        return keras.ops.convert_to_numpy(out).astype(np.float32)

    return downscale
