"""Registries of architectures and loss terms: what derives from them, and registering a new one."""

import ast
import re
from pathlib import Path

import pytest
import yaml

from conftest import BACKEND
from ssimsr.training import balance
from ssimsr import registry
from ssimsr.config import SCHEMA_PATH
from ssimsr.pipeline.experiments import run_params
from ssimsr.training.train import history_columns, term_names


@pytest.fixture
def scratch_registry(monkeypatch):
    """Registrations made in a test vanish after it."""
    registry.discover()
    monkeypatch.setattr(registry.ARCHITECTURES, "_entries", dict(registry.ARCHITECTURES._entries))
    monkeypatch.setattr(registry.LOSS_TERMS, "_entries", dict(registry.LOSS_TERMS._entries))


def test_built_ins_and_what_derives_from_them():
    assert list(registry.architectures()) == ["irn", "sr"]
    assert registry.architecture("irn").learned_downscaler and not registry.architecture("sr").learned_downscaler
    assert registry.architecture("sr").widths == {"filters": 64, "res_blocks": 8}
    # Eq. 11's order: the history columns and the loss-share table follow it
    assert list(registry.loss_terms()) == ["bw_mse", "fw_mse", "perceptual", "ssim_n"]
    assert registry.weight_names() == ["lambda_b", "lambda_f", "lambda_p", "lambda_s"]
    assert history_columns() == ["epoch", "split", "total", "bw_mse", "fw_mse", "perceptual", "ssim_n",
                                 "psnr", "ssim", "seconds"]
    assert balance.weighted_terms() == (("bw_mse", "lambda_b"), ("fw_mse", "lambda_f"),
                                        ("perceptual", "lambda_p"), ("ssim_n", "lambda_s"))


def test_schema_has_no_architecture_enum_and_declares_the_paper_weights():
    """Model names are checked against the registry, so a new architecture needs no schema edit;
    the paper's lambdas have their defaults in the schema, a new term's lambda its pattern."""
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    assert "enum" not in schema["$defs"]["model"]
    losses = schema["properties"]["losses"]
    assert {w for w in registry.weight_names() if w != "lambda_s"} <= set(losses["properties"])
    [pattern] = losses["patternProperties"]  # a new term's weight, never the study grid's lambda_s
    assert re.search(pattern, "lambda_tv") and not re.search(pattern, "lambda_s")
    assert list(schema["$defs"]["preset"]["patternProperties"]) == [pattern]


def test_bad_registrations_are_refused(scratch_registry):
    with pytest.raises(ValueError, match="weight must be named lambda_<x>"):
        registry.register_loss_term("tv", weight="tv_weight")
    with pytest.raises(ValueError, match="is registered twice"):
        registry.register_architecture("sr", learned_downscaler=True)(lambda scale=2: None)
    with pytest.raises(ValueError, match="lower-case letters"):
        registry.register_architecture("My-Net", learned_downscaler=False)(lambda scale=2: None)
    with pytest.raises(ValueError, match="the name of a history column"):
        registry.register_loss_term("psnr", weight="lambda_q")


def test_a_workflow_config_must_weigh_a_new_term(scratch_registry):
    """By hand a new term is off; in a study its weight must be set (never on or off by accident)."""
    from pathlib import Path

    from ssimsr.pipeline.experiments import experiment_table

    registry.register_loss_term("tv", weight="lambda_tv")(lambda batch: 0.0)
    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "config.yaml").read_text())
    with pytest.raises(ValueError, match="losses.lambda_tv: not set, but loss term 'tv' is registered"):
        experiment_table(config)
    config.setdefault("losses", {})["lambda_tv"] = 0.0  # config.yaml keeps the default weights
    assert all(p["loss_weights"]["lambda_tv"] == 0.0 for p in experiment_table(config).values())


def test_params_json_from_before_loss_weights_still_loads():
    from ssimsr.training.train import RunParams

    old = run_params("sr").as_dict()
    old.update(old.pop("loss_weights"))  # the flat lambda_b / lambda_f / lambda_p layout
    old.pop("run")
    assert RunParams.from_dict(old).loss_weights == run_params("sr").loss_weights


