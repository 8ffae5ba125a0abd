"""Atomic writes: a failed write leaves the previous file (or nothing) and no temporary file,
and its error names the destination ("No space left on device" alone does not say where),
keeping the errno (and so its OSError subclass)."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ssimsr.io import atomic
from ssimsr.io.atomic import atomic_path, write_csv, write_text

ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # what a write on a full disk raises


def _full_disk_after(n_bytes: int):
    """A ``Path.write_text`` that writes ``n_bytes`` of the text, then finds the disk full."""
    def write_text(self, data, *args, **kwargs):
        with open(self, "w") as f:
            f.write(data[:n_bytes])
            f.flush()
            raise OSError(ENOSPC.errno, ENOSPC.strerror)
    return write_text


def test_no_space_while_writing_names_the_file_and_leaves_the_old_one(tmp_path, monkeypatch):
    path = tmp_path / "sub" / "params.json"
    write_text(path, "old\n")
    monkeypatch.setattr(Path, "write_text", _full_disk_after(3))
    with pytest.raises(OSError) as info:
        write_text(path, '{"model": "sr"}\n')
    assert info.value.errno == errno.ENOSPC
    assert str(path) in str(info.value) and os.strerror(errno.ENOSPC) in str(info.value), str(info.value)
    monkeypatch.undo()
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["params.json"]  # no temporary file left


def test_no_space_on_a_csv_names_the_file_and_leaves_nothing(tmp_path, monkeypatch):
    def full(self, target, *args, **kwargs):
        Path(target).write_bytes(b"epoch,psnr\n0,")  # half a file, then the disk is full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    path = tmp_path / "history.csv"
    with pytest.raises(OSError, match=f"{path}: No space left on device") as info:
        write_csv(pd.DataFrame({"epoch": [0], "psnr": [20.0]}), path)
    assert info.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []


def test_a_failed_rename_names_the_destination_not_the_temporary_file(tmp_path, monkeypatch):
    """os.replace's own error names both files (the temporary one first); the destination is
    what a user knows."""
    def replace(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(src), None, str(dst))

    monkeypatch.setattr(atomic.os, "replace", replace)
    path = tmp_path / "state.npz"
    with pytest.raises(OSError) as info:
        with atomic_path(path) as tmp:
            np.savez(tmp, x=np.zeros(3))
    monkeypatch.undo()
    assert info.value.errno == errno.ENOSPC
    assert str(info.value) == f"[Errno {errno.ENOSPC}] {path}: No space left on device"
    assert ".tmp" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_the_errno_and_its_subclass_are_kept(tmp_path):
    """An error opening the temporary file (named in it) names the destination and keeps its
    class (callers test errno or catch PermissionError / FileNotFoundError)."""
    path = tmp_path / "out.png"
    with pytest.raises(PermissionError) as info:
        with atomic_path(path) as tmp:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(tmp))
    assert info.value.errno == errno.EACCES and str(path) in str(info.value)
    assert ".tmp" not in str(info.value)
    assert isinstance(info.value.__cause__, PermissionError)  # the original, for -v tracebacks
    # an error about another file (a copy's missing source) names that file, as it did
    missing = tmp_path / "missing.h5"
    with pytest.raises(FileNotFoundError) as info:
        with atomic_path(tmp_path / "weights.h5") as tmp:
            shutil.copyfile(missing, tmp)
    assert str(missing) in str(info.value) and "weights.h5" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_a_file_in_a_temporary_folder_is_named_in_the_destination_folder(tmp_path):
    path = tmp_path / "recon"
    with pytest.raises(OSError) as info:
        with atomic_path(path) as tmp:
            tmp.mkdir()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp / "val" / "a.png"))
    assert str(path / "val" / "a.png") in str(info.value) and info.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []


def test_a_writers_own_oserror_names_the_file(tmp_path):
    """Pillow's OSError without an errno ("cannot write mode RGBA as JPEG") names the file too."""
    path = tmp_path / "x2.jpg"
    with pytest.raises(OSError) as info:
        with atomic_path(path) as tmp:
            Image.fromarray(np.zeros((4, 4, 4), np.uint8), "RGBA").save(tmp, format="JPEG")
    assert str(info.value).startswith(f"{path}: ") and "RGBA" in str(info.value), str(info.value)
    assert list(tmp_path.iterdir()) == []

