"""Preparing a dataset: fetched sources -> PNG splits (the prepare_dataset rule).

``prepare_dataset`` decodes every image of the receipts (read through
``ssimsr.data.sources``) to 8-bit RGB, applies the configured resize, rounds each side down
to a multiple, splits deterministically and writes ``{out}/{split}/{stem}.png``,
``{out}/manifest.csv`` and ``{out}/splits.csv``. ``list_split`` lists a prepared split.

Everything is written to a temporary folder that replaces the output when complete, so a
failed job leaves nothing half-written.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import posixpath
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from ..config import fill_defaults
from .download import DataError
from ..pipeline.progress import Progress
from .sources import Ignored, iter_members, load_receipt, read_text_member

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = [
    "stem", "split", "status", "output", "source", "source_sha256",
    "original_width", "original_height", "width", "height", "conversions", "resize_filter", "reason",
]


class BadImageError(DataError):
    """An image that cannot be used: truncated, not an image, or too small."""


# --------------------------------------------------------------------------- decoding

def _open_limited(payload: bytes, name: str, max_pixels: int | None):
    """``Image.open`` that reads only the header and refuses more than ``max_pixels`` pixels
    (None: Pillow's ``Image.MAX_IMAGE_PIXELS``) as a bad image, before anything is decoded:
    a decompression bomb is reported like any other bad image (and skippable)."""
    limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else int(max_pixels)
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # our own limit below, also above 2x Pillow's
    try:
        img = Image.open(io.BytesIO(payload))
    finally:
        Image.MAX_IMAGE_PIXELS = saved
    width, height = img.size
    if limit is not None and width * height > limit:
        img.close()
        raise BadImageError(f"{name}: {width}x{height} = {width * height:,} pixels exceeds the limit of "
                            f"{limit:,} (datasets.<name>.max_pixels; a decompression bomb?)")
    return img


def decode_rgb8(payload: bytes, name: str, max_pixels: int | None = None) -> tuple[np.ndarray, list[str]]:
    """Decode image bytes to an HxWx3 uint8 array and the conversions applied.

    Grayscale is replicated to three channels, alpha (RGBA, LA, palette transparency)
    is dropped, palettes are expanded and 16-bit samples are scaled to 8 bits
    (round(v * 255 / 65535)). More than ``max_pixels`` pixels (None: Pillow's limit) is a
    bad image. Raises BadImageError naming ``name``.
    """
    conversions: list[str] = []
    try:
        with _open_limited(payload, name, max_pixels) as img:
            img.load()  # forces a full decode: a truncated file raises here
            mode = img.mode
            if mode == "P":
                img = img.convert("RGBA" if "transparency" in img.info else "RGB")
                conversions.append("palette->RGB")
                mode = img.mode
            if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
                values = np.asarray(img, dtype=np.float64)
                if values.max(initial=0) > 65535 or values.min(initial=0) < 0:
                    raise BadImageError(f"{name}: unsupported 32-bit integer pixel values")
                gray = np.round(values * (255.0 / 65535.0)).astype(np.uint8)
                conversions += ["16-bit->8-bit", "gray->RGB"]
                return np.repeat(gray[..., None], 3, axis=2), conversions
            if mode == "F":
                raise BadImageError(f"{name}: floating-point images are not supported")
            if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
                conversions.append("alpha dropped")
            if mode in ("L", "LA", "La", "1"):
                conversions.append("gray->RGB")
            elif mode not in ("RGB", "RGBA", "RGBa"):
                conversions.append(f"{mode}->RGB")
            if img.info.get("bits", 8) == 16 or mode.startswith("RGB;16"):
                conversions.append("16-bit->8-bit")
            rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except BadImageError:
        raise
    except UnidentifiedImageError as exc:
        raise BadImageError(f"{name}: not a readable image ({exc})") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadImageError(f"{name}: cannot decode image ({exc})") from exc
    return rgb, conversions


#: ``resize.filter`` values (config schema) -> Pillow's resampling filters.
RESIZE_FILTERS = {
    "nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX, "hamming": Image.Resampling.HAMMING,
}


def _resized(rgb: np.ndarray, width: int, height: int, filter: str = "bicubic") -> np.ndarray:
    if filter not in RESIZE_FILTERS:
        raise DataError(f"resize.filter: unknown value {filter!r} ({', '.join(RESIZE_FILTERS)})")
    img = Image.fromarray(rgb).resize((width, height), RESIZE_FILTERS[filter])
    return np.asarray(img)


def _bicubic(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    return _resized(rgb, width, height, "bicubic")


def resize_filter(resize: dict | None) -> str:
    """The Pillow filter of a dataset's ``resize`` (schema default filled); "" without a resize."""
    return fill_defaults(resize, "resize")["filter"] if resize else ""


def apply_resize(rgb: np.ndarray, resize: dict | None) -> tuple[np.ndarray, list[str]]:
    """The offline resize of the paper: exact WxH, or the longer side to ``size``, with the
    Pillow filter ``resize.filter`` (the schema's default, bicubic, when it is absent)."""
    if not resize:
        return rgb, []
    if "filter" not in resize:
        resize = fill_defaults(resize, "resize")
    h, w = rgb.shape[:2]
    if resize["mode"] == "exact":
        new_w, new_h = resize["width"], resize["height"]
    elif resize["mode"] == "longer_side":
        factor = resize["size"] / max(h, w)
        new_w, new_h = max(1, round(w * factor)), max(1, round(h * factor))
    else:
        raise DataError(f"resize.mode: unknown value {resize['mode']!r}")
    if (new_w, new_h) == (w, h):
        return rgb, []
    return (_resized(rgb, new_w, new_h, resize["filter"]),
            [f"resize {w}x{h}->{new_w}x{new_h} ({resize['filter']})"])


def round_to_multiple(rgb: np.ndarray, multiple: int, mode: str) -> tuple[np.ndarray, list[str]]:
    """Round each side down to a multiple: bicubic resize (reference code) or centre crop."""
    h, w = rgb.shape[:2]
    new_h, new_w = h - h % multiple, w - w % multiple
    if (new_h, new_w) == (h, w):
        return rgb, []
    if new_h == 0 or new_w == 0:
        return rgb[:new_h, :new_w], []
    if mode == "resize":
        return _bicubic(rgb, new_w, new_h), [f"resize {w}x{h}->{new_w}x{new_h} (multiple {multiple})"]
    if mode == "crop":
        top, left = (h - new_h) // 2, (w - new_w) // 2
        return rgb[top:top + new_h, left:left + new_w], [f"crop {w}x{h}->{new_w}x{new_h} (multiple {multiple})"]
    raise DataError(f"multiple_mode: unknown value {mode!r}")


@dataclass
class Prepared:
    pixels: np.ndarray | None
    original_size: tuple[int, int]  # (width, height)
    conversions: list[str]


def prepare_image(payload: bytes, name: str, options: dict) -> Prepared:
    """Decode, resize and round one image; BadImageError if it is unusable.

    ``options``: the dataset's config (schema defaults fill what it lacks) plus ``scale``.
    """
    options = fill_defaults(options, "dataset")
    return _prepare_filled(payload, name, options)


def _prepare_filled(payload: bytes, name: str, options: dict) -> Prepared:
    """prepare_image for options already filled (prepare_dataset fills them once, not per image)."""
    rgb, conversions = decode_rgb8(payload, name, options.get("max_pixels"))
    original = (rgb.shape[1], rgb.shape[0])
    rgb, steps = apply_resize(rgb, options["resize"])
    conversions += steps
    rgb, steps = round_to_multiple(rgb, options["multiple"], options["multiple_mode"])
    conversions += steps
    min_side = max(options["min_side"], options["multiple"], options["scale"])
    h, w = rgb.shape[:2]
    if min(h, w) < min_side:
        raise BadImageError(
            f"{name}: too small ({original[0]}x{original[1]} -> {w}x{h}); every side must be "
            f">= {min_side} px (min_side / multiple / scale)"
        )
    if h % options["scale"] or w % options["scale"]:
        raise BadImageError(f"{name}: size {w}x{h} is not a multiple of scale {options['scale']}")
    return Prepared(rgb, original, conversions)


# --------------------------------------------------------------------------- splitting

def assign_splits(stems: list[str], split: dict, member_splits: dict[str, str | None],
                  official: dict[str, str] | None = None) -> dict[str, str]:
    """Map every stem to 'train' or 'val', deterministically.

    random: a permutation of the sorted stems by numpy's default_rng(seed); the first
    n_val go to val. iids: the official lists (``official`` maps stem -> split).
    by_source: each source's ``split`` key. fixed: stems listed in ``val``. all_val: every
    image in val (a benchmark: evaluated, never trained on).
    """
    split = fill_defaults(split, "split")
    method = split["method"]
    ordered = sorted(stems)
    if method == "random":
        n_val = split.get("n_val")
        if n_val is None:
            raise DataError("split.n_val is required for split method 'random'")
        if n_val >= len(ordered):
            raise DataError(f"split.n_val={n_val} leaves no training image ({len(ordered)} images)")
        order = np.random.default_rng(split["seed"]).permutation(len(ordered))
        val = {ordered[i] for i in order[:n_val]}
        return {s: ("val" if s in val else "train") for s in ordered}
    if method == "by_source":
        missing = sorted(s for s in ordered if member_splits.get(s) not in ("train", "val"))
        if missing:
            raise DataError(f"split method by_source needs `split` on every source; none for {missing[:3]}")
        return {s: member_splits[s] for s in ordered}
    if method == "iids":
        if not official:
            raise DataError("split method iids: no iids_train.txt / iids_test.txt found in the sources")
        missing = sorted(s for s in ordered if s not in official)
        if missing:
            raise DataError(f"split method iids: images not in the iids files: {missing[:5]}")
        return {s: official[s] for s in ordered}
    if method == "all_val":
        return {s: "val" for s in ordered}
    if method == "fixed":
        wanted = set(split.get("val", []))
        unknown = sorted(wanted - set(ordered))
        if unknown:
            raise DataError(f"split.val lists unknown images {unknown}")
        return {s: ("val" if s in wanted else "train") for s in ordered}
    raise DataError(f"split.method: unknown value {method!r}")


def _official_iids(receipts: list[dict]) -> dict[str, str]:
    official: dict[str, str] = {}
    for receipt in receipts:
        for suffix, split in (("iids_train.txt", "train"), ("iids_test.txt", "val")):
            text = read_text_member(receipt, suffix)
            for token in (text or "").split():
                official[token.strip()] = split
    return official


# --------------------------------------------------------------------------- preparing

def prepare_dataset(receipts: list[str | os.PathLike], options: dict, out_dir: str | os.PathLike,
                    sources: list[dict] | None = None) -> pd.DataFrame:
    """Prepare one dataset from its source receipts into ``out_dir``.

    ``options`` is the dataset's config (resize, multiple, multiple_mode, min_side,
    on_bad_image, split) plus ``scale``; ``sources`` the configured sources (for their
    ``include`` and ``split`` keys), in the order of ``receipts``. Writes
    ``out_dir/{train,val}/*.png``, ``manifest.csv`` and ``splits.csv`` atomically:
    everything goes to a temporary folder that replaces ``out_dir`` when complete.
    """
    out_dir = Path(out_dir)
    sources = sources or [{} for _ in receipts]
    if len(sources) != len(receipts):
        raise DataError(f"{len(receipts)} receipts for {len(sources)} configured sources")
    options = fill_defaults(options, "dataset")
    sources = [fill_defaults(source, "source") for source in sources]
    loaded = [load_receipt(r) for r in receipts]
    filter_name = resize_filter(options["resize"])
    # the members are listed once beforehand (names only) to give the progress lines a total
    total = sum(1 for receipt, source in zip(loaded, sources)
                for _ in iter_members(receipt, source["include"], source.get("split")))
    progress = Progress(f"prepare {out_dir.name}", total)

    tmp = out_dir.with_name(f".{out_dir.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "images").mkdir(parents=True)
    try:
        rows, member_splits = _prepare_members(loaded, sources, options, filter_name, tmp / "images", progress)
        splits = _split_prepared(rows, loaded, options, member_splits, tmp)
        manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS).sort_values(["split", "stem", "source"])
        manifest.to_csv(tmp / "manifest.csv", index=False)
        pd.DataFrame(sorted(splits.items()), columns=["stem", "split"]).to_csv(tmp / "splits.csv", index=False)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _prepare_members(loaded: list[dict], sources: list[dict], options: dict, filter_name: str, images: Path,
                     progress: Progress) -> tuple[list[dict], dict[str, str | None]]:
    """Every member of the receipts prepared into ``images/<stem>.png``: the manifest rows (ok,
    skipped, ignored; without split and output yet) and each prepared stem's source split."""
    rows: list[dict] = []
    member_splits: dict[str, str | None] = {}
    seen: dict[str, str] = {}
    ignored: list[Ignored] = []
    for receipt, source in zip(loaded, sources):
        for member in progress.wrap(iter_members(receipt, source["include"], source.get("split"), ignored)):
            row = _prepare_member(member, options, filter_name, images, seen)
            if row["status"] == "ok":
                member_splits[member.stem] = member.split
            rows.append(row)

    for item in ignored:
        log.info("ignored %s:%s: %s", item.source, item.name, item.reason)
        rows.append({"stem": Path(item.name).stem, "split": "", "status": "ignored", "output": "",
                     "source": f"{item.source}:{item.name}", "source_sha256": "", "conversions": "",
                     "reason": item.reason})
    counts = {status: sum(r["status"] == status for r in rows) for status in ("ok", "skipped", "ignored")}
    log.info("%d images prepared, %d bad images skipped, %d files ignored (not images or not included)",
             counts["ok"], counts["skipped"], counts["ignored"])
    return rows, member_splits


def _prepare_member(member, options: dict, filter_name: str, images: Path, seen: dict[str, str]) -> dict:
    """One member prepared into ``images/<stem>.png`` (status ok), or skipped as a bad image
    (``on_bad_image: skip``); its manifest row. A stem seen before is a DataError."""
    where = f"{member.source}:{member.name}"
    if member.stem in seen:
        raise DataError(f"two images named {member.stem!r}: {seen[member.stem]} and {where}")
    seen[member.stem] = where
    payload = member.read()
    row = {
        "stem": member.stem, "source": where,
        "source_sha256": hashlib.sha256(payload).hexdigest(),
        "original_width": None, "original_height": None,
        "width": None, "height": None, "conversions": "", "reason": "",
        "resize_filter": filter_name,
    }
    try:
        prepared = _prepare_filled(payload, where, options)
    except BadImageError as exc:
        if options["on_bad_image"] != "skip":
            raise
        log.warning("skipping %s", exc)
        row.update(status="skipped", reason=str(exc), output="", split="")
        return row
    Image.fromarray(prepared.pixels).save(images / f"{member.stem}.png")
    row.update(
        status="ok",
        original_width=prepared.original_size[0], original_height=prepared.original_size[1],
        width=prepared.pixels.shape[1], height=prepared.pixels.shape[0],
        conversions="; ".join(prepared.conversions),
    )
    return row


def _split_prepared(rows: list[dict], loaded: list[dict], options: dict, member_splits: dict[str, str | None],
                    tmp: Path) -> dict[str, str]:
    """Assigns the prepared images to train / val (:func:`assign_splits`), moves each from
    ``tmp/images`` to ``tmp/<split>`` and fills its row's split and output; stem -> split."""
    ok = [r["stem"] for r in rows if r["status"] == "ok"]
    if not ok:
        raise DataError(f"no usable image in {[r.get('uri') for r in loaded]}")
    official = _official_iids(loaded) if options["split"]["method"] == "iids" else None
    splits = assign_splits(ok, options["split"], member_splits, official)
    for split in ("train", "val"):
        (tmp / split).mkdir()
        if split == "train" and options["split"]["method"] == "all_val":
            continue  # a benchmark: no training images, by design
        if split not in splits.values():
            raise DataError(f"split {split!r} is empty ({options['split']})")
    for row in rows:
        if row["status"] != "ok":
            continue
        row["split"] = splits[row["stem"]]
        row["output"] = f"{row['split']}/{row['stem']}.png"
        os.replace(tmp / "images" / f"{row['stem']}.png", tmp / row["output"])
    (tmp / "images").rmdir()
    return splits


def origin_of(source: str) -> str:
    """The folder of the source member an image came from, from a manifest ``source``
    (``<uri>:<member path>``): ``BSDS300/images/test`` for
    ``https://.../BSDS300-images.tgz:BSDS300/images/test/101085.jpg``; ``.`` for a file at
    the top of a folder or archive."""
    member = str(source).rsplit(":", 1)[-1]
    return posixpath.dirname(member.replace("\\", "/")) or "."


def image_origins(data_dir: str | os.PathLike) -> dict[str, str]:
    """stem -> origin (:func:`origin_of`) of every prepared image of ``data_dir``'s manifest."""
    path = Path(data_dir) / "manifest.csv"
    if not path.is_file():
        raise DataError(f"{path}: manifest not found (run the prepare_dataset rule)")
    manifest = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in ("stem", "status", "source") if c not in manifest.columns]
    if missing:
        raise DataError(f"{path}: manifest lacks the columns {missing}")
    ok = manifest[manifest["status"] == "ok"]
    return {stem: origin_of(source) for stem, source in zip(ok["stem"], ok["source"])}


def list_split(data_dir: str | os.PathLike, split: str) -> list[Path]:
    """The PNGs of one prepared split, sorted."""
    folder = Path(data_dir) / split
    if not folder.is_dir():
        raise DataError(f"{folder}: prepared split not found (run the prepare_dataset rule)")
    return sorted(folder.glob("*.png"))


def image_sets(data: str | os.PathLike, showcase: str | os.PathLike | None = None,
               benchmarks: list | None = None) -> dict:
    """The image sets a run is evaluated on: ``val`` of its dataset, the showcase crops (a
    folder), and each benchmark's val split as a set named after its folder."""
    sets = {"val": list_split(data, "val")}
    if showcase:
        sets["showcase"] = list_split(Path(showcase).parent, Path(showcase).name)
    for folder in benchmarks or []:
        name = Path(folder).name
        if name in sets:
            raise ValueError(f"--benchmarks {folder}: a benchmark cannot be named {name!r} (a set of its own)")
        sets[name] = list_split(folder, "val")
        if not sets[name]:
            raise ValueError(f"--benchmarks {folder}: its val split has no image")
    return sets
