"""Data stage: fetch dataset sources and prepare them into PNG splits.

Two steps, one Snakemake rule each:

``fetch_source``
    Makes one configured source available locally and verifies it. A source is an
    http(s)/file URL of an archive, a local archive, a local folder, or
    ``skimage:NAME,...`` (colour photographs bundled with scikit-image, for the offline
    demo). The result is a *receipt* (JSON): where the data lies, its sha256 and whether
    that was checked against a configured value.

``prepare_dataset``
    Decodes every image of the receipts to 8-bit RGB, applies the configured resize,
    rounds each side down to a multiple, splits deterministically and writes
    ``{out}/{split}/{stem}.png``, ``{out}/manifest.csv`` and ``{out}/splits.csv``.

Everything is written to a temporary name and renamed when complete, so a failed job
leaves nothing half-written.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import logging
import os
import shutil
import tarfile
import tempfile
import urllib.parse
import urllib.request
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from .atomic import atomic_path, write_text

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".webp")

# Colour photographs that scikit-image ships inside its wheel (they load offline).
# Name -> loader name in skimage.data; stereo_motorcycle returns (left, right, disparity).
SKIMAGE_PHOTOS = {
    "astronaut": "astronaut",
    "chelsea": "chelsea",
    "coffee": "coffee",
    "rocket": "rocket",
    "immunohistochemistry": "immunohistochemistry",
    "hubble_deep_field": "hubble_deep_field",
    "retina": "retina",
    "motorcycle_left": "stereo_motorcycle",
    "motorcycle_right": "stereo_motorcycle",
}

MANIFEST_COLUMNS = [
    "stem", "split", "status", "output", "source", "source_sha256",
    "original_width", "original_height", "width", "height", "conversions", "reason",
]


class DataError(RuntimeError):
    """A dataset problem; the message names the file, key or value at fault."""


class BadImageError(DataError):
    """An image that cannot be used: truncated, not an image, or too small."""


class ChecksumMismatch(DataError):
    pass


# --------------------------------------------------------------------------- checksums

def file_digest(path: str | os.PathLike, algorithm: str = "sha256", chunk: int = 1 << 20) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    return file_digest(path, "sha256")


def verify_checksum(path: str | os.PathLike, expected: str | None, what: str,
                    algorithm: str = "sha256", prefix: bool = False) -> tuple[str, bool]:
    """Return (actual digest, verified). Raise ChecksumMismatch naming both values.

    ``prefix=True`` accepts an expected value that is the start of the digest (torchvision
    names its files after the first 8 hex digits of their sha256).
    """
    actual = file_digest(path, algorithm)
    if expected is None:
        warnings.warn(
            f"{what}: no {algorithm} configured; recorded the computed {algorithm} {actual}. "
            "Add it to the config to pin this file.",
            stacklevel=2,
        )
        return actual, False
    expected = expected.lower()
    if not (actual.startswith(expected) if prefix else actual == expected):
        raise ChecksumMismatch(
            f"checksum mismatch for {what} ({path}): expected {algorithm} "
            f"{expected}{'...' if prefix else ''}, actual {algorithm} {actual}"
        )
    return actual, True


# --------------------------------------------------------------------------- fetching

def download_file(url: str, dest: Path, expected: str | None, algorithm: str = "sha256",
                  prefix: bool = False, timeout: float = 60.0) -> tuple[str, bool]:
    """Stream ``url`` to a temporary name beside ``dest``; verify, then rename."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            shutil.copyfileobj(response, out, length=1 << 20)
        actual, verified = verify_checksum(tmp, expected, url, algorithm, prefix)
        os.replace(tmp, dest)
        return actual, verified
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def copy_verified(src: Path, dest: Path, expected: str | None, algorithm: str = "sha256",
                  prefix: bool = False) -> tuple[str, bool]:
    """Copy a local file to ``dest`` (temporary name, verify, rename)."""
    if not Path(src).is_file():
        raise DataError(f"{src}: no such file")
    actual, verified = verify_checksum(src, expected, str(src), algorithm, prefix)
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)
    return actual, verified


def is_url(uri: str) -> bool:
    return urllib.parse.urlparse(uri).scheme in ("http", "https", "ftp")


def local_path(uri: str) -> Path:
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme == "file":
        return Path(urllib.request.url2pathname(parsed.path))
    return Path(uri).expanduser()


def _materialise_skimage(names: list[str], folder: Path) -> None:
    """Write scikit-image's bundled photos as PNGs into ``folder`` (atomically)."""
    from skimage import data as skdata

    unknown = [n for n in names if n not in SKIMAGE_PHOTOS]
    if unknown:
        raise DataError(
            f"unknown scikit-image photo(s) {unknown}; choose from {sorted(SKIMAGE_PHOTOS)}"
        )
    tmp = folder.with_name(f".{folder.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in names:
        pixels = getattr(skdata, SKIMAGE_PHOTOS[name])()
        if isinstance(pixels, tuple):  # stereo_motorcycle: (left, right, disparity)
            pixels = pixels[1] if name.endswith("_right") else pixels[0]
        Image.fromarray(np.asarray(pixels)).save(tmp / f"{name}.png")
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)


