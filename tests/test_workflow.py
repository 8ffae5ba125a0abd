"""The Snakemake workflow itself: config validation, DAG, a tiny end-to-end run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from ssimsr.training.backends import BACKENDS

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]

TINY = {
    "datasets": {
        "tiny": {
            "sources": [{"uri": "skimage:chelsea,coffee,rocket,astronaut"}],
            "resize": {"mode": "longer_side", "size": 96},
            "split": {"method": "fixed", "val": ["chelsea", "coffee"]},
        }
    },
    "studies": {"smoke": {"models": ["sr"], "datasets": ["tiny"], "lambda_s": [0, 1, 2], "epochs": 1}},
    "report": {"table1_study": "smoke", "appendix_study": None,
               "stats": {"model": "sr", "dataset": "tiny", "study": "smoke"}},
    "evaluation": {"lpips_nets": ["alex"], "showcase": {"model": "sr", "dataset": "tiny", "crop": 32,
                                                         "images": [{"name": "cat", "dataset": "tiny", "index": 0}]}},
    "weights": {"lpips": {"fetch": False}},
    "active_studies": ["smoke"],
    "losses": {"lambda_p": 0.0},
    "training": {"crop": 32, "batch_size": 2},
    "models": {"sr": {"filters": 8, "res_blocks": 1}},
}


def run_snakemake(workdir: Path, config: dict, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    (workdir / "cfg.yaml").write_text(yaml.safe_dump(config))
    # the workflow as a user runs it: without the test session's own TensorFlow log level (conftest)
    env = {k: v for k, v in (os.environ if env is None else env).items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run(
        [*SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--configfile",
         str(workdir / "cfg.yaml"), "--cores", "1", *args],
        capture_output=True, text=True, timeout=600, env=env,
    )


def touched_train_run(workdir: Path) -> tuple[str, subprocess.CompletedProcess]:
    """A finished train job of ``TINY`` without training: its inputs and outputs as empty
    files and Snakemake's record of its params (``--touch``). Its params.json and the touch."""
    run = "results/train/smoke/corrected/sr/tiny/ls1/b4c4-b5c4/seed0"
    outputs = ["resources/datasets/tiny/source0.json", "results/data/tiny/manifest.csv", "results/data/tiny/splits.csv",
               *(f"{run}/{name}" for name in ("upscaler.keras", "downscaler.keras", "history.csv", "params.json"))]
    for name in outputs:
        (workdir / name).parent.mkdir(parents=True, exist_ok=True)
        (workdir / name).write_text("")
    for split in ("train", "val"):
        (workdir / "results/data/tiny" / split).mkdir()
    target = f"{run}/params.json"
    return target, run_snakemake(workdir, TINY, "--forceall", "--touch", target)  # as if the jobs had run


