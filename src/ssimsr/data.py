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
import lzma
import os
import shutil
import tarfile
import urllib.parse
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from .atomic import write_text
from .download import (  # noqa: F401  re-exported: data.DataError etc. are the public names
    ChecksumMismatch,
    DataError,
    DownloadError,
    DownloadPolicy,
    copy_verified,
    download_file,
    file_digest,
    sha256_file,
    verify_checksum,
)

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


class BadImageError(DataError):
    """An image that cannot be used: truncated, not an image, or too small."""


class StaleCacheError(DataError):
    """A receipt whose file is gone, changed, or no longer reads: refetch it."""


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


def _archive_kind(path: Path) -> str | None:
    if zipfile.is_zipfile(path):
        return "zip"
    if tarfile.is_tarfile(path):
        return "tar"
    return None


# What a damaged archive raises while it is read (tar/gzip/bz2/xz/zip, and zlib inside zip).
ARCHIVE_ERRORS = (EOFError, zlib.error, tarfile.TarError, zipfile.BadZipFile, lzma.LZMAError, OSError)


def check_archive(path: str | os.PathLike, what: str | None = None, name: str | None = None) -> int:
    """Read a zip or tar archive through once; return its number of files.

    Every tar member is decompressed to the end; every zip member's CRC is checked. A
    damaged archive raises DataError naming the archive (``name``, default the file's) and
    the member being read.
    """
    path = Path(path)
    what = what or str(path)
    kind = _archive_kind(path)
    if kind is None:
        raise DataError(f"{what}: not a zip or tar archive ({path})")
    member = "(the archive index)"
    count = 0
    try:
        if kind == "zip":
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist():
                    if info.is_dir():
                        continue
                    member = info.filename
                    with zf.open(info) as f:  # ZipExtFile checks the CRC when it reaches the end
                        while f.read(1 << 20):
                            pass
                    count += 1
        else:
            with tarfile.open(path, "r|*") as tf:  # stream mode: one sequential pass
                for info in tf:
                    member = info.name
                    if info.isfile():
                        f = tf.extractfile(info)
                        while f.read(1 << 20):
                            pass
                        count += 1
                member = "(the end of the archive)"
    except ARCHIVE_ERRORS as exc:
        raise DataError(f"{what}: corrupt archive {name or path.name}: member {member}: "
                        f"{type(exc).__name__}: {exc}") from None
    return count


