"""A run folder's files besides its history: the checkpoint, the saved networks, timing.json;
and what happens to one of them that cannot be read.

The checkpoint (``checkpoint/state.npz``) holds the weights, the optimiser state and the
history so far, with the run's fingerprint; it is written atomically, so a killed job
resumes from the last complete one. The one before it is kept as ``state.prev.npz``.

**Unreadable files.** Atomic writes leave no half-written file behind a killed job, but a
crash of the machine can (the rename reached the disk, the data did not: hence the fsync
before the rename here), and so can a copy cut short. A checkpoint or a saved network
(``.keras``) that exists but cannot be read is moved aside to ``<name>.corrupt``
(``.corrupt2``, ...: kept for a post-mortem, out of the way of the job that writes it) in
one line naming both paths, :class:`CorruptFile`: ``<path>: unreadable (<reason>; <size>);
moved aside to <path>.corrupt``. Training logs it and resumes from the checkpoint before if
that one is readable, else from the start. An evaluation (or ``ssimsr upscale``) fails
with it; the train rule's output is then missing, so the next ``snakemake`` trains the run
again (from its final checkpoint: seconds). An unreadable ``params.json`` is named the same
way but left in place. ``ssimsr status`` shows such runs as ``corrupt``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from ..io.atomic import atomic_path, write_text

# numpy is imported only where a checkpoint is read or written: ssimsr status checks outputs
# with this module and, without numpy, stays a fraction of a second for the paper's runs

log = logging.getLogger("ssimsr.training.train")

#: the suffix of a file moved aside as unreadable (``upscaler.keras.corrupt``); ``ssimsr status`` looks for it
CORRUPT_SUFFIX = ".corrupt"
#: what every ``.keras`` file holds (Keras 3's format): a zip of the config and the weights,
#: ``model.weights.h5`` as ``save_model`` writes them (``.npz`` or shards if saved otherwise)
KERAS_CONFIG, KERAS_WEIGHTS_PREFIX = "config.json", "model.weights"
#: arrays every checkpoint has, besides the weights
CHECKPOINT_KEYS = ("epoch", "fingerprint", "history")


class CorruptFile(ValueError):
    """A run's file that exists but cannot be read; the message is one line naming it, the
    reason and where it went: ``<path>: unreadable (<reason>); moved aside to <path>.corrupt``."""

    def __init__(self, path: str | os.PathLike, reason: str, moved_to: Path | None = None,
                 not_moved: str = "", also: list["CorruptFile"] | None = None):
        self.path, self.reason, self.moved_to, self.not_moved = Path(path), reason, moved_to, not_moved
        self.also = list(also or [])  # more files of the same run, found unreadable together
        text = f"{self.path}: unreadable ({reason})"
        if moved_to is not None:
            text += f"; moved aside to {moved_to}"
        elif not_moved:
            text += f"; not moved aside ({not_moved})"
        super().__init__("; ".join([text, *map(str, self.also)]))


def _reason(exc: BaseException) -> str:
    """An exception of a reader as a short reason (its first line, else its class)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _size(path: Path) -> str:
    try:
        return f"{path.stat().st_size} bytes"
    except OSError:
        return "size unknown"


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino, a.st_size, a.st_mtime_ns) == (b.st_dev, b.st_ino, b.st_size, b.st_mtime_ns)


def set_aside(path: str | os.PathLike, reason: str, seen: os.stat_result | None = None) -> CorruptFile:
    """Move the unreadable file ``path`` to ``<name>.corrupt`` beside it and return the error
    that says so, naming both: to raise (its one line is the log line) or to log and go on.

    ``seen``: the file's stat when it was read. A file replaced since (its job wrote it anew
    meanwhile) is left where it is: the good new file must not be moved for the old one's fault.
    """
    path = Path(path)
    reason = f"{reason}; {_size(path)}"
    try:
        if seen is not None and not _same_file(seen, os.stat(path)):
            return CorruptFile(path, reason, not_moved="it was replaced while being read")
        target = path.with_name(path.name + CORRUPT_SUFFIX)
        n = 2
        while target.exists():  # an earlier one stays for its post-mortem too
            target = path.with_name(f"{path.name}{CORRUPT_SUFFIX}{n}")
            n += 1
        os.replace(path, target)
        # the move's time, not the write's: ssimsr status tells "moved aside, not retrained since"
        # from the run's later activity
        os.utime(target)
    except FileNotFoundError:  # another job (an evaluation on a second backend) moved it first
        return CorruptFile(path, reason, not_moved="it is gone: moved by another job?")
    except OSError as exc:  # a read-only copy of a run, say: still named, just not moved
        return CorruptFile(path, reason, not_moved=_reason(exc))
    return CorruptFile(path, reason, target)


