"""The experiment table built from config: runs, presets, paths, schema defaults."""

import re
from pathlib import Path

import pytest
import yaml

from ssimsr import registry
from ssimsr.config import SCHEMA_PATH, ConfigError, defaults, describe_errors, with_defaults
from ssimsr.pipeline.experiments import experiment_table, run_params
from ssimsr.pipeline.runs import GROUP_KEYS, Run, lambda_tag, parse_lambda_tag, vgg_tag

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def paper_config():
    return yaml.safe_load((REPO / "config.yaml").read_text())


def _study(paper_config, **study):
    return dict(paper_config, studies={"s": {"datasets": ["bsds300"], "lambda_s": [1], "epochs": 1, **study}},
                active_studies=["s"])


def test_paper_study_has_18_table1_and_8_appendix_runs(paper_config):
    runs = experiment_table(paper_config)
    seeds = len(paper_config["seeds"])
    presets = len(paper_config["studies"]["table1"]["presets"])
    assert (seeds, presets) == (3, 2)
    assert sum(r.study == "table1" for r in runs) == 18 * seeds * presets
    # Appendix A: 4 layer pairs x 2 lambda_s corrected; as_run (perceptual off): one run per lambda_s
    assert sum(r.study == "appendix_a" and r.preset == "corrected" for r in runs) == 8 * seeds
    assert sum(r.study == "appendix_a" and r.preset == "as_run" for r in runs) == 2 * seeds
    first = {(r.model, r.dataset, r.lambda_s) for r in runs
             if r.study == "table1" and r.seed == 0 and r.preset == "corrected"}
    assert len(first) == 18
    as_run_layers = {r.vgg for r in runs if r.study == "appendix_a" and r.preset == "as_run"}
    assert as_run_layers == {"b4c4-b5c4"}  # the first pair: the axis only expands where it acts
    epochs = {(r.study, r.dataset): params["epochs"] for r, params in runs.items()}
    assert epochs == {("table1", "bsds300"): 30, ("table1", "div2k"): 20, ("table1", "general100"): 50,
                      ("appendix_a", "div2k"): 60}
    # the run's keys travel with its parameters into params.json (collect reads them there)
    assert all(params["run"] == run.as_dict() for run, params in runs.items())


def test_as_run_preset_switches_off_the_broken_terms(paper_config):
    config = _study(paper_config, models=["sr", "irn"], presets=["corrected", "as_run"])
    runs = {(r.preset, r.model): p for r, p in experiment_table(config).items()}
    assert runs[("as_run", "irn")]["loss_weights"] == {"lambda_b": 1.0, "lambda_f": 0.0, "lambda_p": 0.0,
                                                       "lambda_s": 1.0}
    assert runs[("as_run", "irn")]["train_downscaler"] is False
    assert runs[("corrected", "irn")]["train_downscaler"] is True
    assert runs[("corrected", "sr")]["train_downscaler"] is False  # decimation has nothing to train
    assert runs[("corrected", "sr")]["loss_weights"]["lambda_f"] == 1.0


def test_a_models_training_settings_apply_to_its_runs_under_the_presets(paper_config):
    config = _study(paper_config, models=["sr", "irn"], presets=["corrected", "as_run"])
    config["models"] = {"sr": {"filters": 8, "training": {"crop": 32, "crops_per_image": 20, "learning_rate": 0.002}}}
    config["presets"] = {**config["presets"], "as_run": {**config["presets"]["as_run"], "crops_per_image": 1}}
    runs = {(r.preset, r.model): p for r, p in experiment_table(config).items()}
    assert runs[("corrected", "sr")]["crops_per_image"] == 20 and runs[("corrected", "sr")]["widths"] == {"filters": 8}
    assert runs[("corrected", "sr")]["learning_rate"] == 0.002
    assert runs[("corrected", "irn")]["crops_per_image"] == 1  # the top-level training's (schema default)
    assert runs[("corrected", "irn")]["learning_rate"] == 0.0005
    assert runs[("as_run", "sr")]["crops_per_image"] == 1 and runs[("as_run", "sr")]["learning_rate"] == 0.002
    config["models"] = {"sr": {"training": {"epochs": 3}}}
    assert describe_errors(config) == ["models.sr.training.epochs: unknown key (known: augment, batch_size, crop, "
                                       "crops_per_image, learning_rate, precision)"]


