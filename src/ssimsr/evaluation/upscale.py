"""Apply a trained run to images: ``ssimsr upscale RUN INPUT OUTPUT [--tile N] [--overwrite]``.

RUN is a run folder, an export of one (``ssimsr export``: one file) or the URL of an export
with its ``--sha256``; an export is checked and unpacked into a temporary run folder, then
loaded as any run (``ssimsr.evaluation.export``), so it gives the same pixels.

SR: the given image is upscaled by the run's scale (any size: the SR upscaler is fully
convolutional). IRN: the image is downscaled with the run's learned downscaler, then
upscaled (the IRN round trip; its LR tensor has 4 channels, so there is no "plain" LR
image to start from). IRN inputs whose sides are not a multiple of the scale are
reflect-padded and the result cropped back. Grayscale, palette, 16-bit and RGBA inputs
are converted to RGB as in data preparation (alpha is dropped).

Large images are processed in overlapping tiles, as BasicSR and Real-ESRGAN do, so memory
stays bounded: a whole 2040x1356 photo needs tens of GB of activations at x2. Each tile
is the core region plus a margin that covers the network's receptive field (computed
from the layers, ``footprint``), and only the core of each tile's output is kept, so the
tiled result equals the whole-image result up to float rounding. The tile side comes
from the memory available, or ``--tile``.

The models are called as ``model(x, training=False)`` and their outputs converted with
``keras.ops.convert_to_numpy``: no backend-specific calls (TensorFlow, JAX or PyTorch).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from ..io.atomic import atomic_path
from ..data.data import BadImageError, decode_rgb8
from ..data.download import DataError
from ..data.sources import IMAGE_EXTENSIONS

log = logging.getLogger(__name__)

MIN_TILE = 16
# Share of the free memory the activations of one tile may use. The estimate counts every
# intermediate tensor as alive at once; TensorFlow on CPU came close to that (a 1032x1032
# SR window: 11.3 GB estimated, 11.9 GB peak RSS in all), so a third leaves room for
# the runtime, the image and other jobs.
MEMORY_SHARE = 0.35


class RunNotFound(FileNotFoundError):
    pass


class UpscaleError(DataError):
    """An image that cannot be processed (too large for the memory, bad tile size)."""


def load_run(run: str | os.PathLike, sha256: str | None = None, policy=None):
    """(params, downscaler, upscaler) of a trained run: a run folder, an export file or the
    URL of one (``sha256`` required for a URL; checked for a file where given; ``policy``:
    the download's ``DownloadPolicy``). An export is checked in full and unpacked into a
    temporary run folder, loaded as a folder is (:func:`load_run_folder`)."""
    from .export import run_folder

    with run_folder(run, sha256, policy) as folder:
        return load_run_folder(folder)


def load_run_folder(run: str | os.PathLike):
    """(params, downscaler, upscaler) of a trained run directory.

    The folder and its files are checked before Keras is imported: a wrong path is one
    error line, without the backend's start-up (seconds, and its log lines). A file that
    is there but unreadable is named in a CorruptFile error; a network (cut short) is also
    moved aside: the train rule's output is then missing, so the next ``snakemake`` trains
    it again."""
    from ..training.checkpoints import check_run_files

    run = Path(run)
    missing = [n for n in ("params.json", "upscaler.keras", "downscaler.keras") if not (run / n).is_file()]
    if missing:
        raise RunNotFound(f"{run}: not a trained run (missing {', '.join(missing)})")
    check_run_files(run)
    params = json.loads((run / "params.json").read_text())
    import keras

    from ..models import models
    from .. import registry  # noqa: F401  models registers the custom layers

    registry.discover()  # and an architecture's module its own
    return params, keras.saving.load_model(run / "downscaler.keras"), keras.saving.load_model(run / "upscaler.keras")


# --------------------------------------------------------------------------- receptive field

@dataclass(frozen=True)
class Footprint:
    """What tiling needs to know about a network (or a chain of networks).

    ``radius``: an output pixel depends on input pixels at most this far (in input pixels)
    from its position; ``zoom``: output pixels per input pixel; ``align``: tile offsets
    must be multiples of this (the strides, so every tile sees the whole image's sampling
    grid); ``floats_per_pixel``: float32 activations per input pixel if all were kept.
    """

    radius: float
    zoom: float
    align: int
    floats_per_pixel: float

    def then(self, other: "Footprint") -> "Footprint":
        """This network followed by ``other`` (e.g. downscaler then upscaler)."""
        scale = 1.0 / self.zoom  # input pixels per intermediate pixel
        return Footprint(self.radius + other.radius * scale, self.zoom * other.zoom,
                         max(self.align, round(other.align * scale)),
                         self.floats_per_pixel + other.floats_per_pixel / scale ** 2)

    @property
    def margin(self) -> int:
        """The overlap each tile needs on every side: the radius, rounded up to ``align``."""
        return int(math.ceil(math.ceil(self.radius - 1e-9) / self.align) * self.align)


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def footprint(model) -> Footprint:
    """Receptive radius, zoom, alignment and activation size of a functional Keras model.

    Walks the layer graph tracking, for every tensor, how far its pixels reach into the
    input and how many input pixels one of its pixels spans (``jump``). Rules, all upper
    bounds, each layer's from its declared footprint (``layers.layer_footprint``: a layer
    that declares none is an error); a nested model counts as its own footprint. The
    tiled-vs-whole test checks the result on the models.
    """
    from ..models.layers import layer_footprint

    reach: dict[int, tuple[float, float]] = {id(t): (0.0, 1.0) for t in model.inputs}
    floats, max_jump = 0.0, 1.0
    for layer in model.layers:
        inputs = [t for t in _as_list(layer.input) if id(t) in reach]
        outputs = _as_list(layer.output)
        if not inputs:
            continue  # the InputLayer
        radius = max(reach[id(t)][0] for t in inputs)
        jump = max(reach[id(t)][1] for t in inputs)
        if hasattr(layer, "layers") and hasattr(layer, "inputs"):  # a nested model
            inner = footprint(layer)
            radius, jump = radius + inner.radius * jump, jump / inner.zoom
        else:
            radius, jump = layer_footprint(layer, radius, jump)
        for t in outputs:
            reach[id(t)] = (radius, jump)
            floats += t.shape[-1] / jump ** 2
        max_jump = max(max_jump, jump)
    radius, jump = max(reach[id(t)] for t in model.outputs)
    return Footprint(radius, 1.0 / jump, int(round(max_jump)), floats)


# --------------------------------------------------------------------------- memory and tiles

def available_memory() -> int:
    """Bytes this process may still allocate: MemAvailable, or the cgroup's limit if lower."""
    available = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if limit != "max":
            cgroup_free = int(limit) - used
            available = cgroup_free if available is None else min(available, cgroup_free)
    except (OSError, ValueError):
        pass
    return available if available is not None else 4 << 30


