"""The experiment table: every training run the active studies ask for.

A run (``runs.Run``: study, preset, model, dataset, lambda_s, seed, VGG layer pair) maps
to its fully resolved training parameters (``train.RunParams`` as a dict). The Snakemake
rules and the report both read this table, so paths and parameters are defined in one
place. Every default comes from the config schema (``config.with_defaults``).
"""

from __future__ import annotations

import itertools

from .. import registry
from ..config import defaults, with_defaults
from .runs import GRID_WEIGHT, WEIGHT_DIGITS, Run, check_pairs, vgg_tag, weight_key
from ..training.run_params import RunParams

#: Keys of ``training`` that are not training parameters (how jobs share a GPU).
SCHEDULING_KEYS = ("jobs_per_gpu",)


def _epochs(study_name: str, study: dict, dataset: str) -> int:
    epochs = study["epochs"]
    if isinstance(epochs, int):
        return epochs
    if dataset not in epochs:
        raise ValueError(f"studies.{study_name}.epochs: no entry for dataset {dataset!r}")
    return epochs[dataset]


def configured_weights() -> list[str]:
    """The loss weights that ``losses`` and a preset set: every registered term's but
    :data:`~ssimsr.pipeline.runs.GRID_WEIGHT` (each study's grid sets that one)."""
    return [w for w in registry.weight_names() if w != GRID_WEIGHT]


def _check_weights(values: dict, where: str) -> None:
    """Every ``lambda_*`` key of ``values`` (``losses`` or a preset) is a weight it may set."""
    names = configured_weights()
    for key in values:
        if key.startswith("lambda_") and key not in names:
            why = ("each study's grid sets this weight (studies.<name>.lambda_s)" if key in registry.weight_names()
                   else "no registered loss term has this weight")
            raise ValueError(f"{where}.{key}: {why} (the weights {where} can set: {', '.join(names)})")


def _loss_weights(losses: dict, lambda_s: float) -> dict[str, float]:
    """Every registered loss term's lambda, in their order: the grid's ``lambda_s``, and
    ``losses`` (checked) the others."""
    _check_weights(losses, "losses")
    values = {**losses, GRID_WEIGHT: lambda_s}
    weights = {}
    for term in registry.loss_terms().values():
        if term.weight not in values:
            raise ValueError(f"losses.{term.weight}: not set, but loss term {term.name!r} is registered "
                             f"with this weight (set it; 0 switches the term off)")
        weights[term.weight] = float(values[term.weight])
    return weights


def resolve_params(config: dict, preset: str, model: str, dataset: str, lambda_s: float, seed: int,
                   vgg_layers, epochs: int, run: Run | None = None) -> dict:
    """Training parameters of one run: the (default-filled) config, the architecture's own
    ``models.<model>.training``, then the preset's overrides; ``lambda_s`` (the study grid's
    value) is one of its ``loss_weights``."""
    arch = registry.architecture(model, key="model")
    widths = dict(config["models"].get(model, {}))
    model_training = widths.pop("training", {})  # this architecture's own training settings
    arch.check_widths(widths)
    losses, training = config["losses"], config["training"]
    presets = config["presets"]
    if preset not in presets:
        raise ValueError(f"unknown preset {preset!r} ({sorted(presets)})")
    params = {
        "model": model, "dataset": dataset, "seed": int(seed), "epochs": epochs,
        "scale": config["scale"], "loss_weights": _loss_weights(losses, lambda_s),
        "vgg_layers": list(vgg_layers), "widths": widths,
        **{k: losses[k] for k in ("vgg_resize", "perceptual_norm", "vgg_weights")},
        **{k: v for k, v in training.items() if k not in SCHEDULING_KEYS},
        **model_training,
        "run": run.as_dict() if run else None,
    }
    overrides = dict(presets[preset])
    weights = {k: overrides.pop(k) for k in list(overrides) if k.startswith("lambda_")}
    _check_weights(weights, f"presets.{preset}")
    params["loss_weights"].update({k: float(v) for k, v in weights.items()})
    params.update(overrides)
    # a fixed downscaler (SR's decimation) has nothing to train
    params["train_downscaler"] = bool(params["train_downscaler"]) and arch.learned_downscaler
    RunParams.from_dict(params)  # fails early, naming the parameter
    return params


