"""Models that travel: a trained run as one file (``ssimsr export``), and the way back.

An export is a zip named ``<run>.ssimsr.zip`` holding the run's files as the workflow lays
them out (``upscaler.keras``, ``downscaler.keras``, ``params.json``, and ``provenance.json``
and ``history.csv`` where present), a ``MODEL_CARD.md`` (what the model is, how it was
trained and scored, how to use it) and a ``MANIFEST.json``: the format and its version, and
the sha256 and size of every other member. The downscaler is always included, learned (IRN)
or not (SR: fixed decimation, no weights to speak of), so an unpacked export is a complete
run folder and ``upscale.load_run`` loads it as it loads any run: the same networks, byte
for byte, so the same pixels. Members are written in a fixed order with a fixed timestamp,
so exporting a run twice gives the same file (the same sha256).

``ssimsr upscale`` takes a run folder, an export file or an ``https://`` URL of one with its
``--sha256``: the URL is fetched with ``download.download_file`` (retries, resume, the
checksum checked before the file gets its name) into the cache folder
``$XDG_CACHE_HOME/ssimsr/models`` (default ``~/.cache/ssimsr/models``) as
``<sha256>.ssimsr.zip``, and used from there next time once its sha256 is checked again.
An export is checked in full before anything is unpacked: a file that is not a zip, has no
manifest, names an unknown format version, or holds a member whose sha256 is not the
manifest's is refused in one line naming it.

A study's models: the workflow's export_models rule exports every run of the report's
table1 study into ``results/models/`` and lists them in ``results/models/index.csv``
(:func:`export_models`: run, file, size, sha256, the ssimsr version that exported it and
the one that trained it), which the report shows.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import logging
import os
import re
import shutil
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Iterator

from ..io.atomic import atomic_path, write_text
from ..data.download import ChecksumMismatch, DataError, DownloadPolicy, download_file, sha256_file

#: in no code digest, its imports not followed (ssimsr.pipeline.code_digest)
DIGEST_EXCLUDED = "packs and unpacks run folders, every member sha256-checked: the networks are the run's files"

log = logging.getLogger(__name__)

FORMAT = "ssimsr-export"
FORMAT_VERSION = 1  # the versions this code reads: FORMAT_VERSION only
SUFFIX = ".ssimsr.zip"
MANIFEST = "MANIFEST.json"
MODEL_CARD = "MODEL_CARD.md"
#: the run folder's files an export carries (the first three are required), in this order
REQUIRED = ("params.json", "upscaler.keras", "downscaler.keras")
OPTIONAL = ("provenance.json", "history.csv")
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # a fixed member timestamp: the same run gives the same file
_SHA256 = re.compile(r"[0-9a-f]{64}")


class ExportError(DataError):
    """A file that is not a readable export; the message names it (and the member at fault)."""


def is_url(run: str | os.PathLike) -> bool:
    return isinstance(run, str) and run.lower().startswith(("https://", "http://"))


def check_sha256(value: str) -> str:
    """A sha256 as 64 hex digits (lower case); ValueError naming it otherwise."""
    if not _SHA256.fullmatch(value.strip().lower()):
        raise ValueError(f"--sha256 {value!r}: not a sha256 (64 hex digits)")
    return value.strip().lower()


# --------------------------------------------------------------------------- writing

def default_name(run: Path) -> str:
    """The export's file name: the run's path under ``train/`` joined by dashes
    (``table1-corrected-sr-bsds300-ls1-b4c4-b5c4-seed0.ssimsr.zip``), else the folder's name."""
    parts = run.resolve().parts
    if "train" in parts[:-1]:
        parts = parts[len(parts) - parts[::-1].index("train"):]
    else:
        parts = parts[-1:]
    return "-".join(parts) + SUFFIX


def final_validation(history: Path) -> dict | None:
    """The last validation row of ``history.csv``: epoch, psnr, ssim; None without one."""
    if not history.is_file():
        return None
    with open(history, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("split") == "val"]
    if not rows:
        return None
    last = rows[-1]
    return {"epoch": int(last["epoch"]), "psnr": float(last["psnr"]), "ssim": float(last["ssim"])}


