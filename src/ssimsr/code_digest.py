"""Digests of the library code each workflow stage runs, so that editing it reruns the stage.

Snakemake reruns a job when its ``params`` change (the default rerun trigger ``params``),
but it cannot see the library that a rule's shell command imports: without help, editing
``losses.py`` and rerunning would leave every table as it was. So each rule that computes
something gets ``params: code=code_digest("<stage>")``, a hash of the modules in
``STAGE_MODULES[stage]`` (of a package: every file in it); a changed hash reruns the stage's jobs, and their new outputs
rerun everything downstream.

What counts as a change: the hash is taken over each module's syntax tree with docstrings
removed, so comments, blank lines, formatting and docstrings rerun nothing; any change to
code (a constant, a default, a line of logic) reruns. ``cli.py`` (argument glue),
``download.py`` and ``weights.py`` (their outputs are checksum-verified files) are not part
of any digest (nor ``jobs.py``: the glue of the script rules). ``sources.py`` holds the fetch
code too, but it is in the prepare digest: its archive reading decides which files are
prepared. ``published`` (the paper's values, CSV files) is hashed byte for byte in the
tables digest. To keep old results on purpose:
``--rerun-triggers mtime input`` for one call.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from importlib import util
from pathlib import Path

#: The modules whose code decides each stage's outputs.
STAGE_MODULES = {
    "prepare": ("data", "sources"),
    "train": ("models", "losses", "train", "train_steps", "buckets", "balance", "checkpoints", "registry", "archs",
              "terms", "readout"),
    "showcase": ("evaluate",),
    "evaluate": ("models", "metrics", "evaluate", "upscale", "data", "registry", "archs"),
    "lpips": ("lpips_eval", "metrics"),
    "collect": ("evaluate", "runs", "data"),
    "baseline": ("baseline", "metrics", "data"),
    "stats": ("stats", "power", "noise", "runs"),
    "tables": ("tables", "published", "stats", "power", "noise", "balance", "registry", "terms", "runs"),
    "figures": ("figures", "report", "runs", "baseline", "metrics", "registry", "terms", "noise"),
}


@functools.cache
def module_digest(name: str) -> str:
    """sha256 of ``ssimsr.<name>``'s syntax tree without docstrings; for a package, of every
    ``.py`` file in it (with its path, sorted), so that editing any one of them counts."""
    data = Path(__file__).with_name(name)
    if data.is_dir() and not (data / "__init__.py").exists():  # package data, e.g. published/*.csv
        joined = "".join(f"{p.name}:{hashlib.sha256(p.read_bytes()).hexdigest()}\n"
                         for p in sorted(data.glob("*.csv")))
        return hashlib.sha256(joined.encode()).hexdigest()
    spec = util.find_spec(f"ssimsr.{name}")
    if spec is None or spec.origin is None:
        raise ValueError(f"code_digest: no module ssimsr.{name}")
    if not spec.submodule_search_locations:
        return hashlib.sha256(_tree_dump(Path(spec.origin)).encode()).hexdigest()
    files = sorted((path.relative_to(root).as_posix(), path)
                   for root in map(Path, spec.submodule_search_locations) for path in root.rglob("*.py"))
    joined = "".join(f"{relative}:{_tree_dump(path)}\n" for relative, path in files)
    return hashlib.sha256(joined.encode()).hexdigest()


def _tree_dump(path: Path) -> str:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list):  # docstrings (and other bare strings) do nothing when run
            node.body = [s for s in body if not _is_bare_string(s)] or [ast.Pass()]
    return ast.dump(tree, include_attributes=False)


def _is_bare_string(statement) -> bool:
    return (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)
            and isinstance(statement.value.value, str))


def code_digest(stage: str) -> str:
    """A short hash of the code of ``stage``'s modules (``STAGE_MODULES``)."""
    if stage not in STAGE_MODULES:
        raise ValueError(f"code_digest: unknown stage {stage!r} ({', '.join(STAGE_MODULES)})")
    joined = "".join(f"{name}:{module_digest(name)}" for name in STAGE_MODULES[stage])
    return hashlib.sha256(joined.encode()).hexdigest()[:16]
