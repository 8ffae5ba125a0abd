"""Digests of the library code each workflow stage runs, so that editing it reruns the stage.

Snakemake reruns a job when its ``params`` change (the default rerun trigger ``params``),
but it cannot see the library that a rule's shell command imports: without help, editing
``losses.py`` and rerunning would leave every table as it was. So each rule that computes
something gets ``params: code=code_digest("<stage>")``, a hash of the modules the stage's
job runs; a changed hash reruns the stage's jobs, and their new outputs rerun everything
downstream.

Which modules: a hand-kept list drifts from the code (a new ``from .data import ...``
inside a function, and the stage no longer reruns when ``data.py`` changes). So each stage
names only its entry points (``code=`` of its declaration in ``jobs.STAGES``: the modules
whose functions its job calls), and its modules are those and every ``ssimsr``
module they import, transitively (:func:`stage_modules`). The imports are read from the
source with ``ast``, without importing it: ``import ssimsr.x``, ``from ssimsr import x``,
``from ssimsr.x import y`` and relative imports (``from . import x``, ``from ..x import y``),
anywhere in a file, inside functions and methods too (the library imports lazily, so most
imports are there). The unit is a top-level module or subpackage of ``ssimsr``: an import
of ``ssimsr.tables.render`` counts as ``tables``, whose digest covers (and whose imports
are those of) every file in it. Imports by name at run time, which ``ast`` cannot see, are
added from where they are declared (``registry.PLUGIN_PACKAGES``: ``registry.discover``
imports every module of ``archs`` and ``terms``). The closure is conservative: a module is
counted when anything in it imports it, whether or not the stage calls that code (editing
``losses.py`` reruns the showcase crops too, as ``evaluate`` imports ``train``).

Not followed, and in no digest (their ``DIGEST_EXCLUDED``, :func:`excluded`): ``cli.py`` and ``jobs.py``, the argument
glue of the ``shell:`` and ``script:`` rules, and ``warm.py``, how a job's process starts;
``download.py`` and ``weights.py``, whose
outputs are checksum-verified files (``data`` and ``sources`` import ``download``: its
error class, its transfers); this module, whose output is the digest itself (train's run
fingerprint imports it); ``provenance.py``, what produced a result (informative), and
``export.py``, which packs a run's files unchanged. ``gpus.py`` is no entry: only the glue calls it (which GPU a job
claims, the backend's memory and XLA settings). ``sources.py`` holds fetch code too, but
it is in the prepare digest: its archive reading decides which files are prepared. The
package ``__init__`` holds only the version lookup and is in no digest.
``config.schema.yaml`` is not hashed (``config`` reads it): Snakemake fills its defaults
into the config before the DAG is built, so they reach the jobs in the rules' ``params``.
``published`` (the paper's values, CSV files the ``tables`` code reads) is hashed byte for
byte wherever ``tables`` is (its ``DIGEST_DATA``).

What counts as a change: the hash is taken over each module's syntax tree with docstrings
removed, so comments, blank lines, formatting and docstrings rerun nothing; any change to
code (a constant, a default, a line of logic, an import) reruns. To keep old results on
purpose: ``--rerun-triggers mtime input`` for one call.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import os
import sys
from pathlib import Path

#: in no code digest, its imports not followed (ssimsr.code_digest)
DIGEST_EXCLUDED = "computes the digest itself, its output is no result"

PACKAGE = "ssimsr"
ROOT = Path(__file__).parent

def stage_entries() -> dict[str, tuple[str, ...]]:
    """Each stage's entry points, from its declaration (``jobs.STAGES``, ``code=``): the
    modules whose functions the stage's job calls. Its digest covers them and all they
    import. Stages in no digest (checksum-verified downloads) are left out."""
    from .jobs import STAGES

    return {name: declared.code for name, declared in STAGES.items() if declared.code}


#: A module declares itself out of every digest (its imports not followed) with a module-level
#: ``DIGEST_EXCLUDED = "<why>"``; a module that reads package data (a folder of files
#: without code) names it with ``DIGEST_DATA = ("<folder>",)``, hashed byte for byte with it.
EXCLUDED_MARK, DATA_MARK = "DIGEST_EXCLUDED", "DIGEST_DATA"


@functools.cache
def excluded() -> dict[str, str]:
    """The modules in no digest, whose imports are not followed: module -> why (its
    ``DIGEST_EXCLUDED``)."""
    found = {}
    for name in _units():
        marks = _marks(name)
        if EXCLUDED_MARK in marks:
            found[name] = marks[EXCLUDED_MARK]
    return found


def _units() -> list[str]:
    """The top-level modules and subpackages of ``ssimsr``."""
    return sorted({p.stem for p in ROOT.glob("*.py") if p.stem != "__init__"}
                  | {p.parent.name for p in ROOT.glob("*/__init__.py")})


def _marks(name: str) -> dict:
    """The module-level constants ``DIGEST_EXCLUDED`` / ``DIGEST_DATA`` of unit ``name`` (a
    package: of its ``__init__``)."""
    path = ROOT / f"{name}.py" if (ROOT / f"{name}.py").is_file() else ROOT / name / "__init__.py"
    return _read(path)[2]


@functools.cache
def _runtime_imports() -> dict[str, tuple[str, ...]]:
    """Imports by name at run time, which ``ast`` cannot see: the plugin packages that
    ``registry.discover`` imports every module of."""
    from .registry import PLUGIN_PACKAGES

    return {"registry": tuple(name.split(".")[1] for name in PLUGIN_PACKAGES)}


def stage_modules(stage: str) -> tuple[str, ...]:
    """The modules (and package data) whose code ``stage``'s digest covers, sorted: its
    entries and every ``ssimsr`` module they import, transitively, less :func:`excluded`."""
    entries = stage_entries()
    if stage not in entries:
        raise ValueError(f"code_digest: unknown stage {stage!r}, or one in no digest ({', '.join(entries)})")
    return _stage_modules(stage)


@functools.cache
def _stage_modules(stage: str) -> tuple[str, ...]:
    entries = stage_entries()[stage]
    left_out = sorted(set(entries) & set(excluded()))
    if left_out:
        raise ValueError(f"code_digest: stage {stage!r} has excluded entries {left_out}")
    modules = import_closure(entries, ROOT, PACKAGE, runtime=_runtime_imports(), excluded=excluded())
    data = {name for module in modules for name in _marks(module).get(DATA_MARK, ())}
    return tuple(sorted({*modules, *data}))


def import_closure(entries, root: Path, package: str, *, runtime: dict | None = None,
                   excluded=()) -> tuple[str, ...]:
    """``entries`` and the top-level modules and subpackages of ``package`` (whose folder is
    ``root``) that they import, transitively (``runtime``: more imports of a module, by
    name), sorted; a module in ``excluded`` is left out and its imports not followed."""
    runtime = runtime or {}
    seen: set[str] = set()
    todo = list(entries)
    while todo:
        name = todo.pop()
        if name in seen or name in excluded:
            continue
        seen.add(name)
        todo.extend(_direct_imports(Path(root), package, name))
        todo.extend(runtime.get(name, ()))
    return tuple(sorted(seen))


@functools.cache
def _direct_imports(root: Path, package: str, name: str) -> frozenset[str]:
    """The units of ``package`` that any file of unit ``name`` imports."""
    found: set[str] = set()
    for _, path in _unit_files(root, name):
        found |= imported_units(path, root, package)
    return frozenset(found)


def imported_units(path: Path, root: Path, package: str) -> set[str]:
    """The top-level modules and subpackages of ``package`` (folder ``root``) that the file
    ``path`` imports, at any depth in it (functions, methods, ``try``, ``if``)."""
    # the file's own package, e.g. ["ssimsr", "tables"] for ssimsr/tables/render.py or __init__.py
    here = [package, *path.relative_to(root).parts[:-1]]
    targets: list[list[str]] = []
    for level, module, names in _read(path)[1]:
        if level > len(here):
            continue  # beyond the top-level package: not ours
        base = here[:len(here) - level + 1] if level else []
        base = base + (module.split(".") if module else [])
        # `from ssimsr import x`: x may be a module; if it is not, it names nothing more
        targets += [base] + [base + [name] for name in names if name != "*"]
    return {target[1] for target in targets
            if len(target) > 1 and target[0] == package and _is_unit(root, target[1])}


def _is_unit(root: Path, name: str) -> bool:
    return (root / f"{name}.py").is_file() or (root / name / "__init__.py").is_file()


def _unit_files(root: Path, name: str) -> list[tuple[str, Path]]:
    """The ``.py`` files of unit ``name``, each with its path relative to its package's
    folder (sorted): one for a module, every one in it for a subpackage."""
    if (root / f"{name}.py").is_file():
        return [(f"{name}.py", root / f"{name}.py")]
    if (root / name / "__init__.py").is_file():
        return sorted((path.relative_to(root / name).as_posix(), path) for path in (root / name).rglob("*.py"))
    raise ValueError(f"code_digest: no module {PACKAGE}.{name}")


@functools.cache
def module_digest(name: str) -> str:
    """sha256 of ``ssimsr.<name>``'s syntax tree without docstrings; for a package, of every
    ``.py`` file in it (with its path, sorted), so that editing any one of them counts; for
    package data (a folder of CSV files, ``published``), of each file's bytes."""
    data = ROOT / name
    if data.is_dir() and not (data / "__init__.py").exists():  # package data, e.g. published/*.csv
        joined = "".join(f"{p.name}:{hashlib.sha256(p.read_bytes()).hexdigest()}\n"
                         for p in sorted(data.glob("*.csv")))
        return hashlib.sha256(joined.encode()).hexdigest()
    files = _unit_files(ROOT, name)
    if (ROOT / f"{name}.py").is_file():  # a module
        return _tree_digest(files[0][1])
    joined = "".join(f"{relative}:{_tree_digest(path)}\n" for relative, path in files)
    return hashlib.sha256(joined.encode()).hexdigest()


