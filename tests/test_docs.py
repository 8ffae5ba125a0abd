"""The README and the documentation site (docs/, mkdocs.yml): short README, every page of the
navigation present, every relative link resolving, the configuration reference complete.

`mkdocs build --strict` (.ci/run) checks the rest: anchors between pages, the theme, the hook."""

import importlib.util
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")  # [text](target), images too
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def _generator():
    spec = importlib.util.spec_from_file_location("gen_reference", DOCS / "gen_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _nav_pages(nav) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [page for entry in nav for page in _nav_pages(entry)]
    return [page for value in nav.values() for page in _nav_pages(value)]


def _github_slug(heading: str) -> str:
    return re.sub(r"\s", "-", re.sub(r"[^\w\- ]", "", heading.strip().lower()))


def _markdown_files() -> list[Path]:
    return [REPO / "README.md", *sorted(DOCS.glob("**/*.md"))]


def test_readme_is_short_and_keeps_the_commands_ci_runs():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 160
    # .ci/run: "install as README says, run README's test command", then the demo
    for command in ('python -m pip install -e ".[test]"', "\npython -m pytest\n",
                    "snakemake --profile profiles/demo", "snakemake --cores 1 --resources gpu=1"):
        assert command in text, command


def test_every_page_of_the_navigation_exists_and_every_page_is_in_it():
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))
    pages = _nav_pages(config["nav"])
    assert len(pages) == len(set(pages))
    for page in pages:
        assert (DOCS / page).is_file(), page
    assert {p.relative_to(DOCS).as_posix() for p in DOCS.glob("**/*.md")} == set(pages)


@pytest.mark.parametrize("path", _markdown_files(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_relative_link_resolves(path):
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    own = {_github_slug(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}
    for target in LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        if file:
            assert (path.parent / file).exists(), f"{path.name}: {target}"
        elif path.name == "README.md":  # anchors of the site's pages: mkdocs build --strict
            assert anchor in own, f"{path.name}: {target}"


def test_the_configuration_reference_covers_every_key_of_the_schema():
    gen = _generator()
    schema = yaml.safe_load(gen.SCHEMA.read_text(encoding="utf-8"))
    rows = gen.config_rows(schema)
    keys = {path.split(".")[-1].removesuffix("[]") for path, *_ in rows}

    def every_key(node):  # every name under `properties` (and each patternProperties' title), anywhere
        if isinstance(node, dict):
            for name, child in node.get("properties", {}).items():
                yield name, child
            for pattern, child in node.get("patternProperties", {}).items():
                yield child.get("title", pattern).split(",")[0], child
            for value in node.values():
                yield from every_key(value)
        elif isinstance(node, list):
            for value in node:
                yield from every_key(value)

    found = list(every_key(schema))
    assert len(found) > 80
    missing = sorted({name for name, _ in found} - keys)
    assert not missing, f"schema keys missing from the reference: {missing}"

    page = gen.config_reference(schema)
    by_path = {path: (kind, default, description) for path, kind, default, description in rows}
    for path in by_path:
        assert f"| `{path}` |" in page
    for name, child in found:  # its default and description are on its row
        matching = [v for p, v in by_path.items() if p.split(".")[-1].removesuffix("[]") == name]
        if "default" in child:
            assert any(default for _, default, _ in matching), name
        if child.get("description"):
            assert any(description for *_, description in matching), name
    # the defaults as the schema holds them
    assert by_path["training.backend"][1] == '"tensorflow"'
    assert by_path["report.comparisons"][1] == "[[1, 0], [1, 2]]"
    assert by_path["datasets.<dataset>.split.method"][0].endswith(", required")


def test_every_marker_in_the_pages_has_a_generator():
    gen = _generator()
    used = {name for page in DOCS.glob("**/*.md") for name in gen.MARKER.findall(page.read_text(encoding="utf-8"))}
    assert used == set(gen.GENERATORS)


def test_every_generated_part_builds_from_the_code():
    """What the hook puts into the pages (without mkdocs): each generator runs and names what it lists."""
    gen = _generator()
    parts = {name: make() for name, make in gen.GENERATORS.items()}
    assert "### `ssimsr status`" in parts["cli-reference"]
    assert "| `train` | `ssimsr train` |" in parts["stages"]
    assert "| `models.losses` | `train`," in parts["reruns"]
    assert "| `verdict` |" in parts["tables-figures"] and "| `forest_contrasts` |" in parts["tables-figures"]
    assert "| `sr` |" in parts["registries"] and "| `ssim_n` | `lambda_s` |" in parts["registries"]
    page = gen.expand((DOCS / "architecture.md").read_text(encoding="utf-8"))
    assert "<!-- ssimsr:" not in page and parts["stages"].strip() in page
