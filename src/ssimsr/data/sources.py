"""Getting a dataset source, and reading the image files of a fetched one.

``fetch_source`` (the download rule) makes one configured source available locally and
verifies it. A source is an http(s)/file URL of an archive, a local archive, a local
folder, or ``skimage:NAME,...`` (colour photographs bundled with scikit-image, for the
offline demo). The result is a *receipt* (JSON): where the data lies, its sha256 and
whether that was checked against a configured value.

``load_receipt`` checks that a receipt's data is still there and unchanged;
``iter_members`` and ``read_text_member`` read the files of a zip, a tar or a folder,
with a damaged archive reported as one line naming the refetch command. What is done
with the images is ``ssimsr.data.data``'s business.

Receipts and the skimage photos are written to a temporary name and renamed when
complete, so a failed job leaves nothing half-written.
"""

from __future__ import annotations

import fnmatch
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
from PIL import Image

from ..io.atomic import write_text
from .download import DataError, DownloadPolicy, download_file, sha256_file, verify_checksum

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
    read-through, rename; see ``ssimsr.data.download``); a file already there that hashes to
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
