"""What produced a result, written beside it: the ssimsr version, the git commit (and
whether the checkout had uncommitted changes), the stage's code digest and the versions of
Python, numpy, Keras and its backend.

Informative only: it is in no run's fingerprint and in no rule's params or outputs, so
neither a new commit nor editing this module reruns anything (``DIGEST_EXCLUDED``).

The tables say the same in their captions (:func:`describe`: the ssimsr version, the git
commit and dirty flag, a short hash of the resolved config), computed by the tables job
when it runs; the report's list of exported models names the versions too
(``export.export_models``).
"""

from __future__ import annotations

import hashlib
import json
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

from ..io.atomic import write_text

#: in no code digest, its imports not followed (ssimsr.pipeline.code_digest)
DIGEST_EXCLUDED = "what produced a result, written beside it: informative, reruns nothing"

#: the file in a run's (training or evaluation) folder
PROVENANCE_FILE = "provenance.json"


def git_state(root: str | Path | None = None) -> dict:
    """``{"commit": sha, "dirty": bool}`` of the checkout ``root`` (default: the one this
    package lives in), or ``{}`` outside a git checkout or without git."""
    root = Path(root) if root is not None else Path(__file__).resolve().parents[3]
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

    from .. import __version__
    from .code_digest import code_digest

    record = {"ssimsr": __version__, **{f"git_{k}": v for k, v in git_state().items()},
              "stage": stage, "code_digest": code_digest(stage),
              "python": platform.python_version(), "numpy": numpy.__version__,
              "host": socket.gethostname(), "written": time.strftime("%Y-%m-%d %H:%M:%S %z")}
    if "keras" in sys.modules:  # the stages that compute with Keras have imported it by now
        keras = sys.modules["keras"]
        backend = keras.backend.backend()
        module = sys.modules.get(backend)  # each backend (ssimsr.training.backends) is the module of its name
        record.update(keras=keras.__version__, backend=backend,
                      backend_version=getattr(module, "__version__", None))
    return record


def write_provenance(folder: str | Path, stage: str) -> Path:
    """Write :func:`provenance` into ``folder`` (atomically); its path."""
    path = Path(folder) / PROVENANCE_FILE
    write_text(path, json.dumps(provenance(stage), indent=2, sort_keys=True) + "\n")
    return path


def config_hash(config: dict) -> str:
    """A short hash (12 hex digits) of a resolved config: sha256 of its JSON with sorted keys."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def describe(config: dict | None = None, git: dict | None = None) -> str:
    """One sentence saying which code and config produced a result, for a caption:
    ``Produced by ssimsr 0.1.0 (git commit 1a2b3c4d5e6f, uncommitted changes), config
    sha256 0123456789ab.`` ``git``: :func:`git_state`'s record (default: this checkout's;
    outside one the commit is left out); ``config``: the resolved config, hashed
    (:func:`config_hash`), or None."""
    from .. import __version__

    git = git_state() if git is None else git
    where = ""
    if git.get("commit"):
        where = f" (git commit {git['commit'][:12]}" + (", uncommitted changes)" if git.get("dirty") else ")")
    made = f", config sha256 {config_hash(config)}" if config is not None else ""
    return f"Produced by ssimsr {__version__}{where}{made}."