def auto_tile(fp: Footprint, memory: int | None = None) -> int:
    """Largest tile side (input pixels, a multiple of ``align``) whose activations fit in
    ``MEMORY_SHARE`` of the free memory, margins included."""
    memory = available_memory() if memory is None else memory
    pixels = MEMORY_SHARE * memory / (4.0 * fp.floats_per_pixel)
    side = int(math.sqrt(pixels)) - 2 * fp.margin
    side -= side % fp.align
    return max(side, max(MIN_TILE, fp.align))


def _spans(length: int, tile: int, margin: int) -> list[tuple[int, int, int, int]]:
    """(window start, window end, core start, core end) along one axis."""
    spans = []
    for core in range(0, length, tile):
        core_end = min(core + tile, length)
        spans.append((max(0, core - margin), min(length, core_end + margin), core, core_end))
    return spans


def run_tiled(network: Callable, image: np.ndarray, fp: Footprint, tile: int | None = None,
              out: np.ndarray | None = None, label: str = "image") -> np.ndarray:
    """Apply ``network`` (float32 NHWC -> NHWC, zooming by ``fp.zoom``) in overlapping tiles.

    ``image`` is float32 HxWxC with sides a multiple of ``fp.align``. The result goes into
    ``out`` (allocated float32 if None; a uint8 ``out`` receives rounded, clipped values).
    Logs one progress line per tile when there is more than one.
    """
    import keras

    height, width = image.shape[:2]
    if height % fp.align or width % fp.align:
        raise UpscaleError(f"{label}: size {width}x{height} is not a multiple of {fp.align}")
    if tile is None:
        tile = auto_tile(fp)
    elif tile < max(MIN_TILE, fp.align):
        raise UpscaleError(f"--tile {tile}: must be at least {max(MIN_TILE, fp.align)} pixels")
    tile -= tile % fp.align
    zoom = fp.zoom
    if out is None:
        out = np.empty((round(height * zoom), round(width * zoom), 3), np.float32)
    tiles = [(r, c) for r in _spans(height, tile, fp.margin) for c in _spans(width, tile, fp.margin)]
    if len(tiles) > 1:
        log.info("%s: %dx%d in %d tiles of %d px (overlap %d px on each side)", label, width, height,
                 len(tiles), tile, fp.margin)
    t0 = time.monotonic()
    for done, ((y0, y1, cy0, cy1), (x0, x1, cx0, cx1)) in enumerate(tiles, 1):
        try:
            result = keras.ops.convert_to_numpy(network(image[None, y0:y1, x0:x1]))[0]
        except Exception as exc:  # backend out-of-memory errors have no common base class
            text = f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, MemoryError) and "ResourceExhausted" not in text and "out of memory" not in text.lower():
                raise
            raise UpscaleError(f"{label}: out of memory on a tile of {x1 - x0}x{y1 - y0} px; rerun with a "
                               f"smaller --tile (now {tile}), e.g. --tile {max(MIN_TILE, tile // 2)}") from None
        core = result[round((cy0 - y0) * zoom):round((cy1 - y0) * zoom), round((cx0 - x0) * zoom):round((cx1 - x0) * zoom)]
        if out.dtype == np.uint8:
            core = np.round(np.clip(core, 0.0, 1.0) * 255.0)
        out[round(cy0 * zoom):round(cy1 * zoom), round(cx0 * zoom):round(cx1 * zoom)] = core
        if len(tiles) > 1:
            elapsed = time.monotonic() - t0
            log.info("%s: tile %d/%d (%.0f%%), %.1f s, ETA %.0f s", label, done, len(tiles),
                     100.0 * done / len(tiles), elapsed, elapsed / done * (len(tiles) - done))
    return out


