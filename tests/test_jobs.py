"""The workflow's script jobs (ssimsr.jobs): Python values in, a log, one-line errors."""

from types import SimpleNamespace

import pandas as pd
import pytest

from ssimsr import jobs


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


def test_every_script_rule_has_a_job():
    import re
    from pathlib import Path

    rules = Path(__file__).resolve().parents[1] / "workflow" / "rules"
    scripted = set()
    for smk in rules.glob("*.smk"):
        for match in re.finditer(r"^rule (\w+):(?:(?!^rule ).)*?script:\s*\n\s*JOB_SCRIPT", smk.read_text(),
                                 flags=re.M | re.S):
            scripted.add(match.group(1))
    assert scripted == set(jobs.JOBS), (scripted, set(jobs.JOBS))