def run_params(model: str, dataset: str = "x", lambda_s: float = 1.0, seed: int = 0, epochs: int = 1,
               **overrides) -> RunParams:
    """A run's parameters from the schema's defaults and ``overrides`` (tests, benchmarks, by hand).

    ``overrides`` are RunParams fields or loss weights (``lambda_p=0``). A registered loss term
    whose weight is neither given nor in the schema (a term added in ``ssimsr/models/terms``) is off.
    """
    config = defaults()
    weights = {k: overrides.pop(k) for k in list(overrides) if k.startswith("lambda_")}
    for name in configured_weights():
        config["losses"].setdefault(name, 0.0)
    config["losses"].update(weights)
    [preset] = config["presets"]  # the schema's default presets: the default one (runs.DEFAULT_PRESET)
    params = resolve_params(config, preset, model, dataset, lambda_s, seed,
                            config["losses"]["vgg_layers"], epochs)
    return RunParams.from_dict({**params, **overrides})


def experiment_table(config: dict) -> dict[Run, dict]:
    """All runs of ``config['active_studies']`` and their parameters, in a stable order."""
    config = with_defaults(config)
    studies = config["studies"]
    runs = {}
    for name in config["active_studies"]:
        if name not in studies:
            raise ValueError(f"active_studies: {name!r} is not a key of studies ({sorted(studies)})")
        study = studies[name]
        for ds in study["datasets"]:
            if ds not in config["datasets"]:
                raise ValueError(f"studies.{name}.datasets: unknown dataset {ds!r} ({sorted(config['datasets'])})")
        for model in study["models"]:
            registry.architecture(model, key=f"studies.{name}.models")
        for preset in study["presets"]:
            if preset not in config["presets"]:
                raise ValueError(f"studies.{name}.presets: unknown preset {preset!r} ({sorted(config['presets'])})")
        keys = [weight_key(v) for v in study["lambda_s"]]
        if len(set(keys)) < len(keys):  # two folders, but one weight to every table
            raise ValueError(f"studies.{name}.lambda_s: {study['lambda_s']} holds values that are the same "
                             f"weight to {WEIGHT_DIGITS} significant digits (runs.weight_key)")
        grid = itertools.product(study["presets"], study["models"], study["datasets"], study["lambda_s"],
                                 study.get("vgg_layers") or [config["losses"]["vgg_layers"]],
                                 study.get("seeds") or config["seeds"])
        first_layers = (study.get("vgg_layers") or [config["losses"]["vgg_layers"]])[0]
        for preset, model, dataset, lambda_s, layers, seed in grid:
            run = Run(name, preset, model, dataset, lambda_s, seed, vgg_tag(layers))
            params = resolve_params(config, preset, model, dataset, lambda_s, seed, layers,
                                    _epochs(name, study, dataset), run)
            if layers != first_layers and not RunParams.from_dict(params).uses_extractor():
                continue  # the layer pair acts only through a VGG19 term: one run, not one per pair
            runs[run] = params
    return runs


def check_report_config(config: dict) -> None:
    """The studies and models the report reads must exist (named by key if not)."""
    config = with_defaults(config)
    report, active = config["report"], config["active_studies"]
    for key, value in (("report.table1_study", report["table1_study"]),
                       ("report.appendix_study", report["appendix_study"]),
                       ("report.stats.study", report["stats"]["study"])):
        if value is not None and value not in active:
            raise ValueError(f"{key}: {value!r} is not in active_studies {active}")
    registry.architecture(report["stats"]["model"], key="report.stats.model")
    registry.architecture(config["evaluation"]["showcase"]["model"], key="evaluation.showcase.model")
    stats_study = config["studies"].get(report["stats"]["study"])
    if stats_study and report["preset"] not in stats_study["presets"]:
        raise ValueError(f"report.preset: {report['preset']!r} is not a preset of study "
                         f"{report['stats']['study']!r} ({stats_study['presets']})")
    check_pairs(report["comparisons"], "report.comparisons")
    check_benchmarks(config)


def check_benchmarks(config: dict) -> list[str]:
    """``evaluation.benchmarks``, checked: configured datasets that no active study trains on,
    each evaluated as an image set of its own name (so not ``val`` or ``showcase``)."""
    config = with_defaults(config)
    trained = {dataset for name in config["active_studies"]
               for dataset in config["studies"].get(name, {}).get("datasets", [])}
    names = config["evaluation"]["benchmarks"]
    for i, name in enumerate(names):
        key = f"evaluation.benchmarks[{i}]"
        if name not in config["datasets"]:
            raise ValueError(f"{key}: unknown dataset {name!r} ({sorted(config['datasets'])})")
        if name in trained:
            raise ValueError(f"{key}: {name!r} is a training dataset of an active study; a benchmark is "
                             "evaluated, never trained on")
        if name in ("val", "showcase"):
            raise ValueError(f"{key}: a benchmark cannot be named {name!r} (the name of another image set)")
    return list(names)
