"""A benchmark's printout: to standard output and, with ``--out FILE``, to its record file."""

from __future__ import annotations

from pathlib import Path


def emit(lines: list[str], out: str | None) -> None:
    """Print ``lines`` and, where ``out`` names a file, write them there too (a record)."""
    text = "\n".join(lines)
    print(text)
    if out:
        Path(out).write_text(text + "\n")