# --------------------------------------------------------------------------- checks without Keras

def keras_file_problem(path: str | os.PathLike, full: bool = False) -> str | None:
    """Why the ``.keras`` file ``path`` cannot be read, or None.

    Default, cheap (``ssimsr status``, hundreds of runs): the zip's central directory, which
    is at the end of the file (one cut short has none), lists the members Keras writes.
    ``full`` (before loading it): also every member's CRC and the config's JSON, i.e. the
    whole file read once. A missing file raises FileNotFoundError: missing is not corrupt.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if KERAS_CONFIG not in names or not any(n.startswith(KERAS_WEIGHTS_PREFIX) for n in names):
                return f"a zip without {KERAS_CONFIG} and {KERAS_WEIGHTS_PREFIX}.*: not a saved Keras model"
            if full:
                bad = archive.testzip()
                if bad is not None:
                    return f"member {bad} fails its CRC check"
                json.loads(archive.read(KERAS_CONFIG))
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, KeyError) as exc:
        return _reason(exc)
    return None


def json_problem(path: str | os.PathLike) -> str | None:
    """Why the JSON object file ``path`` (``params.json``) cannot be read, or None."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError) as exc:
        return _reason(exc)
    except ValueError as exc:
        return f"not valid JSON: {_reason(exc)}"
    return None if isinstance(value, dict) else f"JSON {type(value).__name__}, not an object"


def check_run_files(run: str | os.PathLike, networks: tuple[str, ...] = ("downscaler.keras", "upscaler.keras")) -> None:
    """Check a run folder's ``params.json`` and saved networks in full, before Keras is imported.

    An unreadable ``params.json`` is named (CorruptFile) and left in place: it is checked
    first, as it always was, and says which run a folder holds. Each unreadable network is
    moved aside, so that the train rule writes it again; one CorruptFile names them all.
    """
    params = Path(run) / "params.json"
    problem = json_problem(params)
    if problem is not None:
        raise CorruptFile(params, problem)
    errors = []
    for name in networks:
        path = Path(run) / name
        seen = os.stat(path)
        problem = keras_file_problem(path, full=True)
        if problem is not None:
            errors.append(set_aside(path, problem, seen))
    if errors:
        first = errors[0]
        raise CorruptFile(first.path, first.reason, first.moved_to, first.not_moved, also=errors[1:])


# --------------------------------------------------------------------------- the checkpoint

def previous_checkpoint(path: Path) -> Path:
    """Where the checkpoint written before ``path`` is kept: ``state.prev.npz``."""
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def save_checkpoint(path: Path, epoch: int, pair, optimizer, history: list[dict], fingerprint: str) -> None:
    import numpy as np

    arrays = {"epoch": np.array(epoch), "fingerprint": np.array(fingerprint),
              "history": np.array(json.dumps(history))}
    for prefix, model in (("up", pair.upscaler), ("down", pair.downscaler)):
        for i, w in enumerate(model.get_weights()):
            arrays[f"{prefix}_{i}"] = w
    import keras

    for i, v in enumerate(optimizer.variables):
        arrays[f"opt_{i}"] = keras.ops.convert_to_numpy(v)
    with atomic_path(path) as tmp:
        np.savez(tmp, **arrays)
        # on the disk before it takes the name: a crash of the machine (not of the job) could
        # otherwise leave the name pointing at a file cut short
        _fsync(tmp)
        if path.exists():
            # kept as the fallback should this one be found unreadable; a kill right after this
            # rename leaves only it, which a rerun resumes from just as well
            os.replace(path, previous_checkpoint(path))