def jobs_after_editing(workdir: Path, module: str, edit, tmp: Path) -> dict[str, int]:
    """Job counts of a dry run after ``edit`` (text appended, or a function of the text) in a
    temporary copy of ssimsr/<module>.py (``models/losses``, ``tables/render``: a module of a package; the copy
    is imported first: PYTHONPATH)."""
    import os
    import shutil

    copy = tmp / f"src_{module.replace('/', '_')}"
    shutil.copytree(REPO / "src" / "ssimsr", copy / "ssimsr", ignore=shutil.ignore_patterns("__pycache__"))
    path = copy / "ssimsr" / f"{module}.py"
    text = path.read_text(encoding="utf-8")
    path.write_text(edit(text) if callable(edit) else text + edit, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(copy)}
    result = run_snakemake(workdir, TINY, "-n", env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    return {k: int(v) for k, v in re.findall(r"^(\w+)\s+(\d+)$", result.stdout, flags=re.M) if k != "total"}


def test_schema_error_names_the_key(tmp_path):
    bad = yaml.safe_load(yaml.safe_dump(TINY))
    bad["datasets"]["tiny"]["multiple"] = 0
    bad["datasets"]["tiny"]["colour"] = "blue"
    result = run_snakemake(tmp_path, bad, "-n")
    assert result.returncode != 0
    assert "datasets.tiny.multiple: 0 is less than the minimum of 1" in result.stdout + result.stderr
    assert "datasets.tiny.colour: unknown key" in result.stdout + result.stderr


def test_lambda_s_in_a_preset_is_refused_with_one_line(tmp_path):
    """lambda_s is each study's grid (issue 25), so a preset may not set it: the Snakefile's
    check refuses it before any job, in one line naming the key and the keys a preset may set."""
    bad = yaml.safe_load(yaml.safe_dump(TINY))
    bad["presets"] = {"corrected": {}, "as_run": {"lambda_s": 1}}
    result = run_snakemake(tmp_path, bad, "-n")
    assert result.returncode != 0
    lines = {line.strip() for line in (result.stdout + result.stderr).splitlines() if "lambda_s" in line}
    assert len(lines) == 1, lines
    [line] = lines
    assert line.startswith("presets.as_run.lambda_s: unknown key (known: augment, batch_size, crop, crops_per_image, lambda_b, lambda_f, "
                           "lambda_p, learning_rate,"), line


def test_report_study_must_be_active(tmp_path):
    bad = yaml.safe_load(yaml.safe_dump(TINY))
    bad["report"]["table1_study"] = "table1"
    result = run_snakemake(tmp_path, bad, "-n")
    assert result.returncode != 0
    assert "report.table1_study: 'table1' is not in active_studies" in result.stdout + result.stderr


def test_unknown_study_dataset_is_named(tmp_path):
    bad = yaml.safe_load(yaml.safe_dump(TINY))
    bad["studies"]["smoke"]["datasets"] = ["nosuch"]
    result = run_snakemake(tmp_path, bad, "-n")
    assert result.returncode != 0
    assert "studies.smoke.datasets: unknown dataset 'nosuch'" in result.stdout + result.stderr


def _job_text(text: str) -> str:
    """A dry run's job, from the text after its ``rule <name>:`` line: up to the next job
    (a blank line, a timestamp line or another rule; Snakemake versions differ)."""
    return re.split(r"\n\n|\n\[|\n(?:local)?rule \w+:", text, maxsplit=1)[0]


def test_paper_dag_resolves():
    # (its speed is CI's to print: `.ci/run` times the paper DAG's dry run; no wall-clock assertion here)
    result = subprocess.run([*SNAKEMAKE, "-n", "--cores", "1", "--resources", "gpu=1"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    for dataset in ("div2k", "bsds300", "general100"):
        assert f"results/data/{dataset}/manifest.csv" in result.stdout
    train_dirs = set(re.findall(r"results/train/(\w+)/corrected/(\w+)/(\w+)/ls(\d)/([\w-]+)/seed0", result.stdout))
    table1 = {t for t in train_dirs if t[0] == "table1"}
    appendix = {t for t in train_dirs if t[0] == "appendix_a"}
    assert len(table1) == 18 and len(appendix) == 8
    assert {t[4] for t in appendix} == {"b4c4-b5c4", "b1c2-b4c4", "b2c2-b5c2", "b3c2-b4c4"}
    # every train job waits for its dataset's prepare job and the VGG19 weights
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout, flags=re.M))
    # three training datasets and two benchmarks (Set5, Set14: evaluated, never trained on)
    assert stats["train"] == "138" and stats["fetch_vgg19"] == "1" and stats["prepare_dataset"] == "5"
    assert stats["baseline"] == "5" and stats["collect_baseline"] == "1"
    for dataset in ("set5", "set14"):
        assert f"results/eval/baseline/{dataset}.csv" in result.stdout
        assert not re.search(rf"results/train/\w+/\w+/\w+/{dataset}/", result.stdout)
    evaluations = [_job_text(j) for j in result.stdout.split("rule evaluate:")[1:]]
    assert len(evaluations) == 138
    assert all("results/data/set5/manifest.csv" in j and "results/data/set14/manifest.csv" in j for j in evaluations)
    jobs = [_job_text(j) for j in result.stdout.split("rule train:")[1:]]
    preset = [re.search(r"output: results/train/\w+/(\w+)/", j).group(1) for j in jobs]
    corrected = [j for j, p in zip(jobs, preset) if p == "corrected"]
    as_run = [j for j, p in zip(jobs, preset) if p == "as_run"]
    assert len(corrected) == 18 * 3 + 8 * 3 and len(as_run) == 18 * 3 + 2 * 3  # + one A2 run per lambda_s
    vgg = "resources/weights/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
    assert all(vgg in j for j in corrected)  # perceptual loss live: waits for the weights
    assert not any(vgg in j for j in as_run)  # lambda_p = 0: does not need them
    assert all(re.search(r"results/data/\w+/manifest.csv", j) for j in jobs)
    # their evaluation computes the perceptual term per image from the same file (evaluate.term_extractor)
    evaluated_preset = [re.search(r"output: results/eval/\w+/(\w+)/", j).group(1) for j in evaluations]
    assert all((vgg in j) == (p == "corrected") for j, p in zip(evaluations, evaluated_preset))


#: what a dry run must not import: the tables' and figures' libraries, Keras and every
#: backend (they cost the Snakefile up to 1.5 s per `snakemake -n` on 2 cores, issue 25)
HEAVY_FOR_A_DRY_RUN = ("pandas", "scipy", "matplotlib", "keras", "lpips", "skimage", *BACKENDS)


def test_the_snakefile_imports_no_heavy_library():
    """Every ``ssimsr`` import in the Snakefile and its rule files (top level and inside
    input functions, as a dry run runs them) loads none of :data:`HEAVY_FOR_A_DRY_RUN`."""
    sources = [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]
    imports = sorted({line.strip() for path in sources for line in path.read_text().splitlines()
                      if re.match(r"\s*(from ssimsr[\w.]* import |import ssimsr)", line)})
    assert len(imports) >= 10, imports  # the Snakefile's imports were found
    code = "\n".join(["import sys", "import snakemake.api", *imports,
                      f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY_FOR_A_DRY_RUN)!r}))"])
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]", f"the Snakefile's imports load {result.stdout.strip()}"


