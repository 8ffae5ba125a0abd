"""Conda environments (for --sdm conda) name the same packages and bounds as pyproject."""

import json
import re
import tomllib
from pathlib import Path

import yaml

from ssimsr.training.backends import BACKENDS

REPO = Path(__file__).resolve().parents[1]


def _split(requirement: str) -> tuple[str, str]:
    name, spec = re.match(r"^\s*([A-Za-z0-9_.\-]+(?:\[[a-z0-9\-]+\])?)\s*(.*)$", requirement).groups()
    return name.lower().replace("_", "-"), spec.replace(" ", "")


def _env_pins(path: Path) -> dict[str, str]:
    env = yaml.safe_load(path.read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return dict(_split(r) for r in pip if not r.startswith("-"))


def test_envs_match_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    core = dict(_split(r) for r in project["dependencies"])
    # the extras' own packages; an extra that names others (`ssimsr[all]`) adds none
    optional = {name: spec for group in ("train", "lpips", "torch", "workflow", "jax", "cuda") for name, spec in
                map(_split, project["optional-dependencies"][group]) if not name.startswith("ssimsr")}
    known = {**core, **optional}
    seen = set()
    env_files = sorted(f"envs/{p.name}" for p in (REPO / "envs").glob("*.yaml"))
    train_envs = {f"envs/{backend.env_file}" for backend in BACKENDS.values()}  # each backend's train env
    assert train_envs | {"envs/torch.yaml", "envs/cuda.yaml"} <= set(env_files)
    for env_file in env_files:
        pins = _env_pins(REPO / env_file)
        for name, spec in pins.items():
            assert name in known, f"{env_file}: {name} is not a dependency in pyproject.toml"
            assert spec == known[name], f"{env_file}: {name}{spec} but pyproject says {name}{known[name]}"
        seen |= set(pins)
    assert seen >= set(known), f"in pyproject but in no env: {sorted(set(known) - seen)}"


def test_each_backend_stays_in_its_envs():
    """TensorFlow and torch never share an env (triton segfaults beside TensorFlow: conftest.py);
    each backend's train env pins its package."""
    for path in sorted((REPO / "envs").glob("*.yaml")):
        pins = {name.split("[")[0] for name in _env_pins(path)}
        assert not {"tensorflow", "torch"} <= pins, f"{path.name} pins both TensorFlow and torch"
    for backend in BACKENDS.values():
        assert backend.name in _env_pins(REPO / "envs" / backend.env_file), backend.env_file


# The train rule's conda env (--sdm conda) follows training.backend. Creating the envs needs
# conda and the network, so the test reads the rule as Snakemake loaded it, in a subprocess
# (Snakemake's API changes the working directory and logging).
LOAD_TRAIN_RULE = """
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

repo, workdir, backend = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
with SnakemakeApi(OutputSettings(quiet=None)) as api:
    workflow = api.workflow(
        resource_settings=ResourceSettings(cores=1), snakefile=repo / "Snakefile", workdir=workdir,
        config_settings=ConfigSettings(configfiles=[workdir / "cfg.yaml"], config={"training": {"backend": backend}}),
    )._workflow
    rule = workflow.get_rule("train")
    choices = {b: workflow.globals["train_env"]({**workflow.config, "training": {"backend": b}})
               for b in sys.argv[4:]}
    print(json.dumps({"conda": str(rule.conda_env), "basedir": str(rule.basedir), "choices": choices}))
"""


def test_train_env_follows_the_training_backend(tmp_path):
    import subprocess
    import sys

    from test_workflow import TINY

    backends = BACKENDS.names()  # the schema's enum is these (tests/test_registry.py)
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(TINY))
    result = subprocess.run([sys.executable, "-c", LOAD_TRAIN_RULE, str(REPO), str(tmp_path), "jax", *backends],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    # the rule uses the helper: the env of the configured backend (jax here, not the default)
    assert loaded["conda"] == loaded["choices"]["jax"] == "../../envs/jax.yaml"
    # the env of each backend is its BACKENDS entry's env_file, written nowhere else
    assert loaded["choices"] == {b.name: f"../../envs/{b.env_file}" for b in BACKENDS.values()}
    for backend, env in loaded["choices"].items():  # one env per backend, pinning its package
        path = (Path(loaded["basedir"]) / env).resolve()
        assert path.parent == REPO / "envs" and path.is_file(), env
        assert backend in _env_pins(path), f"{env} does not pin {backend}"
    assert len(set(loaded["choices"].values())) == len(backends)


def test_tensorflow_s_gpu_probe_is_quiet_where_no_gpu_is_expected(monkeypatch):
    """CPU runs log no "failed call to cuInit" error line (issue 26): TensorFlow's C++ log
    is quieted where this machine has no GPU, kept where it has one or the user set it."""
    import os
    import subprocess
    import sys

    from ssimsr.training import backends

    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    monkeypatch.setenv("SSIMSR_NUM_GPUS", "0")
    env = backends.get("tensorflow").environment()
    assert env["TF_CPP_MIN_LOG_LEVEL"] == "3"
    probe = "import tensorflow as tf; tf.config.list_physical_devices()"
    out = subprocess.run([sys.executable, "-c", probe], env={**os.environ, **env}, capture_output=True, text=True)
    assert out.returncode == 0 and "cuInit" not in out.stderr, out.stderr[-500:]
    monkeypatch.setenv("SSIMSR_NUM_GPUS", "1")
    assert "TF_CPP_MIN_LOG_LEVEL" not in backends.get("tensorflow").environment()
    monkeypatch.setenv("SSIMSR_NUM_GPUS", "0")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "1")
    assert "TF_CPP_MIN_LOG_LEVEL" not in backends.get("tensorflow").environment()
    assert "TF_CPP_MIN_LOG_LEVEL" not in backends.get("jax").environment()