def fetch_source(source: dict, receipt: str | os.PathLike, download_dir: str | os.PathLike) -> dict:
    """Make one configured source available locally, verify it, and write its receipt.

    URLs are downloaded into ``download_dir`` (temporary name, checksum, rename). Local
    archives are verified in place (DIV2K is 4 GB: no copy). Local folders are used in
    place. ``skimage:`` sources are written as PNGs into ``download_dir``.
    """
    uri = source["uri"]
    expected = source.get("sha256")
    download_dir = Path(download_dir)
    record = {"uri": uri, "expected_sha256": expected}
    if uri.startswith("skimage:"):
        names = [n.strip() for n in uri.split(":", 1)[1].split(",") if n.strip()]
        folder = download_dir / "skimage"
        _materialise_skimage(names, folder)
        record.update(kind="folder", path=str(folder), sha256=None, verified=False)
    elif is_url(uri):
        name = Path(urllib.parse.urlparse(uri).path).name or "download"
        dest = download_dir / name
        actual, verified = download_file(uri, dest, expected)
        record.update(kind="archive", path=str(dest), sha256=actual, verified=verified)
    else:
        path = local_path(uri)
        if path.is_dir():
            if expected is not None:
                raise DataError(f"source {uri}: sha256 is set but {path} is a folder; remove it")
            record.update(kind="folder", path=str(path.resolve()), sha256=None, verified=False)
        elif path.is_file():
            actual, verified = verify_checksum(path, expected, uri)
            record.update(kind="archive", path=str(path.resolve()), sha256=actual, verified=verified)
        else:
            raise DataError(f"source {uri!r}: no such file or folder ({path})")
    if record["kind"] == "archive" and not record["verified"]:
        record["note"] = "no sha256 configured: computed value recorded, not checked"
    write_text(receipt, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return record


# --------------------------------------------------------------------------- reading

@dataclass
class Member:
    """One image file inside a source: a name (relative path) and a way to read bytes."""

    source: str        # receipt path or uri, for messages
    name: str          # path inside the archive/folder
    split: str | None  # from the source's `split` key
    _reader: object = field(repr=False)

    @property
    def stem(self) -> str:
        return Path(self.name).stem

    def read(self) -> bytes:
        return self._reader()


def _wanted(name: str, include: str) -> bool:
    base = os.path.basename(name)
    if base.startswith(".") or "__MACOSX" in name:
        return False
    if not name.lower().endswith(IMAGE_EXTENSIONS):
        return False
    return include in ("**", "*") or fnmatch.fnmatch(name, include)


def iter_members(receipt: dict, include: str = "**", split: str | None = None) -> Iterator[Member]:
    """Yield the image members of one fetched source, sorted by name."""
    path = Path(receipt["path"])
    where = receipt.get("uri", str(path))
    if where.startswith("skimage:"):
        where = "skimage"
    if receipt["kind"] == "folder":
        names = sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())
        for name in names:
            if _wanted(name, include):
                yield Member(where, name, split, lambda p=path / name: p.read_bytes())
    elif zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names = sorted(i.filename for i in zf.infolist() if not i.is_dir())
            for name in names:
                if _wanted(name, include):
                    yield Member(where, name, split, lambda n=name: zf.read(n))
    elif tarfile.is_tarfile(path):
        with tarfile.open(path) as tf:
            infos = sorted((i for i in tf.getmembers() if i.isfile()), key=lambda i: i.name)
            for info in infos:
                if _wanted(info.name, include):
                    yield Member(where, info.name, split, lambda i=info: tf.extractfile(i).read())
    else:
        raise DataError(f"{path}: not a zip or tar archive, nor a folder (source {where})")


def read_text_member(receipt: dict, suffix: str) -> str | None:
    """Text of the first member whose name ends with ``suffix`` (e.g. BSDS300 iids files)."""
    path = Path(receipt["path"])
    if receipt["kind"] == "folder":
        hits = sorted(path.rglob(f"*{suffix}"))
        return hits[0].read_text() if hits else None
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            for name in sorted(zf.namelist()):
                if name.endswith(suffix):
                    return zf.read(name).decode()
        return None
    with tarfile.open(path) as tf:
        for info in sorted(tf.getmembers(), key=lambda i: i.name):
            if info.isfile() and info.name.endswith(suffix):
                return tf.extractfile(info).read().decode()
    return None


# --------------------------------------------------------------------------- decoding

def decode_rgb8(payload: bytes, name: str) -> tuple[np.ndarray, list[str]]:
    """Decode image bytes to an HxWx3 uint8 array and the conversions applied.

    Grayscale is replicated to three channels, alpha (RGBA, LA, palette transparency)
    is dropped, palettes are expanded and 16-bit samples are scaled to 8 bits
    (round(v * 255 / 65535)). Raises BadImageError naming ``name``.
    """
    conversions: list[str] = []
    try:
        with Image.open(io.BytesIO(payload)) as img:
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