def test_missing_epochs_entry_unknown_preset_model_and_width_are_named(paper_config):
    config = _study(paper_config, models=["sr"], epochs={"div2k": 3})
    with pytest.raises(ValueError, match="studies.s.epochs: no entry for dataset 'bsds300'"):
        experiment_table(config)
    config["studies"]["s"].update(epochs=1, presets=["nosuch"])
    with pytest.raises(ValueError, match="studies.s.presets: unknown preset 'nosuch'"):
        experiment_table(config)
    config["studies"]["s"].update(presets=["corrected"], models=["srgan"])
    with pytest.raises(ValueError, match=r"studies.s.models: unknown architecture 'srgan' \(registered: .*sr"):
        experiment_table(config)
    config["studies"]["s"].update(models=["sr"])
    with pytest.raises(ValueError, match=r"models.sr: unknown width\(s\) \['blocks'\]"):
        experiment_table(dict(config, models={"sr": {"blocks": 3}}))


def test_loss_weights_must_name_registered_terms(paper_config):
    """An unknown weight passes the schema (a new term's pattern) and is refused by the table,
    the message naming the weights that may be set, never the one refused."""
    config = _study(paper_config, models=["sr"])
    settable = re.escape("(the weights losses can set: lambda_b, lambda_f, lambda_p)")
    with pytest.raises(ValueError, match="losses.lambda_tv: no registered loss term has this weight " + settable):
        experiment_table(dict(config, losses=dict(paper_config.get("losses", {}), lambda_tv=0.1)))
    with pytest.raises(ValueError, match=r"presets.bad.lambda_x: no registered loss term .*: lambda_b, lambda_f, "
                                         r"lambda_p\)$"):
        experiment_table(dict(config, presets={"corrected": {}, "bad": {"lambda_x": 1}},
                              studies={"s": dict(config["studies"]["s"], presets=["bad"])}))


def test_lambda_s_is_the_grid_s_loss_weight(paper_config):
    """The study grid sets loss_weights["lambda_s"] (issue 25): the run's key and folder tag
    are that weight, and params.json holds it with the other weights, at no other key."""
    runs = experiment_table(_study(paper_config, models=["sr"], lambda_s=[0, 0.5, 2]))
    assert {r.path.split("/")[4] for r in runs} == {"ls0", "ls0.5", "ls2"}
    for run, params in runs.items():
        assert params["loss_weights"]["lambda_s"] == run.lambda_s and "lambda_s" not in params
        assert list(params["loss_weights"]) == registry.weight_names()
    assert run_params("sr", lambda_s=2).weights()["lambda_s"] == 2.0


@pytest.mark.parametrize("text, key", [
    ("presets: {as_run: {lambda_s: 1}}", "presets.as_run.lambda_s"),
    ("losses: {lambda_s: 1}", "losses.lambda_s"),
])
def test_lambda_s_outside_the_grid_is_refused_with_one_line(paper_config, text, key):
    """lambda_s is the axis of each study's grid: a preset (or ``losses``) may not set it. The
    schema refuses it with one line that names the key and the keys it may set, not lambda_s."""
    from ssimsr.config import merge_configs

    bad = merge_configs(paper_config, yaml.safe_load(text))
    errors = describe_errors(bad)
    assert len(errors) == 1 and errors[0].startswith(f"{key}: unknown key (known: "), errors
    known = errors[0].split("(known: ", 1)[1]
    assert "lambda_b, lambda_f, lambda_p" in known
    assert "lambda_s" not in re.split(r"; or ", known)[0].split(", ")  # the refused key is no known one
    assert "lambda_s is each study's grid" in known
    with pytest.raises(ConfigError, match=re.escape(errors[0])):
        with_defaults(bad)
    with pytest.raises(ConfigError, match=re.escape(key)):
        experiment_table(bad)
    # the grid's own key, and another registered term's weight, pass the schema
    assert describe_errors(merge_configs(paper_config, {"presets": {"as_run": {"lambda_tv": 1}}})) == []


