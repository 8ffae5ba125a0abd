"""Apply a trained run to images: ``ssimsr upscale RUN_DIR INPUT OUTPUT``.

SR: the given image is upscaled by the run's scale (any size: the SR upscaler is fully
convolutional). IRN: the image is downscaled with the run's learned downscaler, then
upscaled (the IRN round trip; its LR tensor has 4 channels, so there is no "plain" LR
image to start from). IRN inputs whose sides are not a multiple of the scale are
reflect-padded and the result cropped back. Grayscale, palette, 16-bit and RGBA inputs
are converted to RGB as in data preparation (alpha is dropped).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

from .atomic import atomic_path
from .data import IMAGE_EXTENSIONS, BadImageError, decode_rgb8


class RunNotFound(FileNotFoundError):
    pass


def load_run(run: str | os.PathLike):
    """(params, downscaler, upscaler) of a trained run directory."""
    import keras

    from . import models  # noqa: F401  registers the custom layers

    run = Path(run)
    missing = [n for n in ("params.json", "upscaler.keras", "downscaler.keras") if not (run / n).is_file()]
    if missing:
        raise RunNotFound(f"{run}: not a trained run (missing {', '.join(missing)})")
    params = json.loads((run / "params.json").read_text())
    return params, keras.saving.load_model(run / "downscaler.keras"), keras.saving.load_model(run / "upscaler.keras")


def apply(params: dict, downscaler, upscaler, rgb: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 in, uint8 out (SR: scale x larger; IRN: same size)."""
    import keras

    from .models import crop_to_size, pad_to_multiple

    x = rgb.astype(np.float32) / 255.0
    scale = int(params["scale"])
    if params["model"] == "sr":
        out = keras.ops.convert_to_numpy(upscaler(x[None], training=False))[0]
    else:
        padded, size = pad_to_multiple(x, scale)
        lr = downscaler(padded[None], training=False)
        out = crop_to_size(keras.ops.convert_to_numpy(upscaler(lr, training=False))[0], size)
    return np.round(np.clip(out, 0.0, 1.0) * 255.0).astype(np.uint8)


def _inputs(src: Path) -> list[Path]:
    if src.is_dir():
        files = sorted(p for p in src.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise FileNotFoundError(f"{src}: no images ({', '.join(IMAGE_EXTENSIONS)})")
        return files
    if not src.is_file():
        raise FileNotFoundError(f"{src}: no such file or folder")
    return [src]


def upscale_paths(run: str | os.PathLike, src: str | os.PathLike, dest: str | os.PathLike) -> list[Path]:
    """Upscale a file or every image of a folder; write PNGs. Returns the written paths."""
    src, dest = Path(src), Path(dest)
    files = _inputs(src)
    params, downscaler, upscaler = load_run(run)
    written = []
    for f in files:
        rgb, _ = decode_rgb8(f.read_bytes(), str(f))
        if min(rgb.shape[:2]) < 2:
            raise BadImageError(f"{f}: image too small ({rgb.shape[1]}x{rgb.shape[0]})")
        out = apply(params, downscaler, upscaler, rgb)
        target = dest / f"{f.stem}.png" if (src.is_dir() or dest.is_dir() or dest.suffix == "") else dest
        with atomic_path(target) as tmp:
            Image.fromarray(out).save(tmp)
        written.append(target)
    return written