def fetch_source(source: dict, receipt: str | os.PathLike, download_dir: str | os.PathLike,
                 policy: DownloadPolicy | None = None) -> dict:
    """Make one configured source available locally, verify it, and write its receipt.

    URLs are downloaded into ``download_dir`` (temporary name, retries, checksum, archive
    read-through, rename; see ``ssimsr.download``); a file already there that hashes to
    the configured sha256 is reused. Local archives are verified and read through in place
    (DIV2K is 4 GB: no copy). Local folders are used in place. ``skimage:`` sources are
    written as PNGs into ``download_dir``. No receipt is written unless all checks passed.
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
        if expected is not None and dest.is_file() and sha256_file(dest) == expected:
            log.info("%s: %s is already here with the configured sha256; not downloading again", uri, dest)
            check_archive(dest, uri)
            actual, verified = expected, True
        else:
            def read_through(tmp: Path) -> None:
                try:
                    check_archive(tmp, uri, dest.name)
                except DataError as exc:
                    raise DataError(f"{exc}; the download was removed: rerun to fetch it again, or "
                                    "the server's file is damaged") from None

            actual, verified = download_file(uri, dest, expected, policy=policy, check=read_through)
        record.update(kind="archive", path=str(dest), sha256=actual, verified=verified)
    else:
        path = local_path(uri)
        if path.is_dir():
            if expected is not None:
                raise DataError(f"source {uri}: sha256 is set but {path} is a folder; remove it")
            record.update(kind="folder", path=str(path.resolve()), sha256=None, verified=False)
        elif path.is_file():
            actual, verified = verify_checksum(path, expected, uri)
            try:
                check_archive(path, uri)
            except DataError as exc:
                raise DataError(f"{exc}; replace the local file {path}") from None
            record.update(kind="archive", path=str(path.resolve()), sha256=actual, verified=verified)
        else:
            raise DataError(f"source {uri!r}: no such file or folder ({path})")
    if record["kind"] == "archive" and not record["verified"]:
        record["note"] = "no sha256 configured: computed value recorded, not checked"
    write_text(receipt, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return record


# --------------------------------------------------------------------------- reading

def refetch_hint(receipt: dict) -> str:
    """What to run so the workflow fetches a source again."""
    path = receipt.get("receipt", "<receipt>")
    if receipt.get("kind") == "archive" and not is_url(receipt.get("uri", "")):
        return f"replace the local archive {receipt['path']}, then refetch it with: snakemake --cores 1 --force {path}"
    return f"refetch it with: snakemake --cores 1 --force {path}"


def load_receipt(path: str | os.PathLike) -> dict:
    """A receipt whose data is still there and unchanged; StaleCacheError otherwise.

    The archive is hashed again: a file replaced, truncated or damaged since the fetch
    must not be prepared under the receipt's checksum.
    """
    path = Path(path)
    try:
        record = json.loads(path.read_text())
        record["path"]
        record["kind"]
    except FileNotFoundError:
        raise DataError(f"{path}: receipt not found (run the download rule first)") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise StaleCacheError(f"{path}: unreadable receipt ({type(exc).__name__}: {exc}); "
                              f"refetch it with: snakemake --cores 1 --force {path}") from None
    record["receipt"] = str(path)
    data_path = Path(record["path"])
    if record["kind"] == "folder":
        if not data_path.is_dir():
            raise StaleCacheError(f"{path}: the folder {data_path} is gone; {refetch_hint(record)}")
        return record
    if not data_path.is_file():
        raise StaleCacheError(f"{path}: the archive {data_path} is gone; {refetch_hint(record)}")
    recorded = record.get("sha256")
    if recorded:
        actual = sha256_file(data_path)
        if actual != recorded:
            raise StaleCacheError(f"{path}: {data_path} changed since it was fetched (sha256 {actual}, "
                                  f"recorded {recorded}); {refetch_hint(record)}")
    return record


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


@dataclass
class Ignored:
    """A file of a source that is not used, and why (listed in the manifest)."""

    source: str
    name: str
    reason: str


def ignore_reason(name: str, include: str) -> str | None:
    """Why a member is not used as an image, or None if it is."""
    base = os.path.basename(name)
    if "__MACOSX" in name.split("/"):
        return "macOS resource fork (__MACOSX)"
    if base.startswith("."):
        return "hidden file"
    if not name.lower().endswith(IMAGE_EXTENSIONS):
        suffix = Path(name).suffix
        return f"not an image ({'extension ' + suffix if suffix else 'no extension'})"
    if include not in ("**", "*") and not fnmatch.fnmatch(name, include):
        return f"not matched by include {include!r}"
    return None


def _guarded(receipt: dict, name: str, read):
    """``read()``, with a damaged archive turned into one line with the refetch command."""
    try:
        return read()
    except ARCHIVE_ERRORS as exc:
        if isinstance(exc, OSError) and receipt["kind"] == "folder":
            raise
        raise StaleCacheError(f"{receipt['path']}: cannot read member {name} ({type(exc).__name__}: {exc}); "
                              f"the archive is damaged; {refetch_hint(receipt)}") from None


def iter_members(receipt: dict, include: str = "**", split: str | None = None,
                 ignored: list[Ignored] | None = None) -> Iterator[Member]:
    """Yield the image members of one fetched source, sorted by name.

    Files that are not used (not images, hidden, not matched by ``include``) are appended
    to ``ignored`` when a list is given.
    """
    path = Path(receipt["path"])
    where = receipt.get("uri", str(path))
    if where.startswith("skimage:"):
        where = "skimage"

    def sort_out(names):
        for name in names:
            reason = ignore_reason(name, include)
            if reason is None:
                yield name
            elif ignored is not None:
                ignored.append(Ignored(where, name, reason))

    if receipt["kind"] == "folder":
        names = sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())
        for name in sort_out(names):
            yield Member(where, name, split, lambda p=path / name: p.read_bytes())
        return
    kind = _guarded(receipt, "(the archive index)", lambda: _archive_kind(path))
    if kind == "zip":
        zf = _guarded(receipt, "(the archive index)", lambda: zipfile.ZipFile(path))
        with zf:
            names = sorted(i.filename for i in zf.infolist() if not i.is_dir())
            for name in sort_out(names):
                yield Member(where, name, split, lambda n=name: _guarded(receipt, n, lambda: zf.read(n)))
    elif kind == "tar":
        tf = _guarded(receipt, "(the archive index)", lambda: tarfile.open(path))
        with tf:
            members = _guarded(receipt, "(the archive index)", tf.getmembers)
            infos = sorted((i for i in members if i.isfile()), key=lambda i: i.name)
            by_name = {i.name: i for i in infos}
            for name in sort_out(list(by_name)):
                info = by_name[name]
                yield Member(where, name, split,
                             lambda i=info: _guarded(receipt, i.name, lambda: tf.extractfile(i).read()))
    else:
        raise StaleCacheError(f"{path}: not a zip or tar archive, nor a folder (source {where}); "
                              f"{refetch_hint(receipt)}")


def read_text_member(receipt: dict, suffix: str) -> str | None:
    """Text of the first member whose name ends with ``suffix`` (e.g. BSDS300 iids files)."""
    path = Path(receipt["path"])
    if receipt["kind"] == "folder":
        hits = sorted(path.rglob(f"*{suffix}"))
        return hits[0].read_text() if hits else None

    def find():
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

    return _guarded(receipt, f"*{suffix}", find)


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
    loaded = [load_receipt(r) for r in receipts]
    on_bad = options.get("on_bad_image", "error")

    tmp = out_dir.with_name(f".{out_dir.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "images").mkdir(parents=True)
    rows: list[dict] = []
    member_splits: dict[str, str | None] = {}
    seen: dict[str, str] = {}
    ignored: list[Ignored] = []
    try:
        for receipt, source in zip(loaded, sources):
            for member in iter_members(receipt, source.get("include", "**"), source.get("split"), ignored):
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

        for item in ignored:
            log.info("ignored %s:%s: %s", item.source, item.name, item.reason)
            rows.append({"stem": Path(item.name).stem, "split": "", "status": "ignored", "output": "",
                         "source": f"{item.source}:{item.name}", "source_sha256": "", "conversions": "",
                         "reason": item.reason})
        counts = {status: sum(r["status"] == status for r in rows) for status in ("ok", "skipped", "ignored")}
        log.info("%d images prepared, %d bad images skipped, %d files ignored (not images or not included)",
                 counts["ok"], counts["skipped"], counts["ignored"])

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


def list_split(data_dir: str | os.PathLike, split: str) -> list[Path]:
    """The PNGs of one prepared split, sorted."""
    folder = Path(data_dir) / split
    if not folder.is_dir():
        raise DataError(f"{folder}: prepared split not found (run the prepare_dataset rule)")
    return sorted(folder.glob("*.png"))
