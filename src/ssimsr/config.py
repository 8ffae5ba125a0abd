"""The config schema, its defaults, and validation messages that name the offending key.

``config.schema.yaml`` (next to this module) is the one place where config keys, their
types and their defaults are written. Snakemake's ``validate()`` checks a workflow's
config against it and fills the defaults; :func:`with_defaults` does the same for the
library (tests, benchmarks, a run built by hand). Snakemake's error dumps the whole
sub-schema, so :func:`describe_errors` lists every violation as ``key.path: message``.
"""

from __future__ import annotations

import copy
import functools
import math
import re
from pathlib import Path

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).with_name("config.schema.yaml")


class ConfigError(ValueError):
    pass


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = [str(p) if not isinstance(p, int) else f"[{p}]" for p in error.absolute_path]
    text = ".".join(parts).replace(".[", "[")
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        extra = _unknown_keys(error)
        if extra and error.schema.get("additionalProperties") is False:
            return ", ".join(f"{text}.{k}" if text else k for k in extra)
    return text or "<top level>"


def _unknown_keys(error: jsonschema.ValidationError) -> list[str]:
    """The keys of an ``additionalProperties`` error's mapping that neither a property nor a
    pattern of its schema allows."""
    schema = error.schema
    return sorted(k for k in error.instance if k not in schema.get("properties", {})
                  and not any(re.search(p, k) for p in schema.get("patternProperties", {})))


def _known_keys(schema: dict) -> str:
    """What a mapping's schema allows: its properties, then each pattern's ``title`` (the
    pattern itself where it has none)."""
    known = ", ".join(sorted(schema.get("properties", {})))
    patterns = [sub.get("title") or f"a key matching {p}" for p, sub in schema.get("patternProperties", {}).items()]
    return "; or ".join(part for part in (known, *patterns) if part)


def _leaf_errors(error: jsonschema.ValidationError):
    """oneOf/anyOf errors wrap the real reasons: report those of the branch that was meant.

    The meant branch is one whose discriminating `const`/`type` checks passed (e.g. the
    `resize` variant with the given `mode`); if none fits, all reasons are reported.
    """
    if not error.context:
        yield error
        return
    branches: dict = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    meant = [errs for errs in branches.values()
             if not any(e.validator in ("const", "type") for e in errs)]
    for errs in meant or branches.values():
        for sub in errs:
            yield from _leaf_errors(sub)


#: libyaml's parser where PyYAML has it (the same values, 5x faster: `ssimsr status` reads the schema)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@functools.cache
def _schema(path: str) -> dict:
    return yaml.load(Path(path).read_text(), Loader=_LOADER)


def _filling_validator(schema: dict) -> jsonschema.protocols.Validator:
    """A validator that also sets each absent property's ``default`` (jsonschema's recipe)."""
    base = jsonschema.Draft202012Validator
    check_properties = base.VALIDATORS["properties"]

    def properties(validator, props, instance, schema):
        if isinstance(instance, dict):
            for key, sub in props.items():
                if "default" in sub:
                    instance.setdefault(key, copy.deepcopy(sub["default"]))
        yield from check_properties(validator, props, instance, schema)

    return jsonschema.validators.extend(base, {"properties": properties})(schema)


def with_defaults(config: dict, schema_path: str | Path = SCHEMA_PATH) -> dict:
    """A validated copy of ``config`` with the schema's defaults filled in.

    Raises ConfigError listing every violation by key.
    """
    check_config(config, schema_path)
    filled = copy.deepcopy(config)
    for _ in _filling_validator(_schema(str(schema_path))).iter_errors(filled):
        pass  # valid (checked above); iterating fills the defaults
    return filled


def defaults(section: str | None = None):
    """The schema's defaults: of one top-level section (``losses``, ``training``, ...) or all."""
    filled: dict = {}
    for _ in _filling_validator(_schema(str(SCHEMA_PATH))).iter_errors(filled):
        pass  # an empty config is invalid; only the filled defaults matter here
    return filled if section is None else filled[section]


def fill_defaults(value: dict, definition: str) -> dict:
    """A copy of one part of a config with the schema's defaults filled in, for the stages
    that take a part (a dataset, a source, the report) from callers other than the workflow.

    ``definition`` names a ``$defs`` entry (``dataset``, ``source``, ``split``) or a
    top-level section (``report``, ``evaluation``); the value is not validated here.
    """
    filled = copy.deepcopy(value)
    for _ in _part_filler(definition).iter_errors(filled):
        pass  # partial values are fine: only the defaults matter
    return filled