def test_the_weights_of_a_grid_are_told_apart(paper_config):
    from ssimsr.pipeline.runs import WEIGHT_DIGITS, same_weight, weight_key

    with pytest.raises(ValueError, match=r"studies.s.lambda_s: .* same weight to 12 significant digits"):
        experiment_table(_study(paper_config, models=["sr"], lambda_s=[0.1, 0.1 + 1e-14]))
    assert WEIGHT_DIGITS == 12 and weight_key("0.5") == weight_key(0.5) == 0.5
    assert same_weight(0.1 + 0.2, 0.3) and not same_weight(1e-9, 0.0) and not same_weight(0.1234567, 0.1234568)
    import pandas as pd

    column = pd.Series(["1", 2.0, 0.30000000000000004, float("nan")])
    assert list(same_weight(column, 0.3)) == [False, False, True, False]
    assert weight_key(column).tolist()[:3] == [1.0, 2.0, 0.3]


def test_run_paths_round_trip():
    run = Run("table1", "corrected", "irn", "div2k", 0.5, 2, vgg_tag(["block1_conv2", "block4_conv4"]))
    assert run.under("results/train") == "results/train/table1/corrected/irn/div2k/ls0.5/b1c2-b4c4/seed2"
    assert Run.parse(run.under("results/eval")) == run
    assert Run.from_mapping({**run.as_dict(), "lambda_s": "0.5", "seed": "2", "extra": 1}) == run
    assert lambda_tag(2.0) == "2" and lambda_tag(0) == "0"
    for value in (0.0, 1.0, 0.5, 1e-05, 0.1234567, 2.5e-07, 1e16):  # the tag's one parse reads back its value
        assert parse_lambda_tag(lambda_tag(value)) == value
        assert Run.parse(Run("s", "p", "sr", "d", value, 0, "v").path).lambda_s == value
    for tag in ("nan", "-1", "1,5", " 1"):
        with pytest.raises(ValueError, match="not a λ_s tag"):
            parse_lambda_tag(tag)
    assert GROUP_KEYS == ("study", "preset", "model", "dataset", "vgg")
    with pytest.raises(ValueError, match="not a run folder"):
        Run.parse("results/train/x")


def test_run_folders_are_found_by_the_pattern(tmp_path):
    runs = [Run("s", "corrected", m, "photos", ls, 0, "b4c4-b5c4") for m in ("sr", "irn") for ls in (0, 1)]
    for run in runs:
        Path(run.under(tmp_path)).mkdir(parents=True)
    (tmp_path / "s" / "stray").mkdir()
    assert sorted(Run.parse(p) for p in Run.folders(tmp_path)) == sorted(runs)


def test_defaults_come_from_the_schema_alone(paper_config):
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    training = schema["properties"]["training"]["properties"]
    params = run_params("irn")
    for key in ("learning_rate", "batch_size", "crop", "log_every", "precision", "backend", "shape_bucket",
                "train_downscaler"):
        assert getattr(params, key) == training[key]["default"], key
    assert params.perceptual_norm == schema["properties"]["losses"]["properties"]["perceptual_norm"]["default"]
    assert params.widths == {} and registry.architecture("irn").widths["lr_channels"] == 4
    assert run_params("sr", lambda_p=0).loss_weights == {"lambda_b": 1.0, "lambda_f": 1.0, "lambda_p": 0.0,
                                                         "lambda_s": 1.0}
    assert defaults("training")["jobs_per_gpu"] == 1
    filled = with_defaults({"datasets": paper_config["datasets"]})
    assert filled["losses"]["lambda_b"] == 1.0 and filled["studies"] == {} and filled["scale"] == 2
    with pytest.raises(ConfigError, match="training.colour: unknown key"):
        with_defaults(dict(paper_config, training={"colour": 1}))


