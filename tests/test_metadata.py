"""Ready to cite and reuse: the license, the citation file and the package metadata agree
(issue 27). The CFF schema check itself runs in CI (`cffconvert --validate`, .ci/run)."""

from importlib import metadata
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def test_license_citation_and_metadata_agree():
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    citation = yaml.safe_load((REPO / "CITATION.cff").read_text(encoding="utf-8"))
    assert project["license"]["text"] == citation["license"] == "MIT"
    assert (REPO / "LICENSE").read_text().startswith("MIT License")
    assert citation["cff-version"] == "1.2.0" and citation["version"] == project["version"]
    paper = citation["preferred-citation"]
    assert paper["title"] == "Effects of Normalised SSIM Loss on Super-Resolution Tasks"
    assert [a["family-names"] for a in paper["authors"]] == ["Hamplová", "Novák", "Žáček", "Brožek"]
    assert project["authors"] and {"Programming Language :: Python :: 3.11",
                                   "Programming Language :: Python :: 3.12"} <= set(project["classifiers"])
    assert "## Unreleased" in (REPO / "CHANGELOG.md").read_text()


def test_the_installed_metadata_and_version():
    from ssimsr import __version__, cli

    meta = metadata.metadata("ssimsr")
    assert meta["License"] == "MIT" and "ssimsr contributors" in meta["Author"]
    assert __version__ == meta["Version"]
    parser = cli.build_parser()
    assert any("--version" in action.option_strings for action in parser._actions)