@pytest.fixture(scope="module")
def finished_tiny(tmp_path_factory):
    """A folder where the ``TINY`` workflow has run to the end (shared: a full run costs a
    minute; the last test using it changes it)."""
    workdir = tmp_path_factory.mktemp("tiny")
    result = run_snakemake(workdir, TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


@pytest.mark.slow
def test_tiny_workflow_runs_and_reruns_nothing(finished_tiny, tmp_path):
    edits = tmp_path / "edits"
    tmp_path = finished_tiny
    manifest = pd.read_csv(tmp_path / "results/data/tiny/manifest.csv")
    assert sorted(manifest.stem) == ["astronaut", "chelsea", "coffee", "rocket"]
    assert (tmp_path / "results/data/tiny/val/chelsea.png").exists()
    history = pd.read_csv(tmp_path / "results/train/smoke/corrected/sr/tiny/ls1/b4c4-b5c4/seed0/history.csv")
    assert list(zip(history.epoch, history.split)) == [(0, "val"), (1, "train"), (1, "val")]
    log = (tmp_path / "results/train/smoke/corrected/sr/tiny/ls1/b4c4-b5c4/seed0/train.log").read_text()
    assert "training on CPU" in log and "cuInit" not in log  # no GPU probe error on a CPU machine
    for name in ("table1", "loss_shares", "table2", "table3", "table4", "verdict"):
        for ext in ("tex", "csv", "md"):
            assert (tmp_path / f"results/tables/{name}.{ext}").stat().st_size > 0
    for name in ("training_curves", "diff_cat"):
        for ext in ("png", "pdf"):
            assert (tmp_path / f"results/figures/{name}.{ext}").stat().st_size > 0
    table2 = (tmp_path / "results/tables/table2.md").read_text()
    assert "unavailable" in table2  # LPIPS offline: reported, never computed from random weights
    again = run_snakemake(tmp_path, TINY, "-n")
    assert again.returncode == 0
    assert "Nothing to be done" in again.stdout + again.stderr
    # touching (re-checking-out) the rule files and the job script reruns nothing: the code
    # digests are the only code trigger (profiles/default: rerun-triggers without mtime)
    for path in [*(REPO / "workflow").rglob("*"), REPO / "Snakefile"]:
        if path.is_file():
            os.utime(path)
    touched = run_snakemake(tmp_path, TINY, "-n")
    assert "Nothing to be done" in touched.stdout + touched.stderr, touched.stdout[-2000:]

    # Code changes rerun what they affect (code_digest): the loss reruns training and
    # everything after it (the showcase crops too: their code imports the loss, through
    # evaluate's imports); the tables code the tables and the figures (forest_contrasts reads the
    # contrast table); a comment or docstring nothing.
    after_losses = jobs_after_editing(tmp_path, "models/losses", "\n_EDITED = 1\n", edits)
    assert after_losses == {"train": 3, "showcase": 1, "evaluate": 3, "lpips": 3, "collect": 1, "stats": 1,
                            "tables": 1, "figures": 1, "export_models": 1, "all": 1}
    assert jobs_after_editing(tmp_path, "tables/render", "\n_EDITED = 1\n", edits) == {"tables": 1, "figures": 1,
                                                                                      "all": 1}
    def reword(text):  # a comment and a changed docstring only
        return "# a comment\n" + text.replace('"""Per-image reconstruction metrics', '"""Per-image metrics', 1)

    assert jobs_after_editing(tmp_path, "evaluation/metrics", reword, edits) == {}
    # provenance is informative: editing what writes it reruns nothing (issue 27)
    assert jobs_after_editing(tmp_path, "pipeline/provenance", "\n_EDITED = 1\n", edits) == {}
    assert (tmp_path / "results/train/smoke/corrected/sr/tiny/ls1/b4c4-b5c4/seed0/provenance.json").is_file()
    assert (tmp_path / "results/eval/smoke/corrected/sr/tiny/ls1/b4c4-b5c4/seed0/provenance.json").is_file()


@pytest.mark.slow
def test_any_lost_run_output_reschedules_its_job(finished_tiny):
    """Losing one output of a finished run (a user deletes it; a failed rerun deletes them
    all) schedules the job that writes it and what reads it after: Snakemake rebuilds a
    missing intermediate file only when it is a target or something downstream is out of
    date, so the default rule names every per-run output (common.run_outputs; naming one
    output per job leaves a lost upscaler.keras unnoticed)."""
    run = "smoke/corrected/sr/tiny/ls1/b4c4-b5c4/seed0"
    for lost, job in [(f"results/train/{run}/upscaler.keras", "train"), (f"results/train/{run}/history.csv", "train"),
                      (f"results/eval/{run}/recon", "evaluate")]:
        path = finished_tiny / lost
        aside = path.with_name(path.name + ".aside")
        path.rename(aside)
        try:
            planned = run_snakemake(finished_tiny, TINY, "-n")
        finally:
            aside.rename(path)
        assert planned.returncode == 0, planned.stderr[-2000:]
        jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", planned.stdout, flags=re.M))
        assert jobs.get(job) == "1" and jobs.get("tables") == "1", (lost, planned.stdout[-2000:])


@pytest.mark.slow
def test_a_failed_retraining_leaves_no_table_standing(finished_tiny):
    """Issue 24: change a training parameter, let every retraining die (Snakemake deletes
    the outputs of a failed job), run again: the trainings are scheduled again (the run
    outputs are targets of the default rule), and once they succeed the tables change."""
    workdir = finished_tiny
    table1 = (workdir / "results/tables/table1.csv").read_bytes()
    changed = {**TINY, "studies": {"smoke": {**TINY["studies"]["smoke"], "epochs": 2}}}
    failing = {**changed, "training": {**TINY["training"], "crop": 9998}}
    failed = run_snakemake(workdir, failing, "--keep-going")
    assert failed.returncode != 0
    assert not (workdir / "results/train/smoke/corrected/sr/tiny/ls1/b4c4-b5c4/seed0/upscaler.keras").exists()
    # the job's own advice, "run it again" with the same config: before issue 24 this said
    # "Nothing to be done" and table1 kept the one-epoch numbers
    planned = run_snakemake(workdir, failing, "-n")
    assert planned.returncode == 0, planned.stderr[-2000:]
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", planned.stdout, flags=re.M))
    assert jobs.get("train") == "3" and jobs.get("tables") == "1", planned.stdout[-2000:]
    rerun = run_snakemake(workdir, changed)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    history = pd.read_csv(workdir / "results/train/smoke/corrected/sr/tiny/ls1/b4c4-b5c4/seed0/history.csv")
    assert history.epoch.max() == 2
    assert (workdir / "results/tables/table1.csv").read_bytes() != table1
    assert "Nothing to be done" in (lambda r: r.stdout + r.stderr)(run_snakemake(workdir, changed, "-n"))


def test_bad_comparison_is_named(tmp_path):
    bad = yaml.safe_load(yaml.safe_dump(TINY))
    bad["report"]["comparisons"] = [[1, 0], [2, 2]]
    result = run_snakemake(tmp_path, bad, "-n")
    assert result.returncode != 0
    assert "report.comparisons[1]: compares lambda_s 2 with itself" in result.stdout + result.stderr


OTHER_LAMBDAS = yaml.safe_load(yaml.safe_dump(TINY))
OTHER_LAMBDAS["studies"]["smoke"].update(lambda_s=[0.5, 1.5], seeds=[0, 1])
OTHER_LAMBDAS["report"]["comparisons"] = [[1.5, 0.5]]


@pytest.mark.slow
def test_other_lambdas_build_every_table(tmp_path):
    """A new user's study: lambda_s 0.5 / 1.5 (none of the paper's values), compared as configured."""
    result = run_snakemake(tmp_path, OTHER_LAMBDAS)
    assert result.returncode == 0, result.stderr[-3000:]
    tables = tmp_path / "results/tables"
    for name in ("table1", "loss_shares", "table2", "table3", "table4", "verdict", "stats_all", "paper_vs_ours_table1",
                 "paper_vs_ours_table2", "paper_vs_ours_table3", "paper_vs_ours_table4"):
        for ext in ("tex", "csv", "md"):
            assert (tables / f"{name}.{ext}").stat().st_size > 0, (name, ext)
    verdict = pd.read_csv(tables / "verdict.csv")
    assert list(verdict.comparison) == ["ls1.5_vs_ls0.5"] and list(verdict.n_seeds) == [2]
    assert (tables / "verdict.md").read_text().count("n = 2 seeds") == 1
    assert "λ_s 1 vs 2 (the paper's Table 2) was not compared" in (tables / "table2.md").read_text()
    assert "λ_s 1 vs 0 (the paper's Table 3) was not compared" in (tables / "table3.md").read_text()
    comparisons = pd.read_csv(tmp_path / "results/stats/comparisons.csv")
    assert set(comparisons.comparison) == {"ls1.5_vs_ls0.5"} and set(comparisons.n_seeds) == {2}
    assert (tmp_path / "results/figures/diff_cat.png").stat().st_size > 0
    report = run_snakemake(tmp_path, OTHER_LAMBDAS, "--report", str(tmp_path / "report.html"))
    assert report.returncode == 0, report.stderr[-3000:]
    assert (tmp_path / "report.html").stat().st_size > 0


TOY_ARCHITECTURE = '''"""Toy architecture of the extension test: average pooling down; up-sampling and two convs up."""
from ...registry import register_architecture


@register_architecture("toy", learned_downscaler=False)
def build_toy(scale=2, filters=8):
    import keras

    from ..models import ModelPair

    hr = keras.Input((None, None, 3), name="hr_image")
    downscaler = keras.Model(hr, keras.layers.AveragePooling2D(scale, name="average")(hr), name="toy_downscaler")
    lr = keras.Input((None, None, 3), name="lr_image")
    x = keras.layers.UpSampling2D(scale, name="nearest")(lr)
    x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name="conv1")(x)
    upscaler = keras.Model(lr, keras.layers.Conv2D(3, 3, padding="same", name="conv2")(x), name="toy_upscaler")
    return ModelPair(downscaler, upscaler)
'''

TOY_TERM = '''"""Total variation of the reconstruction (the extension test's loss term)."""
from ...registry import register_loss_term


@register_loss_term("tv", weight="lambda_tv", label="TV")
def total_variation(batch):
    from keras import ops

    rec = batch.rec
    return ops.mean(ops.abs(rec[:, 1:] - rec[:, :-1])) + ops.mean(ops.abs(rec[:, :, 1:] - rec[:, :, :-1]))
'''


@pytest.mark.slow
def test_a_new_architecture_and_loss_term_run_through_the_workflow(tmp_path):
    """README "Extending the study": one file each (in a copy of the package) plus the config."""
    import json
    import os
    import shutil

    package = tmp_path / "src"
    shutil.copytree(REPO / "src" / "ssimsr", package / "ssimsr", ignore=shutil.ignore_patterns("__pycache__"))
    (package / "ssimsr" / "models" / "archs" / "toy.py").write_text(TOY_ARCHITECTURE)
    (package / "ssimsr" / "models" / "terms" / "tv.py").write_text(TOY_TERM)
    env = {**os.environ, "PYTHONPATH": str(package)}
    config = yaml.safe_load(yaml.safe_dump(TINY))
    config["studies"]["smoke"].update(models=["toy"], lambda_s=[0, 1])
    config["report"]["stats"]["model"] = "toy"
    config["report"]["comparisons"] = [[1, 0]]
    config["evaluation"]["showcase"]["model"] = "toy"
    config["losses"]["lambda_tv"] = 0.1
    config["models"] = {"toy": {"filters": 4}}
    work = tmp_path / "work"
    work.mkdir()
    result = run_snakemake(work, config, env=env)
    assert result.returncode == 0, result.stderr[-3000:]

    run = work / "results/train/smoke/corrected/toy/tiny/ls1/b4c4-b5c4/seed0"
    params = json.loads((run / "params.json").read_text())
    assert params["loss_weights"]["lambda_tv"] == 0.1 and params["widths"] == {"filters": 4}
    history = pd.read_csv(run / "history.csv")
    assert "tv" in history.columns and (history.tv > 0).all()
    val = history[history.split == "val"]
    assert val.total.to_numpy() == pytest.approx((val.bw_mse + val.fw_mse + 0.1 * val.tv + val.ssim_n).to_numpy(),
                                                 rel=1e-5)
    shares = pd.read_csv(work / "results/tables/loss_shares.csv")
    assert (shares.share_tv_mean > 0).all()  # one seed: mean and an empty sd column
    assert "TV share" in (work / "results/tables/loss_shares.md").read_text()  # the term's registry label
    # the term's per-image values, computed by the term itself (evaluate.loss_values), in metrics.csv
    # and per_image.csv; on the val images they average to training's last validation value
    metrics = pd.read_csv(work / "results/eval/smoke/corrected/toy/tiny/ls1/b4c4-b5c4/seed0/metrics.csv")
    assert list(metrics.columns)[-5:] == ["bw_mse", "fw_mse", "perceptual", "ssim_n", "tv"]
    assert (metrics.tv > 0).all() and metrics.perceptual.isna().all()  # lambda_p = 0: no VGG19, not computed
    assert metrics[metrics.set == "val"].tv.mean() == pytest.approx(val.tv.iloc[-1], rel=1e-4)
    per_image = pd.read_csv(work / "results/eval/per_image.csv")
    assert len(per_image) and (per_image.tv > 0).all()
    for name in ("table1", "table3", "verdict", "paper_vs_ours_table1"):
        assert (work / f"results/tables/{name}.md").stat().st_size > 0
    assert (work / "results/figures/diff_cat.png").stat().st_size > 0
    # the CLI upscales with the new architecture's saved networks (x2, no round trip: fixed downscaler)
    cat = work / "results/showcase/cat.png"
    upscaled = subprocess.run([sys.executable, "-m", "ssimsr.cli", "upscale", str(run), str(cat), str(tmp_path / "x2.png")],
                              capture_output=True, text=True, env=env, timeout=300)
    assert upscaled.returncode == 0, upscaled.stderr[-2000:]
    from PIL import Image

    assert Image.open(tmp_path / "x2.png").size == tuple(2 * s for s in Image.open(cat).size)


def test_every_configured_lambda_has_its_own_folder_and_train_job(tmp_path):
    """Awkward λ_s values (exponents, many digits, values that %g would merge) all reach the DAG:
    one train job per configured run, each in a folder that reads back as its value."""
    from ssimsr.pipeline.runs import Run, lambda_tag

    values = [0.00001, 1, 0.1234567, 0.1234568, 2.5e-7, 1000000.0]
    tags = [lambda_tag(v) for v in values]
    assert len(set(tags)) == len(values) and [float(t) for t in tags] == [float(v) for v in values]
    assert tags[:2] == ["1e-05", "1"]  # the usual values keep their short spelling (ls0, ls1, ls2)
    for tag in tags:
        assert re.fullmatch(Run.WILDCARDS["lambda_s"], tag), tag
    config = yaml.safe_load(yaml.safe_dump(TINY))
    config["studies"]["smoke"]["lambda_s"] = values
    config["report"]["comparisons"] = [[1, 0.00001]]
    result = run_snakemake(tmp_path, config, "-n")
    assert result.returncode == 0, result.stderr[-2000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout, flags=re.M))
    seeds = set(re.findall(r"/ls[^/]+/[\w-]+/seed(\d+)/", result.stdout))
    assert seeds and int(counts["train"]) == len(values) * len(seeds)
    for tag in tags:
        assert f"/ls{tag}/" in result.stdout, tag