def test_perceptual_norm_relative_by_default_raw_by_preset_bad_value_named(paper_config):
    config = dict(_study(paper_config, models=["sr"], presets=["corrected", "raw_vgg"]),
                  presets={"corrected": {}, "raw_vgg": {"perceptual_norm": "raw"}})
    runs = {r.preset: p for r, p in experiment_table(config).items()}
    assert runs["corrected"]["perceptual_norm"] == "relative" and runs["raw_vgg"]["perceptual_norm"] == "raw"
    bad = dict(config, losses=dict(paper_config.get("losses", {}), perceptual_norm="basicsr"))
    with pytest.raises(ConfigError, match="losses.perceptual_norm: 'basicsr' is not one of"):
        experiment_table(bad)
    errors = describe_errors(bad)
    assert any(e.startswith("losses.perceptual_norm") for e in errors), errors


# ----------------------------------------------------------------- evaluation.benchmarks (issue 15)

def test_benchmarks_are_configured_datasets_never_trained_on(paper_config):
    from ssimsr.pipeline.experiments import check_benchmarks

    assert check_benchmarks(paper_config) == ["set5", "set14"]
    for name in ("set5", "set14"):
        assert paper_config["datasets"][name]["split"] == {"method": "all_val"}
        assert paper_config["datasets"][name]["multiple_mode"] == "crop"
    unknown = dict(paper_config, evaluation={"benchmarks": ["set5", "urban100"]})
    with pytest.raises(ValueError, match=r"evaluation.benchmarks\[1\]: unknown dataset 'urban100'"):
        check_benchmarks(unknown)
    trained = dict(paper_config, evaluation={"benchmarks": ["bsds300"]})
    with pytest.raises(ValueError, match=r"evaluation.benchmarks\[0\]: 'bsds300' is a training dataset"):
        check_benchmarks(trained)
    assert defaults("evaluation")["benchmarks"] == []
    demo = yaml.safe_load((REPO / "profiles/demo/demo-config.yaml").read_text())
    assert demo["evaluation"]["benchmarks"] == []  # offline


# ----------------------------------------------------------------- non-finite numbers (issue 24)

@pytest.mark.parametrize("text, key", [
    ("studies: {table1: {lambda_s: [0, .nan]}}", "studies.table1.lambda_s[1]: nan"),
    ("studies: {table1: {lambda_s: [.inf]}}", "studies.table1.lambda_s[0]: inf"),
    ("losses: {lambda_b: .nan}", "losses.lambda_b: nan"),
    ("presets: {as_run: {lambda_f: .inf}}", "presets.as_run.lambda_f: inf"),
    ("training: {learning_rate: .inf}", "training.learning_rate: inf"),
    ("downloads: {timeout: -.inf}", "downloads.timeout: -inf"),
])
def test_non_finite_numbers_are_refused_naming_the_key(paper_config, text, key):
    """JSON Schema lets NaN and infinity through `minimum` (every comparison with NaN is
    false); the config check refuses them anywhere, one line naming the key."""
    from ssimsr.config import merge_configs

    bad = merge_configs(paper_config, yaml.safe_load(text))
    errors = describe_errors(bad)
    assert f"{key} is not a finite number" in errors, errors
    with pytest.raises(ConfigError, match=re.escape(key)):
        with_defaults(bad)
    assert not any("finite" in e for e in describe_errors(paper_config))