def _provenance_line(provenance: dict | None) -> str:
    if not provenance:
        return "No provenance.json in the run folder."
    commit = provenance.get("git_commit")
    commit = (f"commit {commit}" + (" (with uncommitted changes)" if provenance.get("git_dirty") else "")
              if commit else "no git commit recorded")
    return (f"Trained by ssimsr {provenance.get('ssimsr', '?')}, {commit}, train code digest "
            f"{provenance.get('code_digest', '?')}; Python {provenance.get('python', '?')}, numpy "
            f"{provenance.get('numpy', '?')}, Keras {provenance.get('keras', '?')} on "
            f"{provenance.get('backend', '?')} {provenance.get('backend_version', '')}".rstrip()
            + f"; written {provenance.get('written', '?')} on {provenance.get('host', '?')}.")


def model_card(name: str, params: dict, provenance: dict | None, scores: dict | None,
               members: dict[str, dict]) -> str:
    """MODEL_CARD.md: the model, its training, its final validation scores, provenance, use."""
    from ..registry import architecture, discover

    discover()
    model, scale = params.get("model", "?"), params.get("scale", "?")
    learned = architecture(model).learned_downscaler
    if learned:
        what = (f"learned downscaler and upscaler (x{scale}); `ssimsr upscale` runs the round trip: the "
                "image is downscaled by the learned downscaler, then upscaled to its own size")
    else:
        what = (f"upscaler (x{scale}); the downscaler is weight-free decimation (not learned), included so "
                f"that the export is a complete run folder; `ssimsr upscale` makes an image x{scale} larger")
    weights = ", ".join(f"{k}={v}" for k, v in sorted((params.get("loss_weights") or {}).items()))
    widths = ", ".join(f"{k}={v}" for k, v in sorted((params.get("widths") or {}).items())) or "the paper's"
    score = (f"PSNR {scores['psnr']:.2f} dB, SSIM {scores['ssim']:.4f} (epoch {scores['epoch']}, "
             "last validation row of history.csv)" if scores else "no history.csv in the run folder")
    rows = [("Model", f"{model}: {what}"), ("Widths", widths), ("Dataset", params.get("dataset", "?")),
            ("Scale", f"x{scale}"), ("Loss weights", weights or "?"), ("Epochs", params.get("epochs", "?")),
            ("Seed", params.get("seed", "?")), ("Backend, precision",
                                                 f"{params.get('backend', '?')}, {params.get('precision', '?')}"),
            ("Final validation", score)]
    files = "\n".join(f"- `{n}`: {m['size']} bytes, sha256 `{m['sha256']}`" for n, m in members.items())
    return "\n".join([
        f"# ssimsr model: {name}", "",
        "| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows), "",
        "## Provenance", "", _provenance_line(provenance), "",
        f"All parameters: `params.json`. Files (their sha256 also in `{MANIFEST}`):", "", files, "",
        "## How to use it", "",
        "With ssimsr installed (`pip install .` in a checkout of the project):", "",
        f"    ssimsr upscale {name}{SUFFIX} photo.png photo_x{scale}.png",
        f"    ssimsr upscale https://example.org/{name}{SUFFIX} --sha256 <sha256 of the export> "
        f"photo.png photo_x{scale}.png", "",
        "The export's own sha256 is the one `ssimsr export` printed; a URL needs it. Large images "
        "are processed in tiles (`--tile`); `ssimsr upscale --help` lists the options.", ""])


def _member(data: bytes) -> dict:
    return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def export_run(run: str | os.PathLike, out: str | os.PathLike | None = None) -> tuple[Path, str]:
    """Write run folder ``run`` as one export file ``out`` (default: ``default_name`` in the
    current folder; ``out`` a folder, or ending in ``/``: in it), atomically. Returns (path,
    its sha256)."""
    from .. import __version__
    from ..training.checkpoints import check_run_files
    from .upscale import RunNotFound

    run = Path(run)
    missing = [n for n in REQUIRED if not (run / n).is_file()]
    if missing:
        raise RunNotFound(f"{run}: not a trained run (missing {', '.join(missing)})")
    check_run_files(run)  # unreadable networks are named (and moved aside) before anything is written
    if out is None:
        out = Path(default_name(run))
    elif Path(out).is_dir() or str(out).endswith(("/", os.sep)):  # a folder: the default name in it
        out = Path(out) / default_name(run)
    out = Path(out)
    name = out.name[:-len(SUFFIX)] if out.name.endswith(SUFFIX) else out.stem
    data = {n: (run / n).read_bytes() for n in (*REQUIRED, *OPTIONAL) if (run / n).is_file()}
    params = json.loads(data["params.json"])
    provenance = json.loads(data["provenance.json"]) if "provenance.json" in data else None
    members = {n: _member(b) for n, b in data.items()}
    card = model_card(name, params, provenance, final_validation(run / "history.csv"), members).encode()
    data[MODEL_CARD], members[MODEL_CARD] = card, _member(card)
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "ssimsr": __version__,
                "model": params.get("model"), "scale": params.get("scale"), "files": members}
    data[MANIFEST] = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    with atomic_path(out) as tmp, zipfile.ZipFile(tmp, "w") as archive:
        for member in (MANIFEST, MODEL_CARD, *(n for n in data if n not in (MANIFEST, MODEL_CARD))):
            info = zipfile.ZipInfo(member, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data[member])
    return out, sha256_file(out)


