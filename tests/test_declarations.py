"""Each fact once: what is keyed by a stage, a backend or a loss term lives in the registry
(``ssimsr.registry.Registry``: architectures, loss terms, tables, stages, backends), not in
module-level dicts beside it (issue 25)."""

import ast
from pathlib import Path

import pytest

from ssimsr.training import backends
from ssimsr.pipeline import jobs
from ssimsr import registry

SRC = Path(__file__).resolve().parents[1] / "src" / "ssimsr"


def _module_level_dict_keys(path: Path):
    """(name, line, string keys) of each module-level dict literal or comprehension assigned
    to a name (``X = {...}``, ``X: dict = {...}``, ``X = dict(a=...)``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        keys = set()
        if isinstance(value, ast.Dict):
            keys = {k.value for k in value.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
        elif isinstance(value, ast.Call) and getattr(value.func, "id", None) == "dict":
            keys = {k.arg for k in value.keywords if k.arg}
        elif isinstance(value, ast.DictComp):
            keys = {"<comprehension>"}
        for target in targets:
            if isinstance(target, ast.Name):
                yield target.id, node.lineno, keys


def test_no_module_level_dict_is_keyed_by_a_stage_backend_or_term_name():
    names = set(jobs.STAGES) | set(backends.BACKENDS) | set(registry.LOSS_TERMS)
    assert {"train", "tables", "tensorflow", "jax", "ssim_n", "bw_mse"} <= names
    found = []
    for path in sorted(SRC.rglob("*.py")):
        for name, line, keys in _module_level_dict_keys(path):
            if keys & names:
                found.append(f"{path.relative_to(SRC)}:{line} {name}: {sorted(keys & names)}")
    assert not found, "\n".join(found)


def test_the_registries_are_one_class():
    from ssimsr.tables.registry import TABLES

    with pytest.raises(ValueError, match="table 'table1' is registered twice"):
        TABLES.add("table1", "another builder")
    for entries in (registry.ARCHITECTURES, registry.LOSS_TERMS, jobs.STAGES, backends.BACKENDS, TABLES):
        assert isinstance(entries, registry.Registry), entries
