"""Digests of the library code each workflow stage runs, so that editing it reruns the stage.

Snakemake reruns a job when its ``params`` change (the default rerun trigger ``params``),
but it cannot see the library that a rule's shell command imports: without help, editing
``models/losses.py`` and rerunning would leave every table as it was. So each rule that computes
something gets ``params: code=code_digest("<stage>")``, a hash of the modules the stage's
job runs; a changed hash reruns the stage's jobs, and their new outputs rerun everything
downstream.

Which modules: a hand-kept list drifts from the code (a new ``from ..data.data import ...``
inside a function, and the stage no longer reruns when ``data/data.py`` changes). So each stage
names only its entry points (``code=`` of its declaration in ``jobs.STAGES``: the modules
whose functions its job calls, dotted below ``ssimsr``: ``training.train``), and its modules
are those and every ``ssimsr`` module they import, transitively (:func:`stage_modules`). The
imports are read from the source with ``ast``, without importing it: ``import ssimsr.x.y``,
``from ssimsr.x import y``, ``from ssimsr import x`` and relative imports (``from . import x``,
``from ..x.y import z``), anywhere in a file, inside functions and methods too (the library
imports lazily, so most imports are there).

The unit is one module (one file), whatever its folder: ``training.train`` is
``ssimsr/training/train.py``, a package's ``__init__.py`` is the package's name
(``tables``). Importing a module imports its packages' ``__init__`` too (Python runs them
first), so they are counted with it; the top-level ``ssimsr/__init__.py`` holds only the
version lookup and is in no digest. So folders group modules for the reader and change no
rerun: editing ``tables/versus.py`` reruns the stages that import it, not every stage that
imports some module of ``tables``. Imports by name at run time, which ``ast`` cannot see, are
added where they are declared: ``registry.PLUGIN_PACKAGES`` (``registry.discover`` imports
every module of ``models.archs`` and ``models.terms``), and a package whose ``__init__``
exports its modules' names lazily (a module-level ``__getattr__``, PEP 562: ``tables``)
counts as importing every module in it. The closure is conservative: a module is counted
when anything in it imports it, whether or not the stage calls that code (editing
``models/losses.py`` reruns the showcase crops too, as ``evaluate`` imports ``train``).

Not followed, and in no digest (their ``DIGEST_EXCLUDED``, :func:`excluded`): ``cli`` and
``pipeline.jobs``, the argument glue of the ``shell:`` and ``script:`` rules, ``pipeline.runner``
and ``pipeline.warm``, how a job's process starts; ``data.download`` and ``data.weights``,
whose outputs are checksum-verified files (``data.data`` and ``data.sources`` import
``download``: its error class, its transfers); this module, whose output is the digest itself
(train's run fingerprint imports it); ``pipeline.provenance``, what produced a result
(informative), ``pipeline.extras`` and ``evaluation.export``, which packs a run's files
unchanged. ``pipeline.gpus`` is no entry: only the glue calls it (which GPU a job claims, the
backend's memory and XLA settings). ``data.sources`` holds fetch code too, but it is in the
prepare digest: its archive reading decides which files are prepared.
``config.schema.yaml`` is not hashed (``config`` reads it): Snakemake fills its defaults
into the config before the DAG is built, so they reach the jobs in the rules' ``params``.
``tables/published`` (the paper's values, CSV files the ``tables`` code reads) is hashed byte
for byte wherever ``tables`` is (its ``DIGEST_DATA``, a folder beside the module that names it).

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

#: in no code digest, its imports not followed (ssimsr.pipeline.code_digest)
DIGEST_EXCLUDED = "computes the digest itself, its output is no result"

PACKAGE = "ssimsr"
ROOT = Path(__file__).parents[1]  # the ssimsr package


def stage_entries() -> dict[str, tuple[str, ...]]:
    """Each stage's entry points, from its declaration (``jobs.STAGES``, ``code=``): the
    modules whose functions the stage's job calls, dotted below ``ssimsr``
    (``training.train``). Its digest covers them and all they import. Stages in no digest (checksum-verified downloads) are left out."""
    from .jobs import STAGES

    return {name: declared.code for name, declared in STAGES.items() if declared.code}


#: A module declares itself out of every digest (its imports not followed) with a module-level
#: ``DIGEST_EXCLUDED = "<why>"``; a module that reads package data (a folder of files
#: without code) names it with ``DIGEST_DATA = ("<folder>",)``, hashed byte for byte with it.
EXCLUDED_MARK, DATA_MARK = "DIGEST_EXCLUDED", "DIGEST_DATA"
#: recorded for a module with a module-level ``__getattr__`` (a package exporting lazily, PEP 562)
LAZY_MARK = "__getattr__"


@functools.cache
def excluded() -> dict[str, str]:
    """The modules in no digest, whose imports are not followed: module -> why (its
    ``DIGEST_EXCLUDED``)."""
    found = {}
    for name in _modules(ROOT):
        marks = _marks(name)
        if EXCLUDED_MARK in marks:
            found[name] = marks[EXCLUDED_MARK]
    return found


def modules() -> list[str]:
    """Every unit a digest can cover, sorted: each module of ``ssimsr`` (dotted) and each
    folder of package data (by its path, from the ``DIGEST_DATA`` marks)."""
    data = {_beside(name, folder) for name in _modules(ROOT) for folder in _marks(name).get(DATA_MARK, ())}
    return sorted({*_modules(ROOT), *data})


def _modules(root: Path, under: str = "") -> list[str]:
    """The modules of the package in ``root`` (dotted, a package by its own name; the
    top-level ``__init__`` is none), or of its subpackage ``under``, sorted."""
    folder = root.joinpath(*under.split(".")) if under else root
    found = set()
    for path in folder.rglob("*.py"):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts:
            found.add(".".join(parts))
    return sorted(found)


@functools.cache  # ~1,800 lookups per Snakefile parse, each two stat calls
def _path(root: Path, name: str) -> Path | None:
    """The file of module ``name`` (dotted): ``x/y.py``, or ``x/y/__init__.py`` for a package."""
    base = root.joinpath(*name.split("."))
    for path in (base.with_name(base.name + ".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _marks(name: str) -> dict:
    """The marks of module ``name``: its module-level ``DIGEST_EXCLUDED`` / ``DIGEST_DATA``
    constants, and ``__getattr__`` where it defines one (:data:`LAZY_MARK`)."""
    return _read(_path(ROOT, name))[2]


@functools.cache
def _runtime_imports() -> dict[str, tuple[str, ...]]:
    """Imports by name at run time, which ``ast`` cannot see: every module of the plugin
    packages, which ``registry.discover`` imports."""
    from ..registry import PLUGIN_PACKAGES

    plugins = [name.split(".", 1)[1] for name in PLUGIN_PACKAGES]
    return {"registry": tuple(module for package in plugins for module in _modules(ROOT, package))}


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
    data = {_beside(module, folder) for module in modules for folder in _marks(module).get(DATA_MARK, ())}
    return tuple(sorted({*modules, *data}))


def _beside(module: str, folder: str) -> str:
    """Package data ``folder`` in the folder of ``module``'s file, by its path below the
    package (``tables/published``: a path, not a dotted name, so no module can share it)."""
    return "/".join([*_path(ROOT, module).relative_to(ROOT).parent.parts, folder])


def import_closure(entries, root: Path, package: str, *, runtime: dict | None = None,
                   excluded=()) -> tuple[str, ...]:
    """``entries`` and the modules of ``package`` (whose folder is ``root``; dotted names
    below it) that they import, transitively (``runtime``: more imports of a module, by
    name), sorted; a module in ``excluded`` is left out and its imports not followed."""
    runtime = runtime or {}
    seen: set[str] = set()
    todo = list(entries)
    while todo:
        name = todo.pop()
        if name in seen or name in excluded:
            continue
        if _path(Path(root), name) is None:
            raise ValueError(f"code_digest: no module {package}.{name}")
        seen.add(name)
        parts = name.split(".")
        todo.extend(".".join(parts[:depth]) for depth in range(1, len(parts)))  # its packages' __init__
        todo.extend(_direct_imports(Path(root), package, name))
        todo.extend(runtime.get(name, ()))
    return tuple(sorted(seen))


@functools.cache
def _direct_imports(root: Path, package: str, name: str) -> frozenset[str]:
    """The modules of ``package`` that module ``name`` imports; for a package whose
    ``__init__`` exports lazily (a module-level ``__getattr__``), every module in it too."""
    path = _path(root, name)
    found = imported_units(path, root, package)
    if path.name == "__init__.py" and _read(path)[2].get(LAZY_MARK):
        found |= set(_modules(root, name)) - {name}
    return frozenset(found)


def imported_units(path: Path, root: Path, package: str) -> set[str]:
    """The modules of ``package`` (folder ``root``) that the file ``path`` imports, at any
    depth in it (functions, methods, ``try``, ``if``), with the packages above them (their
    ``__init__`` runs first)."""
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
    found = set()
    for target in targets:
        if target[:1] != [package]:
            continue
        for depth in range(2, len(target) + 1):  # ssimsr.data, ssimsr.data.data, ...
            name = ".".join(target[1:depth])
            if _path(root, name) is None:
                break
            found.add(name)
    return found


@functools.cache
def module_digest(name: str) -> str:
    """sha256 of module ``ssimsr.<name>``'s syntax tree without docstrings (``name``
    dotted: ``training.train``; a package: its ``__init__``); for package data (a folder of
    CSV files named by its path, ``tables/published``), of each file's bytes."""
    if "/" in name:  # package data, e.g. tables/published/*.csv
        joined = "".join(f"{p.name}:{hashlib.sha256(p.read_bytes()).hexdigest()}\n"
                         for p in sorted((ROOT / name).glob("*.csv")))
        return hashlib.sha256(joined.encode()).hexdigest()
    path = _path(ROOT, name)
    if path is None:
        raise ValueError(f"code_digest: no module {PACKAGE}.{name}")
    return _tree_digest(path)


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
        if isinstance(node, ast.FunctionDef) and node.name == LAZY_MARK:
            marks[LAZY_MARK] = True
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
    """Per Python version (``ast.dump`` differs between versions) and record format (v2:
    the marks record a module-level ``__getattr__``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ssimsr" / f"code-digest-v2-py{sys.version_info[0]}{sys.version_info[1]}.json"


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
