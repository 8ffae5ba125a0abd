"""Config validation messages that name the offending key.

Snakemake's ``validate()`` checks the config against the JSON schema and fills its
defaults; its error dumps the whole sub-schema. ``describe_errors`` lists every
violation as ``key.path: message`` so a user sees at once which key to fix.
"""

from __future__ import annotations

from pathlib import Path

import jsonschema
import yaml


class ConfigError(ValueError):
    pass


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = [str(p) if not isinstance(p, int) else f"[{p}]" for p in error.absolute_path]
    text = ".".join(parts).replace(".[", "[")
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        extra = sorted(k for k in error.instance if k not in allowed)
        if extra and error.schema.get("additionalProperties") is False:
            return ", ".join(f"{text}.{k}" if text else k for k in extra)
    return text or "<top level>"


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


def describe_errors(config: dict, schema_path: str | Path) -> list[str]:
    """One ``key: message`` line per schema violation, sorted by key."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    lines = set()
    for error in validator.iter_errors(config):
        for leaf in _leaf_errors(error):
            message = leaf.message
            if leaf.validator == "additionalProperties":
                message = "unknown key (" + message + ")"
            lines.add(f"{_key_path(leaf)}: {message}")
    return sorted(lines)


def check_config(config: dict, schema_path: str | Path) -> None:
    """Raise ConfigError listing every violation by key; no-op for a valid config."""
    lines = describe_errors(config, schema_path)
    if lines:
        raise ConfigError("invalid config:\n  " + "\n  ".join(lines))
