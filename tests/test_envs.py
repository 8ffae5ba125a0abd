"""Conda environments (for --sdm conda) name the same packages and bounds as pyproject."""

import re
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def _split(requirement: str) -> tuple[str, str]:
    name, spec = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", requirement).groups()
    return name.lower().replace("_", "-"), spec.replace(" ", "")


def _env_pins(path: Path) -> dict[str, str]:
    env = yaml.safe_load(path.read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return dict(_split(r) for r in pip if not r.startswith("-"))


def test_envs_match_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    core = dict(_split(r) for r in project["dependencies"])
    seen = set()
    for env_file in ("envs/tensorflow.yaml", "envs/torch.yaml"):
        pins = _env_pins(REPO / env_file)
        for name, spec in pins.items():
            assert name in core, f"{env_file}: {name} is not a dependency in pyproject.toml"
            assert spec == core[name], f"{env_file}: {name}{spec} but pyproject says {name}{core[name]}"
        seen |= set(pins)
    assert seen == set(core), f"in pyproject but in no env: {sorted(set(core) - seen)}"


def test_torch_only_in_the_lpips_env():
    assert "torch" not in _env_pins(REPO / "envs/tensorflow.yaml")
    assert "tensorflow" not in _env_pins(REPO / "envs/torch.yaml")