def _tree_digest(path: Path) -> str:
    return _read(path)[0]


@functools.cache
def _read(path: Path) -> tuple[str, tuple, dict]:
    """One parse of ``path``: the sha256 of its syntax tree's dump without docstrings, its
    imports (``import a.b``: ``(0, "a.b", ())``; ``from ..a import b``: ``(2, "a", ("b",))``)
    and its digest marks (module-level ``DIGEST_EXCLUDED`` / ``DIGEST_DATA`` constants).

    Parsing and dumping the package's ~60 files took a second of every Snakefile parse
    (a dry run), so each file's record is kept in a cache keyed by the sha256 of its bytes:
    a changed file is a new key, so the cache cannot be stale."""
    source = path.read_bytes()
    key = hashlib.sha256(source).hexdigest()
    cache = _disk_cache()
    if key in cache:
        tree, imports, marks = cache[key]
        return tree, tuple((level, module, tuple(names)) for level, module, names in imports), marks
    record = _parse(source.decode("utf-8"))
    cache[key] = record
    _save_disk_cache(cache)
    return record


def _parse(text: str) -> tuple[str, tuple, dict]:
    tree = ast.parse(text)
    marks = {}
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id in (EXCLUDED_MARK, DATA_MARK)):
            marks[node.targets[0].id] = ast.literal_eval(node.value)
    imports = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imports += [(0, alias.name, ()) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            imports.append((node.level, node.module, tuple(alias.name for alias in node.names)))
        body = getattr(node, "body", None)
        if isinstance(body, list):  # docstrings (and other bare strings) do nothing when run
            node.body = [s for s in body if not _is_bare_string(s)] or [ast.Pass()]
    dump = ast.dump(tree, include_attributes=False)
    return hashlib.sha256(dump.encode()).hexdigest(), tuple(imports), marks


#: records kept in the cache file, the most recent ones (every edit of a file adds one)
CACHE_RECORDS = 2000


def _cache_path() -> Path:
    """Per Python version: ``ast.dump`` differs between versions."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ssimsr" / f"code-digest-py{sys.version_info[0]}{sys.version_info[1]}.json"


@functools.cache
def _disk_cache() -> dict:
    """The cache file's records; empty where it cannot be read (a cache: never an error)."""
    try:
        records = json.loads(_cache_path().read_text(encoding="utf-8"))
        return records if isinstance(records, dict) else {}
    except (OSError, ValueError):
        return {}


def _save_disk_cache(cache: dict) -> None:
    """Write the cache file whole under a temporary name and rename it (concurrent
    processes: the last one wins, each file complete); failures are ignored."""
    path = _cache_path()
    kept = dict(list(cache.items())[-CACHE_RECORDS:])
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(kept), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        try:
            tmp.unlink()
        except OSError:
            pass


def _is_bare_string(statement) -> bool:
    return (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)
            and isinstance(statement.value.value, str))


@functools.cache
def code_digest(stage: str) -> str:
    """A short hash of the code of ``stage``'s modules (:func:`stage_modules`, in sorted
    order): 16 hex digits."""
    joined = "".join(f"{name}:{module_digest(name)}" for name in stage_modules(stage))
    return hashlib.sha256(joined.encode()).hexdigest()[:16]
