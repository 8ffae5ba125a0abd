"""The experiment table built from config: runs, presets, paths."""

from pathlib import Path

import pytest
import yaml

from ssimsr.evaluate import parse_run_path
from ssimsr.experiments import experiment_table, lambda_tag, run_dir, vgg_tag

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def paper_config():
    return yaml.safe_load((REPO / "config.yaml").read_text())


def test_paper_study_has_18_table1_and_8_appendix_runs(paper_config):
    runs = experiment_table(paper_config)
    seeds = len(paper_config["seeds"])
    presets = len(paper_config["studies"]["table1"]["presets"])
    assert (seeds, presets) == (3, 2)
    assert sum(r["study"] == "table1" for r in runs) == 18 * seeds * presets
    assert sum(r["study"] == "appendix_a" for r in runs) == 8 * seeds
    first = {(r["model"], r["dataset"], r["lambda_s"]) for r in runs
             if r["study"] == "table1" and r["seed"] == 0 and r["preset"] == "corrected"}
    assert len(first) == 18
    epochs = {(r["study"], r["dataset"]): r["params"]["epochs"] for r in runs}
    assert epochs == {("table1", "bsds300"): 30, ("table1", "div2k"): 20, ("table1", "general100"): 50,
                      ("appendix_a", "div2k"): 60}


def test_as_run_preset_switches_off_the_broken_terms(paper_config):
    config = dict(paper_config, studies={"s": {"models": ["sr", "irn"], "datasets": ["bsds300"], "lambda_s": [1],
                                              "epochs": 1, "presets": ["corrected", "as_run"]}},
                  active_studies=["s"])
    runs = {(r["preset"], r["model"]): r["params"] for r in experiment_table(config)}
    assert runs[("as_run", "irn")]["lambda_f"] == 0 and runs[("as_run", "irn")]["lambda_p"] == 0
    assert runs[("as_run", "irn")]["train_downscaler"] is False
    assert runs[("corrected", "irn")]["train_downscaler"] is True
    assert runs[("corrected", "sr")]["lambda_f"] == 1.0


def test_missing_epochs_entry_and_unknown_preset_are_named(paper_config):
    config = dict(paper_config, studies={"s": {"models": ["sr"], "datasets": ["bsds300"], "lambda_s": [1],
                                              "epochs": {"div2k": 3}}}, active_studies=["s"])
    with pytest.raises(ValueError, match="studies.s.epochs: no entry for dataset 'bsds300'"):
        experiment_table(config)
    config["studies"]["s"].update(epochs=1, presets=["nosuch"])
    with pytest.raises(ValueError, match="unknown preset 'nosuch'"):
        experiment_table(config)


def test_run_paths_round_trip():
    run = {"study": "table1", "preset": "corrected", "model": "irn", "dataset": "div2k", "lambda_s": 0.5,
           "seed": 2, "vgg": vgg_tag(["block1_conv2", "block4_conv4"])}
    path = run_dir("results", run)
    assert path == "results/train/table1/corrected/irn/div2k/ls0.5/b1c2-b4c4/seed2"
    assert parse_run_path(path) == run
    assert lambda_tag(2.0) == "2" and lambda_tag(0) == "0"
    with pytest.raises(ValueError, match="not a run path"):
        parse_run_path("results/train/x")


def test_perceptual_norm_relative_by_default_raw_by_preset_bad_value_named(paper_config):
    from ssimsr.config import describe_errors

    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    assert schema["properties"]["losses"]["properties"]["perceptual_norm"]["default"] == "relative"
    config = dict(paper_config, studies={"s": {"models": ["sr"], "datasets": ["bsds300"], "lambda_s": [1],
                                              "epochs": 1, "presets": ["corrected", "raw_vgg"]}},
                  active_studies=["s"], presets={"corrected": {}, "raw_vgg": {"perceptual_norm": "raw"}})
    runs = {r["preset"]: r["params"] for r in experiment_table(config)}
    assert runs["corrected"]["perceptual_norm"] == "relative" and runs["raw_vgg"]["perceptual_norm"] == "raw"
    bad = dict(config, losses=dict(paper_config["losses"], perceptual_norm="basicsr"))
    with pytest.raises(ValueError, match="perceptual_norm: unknown value 'basicsr'"):
        experiment_table(bad)
    errors = describe_errors(bad, REPO / "workflow/schemas/config.schema.yaml")
    assert any(e.startswith("losses.perceptual_norm") for e in errors), errors