def test_a_registered_architecture_and_term_train(scratch_registry):
    """A toy pair and a total-variation term, registered here, go through a real training step."""
    import keras
    import numpy as np
    from keras import ops

    from ssimsr.config import defaults
    from ssimsr.pipeline.experiments import resolve_params
    from ssimsr.models.models import ModelPair
    from ssimsr.training.train import RunParams, Trainer

    @registry.register_architecture("toy", learned_downscaler=False)
    def build_toy(scale=2, filters=4):
        hr = keras.Input((None, None, 3))
        lr = keras.Input((None, None, 3))
        up = keras.layers.Conv2D(3, 3, padding="same")(
            keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(keras.layers.UpSampling2D(scale)(lr)))
        return ModelPair(keras.Model(hr, keras.layers.AveragePooling2D(scale)(hr)), keras.Model(lr, up))

    @registry.register_loss_term("tv", weight="lambda_tv", label="TV")
    def total_variation(batch):
        return (ops.mean(ops.abs(batch.rec[:, 1:] - batch.rec[:, :-1]))
                + ops.mean(ops.abs(batch.rec[:, :, 1:] - batch.rec[:, :, :-1])))

    assert "tv" in term_names() and history_columns().index("tv") == history_columns().index("ssim_n") + 1
    assert run_params("toy").loss_weights["lambda_tv"] == 0.0  # by hand: a new term is off unless given
    assert run_params("toy", lambda_tv=0.5).loss_weights["lambda_tv"] == 0.5
    config = {"scale": 2, "losses": {**defaults("losses"), "lambda_p": 0.0, "lambda_tv": 0.5},
              "training": {**defaults("training"), "backend": BACKEND}, "models": {"toy": {"filters": 2}},
              "presets": {"corrected": {}}}
    params = resolve_params(config, "corrected", "toy", "x", 1.0, 0, ["block4_conv4"], 1)
    assert params["loss_weights"] == {"lambda_b": 1.0, "lambda_f": 1.0, "lambda_p": 0.0, "lambda_s": 1.0,
                                      "lambda_tv": 0.5}
    trainer = Trainer(RunParams.from_dict(params))
    hr = np.random.default_rng(0).random((1, 16, 16, 3), dtype=np.float32)
    terms = trainer.steps.fetch([trainer.steps.evaluate(hr)])[0]
    expected = terms["bw_mse"] + terms["fw_mse"] + 0.5 * terms["tv"] + 1.0 * terms["ssim_n"]
    assert terms["tv"] > 0 and terms["total"] == pytest.approx(expected, rel=1e-5)


# --------------------------------------------------------------------------- one home for each fact
# Facts whose home is a module constant, which the config schema (YAML, no imports) repeats:
# each test names the home and checks every repetition against it.

def _schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text())


REPO = SCHEMA_PATH.parents[2]


def _python_files(*folders: str):
    for folder in folders:
        yield from sorted((REPO / folder).rglob("*.py"))


def _string_constants(path: Path):
    """(line, value) of every string constant of a Python file."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value


def _literal_collections(path: Path):
    """(line, the string elements) of every list, tuple, set and dict (its keys) literal."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            elements = node.elts
        elif isinstance(node, ast.Dict):
            elements = [k for k in node.keys if k is not None]
        else:
            continue
        yield node.lineno, {e.value for e in elements if isinstance(e, ast.Constant) and isinstance(e.value, str)}


def test_schema_backends_are_the_backends_module_s():
    from ssimsr.training import backends
    from ssimsr.training.backends import BACKENDS, Backend
    from ssimsr.registry import Registry

    assert isinstance(BACKENDS, Registry)
    backend = _schema()["properties"]["training"]["properties"]["backend"]
    assert backend["enum"] == BACKENDS.names()  # JSON Schema needs the list: it is the registry's
    assert backends.default() == backend["default"] in BACKENDS  # the default: the schema's alone
    for entry in BACKENDS.values():  # each entry names its train steps
        assert type(entry).make_steps is not Backend.make_steps, entry.name
    with pytest.raises(ValueError, match=r"training.backend: unknown backend 'mxnet' \(registered: tensorflow, jax, torch\)"):
        backends.get("mxnet")


