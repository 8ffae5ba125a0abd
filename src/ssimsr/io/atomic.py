"""Write outputs under a temporary name and rename them when complete.

A job killed half-way, or failing, leaves either the previous file or nothing, never a
half-written one: ``os.replace`` within one folder is atomic.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix, so writers that go by the
    extension still work); rename it onto ``path`` on success, remove it on failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    try:
        try:
            yield tmp
            os.replace(tmp, path)
        except OSError as exc:
            named = _naming(exc, path, tmp)
            if named is None:
                raise
            raise named from exc
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def _naming(exc: OSError, path: Path, tmp: Path) -> OSError | None:
    """``exc`` (raised writing ``tmp``, or renaming it) as an error naming the destination
    ``path`` ("No space left on device" alone does not say where), errno kept (so its
    subclass too: ``OSError(errno.ENOENT, ...)`` is a FileNotFoundError). None: keep ``exc``
    (it names another file, e.g. a copy's source, or is a library's own OSError subclass)."""
    where = path
    if isinstance(exc.filename, (str, bytes, os.PathLike)):
        name = Path(os.fsdecode(exc.filename))
        if name == tmp or tmp in name.parents:  # tmp, or a file in a temporary folder
            where = path / name.relative_to(tmp)
        elif name != path:
            return None
    if str(exc).startswith(f"{where}: ") or (exc.strerror or "").startswith(f"{where}: "):
        return None  # named already (an inner atomic_path)
    if exc.errno is not None:
        return OSError(exc.errno, f"{where}: {exc.strerror or exc}")
    if type(exc) is OSError:  # e.g. Pillow's "cannot write mode P as JPEG"
        return OSError(f"{where}: {exc}")
    return None


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_csv(frame, path: str | os.PathLike) -> None:
    """A pandas DataFrame to CSV (no index), atomically."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