@functools.cache
def _part_filler(definition: str):
    root = _schema(str(SCHEMA_PATH))
    sub = root["$defs"].get(definition) or root["properties"].get(definition)
    if sub is None:
        raise KeyError(f"fill_defaults: no schema definition or section {definition!r}")
    return _filling_validator({"$defs": root["$defs"], **sub})


def _non_finite(value, path: str = ""):
    """``(key path, value)`` of every NaN or infinite number in a config. JSON Schema cannot
    say "finite" (``minimum: 0`` lets ``.inf`` through, and every comparison with NaN is
    false), and no key of ours means anything at NaN or infinity: a λ of ``.nan`` would
    become a run folder ``lsnan`` that no rule can make."""
    if isinstance(value, float) and not math.isfinite(value):
        yield path or "<top level>", value
    elif isinstance(value, dict):
        for key, sub in value.items():
            yield from _non_finite(sub, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            yield from _non_finite(sub, f"{path}[{i}]")


def describe_errors(config: dict, schema_path: str | Path = SCHEMA_PATH) -> list[str]:
    """One ``key: message`` line per schema violation or non-finite number, sorted by key."""
    validator = jsonschema.Draft202012Validator(_schema(str(schema_path)))
    lines = {f"{key}: {value} is not a finite number" for key, value in _non_finite(config)}
    for error in validator.iter_errors(config):
        for leaf in _leaf_errors(error):
            message = leaf.message
            if leaf.validator == "additionalProperties" and leaf.schema.get("additionalProperties") is False:
                message = f"unknown key (known: {_known_keys(leaf.schema)})"
            elif leaf.validator == "additionalProperties":
                message = "unknown key (" + message + ")"
            lines.add(f"{_key_path(leaf)}: {message}")
    return sorted(lines)


def check_config(config: dict, schema_path: str | Path = SCHEMA_PATH) -> None:
    """Raise ConfigError listing every violation by key; no-op for a valid config."""
    lines = describe_errors(config, schema_path)
    if lines:
        raise ConfigError("invalid config:\n  " + "\n  ".join(lines))


def merge_configs(base: dict, override: dict) -> dict:
    """``override`` merged into a copy of ``base`` as Snakemake merges ``--configfile`` files:
    mappings key by key, everything else (lists included) replaced."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_configs(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_config_files(paths=None, *, fill: bool = True) -> dict:
    """Config files (default ``config.yaml``) merged in order, later ones winning, as
    ``snakemake --configfile``; with ``fill``, validated and the schema's defaults filled
    (:func:`with_defaults`). Errors name the file."""
    merged: dict = {}
    for path in map(Path, paths or ["config.yaml"]):
        try:
            data = yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER)
        except FileNotFoundError:
            raise FileNotFoundError(f"config file {path}: not found") from None
        except yaml.YAMLError as exc:
            text = " ".join(str(exc).split())
            raise ValueError(f"config file {path}: not valid YAML: {text}") from None
        if data is None:
            continue
        if not isinstance(data, dict):
            raise ValueError(f"config file {path}: not a mapping of config keys")
        merged = merge_configs(merged, data)
    return with_defaults(merged) if fill else merged


#: The config file the Snakefile names (``configfile:``): Snakemake reads it first, then every
#: ``--configfile`` over it.
WORKFLOW_CONFIG = "config.yaml"


def workflow_config_files(given=None, profile=None, workflow_config: str | Path = WORKFLOW_CONFIG) -> list[Path]:
    """The config files a ``snakemake`` call reads, in merge order: the workflow's own
    (``config.yaml``, where it exists), then a profile's ``configfile:`` entries (``profile``:
    its folder, as ``snakemake --profile DIR``), then ``given`` (as ``--configfile``). A file
    named twice counts once, at its first place."""
    files = [Path(workflow_config)] if Path(workflow_config).is_file() else []
    if profile is not None:
        files += profile_config_files(profile)
    files += [Path(f) for f in given or []]
    unique: list[Path] = []
    for path in files:
        if not any(path.resolve() == seen.resolve() for seen in unique):
            unique.append(path)
    if not unique:
        raise FileNotFoundError(f"config file {workflow_config}: not found (give one with --config FILE)")
    return unique


def profile_config_files(profile: str | Path) -> list[Path]:
    """The ``configfile`` entries of a Snakemake profile folder's ``config.yaml`` (relative
    paths are the working directory's, as Snakemake reads them); errors name the file."""
    path = Path(profile) / "config.yaml"
    try:
        settings = yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER) or {}
    except FileNotFoundError:
        raise FileNotFoundError(f"profile {profile}: no {path}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"profile {path}: not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(settings, dict):
        raise ValueError(f"profile {path}: not a mapping of snakemake options")
    entries = settings.get("configfile", settings.get("configfiles", []))
    return [Path(e) for e in ([entries] if isinstance(entries, str) else entries)]

