"""An install sized to the job (issue 27, item 4): the core install upscales, exports and
rebuilds tables without TensorFlow, torch, lpips or snakemake; a missing optional package is
one line naming the extra that brings it; `.[test]` (the README's one command) is still the
full system. The fresh-venv check of the core install runs in CI (.ci/run, "core install")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from ssimsr.pipeline import extras, runner

REPO = Path(__file__).resolve().parents[1]
OPTIONAL = ("tensorflow", "torch", "torchvision", "lpips", "snakemake")

#: run first in a child Python: these packages cannot be imported there (as in a core install)
BLOCK = f"""
import sys
class _NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {OPTIONAL!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, _NotInstalled())
"""


def _child(code: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"} | (env or {})
    return subprocess.run([sys.executable, "-c", BLOCK + code, *args], capture_output=True, text=True,
                          timeout=120, env=env)


def _requirements(group: str | None = None) -> dict[str, str]:
    """name -> requirement of pyproject's core dependencies (group None) or of an extra, with
    the extras it names (``ssimsr[...]``) resolved."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    found = {}
    for requirement in project["dependencies"] if group is None else project["optional-dependencies"][group]:
        name = requirement.split(">")[0].split("<")[0].split("=")[0].split("[")[0].strip().lower()
        if name == "ssimsr":
            for extra in requirement.split("[", 1)[1].rstrip("]").split(","):
                found |= _requirements(extra.strip())
        else:
            found[name] = requirement
    return found


def test_the_core_modules_import_without_the_optional_packages():
    """Upscale, export, provenance, extras and every table module import with TensorFlow,
    torch, lpips and snakemake unimportable, and import none of them."""
    code = """
import importlib, json
import ssimsr.cli, ssimsr.evaluation.upscale, ssimsr.evaluation.export, ssimsr.pipeline.provenance, ssimsr.pipeline.extras, ssimsr.report.report, ssimsr.pipeline.status
for name in ("paper", "published", "registry", "render", "runs", "statistics", "versus", "baseline",
             "benchmarks", "contrasts"):
    importlib.import_module("ssimsr.tables." + name)
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & {"tensorflow", "torch", "lpips", "snakemake", "keras"})))
"""
    result = _child(code)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_upscale_runs_on_jax_where_the_run_s_tensorflow_is_not_installed(tiny_sr_run, tmp_path):
    """A run trained on TensorFlow, in a process where TensorFlow and torch cannot be
    imported (a core install): `ssimsr upscale` picks JAX, says so, and writes the image."""
    from PIL import Image

    params = json.loads((tiny_sr_run / "params.json").read_text())
    assert params.get("backend", "tensorflow") == "tensorflow"
    photo, out = tmp_path / "photo.png", tmp_path / "out.png"
    Image.new("RGB", (12, 10), (120, 60, 30)).save(photo)
    code = """
from ssimsr import cli
status = cli.main(["upscale", sys.argv[1], sys.argv[2], sys.argv[3]])
import keras
print("backend", keras.backend.backend(), status)
"""
    result = _child(code, str(tiny_sr_run), str(photo), str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "backend jax 0"
    assert "trained on tensorflow, which is not installed here" in result.stderr
    assert 'pip install "ssimsr[train]"' in result.stderr
    assert Image.open(out).size == (24, 20)


@pytest.mark.parametrize("stage, package, extra", [
    ("lpips", "torch", "lpips"),        # the LPIPS stage's torch: the lpips extra (lpips and torchvision too)
    ("train", "tensorflow", "train"),
    ("evaluate", "torch", "torch"),     # the torch backend: the smallest extra that brings it
    ("stats", "snakemake", "workflow"),
    ("lpips", "lpips", "lpips"),
])
def test_a_missing_optional_package_is_one_line_naming_its_extra(capsys, stage, package, extra):
    with runner.one_line_errors(stage) as outcome:
        raise ModuleNotFoundError(f"No module named '{package}'", name=package)
    err = capsys.readouterr().err.strip().splitlines()
    assert outcome.status == 1 and len(err) == 1, err
    assert err[0].startswith(f"ssimsr {stage}: error: {package} is not installed")
    assert f'pip install "ssimsr[{extra}]"' in err[0]


def test_a_missing_module_of_no_extra_is_still_a_bug_with_its_traceback(capsys):
    with runner.one_line_errors("stats") as outcome:
        raise ModuleNotFoundError("No module named 'not_a_dependency'", name="not_a_dependency")
    err = capsys.readouterr().err
    assert outcome.status == 1 and "Traceback" in err and "ssimsr stats: internal error:" in err


def test_the_backend_falls_back_to_an_installed_one_or_names_the_extra(monkeypatch, caplog):
    present = {"jax"}
    monkeypatch.setattr(extras, "installed", lambda module: module in present)
    assert extras.usable_backend("jax") == "jax"
    assert extras.usable_backend("tensorflow") == "jax"
    assert 'trained on tensorflow, which is not installed here (pip install "ssimsr[train]"); running on jax' \
        in caplog.text
    with pytest.raises(extras.MissingExtra, match=r'the Keras backend tensorflow is not installed: '
                                                   r'pip install "ssimsr\[train\]"'):
        extras.require_backend("tensorflow")
    with pytest.raises(extras.MissingExtra, match=r'the Keras backend torch is not installed: pip install "ssimsr\[torch\]"'):
        runner.use_backend("torch")
    present.clear()
    with pytest.raises(extras.MissingExtra, match=r'no Keras backend is installed .*pip install "ssimsr\[jax\]"'):
        extras.usable_backend("tensorflow")


def test_the_extras_are_sized_to_the_job_and_test_is_the_full_system():
    core = _requirements()
    assert not set(core) & set(OPTIONAL), "the core install brings no TensorFlow, torch, lpips or snakemake"
    assert {"keras", "jax", "numpy", "pandas", "scipy", "pillow", "tabulate", "jinja2"} <= set(core)
    assert set(_requirements("train")) == {"tensorflow"}
    assert set(_requirements("lpips")) == {"lpips", "torch", "torchvision"}
    assert set(_requirements("workflow")) == {"snakemake"}
    # the README's one install command: everything the single install had, and pytest
    full = core | _requirements("test")
    assert set(OPTIONAL) | {"jax", "keras", "pytest"} <= set(full)
    assert full["torch"] == "torch>=2.2,<=2.14.1" and full["torchvision"] == "torchvision>=0.17,<=0.29.1"
    # the installed metadata is what the one-line hints read
    assert extras.extra_for("torchvision") == "lpips" and extras.extra_for("tensorflow") == "train"
