"""The tables say which code and config produced them (issue 27, item 2): the ssimsr
version, the git commit and dirty flag, a short hash of the resolved config, in the LaTeX
caption and under the Markdown one; the CSV holds the data alone. Informative: it is in no
rule's params and no code digest, so it reruns nothing by itself."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pandas as pd

from ssimsr import __version__
from ssimsr.pipeline import code_digest, jobs
from ssimsr import tables as T
from ssimsr.pipeline.provenance import config_hash, describe, git_state

REPO = Path(__file__).resolve().parents[1]
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def test_describe_names_the_version_the_commit_the_dirty_flag_and_the_config():
    config = {"seeds": [0, 1], "report": {"table1_study": "demo"}}
    want = hashlib.sha256(json.dumps(config, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:12]
    assert config_hash(config) == want == config_hash({"report": {"table1_study": "demo"}, "seeds": [0, 1]})
    assert config_hash({**config, "seeds": [0]}) != want
    assert describe(config, git={"commit": COMMIT, "dirty": True}) == (
        f"Produced by ssimsr {__version__} (git commit {COMMIT[:12]}, uncommitted changes), config sha256 {want}.")
    assert describe(None, git={"commit": COMMIT, "dirty": False}) == (
        f"Produced by ssimsr {__version__} (git commit {COMMIT[:12]}).")
    assert describe(config, git={}) == f"Produced by ssimsr {__version__}, config sha256 {want}."
    state = git_state()  # this checkout's, as the tables job reads it
    if state:
        assert f"git commit {state['commit'][:12]}" in describe()


def test_the_provenance_ends_the_latex_caption_and_follows_the_markdown_one(tmp_path):
    data = pd.DataFrame({"model": ["sr", "irn"], "psnr": [30.123, 29.5]})
    line = describe({"scale": 2}, git={"commit": COMMIT, "dirty": True})
    with_it = T.write_table(data, tmp_path / "with", "A caption.", label="tab:t", provenance=line)
    without = T.write_table(data, tmp_path / "without", "A caption.", label="tab:t")
    tex = with_it["tex"].read_text()
    caption = re.search(r"\\caption\{(.*)\}", tex).group(1)
    assert caption.startswith("A caption. Produced by ssimsr ") and COMMIT[:12] in caption
    assert "uncommitted changes" in caption and config_hash({"scale": 2}) in caption
    md = with_it["md"].read_text().splitlines()
    assert md[:2] == ["**A caption.**", f"*{line}*"]
    assert with_it["csv"].read_bytes() == without["csv"].read_bytes()  # the data alone
    assert "Produced by" not in without["tex"].read_text() + without["md"].read_text()


def test_the_tables_job_puts_the_run_s_provenance_in_every_caption(tmp_path):
    """The tables job (ssimsr.pipeline.jobs.tables) reads the version, this checkout's commit and the
    job's resolved config (Snakemake's ``snakemake.config``) when it runs."""
    from test_jobs import Named, snakemake_object
    from test_tables import _study_frames

    from ssimsr.analysis import stats as S
    from ssimsr.evaluation.preprocessing import COLUMNS

    history, per_image = _study_frames()
    files = {"history": history, "per_image": per_image,
             "comparisons": S.compare_studies(per_image, pairs=[[1, 0], [1, 2]]),
             "baseline": pd.DataFrame(columns=["dataset", "set", "image", "origin", "psnr", "ssim"]),
             "preprocessing": pd.DataFrame(columns=COLUMNS)}
    for name, frame in files.items():
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
    report = dict(table1_study="table1", appendix_study=None, stats=dict(model="sr", dataset="bsds300",
                                                                        study="table1"))
    config = {"report": report, "seeds": [0, 1], "scale": 2}
    out = tmp_path / "tables"
    smk = snakemake_object("tables", log=[str(tmp_path / "tables.log")], report=report, splits={},
                           showcase={"model": "sr", "dataset": "bsds300"}, benchmarks=[], out=str(out))
    smk.input = Named(**{name: str(tmp_path / f"{name}.csv") for name in files})
    smk.config = config
    jobs.run(smk)
    line = describe(config)
    assert f"ssimsr {__version__}" in line and config_hash(config) in line
    written = sorted(out.glob("*.tex"))
    assert written and len(written) == len(list(out.glob("*.md")))
    for tex in written:
        assert T.tex_escape(line) in tex.read_text(), tex.name
        assert f"*{line}*" in tex.with_suffix(".md").read_text(), tex.name
        assert "Produced by" not in tex.with_suffix(".csv").read_text(), tex.name


def test_provenance_is_in_no_digest_and_no_rule_s_params():
    """A new commit, a dirty tree or another version changes captions, not what reruns."""
    glue = {"pipeline.provenance", "evaluation.export", "pipeline.extras"}
    assert glue <= set(code_digest.excluded())
    for stage in code_digest.stage_entries():
        assert not glue & set(code_digest.stage_modules(stage)), stage
    rules = (REPO / "workflow" / "rules" / "report.smk").read_text()
    for rule in re.findall(r"^rule \w+:\n(?:(?!^rule ).)*", rules, flags=re.M | re.S):
        params = rule.split("params:", 1)[-1].split("conda:", 1)[0] if "params:" in rule else ""
        assert not re.search(r"provenance|describe|git_|__version__|version", params), rule[:60]