#: the columns of a study's export index (:func:`export_models`, the report's "Models")
INDEX_COLUMNS = ("run", "file", "size", "sha256", "model", "scale", "exported_by", "trained_by")


def _trained_by(run: Path) -> str:
    """The run's provenance in a few words: ``ssimsr 0.1.0, commit 1a2b3c4d5e6f (dirty)``."""
    try:
        record = json.loads((run / "provenance.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "no provenance.json"
    commit = record.get("git_commit")
    where = f", commit {commit[:12]}" + (" (dirty)" if record.get("git_dirty") else "") if commit else ""
    return f"ssimsr {record.get('ssimsr', '?')}{where}"


def export_models(runs: list[str | os.PathLike], index: str | os.PathLike) -> list[dict]:
    """Export each run folder of ``runs`` (:func:`export_run`) into the folder of ``index``
    under its default name, then write ``index``: a CSV of :data:`INDEX_COLUMNS`, one row per
    run in the order given (``file`` relative to the index's folder; ``exported_by`` the
    ssimsr version that wrote the file, ``trained_by`` the run's provenance). The report's
    list of a study's models (the export_models rule); its rows."""
    from .. import __version__

    index = Path(index)
    rows = []
    for run in map(Path, runs):
        path, sha256 = export_run(run, index.parent / default_name(run))
        params = json.loads((run / "params.json").read_text(encoding="utf-8"))
        rows.append({"run": str(run), "file": path.name, "size": path.stat().st_size, "sha256": sha256,
                     "model": params.get("model"), "scale": params.get("scale"),
                     "exported_by": f"ssimsr {__version__}", "trained_by": _trained_by(run)})
        log.info("%s: %s (%d bytes, sha256 %s)", run, path, rows[-1]["size"], sha256)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=INDEX_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(index, buffer.getvalue())
    return rows


# --------------------------------------------------------------------------- reading

def read_manifest(path: str | os.PathLike) -> dict:
    """The manifest of export ``path``, after checking every member against it; ExportError
    (one line naming the file, and the member at fault) otherwise."""
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ExportError(f"{path}: not an ssimsr export (not a zip file: {exc})") from None
    with archive:
        try:
            manifest = json.loads(archive.read(MANIFEST))
        except KeyError:
            raise ExportError(f"{path}: not an ssimsr export (no {MANIFEST})") from None
        except (ValueError, zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
            raise ExportError(f"{path}: {MANIFEST} is unreadable ({exc})") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise ExportError(f"{path}: not an ssimsr export ({MANIFEST} does not say format {FORMAT!r})")
        if manifest.get("format_version") != FORMAT_VERSION:
            raise ExportError(f"{path}: export format version {manifest.get('format_version')!r} is not one "
                              f"this ssimsr reads (version {FORMAT_VERSION}); use a newer ssimsr")
        files = manifest.get("files") if isinstance(manifest.get("files"), dict) else {}
        lacking = [n for n in REQUIRED if n not in files]
        if lacking:
            raise ExportError(f"{path}: {MANIFEST} lists no {', '.join(lacking)}; not a complete export")
        for name, entry in files.items():
            _check_member(path, archive, name, entry)
    return manifest


def _check_member(path: Path, archive: zipfile.ZipFile, name: str, entry) -> None:
    expected = entry.get("sha256") if isinstance(entry, dict) else None
    try:
        digest = hashlib.sha256()
        with archive.open(name) as f:
            while block := f.read(1 << 20):
                digest.update(block)
    except KeyError:
        raise ExportError(f"{path}: member {name} (in {MANIFEST}) is missing from the file") from None
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
        raise ExportError(f"{path}: member {name} is corrupted ({exc})") from None
    if digest.hexdigest() != expected:
        raise ExportError(f"{path}: member {name} has sha256 {digest.hexdigest()}, not the {expected} of "
                          f"its {MANIFEST}: the file is corrupted")


@contextlib.contextmanager
def unpacked(path: str | os.PathLike, sha256: str | None = None) -> Iterator[Path]:
    """Export ``path`` (checked: its sha256 if given, its manifest and members) unpacked
    into a temporary run folder, removed on leaving."""
    path = Path(path)
    if sha256 is not None:
        actual = sha256_file(path)
        if actual != check_sha256(sha256):
            raise ExportError(f"{path}: sha256 {actual}, not the {sha256.lower()} given; refused")
    manifest = read_manifest(path)
    with tempfile.TemporaryDirectory(prefix="ssimsr-export-") as tmp, zipfile.ZipFile(path) as archive:
        for name in (*REQUIRED, *OPTIONAL):  # only the run's known files: no paths from the zip
            if name in manifest["files"]:
                with archive.open(name) as src, open(Path(tmp) / name, "wb") as dest:
                    shutil.copyfileobj(src, dest)
        yield Path(tmp)


def cache_dir() -> Path:
    """Where fetched exports are kept: ``$XDG_CACHE_HOME/ssimsr/models`` (``~/.cache/...``)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ssimsr" / "models"


def fetch(url: str, sha256: str | None, policy: DownloadPolicy | None = None, cache: Path | None = None) -> Path:
    """The export at ``url`` as a local file in the cache, fetched unless a file of that
    sha256 is there already; checked before it gets its name (download.download_file)."""
    if sha256 is None:
        raise ExportError(f"{url}: a URL needs --sha256 (the sha256 `ssimsr export` printed for the file)")
    sha256 = check_sha256(sha256)
    dest = (cache or cache_dir()) / f"{sha256}{SUFFIX}"
    if dest.is_file():
        if sha256_file(dest) == sha256:
            log.info("%s: using the cached %s", url, dest)
            return dest
        log.warning("%s: the cached %s does not match its sha256; fetching it again", url, dest)
        dest.unlink()
    try:
        download_file(url, dest, sha256, policy=policy, check=read_manifest)
    except ChecksumMismatch as exc:  # say which checksum: the --sha256 given, not a config's
        actual = re.search(r"actual sha256 ([0-9a-f]{64})", str(exc))
        if actual is None:
            raise
        raise ExportError(f"{url}: sha256 {actual.group(1)}, not the {sha256} given with --sha256; the "
                          "download was removed (check the sha256 `ssimsr export` printed)") from None
    return dest


def local_run(run: str | os.PathLike, sha256: str | None = None, policy: DownloadPolicy | None = None) -> Path:
    """``run`` as a local path: a URL fetched into the cache (``fetch``), a path as it is.
    ``--sha256`` with a run folder is an error (a folder has no one checksum)."""
    if is_url(run):
        return fetch(str(run), sha256, policy)
    if sha256 is not None and Path(run).is_dir():
        raise ValueError(f"{run}: --sha256 checks an export file or URL, not a run folder")
    return Path(run)


@contextlib.contextmanager
def run_folder(run: str | os.PathLike, sha256: str | None = None,
               policy: DownloadPolicy | None = None) -> Iterator[Path]:
    """A run folder for ``run``: a folder as it is, an export file (or URL) unpacked."""
    path = local_run(run, sha256, policy)
    if path.is_file():
        with unpacked(path, sha256) as folder:
            yield folder
    else:
        yield path


def trained_backend(run: str | os.PathLike) -> str:
    """The backend to load ``run`` (folder or export file) on: ``KERAS_BACKEND`` where set,
    else the one it was trained with (``runner.run_backend``; an export's params.json, read
    unchecked: it only picks the backend, before loading) where that is installed, else an
    installed one (``extras.usable_backend``: a core install has JAX, not TensorFlow)."""
    from ..pipeline.extras import usable_backend
    from ..pipeline.runner import run_backend

    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    path = Path(run)
    backend = None
    if path.is_file():
        try:
            with zipfile.ZipFile(path) as archive:
                backend = json.loads(archive.read("params.json")).get("backend")
        except Exception:  # not an export: loading it names the problem
            pass
    return usable_backend(backend or run_backend(path))