def _bicubic(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    img = Image.fromarray(rgb).resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(img)


def apply_resize(rgb: np.ndarray, resize: dict | None) -> tuple[np.ndarray, list[str]]:
    """The offline resize of the paper: exact WxH, or the longer side to ``size``."""
    if not resize:
        return rgb, []
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
    return _bicubic(rgb, new_w, new_h), [f"resize {w}x{h}->{new_w}x{new_h}"]


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
    """Decode, resize and round one image; BadImageError if it is unusable."""
    rgb, conversions = decode_rgb8(payload, name)
    original = (rgb.shape[1], rgb.shape[0])
    rgb, steps = apply_resize(rgb, options.get("resize"))
    conversions += steps
    rgb, steps = round_to_multiple(rgb, options.get("multiple", 16), options.get("multiple_mode", "resize"))
    conversions += steps
    min_side = max(options.get("min_side", 32), options.get("multiple", 16), options.get("scale", 2))
    h, w = rgb.shape[:2]
    if min(h, w) < min_side:
        raise BadImageError(
            f"{name}: too small ({original[0]}x{original[1]} -> {w}x{h}); every side must be "
            f">= {min_side} px (min_side / multiple / scale)"
        )
    if h % options.get("scale", 2) or w % options.get("scale", 2):
        raise BadImageError(f"{name}: size {w}x{h} is not a multiple of scale {options.get('scale', 2)}")
    return Prepared(rgb, original, conversions)


# --------------------------------------------------------------------------- splitting

def assign_splits(stems: list[str], split: dict, member_splits: dict[str, str | None],
                  official: dict[str, str] | None = None) -> dict[str, str]:
    """Map every stem to 'train' or 'val', deterministically.

    random: a permutation of the sorted stems by numpy's default_rng(seed); the first
    n_val go to val. iids: the official lists (``official`` maps stem -> split).
    by_source: each source's ``split`` key. fixed: stems listed in ``val``.
    """
    method = split["method"]
    ordered = sorted(stems)
    if method == "random":
        n_val = split.get("n_val")
        if n_val is None:
            raise DataError("split.n_val is required for split method 'random'")
        if n_val >= len(ordered):
            raise DataError(f"split.n_val={n_val} leaves no training image ({len(ordered)} images)")
        order = np.random.default_rng(split.get("seed", 0)).permutation(len(ordered))
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
    loaded = [json.loads(Path(r).read_text()) for r in receipts]
    on_bad = options.get("on_bad_image", "error")

    tmp = out_dir.with_name(f".{out_dir.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "images").mkdir(parents=True)
    rows: list[dict] = []
    member_splits: dict[str, str | None] = {}
    seen: dict[str, str] = {}
    try:
        for receipt, source in zip(loaded, sources):
            for member in iter_members(receipt, source.get("include", "**"), source.get("split")):
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
                }
                try:
                    prepared = prepare_image(payload, where, options)
                except BadImageError as exc:
                    if on_bad != "skip":
                        raise
                    log.warning("skipping %s", exc)
                    row.update(status="skipped", reason=str(exc), output="", split="")
                    rows.append(row)
                    continue
                Image.fromarray(prepared.pixels).save(tmp / "images" / f"{member.stem}.png")
                row.update(
                    status="ok",
                    original_width=prepared.original_size[0], original_height=prepared.original_size[1],
                    width=prepared.pixels.shape[1], height=prepared.pixels.shape[0],
                    conversions="; ".join(prepared.conversions),
                )
                member_splits[member.stem] = member.split
                rows.append(row)

        ok = [r["stem"] for r in rows if r["status"] == "ok"]
        if not ok:
            raise DataError(f"no usable image in {[r.get('uri') for r in loaded]}")
        official = _official_iids(loaded) if options["split"]["method"] == "iids" else None
        splits = assign_splits(ok, options["split"], member_splits, official)
        for split in ("train", "val"):
            (tmp / split).mkdir()
            if split not in splits.values():
                raise DataError(f"split {split!r} is empty ({options['split']})")
        for row in rows:
            if row["status"] != "ok":
                continue
            row["split"] = splits[row["stem"]]
            row["output"] = f"{row['split']}/{row['stem']}.png"
            os.replace(tmp / "images" / f"{row['stem']}.png", tmp / row["output"])
        (tmp / "images").rmdir()

        manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS).sort_values(["split", "stem"])
        manifest.to_csv(tmp / "manifest.csv", index=False)
        pd.DataFrame(sorted(splits.items()), columns=["stem", "split"]).to_csv(tmp / "splits.csv", index=False)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def list_split(data_dir: str | os.PathLike, split: str) -> list[Path]:
    """The PNGs of one prepared split, sorted."""
    folder = Path(data_dir) / split
    if not folder.is_dir():
        raise DataError(f"{folder}: prepared split not found (run the prepare_dataset rule)")
    return sorted(folder.glob("*.png"))
