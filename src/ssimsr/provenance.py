"""What produced a result, written beside it: the ssimsr version, the git commit (and
whether the checkout had uncommitted changes), the stage's code digest and the versions of
Python, numpy, Keras and its backend.

Informative only: it is in no run's fingerprint and in no rule's params or outputs, so
neither a new commit nor editing this module reruns anything (``DIGEST_EXCLUDED``).
"""

from __future__ import annotations

import json
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

from .atomic import write_text

#: in no code digest, its imports not followed (ssimsr.code_digest)
DIGEST_EXCLUDED = "what produced a result, written beside it: informative, reruns nothing"

#: the file in a run's (training or evaluation) folder
PROVENANCE_FILE = "provenance.json"


def git_state(root: str | Path | None = None) -> dict:
    """``{"commit": sha, "dirty": bool}`` of the checkout ``root`` (default: the one this
    package lives in), or ``{}`` outside a git checkout or without git."""
    root = Path(root) if root is not None else Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return {}
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        changes = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                 capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"commit": commit, "dirty": bool(changes.strip())}


def provenance(stage: str) -> dict:
    """The record of what runs ``stage`` (a declared stage, ``jobs.STAGES``) in this process."""
    import numpy

    from . import __version__
    from .code_digest import code_digest

    record = {"ssimsr": __version__, **{f"git_{k}": v for k, v in git_state().items()},
              "stage": stage, "code_digest": code_digest(stage),
              "python": platform.python_version(), "numpy": numpy.__version__,
              "host": socket.gethostname(), "written": time.strftime("%Y-%m-%d %H:%M:%S %z")}
    if "keras" in sys.modules:  # the stages that compute with Keras have imported it by now
        keras = sys.modules["keras"]
        backend = keras.backend.backend()
        module = sys.modules.get(backend)  # each backend (ssimsr.backends) is the module of its name
        record.update(keras=keras.__version__, backend=backend,
                      backend_version=getattr(module, "__version__", None))
    return record


def write_provenance(folder: str | Path, stage: str) -> Path:
    """Write :func:`provenance` into ``folder`` (atomically); its path."""
    path = Path(folder) / PROVENANCE_FILE
    write_text(path, json.dumps(provenance(stage), indent=2, sort_keys=True) + "\n")
    return path
