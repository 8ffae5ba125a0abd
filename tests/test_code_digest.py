"""code_digest: the hash a rule's params carry so that editing its library code reruns it."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from importlib import util
from pathlib import Path

import pytest

from ssimsr.pipeline import code_digest as cd

SRC = Path(__file__).resolve().parents[1] / "src"


def test_every_stage_module_exists_and_digests_are_stable():
    for stage in cd.stage_entries():
        assert len(cd.code_digest(stage)) == 16
        assert int(cd.code_digest(stage), 16) >= 0  # hex
    # stable across processes (a fresh interpreter, nothing cached): what the DAG compares
    script = "from ssimsr.pipeline.code_digest import stage_entries, code_digest; print([code_digest(s) for s in stage_entries()])"
    other = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.strip()
    assert other == str([cd.code_digest(s) for s in cd.stage_entries()])
    # stages that share no module have different digests
    assert cd.code_digest("tables") != cd.code_digest("train")


def test_unknown_stage_or_module_is_named():
    with pytest.raises(ValueError, match="unknown stage 'plots'"):
        cd.code_digest("plots")
    with pytest.raises(ValueError, match="unknown stage 'plots'"):
        cd.stage_modules("plots")
    with pytest.raises(ValueError, match="no module ssimsr.nosuch"):
        cd.module_digest("nosuch")


def test_stage_modules_are_sorted_and_leave_out_the_glue():
    for stage, entries in cd.stage_entries().items():
        modules = cd.stage_modules(stage)
        assert list(modules) == sorted(set(modules)), stage  # the digest's order is deterministic
        assert set(entries) <= set(modules), stage
        assert not set(modules) & set(cd.excluded()), stage
        assert ("tables/published" in modules) == ("tables" in modules), stage  # package data with its reader
    # what drifted from the hand-kept list: a function-level import (train's load_split reads
    # the prepared split with data.list_split) and the plugins registry.discover imports by name
    assert {"data.data", "models.archs.irn", "models.archs.sr", "models.terms.paper",
            "training.readout"} <= set(cd.stage_modules("train"))
    assert "io.atomic" in cd.stage_modules("stats")  # jobs.stats writes with atomic.write_csv
    # ... and the closure is not everything
    assert not {"training.train", "models.models", "data.data", "tables"} & set(cd.stage_modules("stats"))
    assert "tables" not in cd.stage_modules("figures")
    # the unit is the module: a stage that imports one module of a package gets that one
    assert "evaluation.lpips_nets" in cd.stage_modules("stats")
    assert not {"evaluation.evaluate", "evaluation.metrics"} & set(cd.stage_modules("stats"))


def test_the_runtime_imports_are_the_modules_of_the_registry_plugin_packages():
    from ssimsr.registry import PLUGIN_PACKAGES

    runtime = cd._runtime_imports()["registry"]
    assert {f"ssimsr.{name}" for name in runtime} >= set(PLUGIN_PACKAGES)  # their __init__
    assert {"models.archs.irn", "models.archs.sr", "models.terms.paper"} <= set(runtime)
    assert all(any(f"ssimsr.{name}".startswith(package) for package in PLUGIN_PACKAGES) for name in runtime)


def _loaded_units(entries: list[str]) -> dict[str, set[str]]:
    """For each entry, the ssimsr modules (dotted below ``ssimsr``: ``tables.render``) in
    ``sys.modules`` after importing ``ssimsr.<entry>`` (and, if that imported the registry,
    its plugin discovery: the imports by name that ``ast`` cannot see), each in a fresh
    process: a fork of an interpreter that has imported no ssimsr module, only the heavy
    third-party libraries (so that the forks are quick)."""
    script = textwrap.dedent("""
        import importlib, json, os, sys
        import numpy, pandas, scipy.stats  # noqa: F401  shared by the forks: imported once
        assert not [name for name in sys.modules if name.startswith("ssimsr")]
        for entry in sys.argv[1:]:
            pid = os.fork()
            if pid == 0:
                importlib.import_module(f"ssimsr.{entry}")
                if "ssimsr.registry" in sys.modules:
                    sys.modules["ssimsr.registry"].discover()
                loaded = sorted(name for name in sys.modules if name.startswith("ssimsr."))
                print(json.dumps([entry, loaded]), flush=True)
                os._exit(0)
            assert os.waitpid(pid, 0)[1] == 0, entry
    """)
    # one thread each: a process forks safely when it runs no other thread
    single = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", script, *entries], env={**os.environ, **single},
                         capture_output=True, text=True, check=True).stdout
    return {entry: {name.split(".", 1)[1] for name in loaded} for entry, loaded in map(json.loads, out.splitlines())}


def test_stage_modules_cover_what_importing_the_entries_loads():
    """An independent check of the ast closure: what the interpreter actually loads with a
    stage's entries (module-level imports only: those inside functions run later) is in the
    stage's digest, less the documented exclusions (e.g. data's ``from .download import
    DataError``), module by module."""
    loaded = _loaded_units(sorted({entry for entries in cd.stage_entries().values() for entry in entries}))
    assert set(loaded) == {entry for entries in cd.stage_entries().values() for entry in entries}
    assert loaded["data.data"] >= {"data", "data.data", "data.download", "data.sources"}  # the check sees something
    assert loaded["training.train"] >= {"registry", "models.archs", "models.archs.sr", "models.terms.paper"}
    for stage, entries in cd.stage_entries().items():
        expected = set().union(*(loaded[entry] for entry in entries)) - set(cd.excluded())
        missing = expected - set(cd.stage_modules(stage))
        assert not missing, f"{stage}: imported by its entries {entries}, not in its digest: {sorted(missing)}"


def test_the_closure_follows_imports_in_functions_and_relative_imports(tmp_path):
    root = tmp_path / "fakepkg"
    files = {
        "__init__.py": "from . import version_only\n",
        "version_only.py": "",
        "a.py": """
            from . import b
            import fakepkg.glue

            def f():
                from .c import g

            class K:
                def method(self):
                    import fakepkg.d
                    return fakepkg.d
        """,
        "b.py": "from . import NOT_A_MODULE\nimport os\n",
        "c.py": "from .sub.inner import thing\n",
        "sub/__init__.py": "",
        "sub/inner.py": """
            def thing():
                if True:
                    try:
                        from ..e import z
                    except ImportError:
                        pass
        """,
        "d.py": "from fakepkg import f_mod\n",
        "e.py": "from ... import outside_the_package\n",
        "f_mod.py": "",
        "glue.py": "from . import secret\n",  # excluded: not followed
        "secret.py": "",
        "unused.py": "from . import a\n",
        "plugin.py": "",
        "lazy/__init__.py": "def __getattr__(name):\n    import importlib\n    return importlib.import_module('.one', __name__)\n",
        "lazy/one.py": "from .. import b\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text), encoding="utf-8")

    closure = ("a", "b", "c", "d", "e", "f_mod", "sub", "sub.inner")
    assert cd.import_closure(["a"], root, "fakepkg", excluded={"glue"}) == closure
    assert cd.import_closure(["a"], root, "fakepkg") == tuple(sorted({*closure, "glue", "secret"}))
    assert cd.import_closure(["b"], root, "fakepkg", runtime={"b": ("plugin",)}) == ("b", "plugin")
    # the unit is the module: a subpackage's __init__ imports for itself, each file for itself,
    # and importing a module counts its package's __init__ (Python runs it first)
    assert cd.imported_units(root / "c.py", root, "fakepkg") == {"sub", "sub.inner"}
    assert cd.imported_units(root / "sub" / "inner.py", root, "fakepkg") == {"e"}
    assert cd.import_closure(["sub"], root, "fakepkg") == ("sub",)
    assert cd.import_closure(["sub.inner"], root, "fakepkg") == ("e", "sub", "sub.inner")
    # a package that exports lazily (a module-level __getattr__) counts as importing its modules
    assert cd.import_closure(["lazy"], root, "fakepkg") == ("b", "lazy", "lazy.one")
    with pytest.raises(ValueError, match="no module fakepkg.nosuch"):
        cd.import_closure(["nosuch"], root, "fakepkg")


def _in_copy(tmp_path, name: str, code: str, edits: dict[str, str] | None = None) -> str:
    """The output of ``code`` run in a fresh interpreter whose ssimsr is a temporary copy
    of it with ``edits`` (file -> text appended) applied."""
    copy = tmp_path / name
    shutil.copytree(SRC / "ssimsr", copy / "ssimsr", ignore=shutil.ignore_patterns("__pycache__"))
    for file, text in (edits or {}).items():
        path = copy / "ssimsr" / file
        path.write_text(path.read_text(encoding="utf-8") + text, encoding="utf-8")
    result = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(copy)},
                            capture_output=True, text=True, check=True)
    return result.stdout.strip()


def _tables_digests(tmp_path, name: str, edit: tuple[str, str] | None = None) -> dict[str, str]:
    """module_digest of each module of ``tables`` in a temporary copy of ssimsr, with
    ``edit`` = (file, text appended) applied; run in a fresh interpreter so the copy is the
    ssimsr imported."""
    code = ("import json; from ssimsr.pipeline.code_digest import ROOT, _modules, module_digest; "
            "print(json.dumps({m: module_digest(m) for m in _modules(ROOT, 'tables')}))")
    return json.loads(_in_copy(tmp_path, name, code, dict([edit]) if edit else None))


def _stage_digests(tmp_path, name: str, edits: dict[str, str]) -> dict[str, str]:
    code = ("import json; from ssimsr.pipeline.code_digest import stage_entries, code_digest; "
            "print(json.dumps({s: code_digest(s) for s in stage_entries()}))")
    return json.loads(_in_copy(tmp_path, name, code, edits))


def test_each_module_of_a_package_has_its_own_digest(tmp_path):
    assert util.find_spec("ssimsr.tables").submodule_search_locations  # tables is a package
    unchanged = _tables_digests(tmp_path, "unchanged")
    assert {"tables", "tables.render", "tables.versus"} <= set(unchanged)
    assert unchanged == {name: cd.module_digest(name) for name in unchanged}
    edited = _tables_digests(tmp_path, "code", ("tables/versus.py", "\n_EDITED = 1\n"))
    assert {name for name in unchanged if edited[name] != unchanged[name]} == {"tables.versus"}
    assert _tables_digests(tmp_path, "docstring", ("tables/render.py", '\n"""A bare string."""\n')) == unchanged


def test_editing_a_module_imported_only_inside_a_function_reruns_the_stage(tmp_path):
    """training/train.py imports data only inside load_split (``from ..data.data import list_split``)."""
    unchanged = {stage: cd.code_digest(stage) for stage in cd.stage_entries()}
    edited = _stage_digests(tmp_path, "code", {"data/data.py": "\n_EDITED = 1\n"})
    assert edited["train"] != unchanged["train"]
    assert edited["prepare_dataset"] != unchanged["prepare_dataset"]
    assert edited["stats"] == unchanged["stats"]  # stats imports no data code
    assert edited["evaluate"] != unchanged["evaluate"]


def test_editing_excluded_glue_reruns_nothing(tmp_path):
    unchanged = {stage: cd.code_digest(stage) for stage in cd.stage_entries()}
    edits = {f"{name.replace('.', '/')}.py": "\n_EDITED = 1\n" for name in cd.excluded()}
    assert "cli.py" in edits
    assert _stage_digests(tmp_path, "glue", edits) == unchanged


#: The promise, stated per edit: which stages' jobs rerun (their digest changes) when one
#: module's code changes; every other stage keeps its results. (Downstream jobs of a rerun
#: stage rerun too, because their inputs change: that is Snakemake's part.)
#: the three rules of the bicubic baseline (one dataset, one seed's split, all joined): one code
BASELINE = ("baseline", "baseline_seed", "collect_baseline")

RERUNS = {
    "models/losses.py": {"train", "showcase", "evaluate", "collect", "tables", "figures"},
    "training/train.py": {"train"},
    "data/seed_split.py": {"seed_split"},  # split.per_seed's folders, then (Snakemake) what uses them
    # tables: its captions' preprocessing note (ssimsr.evaluation.preprocessing imports data, baseline, metrics)
    "data/data.py": {"prepare_dataset", "train", "showcase", "evaluate", "lpips", "collect", *BASELINE, "preprocessing",
                     "tables", "figures", "seed_split"},
    "evaluation/metrics.py": {"showcase", "evaluate", "lpips", "collect", *BASELINE, "preprocessing", "tables", "figures"},
    "evaluation/evaluate.py": {"showcase", "evaluate", "collect"},
    "evaluation/lpips_eval.py": {"lpips"},
    "evaluation/baseline.py": {*BASELINE, "preprocessing", "tables", "figures"},
    "evaluation/preprocessing.py": {"preprocessing", "tables"},
    "analysis/stats.py": {"stats", "tables"},
    "analysis/noise.py": {"stats", "tables", "figures"},
    "tables/versus.py": {"tables"},
    "report/report.py": {"figures"},
    "report/figures.py": {"figures"},
    "models/layers.py": {"train", "showcase", "evaluate", "collect", "tables", "figures"},
}


def test_each_edit_reruns_exactly_its_stages(tmp_path):
    """Edit each module of ``RERUNS`` in turn (in a copy of the package, one fresh
    interpreter) and compare the stages whose digest changed with the promise."""
    code = textwrap.dedent(f"""
        import json
        from pathlib import Path
        from ssimsr.pipeline import code_digest as cd

        def digests():
            for f in (cd.module_digest, cd._read, cd._stage_modules, cd._direct_imports, cd.code_digest):
                f.cache_clear()
            return {{s: cd.code_digest(s) for s in cd.stage_entries()}}

        before, changed = digests(), {{}}
        for name in {sorted(RERUNS)!r}:
            path = cd.ROOT / name
            text = path.read_text()
            path.write_text(text + "\\n_EDITED = 1\\n")
            after = digests()
            path.write_text(text)
            changed[name] = sorted(s for s in before if after[s] != before[s])
        assert digests() == before
        print(json.dumps(changed))
    """)
    changed = json.loads(_in_copy(tmp_path, "edits", code, None))
    assert {name: set(stages) for name, stages in changed.items()} == RERUNS


def test_the_parse_cache_gives_the_digests_of_a_fresh_parse_and_survives_a_bad_file(tmp_path):
    """The per-file parse records are cached on disk by content hash: the digests with a
    warm cache, a cold one and an unreadable cache file are the same."""
    code = ("import json; from ssimsr.pipeline.code_digest import stage_entries, code_digest; "
            "print(json.dumps({s: code_digest(s) for s in stage_entries()}))")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}

    def digests():
        return json.loads(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                         check=True).stdout)

    cold = digests()
    cache = tmp_path / "cache" / "ssimsr" / f"code-digest-v2-py{sys.version_info[0]}{sys.version_info[1]}.json"
    assert cache.is_file() and len(json.loads(cache.read_text())) >= 40
    assert digests() == cold == {s: cd.code_digest(s) for s in cd.stage_entries()}
    cache.write_text("{not json")
    assert digests() == cold
    assert json.loads(cache.read_text())  # rewritten whole
