"""code_digest: the hash a rule's params carry so that editing its library code reruns it."""

import os
import shutil
import subprocess
import sys
from importlib import util
from pathlib import Path

import pytest

from ssimsr import code_digest as cd

SRC = Path(__file__).resolve().parents[1] / "src"


def test_every_stage_module_exists_and_digests_are_stable():
    for stage in cd.STAGE_MODULES:
        assert len(cd.code_digest(stage)) == 16
    # stable across processes (a fresh interpreter, nothing cached): what the DAG compares
    script = "from ssimsr.code_digest import STAGE_MODULES, code_digest; print([code_digest(s) for s in STAGE_MODULES])"
    other = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.strip()
    assert other == str([cd.code_digest(s) for s in cd.STAGE_MODULES])
    # stages that share no module have different digests
    assert cd.code_digest("tables") != cd.code_digest("train")


def test_unknown_stage_or_module_is_named():
    with pytest.raises(ValueError, match="unknown stage 'plots'"):
        cd.code_digest("plots")
    with pytest.raises(ValueError, match="no module ssimsr.nosuch"):
        cd.module_digest("nosuch")


def _tables_digest(tmp_path, name: str, edit: tuple[str, str] | None = None) -> str:
    """module_digest("tables") in a temporary copy of ssimsr, with ``edit`` = (file, text
    appended) applied; run in a fresh interpreter so the copy is the ssimsr imported."""
    copy = tmp_path / name
    shutil.copytree(SRC / "ssimsr", copy / "ssimsr", ignore=shutil.ignore_patterns("__pycache__"))
    if edit:
        path = copy / "ssimsr" / edit[0]
        path.write_text(path.read_text(encoding="utf-8") + edit[1], encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-c", "from ssimsr.code_digest import module_digest; print(module_digest('tables'))"],
        env={**os.environ, "PYTHONPATH": str(copy)}, capture_output=True, text=True, check=True)
    return result.stdout.strip()


def test_a_package_digest_covers_each_of_its_files(tmp_path):
    assert util.find_spec("ssimsr.tables").submodule_search_locations  # tables is a package
    unchanged = _tables_digest(tmp_path, "unchanged")
    assert unchanged == cd.module_digest("tables")
    assert _tables_digest(tmp_path, "code", ("tables/versus.py", "\n_EDITED = 1\n")) != unchanged
    assert _tables_digest(tmp_path, "docstring", ("tables/render.py", '\n"""A bare string."""\n')) == unchanged
