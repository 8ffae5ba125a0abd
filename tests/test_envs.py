"""Conda environments (for --sdm conda) name the same packages and bounds as pyproject."""

import re
import tomllib
from pathlib import Path

import yaml

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
    optional = {name: spec for group in ("jax", "cuda") for name, spec in
                map(_split, project["optional-dependencies"][group])}
    known = {**core, **optional}
    seen = set()
    for env_file in ("envs/tensorflow.yaml", "envs/torch.yaml", "envs/cuda.yaml"):
        pins = _env_pins(REPO / env_file)
        for name, spec in pins.items():
            assert name in known, f"{env_file}: {name} is not a dependency in pyproject.toml"
            assert spec == known[name], f"{env_file}: {name}{spec} but pyproject says {name}{known[name]}"
        seen |= set(pins)
    assert seen >= set(known), f"in pyproject but in no env: {sorted(set(known) - seen)}"


def test_torch_only_in_the_lpips_env():
    assert "torch" not in _env_pins(REPO / "envs/tensorflow.yaml")
    assert "tensorflow" not in _env_pins(REPO / "envs/torch.yaml")
