"""The generated parts of the documentation, and the MkDocs hook that puts them in.

A page holds a marker ``<!-- ssimsr:NAME -->`` on a line of its own; at build time
(``hooks:`` in mkdocs.yml) the hook replaces it with ``GENERATORS[NAME]()``, so
``mkdocs build`` alone regenerates them from the code:

* ``config-reference``: every key of ``src/ssimsr/config.schema.yaml`` (type, default, description);
* ``cli-reference``: ``ssimsr COMMAND --help`` of every command;
* ``tables-figures``: every table and figure the workflow writes, with its report caption;
* ``stages``, ``reruns``, ``registries``: the stages of ``ssimsr.pipeline.jobs``, which code edit
  reruns which stage (``ssimsr.pipeline.code_digest``), the registered architectures, terms, backends.

``python docs/gen_reference.py NAME`` prints one of them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "src" / "ssimsr" / "config.schema.yaml"
MARKER = re.compile(r"^<!-- ssimsr:([a-z-]+) -->$", re.M)
# the placeholder of a mapping's free keys, by the mapping's name
FREE_KEY = {"datasets": "<dataset>", "studies": "<study>", "presets": "<preset>", "models": "<model>",
            "<model>": "<width>", "epochs": "<dataset>"}

if str(ROOT / "src") not in sys.path:  # a checkout without the package installed
    sys.path.insert(0, str(ROOT / "src"))


def _text(text: str) -> str:
    """One line of Markdown for a table cell: ``<`` escaped outside code spans, ``|`` escaped."""
    parts = re.split(r"(`[^`]*`)", " ".join(str(text).replace("``", "`").split()))
    return "".join(p if p.startswith("`") else p.replace("<", "&lt;") for p in parts).replace("|", r"\|")


# --- configuration reference -------------------------------------------------------------

def _resolve(node: dict, schema: dict) -> dict:
    while "$ref" in node:
        ref = node["$ref"].split("/")[-1]
        node = {**schema["$defs"][ref], **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _type(node: dict, schema: dict) -> str:
    node = _resolve(node, schema)
    if "const" in node:
        return json.dumps(node["const"])
    if "enum" in node:
        return " | ".join(json.dumps(v) for v in node["enum"])
    if "oneOf" in node and "type" not in node:
        return " or ".join(dict.fromkeys(_type(alt, schema) for alt in node["oneOf"]))
    kinds = node.get("type", "object" if "properties" in node else "any")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    out = []
    for kind in kinds:
        if kind == "array" and "items" in node:
            kind = f"list of {_type(node['items'], schema)}"
        elif kind == "object" and isinstance(node.get("additionalProperties"), dict):
            kind = f"mapping of {_type(node['additionalProperties'], schema)}"
        out.append(kind)
    return " or ".join(out)


def config_rows(schema: dict | None = None) -> list[tuple[str, str, str, str]]:
    """(key path, type, default, description) of every key of the schema, depth first."""
    schema = schema or yaml.safe_load(SCHEMA.read_text(encoding="utf-8"))
    rows: dict[str, list] = {}

    def walk(node: dict, path: str) -> None:
        node = _resolve(node, schema)
        for alt in node.get("oneOf", []):
            walk(alt, path)
        children = {**node.get("properties", {}),
                    **{v.get("title", p).split(",")[0]: v for p, v in node.get("patternProperties", {}).items()}}
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):  # a mapping's free keys (dataset names, widths)
            children[FREE_KEY.get(path.split(".")[-1], "<name>")] = extra
        for key, child in children.items():
            full = f"{path}.{key}" if path else key
            child = _resolve(child, schema)
            items = _resolve(child.get("items", {}), schema)
            default = json.dumps(child["default"], ensure_ascii=False) if "default" in child else ""
            description = child.get("description") or child.get("title") or items.get("description", "")
            row = rows.setdefault(full, [full, [], False, default, description])
            if (kind := _type(child, schema)) not in row[1]:
                row[1].append(kind)  # a key of several oneOf alternatives: each one's type
            row[2] = row[2] or key in node.get("required", ())
            walk(child, full)
        if node.get("type") == "array" and isinstance(node.get("items"), dict):
            walk(node["items"], f"{path}[]")

    walk(schema, "")
    return [(path, " or ".join(kinds) + (", required" if required else ""), default, description)
            for path, kinds, required, default, description in rows.values()]


def config_reference(schema: dict | None = None) -> str:
    schema = schema or yaml.safe_load(SCHEMA.read_text(encoding="utf-8"))
    out = [f"_Generated from `src/ssimsr/config.schema.yaml`: {_text(schema['description'])}_", ""]
    section = None
    for path, kind, default, description in config_rows(schema):
        top = path.split(".")[0].split("[")[0]
        if top != section:
            section = top
            out += ["", f"### `{top}`", "", "| key | type | default | description |", "| --- | --- | --- | --- |"]
        cell = f"`{default}`" if default else ""
        out.append(f"| `{path}` | {_text(kind)} | {cell} | {_text(description)} |")
    return "\n".join(out) + "\n"


# --- the command line --------------------------------------------------------------------

def cli_reference() -> str:
    from ssimsr.cli import build_parser

    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal: the same page everywhere
    try:
        parser = build_parser()
        commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
        out = ["### `ssimsr --help`", "", "```text", parser.format_help().rstrip(), "```"]
        for name, sub in commands.items():
            out += ["", f"### `ssimsr {name}`", "", "```text", sub.format_help().rstrip(), "```"]
    finally:
        if columns is None:
            os.environ.pop("COLUMNS")
        else:
            os.environ["COLUMNS"] = columns
    return "\n".join(out) + "\n"


# --- tables, figures, stages, registries ---------------------------------------------------

def _caption(name: str) -> str:
    return _text((ROOT / "workflow" / "report" / f"{name}.rst").read_text(encoding="utf-8"))


def tables_figures() -> str:
    from ssimsr.report.report import FIGURE_EXTENSIONS, TABLE_EXTENSIONS, figure_caption, figure_names
    from ssimsr.tables.registry import TABLES

    out = [f"| table (`results/tables/<name>.{{{','.join(TABLE_EXTENSIONS)}}}`) | what it holds |",
           "| --- | --- |"]
    out += [f"| `{name}` | {_caption(name)} |" for name in TABLES.names()]
    out += ["", f"| figure (`results/figures/<name>.{{{','.join(FIGURE_EXTENSIONS)}}}`) | what it shows |",
            "| --- | --- |"]
    out += [f"| `{name}` | {_caption(figure_caption(name))} |"
            for name in figure_names({"images": [{"name": "<image>"}]})]
    return "\n".join(out) + "\n"


def stages() -> str:
    from ssimsr.pipeline.jobs import STAGES

    out = ["| stage (rule) | `ssimsr` command | digest entries (`code=`) | log kept across attempts | may start warm |",
           "| --- | --- | --- | --- | --- |"]
    for name, declared in STAGES.items():
        out.append(f"| `{name}` | {f'`ssimsr {declared.command}`' if declared.command else ''} | "
                   f"{', '.join(f'`{c}`' for c in declared.code) or 'none: checksum-verified files'} | "
                   f"{'yes' if declared.kept_log else ''} | {'yes' if declared.warm else ''} |")
    return "\n".join(out) + "\n"


def reruns() -> str:
    from ssimsr.pipeline import code_digest

    covered = {stage: code_digest.stage_modules(stage) for stage in code_digest.stage_entries()}
    excluded = code_digest.excluded()
    out = ["| module (package data: its folder) | an edit reruns (and everything downstream) |", "| --- | --- |"]
    for unit in code_digest.modules():
        hit = [f"`{stage}`" for stage, modules in covered.items() if unit in modules]
        why = f"nothing: {_text(excluded[unit])}" if unit in excluded else "nothing: in no stage's imports"
        out.append(f"| `{unit}` | {', '.join(hit) or why} |")
    return "\n".join(out) + "\n"


def registries() -> str:
    import inspect

    from ssimsr.training.backends import BACKENDS
    from ssimsr.registry import ARCHITECTURES, LOSS_TERMS

    out = ["| architecture | defined in | learned downscaler | widths (`models.<name>`) and defaults |",
           "| --- | --- | --- | --- |"]
    for name, arch in ARCHITECTURES.items():
        where = Path(inspect.getfile(arch.build)).relative_to(ROOT / "src")
        widths = ", ".join(f"`{k}` {v}" for k, v in arch.widths.items())
        out.append(f"| `{name}` | `src/{where}` | {'yes' if arch.learned_downscaler else 'no'} | {widths} |")
    out += ["", "| loss term | weight | table label | defined in | uses VGG19 features | logged at weight 0 |",
            "| --- | --- | --- | --- | --- | --- |"]
    for name, term in LOSS_TERMS.items():
        where = Path(inspect.getfile(term.compute)).relative_to(ROOT / "src")
        out.append(f"| `{name}` | `{term.weight}` | {_text(term.label or name)} | `src/{where}` | "
                   f"{'yes' if term.needs_extractor else ''} | {'yes' if term.logged else ''} |")
    out += ["", "Keras backends (`training.backend`): " + ", ".join(f"`{n}`" for n in BACKENDS.names()) + "."]
    return "\n".join(out) + "\n"


GENERATORS = {"config-reference": config_reference, "cli-reference": cli_reference,
              "tables-figures": tables_figures, "stages": stages, "reruns": reruns, "registries": registries}


def expand(markdown: str) -> str:
    """``markdown`` with every marker replaced by its generated text (an unknown one: KeyError)."""
    return MARKER.sub(lambda m: GENERATORS[m.group(1)]().rstrip("\n"), markdown)


def on_page_markdown(markdown: str, **_) -> str:
    """MkDocs hook (mkdocs.yml ``hooks:``)."""
    return expand(markdown)


if __name__ == "__main__":
    print(GENERATORS[sys.argv[1]]() if len(sys.argv) > 1 else __doc__)