def test_a_run_without_a_backend_gets_the_schema_s_default(tmp_path, monkeypatch):
    from ssimsr.training import backends
    from ssimsr.pipeline import runner

    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    default = _schema()["properties"]["training"]["properties"]["backend"]["default"]
    assert runner.run_backend(tmp_path) == default  # no params.json
    (tmp_path / "params.json").write_text("{}")
    assert runner.run_backend(tmp_path) == default
    monkeypatch.setattr(backends, "default", lambda: "jax")  # runner reads it, spells none
    assert runner.run_backend(tmp_path) == "jax"


def test_backend_names_are_written_once():
    """The backends' names are BACKENDS' entries (ssimsr/training/backends.py): no other module of the
    library spells one (a fallback, a comparison, a table keyed by backend), and no list of them
    comes back in the library, the workflow or the tests (they iterate ``BACKENDS``)."""
    from ssimsr.training.backends import BACKENDS

    names = set(BACKENDS)
    # torchvision's hub folder (torch/hub/checkpoints), not the Keras backend
    not_a_backend = {("lpips_eval.py", "torch")}
    spelled = [f"{path.relative_to(REPO)}:{line}: {value!r}" for path in _python_files("src/ssimsr")
               if path.name != "backends.py" for line, value in _string_constants(path)
               if value in names and (path.name, value) not in not_a_backend]
    assert not spelled, "a backend named outside ssimsr/training/backends.py (use its BACKENDS entry):\n" + "\n".join(spelled)
    lists = [f"{path.relative_to(REPO)}:{line}: {sorted(found & names)}"
             for path in _python_files("src/ssimsr", "workflow", "tests")
             for line, found in _literal_collections(path) if names <= found]
    quoted = re.compile(rf"[\"']({'|'.join(map(re.escape, names))})[\"']")
    lists += [f"{path.relative_to(REPO)}:{i}" for path in [REPO / "Snakefile", *sorted((REPO / "workflow").rglob("*.smk"))]
              for i, line in enumerate(path.read_text().splitlines(), 1) if len(set(quoted.findall(line))) > 1]
    assert not lists, "a list of the backends (iterate ssimsr.training.backends.BACKENDS):\n" + "\n".join(lists)


def test_schema_precisions_are_run_params():
    from ssimsr.training.run_params import PRECISIONS

    schema = _schema()
    assert schema["properties"]["training"]["properties"]["precision"]["enum"] == list(PRECISIONS)
    assert schema["$defs"]["preset"]["properties"]["precision"]["enum"] == list(PRECISIONS)


def test_lpips_nets_and_columns_have_one_home():
    from ssimsr.evaluation import lpips_eval, lpips_nets
    from ssimsr.analysis import stats
    from ssimsr.tables import STATS_METRICS, TABLE4_METRICS

    nets = _schema()["properties"]["evaluation"]["properties"]["lpips_nets"]
    assert nets["items"]["enum"] == nets["default"] == list(lpips_nets.NETS)
    assert lpips_eval.NETS == lpips_nets.NETS and set(lpips_eval.BACKBONE_FILES) == set(lpips_nets.NETS)
    assert lpips_nets.LPIPS_COLUMNS == ("lpips_alex", "lpips_squeeze", "lpips_vgg")
    for metrics in (STATS_METRICS, TABLE4_METRICS, stats.PER_IMAGE_METRICS):
        assert [m for m in metrics if m.startswith("lpips_")] == list(lpips_nets.LPIPS_COLUMNS)