def _recorded_params(workdir: Path, output: str) -> list[str]:
    """The params Snakemake recorded for the job that wrote ``output`` (its metadata)."""
    import base64
    import json

    name = base64.b64encode(output.encode()).decode().replace("/", "@")
    return json.loads((workdir / ".snakemake" / "metadata" / name).read_text())["params"]


def test_a_split_per_seed_gives_each_seed_its_own_data(tmp_path):
    """split.per_seed: each seed's runs (all λ_s) train, validate and get a bicubic baseline
    on their seed's split (rule seed_split); the prepare job's params do not see the key."""
    config = yaml.safe_load(yaml.safe_dump(TINY))
    config["datasets"]["tiny"]["split"] = {"method": "random", "n_val": 2, "per_seed": True}
    config["studies"]["smoke"].update(lambda_s=[0, 1], seeds=[0, 1])
    config["report"]["comparisons"] = [[1, 0]]
    splits = [f"results/data/tiny_seed{s}/splits.csv" for s in (0, 1)]
    made = run_snakemake(tmp_path, config, "--cores", "2", *splits)  # download, prepare, two seed_split jobs
    assert made.returncode == 0, made.stderr[-3000:]
    vals = []
    for seed in (0, 1):
        folder = tmp_path / f"results/data/tiny_seed{seed}"
        val, train = ({p.stem for p in (folder / s).glob("*.png")} for s in ("val", "train"))
        assert len(val) == 2 and not val & train and val | train == {"astronaut", "chelsea", "coffee", "rocket"}
        vals.append(val)
    assert vals == [{"astronaut", "coffee"}, {"astronaut", "rocket"}]  # seed 0: the shared split
    prepare = _recorded_params(tmp_path, "results/data/tiny/manifest.csv")
    assert not any("per_seed" in p for p in prepare)  # setting it reruns no prepare job
    assert _recorded_params(tmp_path, splits[1])[1:] == ["1", "{'method': 'random', 'n_val': 2, 'per_seed': True, "
                                                         "'seed': 0}"]  # the seed and the split

    result = run_snakemake(tmp_path, config, "-n")
    assert result.returncode == 0, result.stderr[-2000:]
    blocks = re.split(r"^\[.*\]$", result.stdout, flags=re.M)  # one job each, after its time stamp
    jobs = {rule: [b for b in blocks if re.match(rf"\s*(local)?rule {rule}:", b)]
            for rule in ("train", "evaluate", "baseline_seed", "collect_baseline")}
    assert len(jobs["train"]) == len(jobs["evaluate"]) == 4 and len(jobs["baseline_seed"]) == 2
    for job in jobs["train"] + jobs["evaluate"]:  # λ_s 0 and 1 of a seed: that seed's split
        seed = re.search(r"output: results/(?:train|eval)/smoke/corrected/sr/tiny/ls\d/[\w-]+/seed(\d)/", job).group(1)
        assert re.search(rf"input: (.*, )?results/data/tiny_seed{seed}/manifest\.csv", job), job
        assert "results/data/tiny/manifest.csv" not in job
    assert "rule baseline:" not in result.stdout  # the shared split's baseline is not made
    collect = jobs["collect_baseline"][0]
    assert "results/eval/baseline/tiny/seed0.csv, results/eval/baseline/tiny/seed1.csv" in collect

    config["datasets"]["tiny"]["split"] = {"method": "fixed", "val": ["chelsea"], "per_seed": True}
    bad = run_snakemake(tmp_path, config, "-n")
    assert bad.returncode != 0
    assert ("datasets.tiny.split.per_seed: true needs split method 'random' (got 'fixed')"
            in bad.stdout + bad.stderr)