def _networks(params: dict, downscaler, upscaler, round_trip: bool) -> tuple[Callable, Footprint]:
    if round_trip:
        def network(x):
            return upscaler(downscaler(x, training=False), training=False)

        return network, footprint(downscaler).then(footprint(upscaler))
    return (lambda x: upscaler(x, training=False)), footprint(upscaler)


def reconstruct_tiled(params: dict, downscaler, upscaler, rgb_float: np.ndarray, tile: int | None = None,
                      label: str = "image") -> np.ndarray:
    """The run's round trip (downscale, upscale) of an HR float32 HxWx3 image, tiled.

    Returns float32 HxWx3, not clipped: what ``upscaler(downscaler(hr))`` gives for the
    whole image (within float rounding), at bounded memory. Sides that are not a multiple
    of the scale are reflect-padded and cropped back.
    """
    from ..models.models import crop_to_size, pad_to_multiple

    network, fp = _networks(params, downscaler, upscaler, round_trip=True)
    padded, size = pad_to_multiple(np.asarray(rgb_float, np.float32), max(int(params["scale"]), fp.align))
    return crop_to_size(run_tiled(network, padded, fp, tile, label=label), size)


def apply(params: dict, downscaler, upscaler, rgb: np.ndarray, tile: int | None = None,
          label: str = "image") -> np.ndarray:
    """uint8 HxWx3 in, uint8 out (SR: scale x larger; IRN: same size), tiled."""
    from ..models.models import crop_to_size, pad_to_multiple

    x = rgb.astype(np.float32) / 255.0
    from ..registry import architecture

    # a learned downscaler: the upscaler reads its LR tensor, not an image, so reconstruct
    round_trip = architecture(params["model"]).learned_downscaler
    network, fp = _networks(params, downscaler, upscaler, round_trip)
    padded, size = pad_to_multiple(x, max(int(params["scale"]), fp.align)) if round_trip else (x, x.shape[:2])
    out_shape = (round(padded.shape[0] * fp.zoom), round(padded.shape[1] * fp.zoom), 3)
    needed = int(np.prod(out_shape)) + padded.nbytes
    if needed > available_memory():
        raise UpscaleError(f"{label}: the {out_shape[1]}x{out_shape[0]} result alone needs "
                           f"{needed / 1e9:.1f} GB, more than the {available_memory() / 1e9:.1f} GB free")
    out = run_tiled(network, padded, fp, tile, out=np.empty(out_shape, np.uint8), label=label)
    return crop_to_size(out, size) if round_trip else out