def test_preset_names_have_one_home():
    """``corrected`` (the default preset) is written once, in the schema (one YAML anchor that
    the other defaults alias); ``as_run`` (the paper's) once, ``runs.PAPER_PRESET``."""
    from ssimsr import tables
    from ssimsr.pipeline.runs import DEFAULT_PRESET, PAPER_PRESET

    schema = _schema()
    assert schema["properties"]["presets"]["default"] == {DEFAULT_PRESET: {}}
    assert schema["$defs"]["study"]["properties"]["presets"]["default"] == [DEFAULT_PRESET]
    assert schema["properties"]["report"]["properties"]["preset"]["default"] == DEFAULT_PRESET
    defaults = [line for line in SCHEMA_PATH.read_text().splitlines()
                if "default:" in line and DEFAULT_PRESET in line.split("#")[0]]
    assert len(defaults) == 1 and "&default_preset" in defaults[0], defaults
    assert (tables.PAPER_PRESET, tables.BESIDE_PRESET) == (PAPER_PRESET, DEFAULT_PRESET)
    spelled = {preset: [f"{path.relative_to(REPO)}:{line}" for path in _python_files("src/ssimsr")
                        for line, value in _string_constants(path) if value == preset]
               for preset in (DEFAULT_PRESET, PAPER_PRESET)}
    assert spelled == {DEFAULT_PRESET: [], PAPER_PRESET: [spelled[PAPER_PRESET][0]]}
    assert spelled[PAPER_PRESET][0].startswith("src/ssimsr/pipeline/runs.py:")
    paper = yaml.safe_load((REPO / "config.yaml").read_text())
    assert {DEFAULT_PRESET, PAPER_PRESET} <= set(paper["presets"])  # the paper's study defines both


def test_study_names_have_no_python_default():
    """The studies of the tables (``report.table1_study``, ``report.appendix_study``,
    ``report.stats.study``) default in the config schema alone: no library function has a
    default study of its own (its caller passes the filled config's)."""
    report = _schema()["properties"]["report"]["properties"]
    assert (report["table1_study"]["default"], report["appendix_study"]["default"],
            report["stats"]["properties"]["study"]["default"]) == ("table1", "appendix_a", "table1")
    found = []
    for path in _python_files("src/ssimsr"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args
                positional = [*args.posonlyargs, *args.args]
                pairs = [*zip(positional[len(positional) - len(args.defaults):], args.defaults),
                         *zip(args.kwonlyargs, args.kw_defaults)]
                found += [f"{path.relative_to(REPO)}:{node.lineno} {node.name}({arg.arg}={default.value!r})"
                          for arg, default in pairs if "study" in arg.arg and isinstance(default, ast.Constant)
                          and isinstance(default.value, str)]
    assert not found, "a default study in Python (take it from the config):\n" + "\n".join(found)


def test_vgg19_weights_file_has_one_home():
    from ssimsr.models import losses
    from ssimsr.data.weights import VGG19_NOTOP_FILENAME, VGG19_NOTOP_MD5

    schema = _schema()["properties"]
    vgg19 = schema["weights"]["properties"]["vgg19"]["properties"]
    assert vgg19["uri"]["default"].rsplit("/", 1)[1] == VGG19_NOTOP_FILENAME
    assert vgg19["md5"]["default"] == VGG19_NOTOP_MD5
    assert schema["losses"]["properties"]["vgg_weights"]["default"] == f"resources/weights/{VGG19_NOTOP_FILENAME}"
    assert (losses.VGG19_NOTOP_FILENAME, losses.VGG19_NOTOP_MD5) == (VGG19_NOTOP_FILENAME, VGG19_NOTOP_MD5)
    rules = (SCHEMA_PATH.parents[2] / "workflow" / "rules" / "common.smk").read_text()
    assert VGG19_NOTOP_FILENAME not in rules and "VGG19_NOTOP_FILENAME" in rules  # the rules import it


def test_loss_term_names_and_labels_have_one_home(scratch_registry):
    """A loss term's column is its registry name and its header its registry label, in every
    table (the renderer keeps no label of its own), Table 1 / A2 and the published values
    included: the paper's spellings (``bwmse``, ``fwmse``, ``perc``) are no column."""
    from ssimsr.tables.render import METRIC_LABELS, header_label

    terms = registry.loss_terms()
    assert not set(METRIC_LABELS) & set(terms)
    assert [header_label(t) for t in terms] == ["bwMSE", "fwMSE", "L_perc", "L_SSIM_N"]
    assert header_label("bw_mse_end") == "bwMSE (end)" and header_label("bwmse_end") == "bwmse_end"
    registry.register_loss_term("tv", weight="lambda_tv", label="TV")(lambda batch: 0.0)
    registry.register_loss_term("edge", weight="lambda_e")(lambda batch: 0.0)
    assert (header_label("tv"), header_label("tv_start"), header_label("edge")) == ("TV", "TV (start)", "edge")