def read_state(path: Path) -> dict:
    """Every array of the checkpoint ``path``, read in full (each member's CRC checked on
    the way); CorruptFile (not moved) when it cannot be, FileNotFoundError without it."""
    import numpy as np

    try:
        with np.load(path) as state:
            arrays = {key: state[key] for key in state.files}
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise CorruptFile(path, _reason(exc)) from None
    missing = [key for key in CHECKPOINT_KEYS if key not in arrays]
    if missing:
        raise CorruptFile(path, f"no {', '.join(missing)} array: not a checkpoint")
    return arrays


@dataclass
class FoundCheckpoint:
    """What :func:`find_checkpoint` found: the state to resume from (None: start afresh) and
    the checkpoints passed over on the way."""

    path: Path | None = None
    state: dict | None = None
    unreadable: list[CorruptFile] = field(default_factory=list)
    other_run: list[Path] = field(default_factory=list)  # of other parameters (or code)

    @property
    def epoch(self) -> int | None:
        return None if self.state is None else int(self.state["epoch"])


def find_checkpoint(path: Path, fingerprint: str, heal: bool = False) -> FoundCheckpoint:
    """The newest readable checkpoint of this run: ``path``, else the one kept before it.

    ``heal``: move each unreadable one aside (one log line each), so that no later attempt
    trips on it again; without, only look (the attempt's header, printed before training).
    """
    found = FoundCheckpoint()
    for candidate in (path, previous_checkpoint(path)):
        try:
            seen = os.stat(candidate)
            state = read_state(candidate)
        except FileNotFoundError:
            continue
        except CorruptFile as exc:
            if heal:
                exc = set_aside(candidate, exc.reason, seen)
                log.warning("%s", exc)
            found.unreadable.append(exc)
            continue
        if str(state["fingerprint"]) != fingerprint:
            found.other_run.append(candidate)
            continue
        found.path, found.state = candidate, state
        break
    return found


def load_checkpoint(path: Path, pair, optimizer, variables, fingerprint: str) -> tuple[int, list[dict]] | None:
    """Restore the newest readable checkpoint of the same run (``path``, else the one kept
    before it); None if there is none (or only of another run). Unreadable ones are moved
    aside on the way (logged): a rerun would trip on them again."""
    found = find_checkpoint(path, fingerprint, heal=True)
    for other in found.other_run:
        log.warning("ignoring %s: it belongs to a run with other parameters", other)
    state = found.state
    if state is None:
        if found.unreadable:
            log.warning("no readable checkpoint of %s left: training starts from epoch 0", path.parent)
        return None
    if found.path != path:
        log.warning("resuming from %s (epoch %d), the checkpoint before %s", found.path, found.epoch, path.name)
    for prefix, model in (("up", pair.upscaler), ("down", pair.downscaler)):
        n = len(model.get_weights())
        model.set_weights([state[f"{prefix}_{i}"] for i in range(n)])
    optimizer.build(variables)
    for i, v in enumerate(optimizer.variables):
        v.assign(state[f"opt_{i}"])
    return int(state["epoch"]), json.loads(str(state["history"]))


# --------------------------------------------------------------------------- the other files

def write_timing(path: Path, compile_stats: dict, seconds: float, steps: int, backend: str) -> None:
    """Wall time of this process's epochs and, for JAX, each compilation (first call per shape)."""
    compiles = [{"step": kind, "shape": list(shape), "seconds": round(sec, 3)}
                for (kind, shape), sec in compile_stats.items()]
    compile_seconds = sum(c["seconds"] for c in compiles)
    summary = {"backend": backend, "steps": steps, "seconds": round(seconds, 3),
               "compiles": len(compiles), "compile_seconds": round(compile_seconds, 3),
               "compile_share": round(compile_seconds / seconds, 4) if seconds else None,
               "compile_detail": compiles}
    write_text(path, json.dumps(summary, indent=2) + "\n")
    if compiles:
        print(f"compiled {len(compiles)} step(s) in {compile_seconds:.1f}s = "
              f"{100 * compile_seconds / seconds:.1f}% of {seconds:.1f}s", file=sys.stderr, flush=True)


def save_model(model, path: Path) -> None:
    with atomic_path(path) as tmp:
        model.save(tmp)
        _fsync(tmp)  # as the checkpoint: no name for a file whose data may not be on the disk