def _inputs(src: Path) -> list[Path]:
    if src.is_dir():
        files = sorted(p for p in src.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise FileNotFoundError(f"{src}: no images ({', '.join(IMAGE_EXTENSIONS)})")
        return files
    if not src.is_file():
        raise FileNotFoundError(f"{src}: no such file or folder")
    return [src]


# What ``ssimsr upscale`` writes, by the output file's suffix: Pillow format and options.
# JPEG at quality 95 and lossless WebP, so the format does not hide what the model did.
OUTPUT_FORMATS = {
    ".png": ("PNG", {}),
    ".jpg": ("JPEG", {"quality": 95}),
    ".jpeg": ("JPEG", {"quality": 95}),
    ".webp": ("WEBP", {"lossless": True}),
    ".tif": ("TIFF", {}),
    ".tiff": ("TIFF", {}),
}


def output_format(path: Path) -> tuple[str, dict]:
    """The Pillow format (and save options) an output file's suffix names; UpscaleError otherwise."""
    try:
        return OUTPUT_FORMATS[path.suffix.lower()]
    except KeyError:
        raise UpscaleError(f"{path}: cannot write {path.suffix!r} images; name the output "
                           f"{', '.join(OUTPUT_FORMATS)} (or a folder, for PNGs)") from None


def _check_outputs(files: list[Path], targets: list[Path], overwrite: bool) -> None:
    """Before anything is written: two inputs never share an output (``a.jpg`` and ``a.png``
    in a folder, whose second output would replace the first), and, unless ``overwrite``,
    no output exists already (the input itself, or a file written before). One line naming it."""
    first: dict[Path, Path] = {}
    for f, target in zip(files, targets):
        if target in first:
            raise FileExistsError(f"{target}: both {first[target]} and {f} would be written to it; "
                                  "rename one of them")
        first[target] = f
    if overwrite:
        return
    existing = [t for t in targets if t.exists()]
    if existing:
        inputs = {f.resolve() for f in files}
        what = "is an input image" if existing[0].resolve() in inputs else "exists"
        more = f" (and {len(existing) - 1} more outputs)" if len(existing) > 1 else ""
        raise FileExistsError(f"{existing[0]}: {what}{more}; not overwritten (give --overwrite to replace it)")


def upscale_paths(run: str | os.PathLike, src: str | os.PathLike, dest: str | os.PathLike,
                  tile: int | None = None, overwrite: bool = False, sha256: str | None = None,
                  policy=None) -> list[Path]:
    """Upscale a file or every image of a folder with ``run`` (a run folder, an export file
    or its URL: :func:`load_run`). Returns the written paths.

    A folder (``src`` or ``dest``, or a ``dest`` without suffix) gets PNGs named after the
    inputs; an output file is written in the format its suffix names (OUTPUT_FORMATS). An
    output that exists (the input too) is an error before anything is written, unless
    ``overwrite``.
    """
    src, dest = Path(src), Path(dest)
    files = _inputs(src)
    to_folder = src.is_dir() or dest.is_dir() or dest.suffix == ""
    targets = [dest / f"{f.stem}.png" for f in files] if to_folder else [dest]
    if not to_folder:
        output_format(dest)  # an unsupported suffix fails before the run is loaded
    _check_outputs(files, targets, overwrite)  # and so does an output that exists
    params, downscaler, upscaler = load_run(run, sha256, policy)
    written = []
    for f, target in zip(files, targets):
        try:
            rgb, _ = decode_rgb8(f.read_bytes(), str(f))
        except Image.DecompressionBombError as exc:
            raise BadImageError(f"{f}: {exc}") from None
        if min(rgb.shape[:2]) < 2:
            raise BadImageError(f"{f}: image too small ({rgb.shape[1]}x{rgb.shape[0]})")
        t0 = time.monotonic()
        out = apply(params, downscaler, upscaler, rgb, tile=tile, label=str(f))
        log.info("%s: %dx%d -> %dx%d in %.1f s", f, rgb.shape[1], rgb.shape[0], out.shape[1], out.shape[0],
                 time.monotonic() - t0)
        image_format, options = output_format(target)
        with atomic_path(target) as tmp:
            Image.fromarray(out).save(tmp, format=image_format, **options)
        written.append(target)
    return written
