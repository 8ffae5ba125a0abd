"""A run folder's files besides its history: the checkpoint, the saved networks, timing.json.

The checkpoint (``checkpoint/state.npz``) holds the weights, the optimiser state and the
history so far, with the run's fingerprint; it is written atomically, so a killed job
resumes from the last complete one.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np

from .atomic import atomic_path, write_text

log = logging.getLogger("ssimsr.train")


def save_checkpoint(path: Path, epoch: int, pair, optimizer, history: list[dict], fingerprint: str) -> None:
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


def load_checkpoint(path: Path, pair, optimizer, variables, fingerprint: str) -> tuple[int, list[dict]] | None:
    """Restore a checkpoint of the same run; None if there is none (or of another run)."""
    if not path.exists():
        return None
    with np.load(path) as state:
        if str(state["fingerprint"]) != fingerprint:
            log.warning("ignoring %s: it belongs to a run with other parameters", path)
            return None
        for prefix, model in (("up", pair.upscaler), ("down", pair.downscaler)):
            n = len(model.get_weights())
            model.set_weights([state[f"{prefix}_{i}"] for i in range(n)])
        optimizer.build(variables)
        for i, v in enumerate(optimizer.variables):
            v.assign(state[f"opt_{i}"])
        return int(state["epoch"]), json.loads(str(state["history"]))


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
