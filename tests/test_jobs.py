"""The workflow's script jobs (ssimsr.pipeline.jobs): Python values in, a log, one-line errors."""

from types import SimpleNamespace

import pandas as pd
import pytest

from ssimsr.pipeline import jobs


class Named(list):
    """Snakemake's input/output/log: a list whose items are also attributes."""

    def __init__(self, items=(), **named):
        super().__init__([*items, *named.values()])
        self.__dict__.update(named)


def snakemake_object(rule, input=(), output=(), log=(), **params):
    return SimpleNamespace(rule=rule, input=Named(input), output=Named(output), log=Named(log),
                           params=SimpleNamespace(**params), resources=SimpleNamespace())


def test_stats_job_reads_python_values_and_logs(tmp_path):
    rows = [{"study": "s", "preset": "corrected", "model": "sr", "dataset": "d", "vgg": "v", "set": "val",
             "image": f"i{i}", "lambda_s": ls, "seed": seed, "psnr": 30 + ls * 0.1 + i * 0.01 + seed * 0.001}
            for i in range(5) for ls in (0.0, 1.0) for seed in (0, 1)]
    pd.DataFrame(rows).to_csv(tmp_path / "per_image.csv", index=False)
    log = tmp_path / "stats.log"
    jobs.run(snakemake_object("stats", [str(tmp_path / "per_image.csv")], [str(tmp_path / "c.csv")], [str(log)],
                              pairs=[[1, 0]]))  # a list from the config, not JSON text
    table = pd.read_csv(tmp_path / "c.csv")
    assert set(table.comparison) == {"ls1_vs_ls0"} and "comparisons" in log.read_text()


def test_a_failing_job_writes_one_line_to_its_log_and_exits_1(tmp_path):
    log = tmp_path / "stats.log"
    with pytest.raises(SystemExit) as info:
        jobs.run(snakemake_object("stats", [str(tmp_path / "missing.csv")], [str(tmp_path / "c.csv")], [str(log)],
                                  pairs=[[1, 0]]))
    lines = log.read_text().strip().splitlines()
    assert info.value.code == 1 and len(lines) == 1, lines
    assert lines[0].startswith("ssimsr stats: error: ") and "missing.csv" in lines[0]
    assert not (tmp_path / "c.csv").exists()


def _rules() -> dict[str, str]:
    """Each rule of the workflow and its text."""
    import re
    from pathlib import Path

    rules = Path(__file__).resolve().parents[1] / "workflow" / "rules"
    found = {}
    for smk in rules.glob("*.smk"):
        text = smk.read_text()
        for match in re.finditer(r"^rule (\w+):\n((?:(?!^rule ).)*)", text, flags=re.M | re.S):
            found[match.group(1)] = match.group(2)
    return found


def test_every_script_rule_runs_a_declared_stage_and_every_stage_is_one_rule():
    """The stage declarations (jobs.STAGES) are the one table: every `script:` rule runs the
    stage of its name, its code digest is its own stage's, and the digests' entries, the
    kept logs, the warm starts and the stage commands are read from the declarations."""
    import re

    from ssimsr import cli
    from ssimsr.pipeline import code_digest

    rules = _rules()
    scripted = {name for name, text in rules.items() if re.search(r"script:\s*\n\s*JOB_SCRIPT", text)}
    assert scripted == set(jobs.STAGES), (scripted ^ set(jobs.STAGES))
    for name, text in rules.items():
        digests = re.findall(r"code=code_digest\(\"(\w+)\"\)", text)
        assert digests == ([name] if name in code_digest.stage_entries() else []), name
    assert code_digest.stage_entries() == {n: s.code for n, s in jobs.STAGES.items() if s.code}
    assert {n for n, s in jobs.STAGES.items() if s.kept_log} == {"train"}
    assert {n for n, s in jobs.STAGES.items() if s.warm} == {"train", "evaluate"}
    commands = set(cli.build_parser()._subparsers._group_actions[0].choices)
    stage_commands = {s.command for s in jobs.STAGES.values() if s.command}
    assert stage_commands == {"fetch", "prepare", "train", "evaluate", "lpips", "fetch-lpips"}
    assert stage_commands <= commands
    with pytest.raises(ValueError, match=r"rule: unknown stage 'plots' \(registered: download, "):
        jobs.run(snakemake_object("plots"))


def test_a_bug_in_a_stage_shows_at_most_three_ssimsr_frames_above_it(tmp_path, monkeypatch):
    """From the rule to the library in few hops: a cold job's traceback holds the job
    function and the dispatch, no wrapper layers (the issue counted eight)."""
    import re

    def compare_studies(frame, pairs):
        raise LookupError("a bug")  # not an expected error: the traceback is kept

    monkeypatch.setattr("ssimsr.analysis.stats.compare_studies", compare_studies)
    (tmp_path / "per_image.csv").write_text("study,lambda_s\ns,1\n")
    log = tmp_path / "stats.log"
    with pytest.raises(SystemExit):
        jobs.run(snakemake_object("stats", [str(tmp_path / "per_image.csv")], [str(tmp_path / "c.csv")], [str(log)],
                                  pairs=[[1, 0]]))
    text = log.read_text()
    frames = re.findall(r'File "([^"]+)", line \d+, in (\w+)', text)
    assert frames[-1][1] == "compare_studies", text
    above = [f for f in frames[:-1] if "/ssimsr/" in f[0]]
    assert len(above) <= 3, above
    assert text.rstrip().endswith("ssimsr stats: internal error: a bug")
