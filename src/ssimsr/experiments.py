"""The experiment table: every training run the active studies ask for.

A run is (study, preset, model, dataset, lambda_s, seed, VGG layer pair) and its fully
resolved training parameters (``train.RunParams``). The Snakemake rules and the report
both read this table, so paths and parameters are defined in one place.
"""

from __future__ import annotations

import itertools

from .train import RunParams


def lambda_tag(value: float) -> str:
    """0 -> '0', 1.0 -> '1', 0.5 -> '0.5' (paths use ls0, ls1, ls2)."""
    return f"{float(value):g}"


def vgg_tag(layers) -> str:
    """['block4_conv4', 'block5_conv4'] -> 'b4c4-b5c4'."""
    return "-".join(name.replace("block", "b").replace("_conv", "c") for name in layers)


def run_dir(results: str, run: dict) -> str:
    return (f"{results}/train/{run['study']}/{run['preset']}/{run['model']}/{run['dataset']}/"
            f"ls{lambda_tag(run['lambda_s'])}/{run['vgg']}/seed{run['seed']}")


def _epochs(study_name: str, study: dict, dataset: str) -> int:
    epochs = study["epochs"]
    if isinstance(epochs, int):
        return epochs
    if dataset not in epochs:
        raise ValueError(f"studies.{study_name}.epochs: no entry for dataset {dataset!r}")
    return epochs[dataset]


def resolve_params(config: dict, study_name: str, preset: str, model: str, dataset: str,
                   lambda_s: float, seed: int, vgg_layers) -> dict:
    """Training parameters of one run: config sections, then the preset's overrides."""
    study = config["studies"][study_name]
    losses, training = config.get("losses", {}), config.get("training", {})
    model_cfg = dict(config.get("models", {}).get(model, {}))
    train_downscaler = model_cfg.pop("train_downscaler", True)
    params = {
        "model": model, "dataset": dataset, "lambda_s": float(lambda_s), "seed": int(seed),
        "epochs": _epochs(study_name, study, dataset), "scale": config.get("scale", 2),
        "lambda_b": losses.get("lambda_b", 1.0), "lambda_f": losses.get("lambda_f", 1.0),
        "lambda_p": losses.get("lambda_p", 1.0), "vgg_layers": list(vgg_layers),
        "vgg_resize": losses.get("vgg_resize"),
        "perceptual_norm": losses.get("perceptual_norm", "relative"),
        "vgg_weights": losses.get("vgg_weights",
                                  "resources/weights/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"),
        "learning_rate": training.get("learning_rate", 5e-4),
        "batch_size": training.get("batch_size", 1), "crop": training.get("crop"),
        "max_train_images": training.get("max_train_images"),
        "checkpoint_every": training.get("checkpoint_every", 1),
        "log_every": training.get("log_every", 50),
        "jit_compile": training.get("jit_compile", False),
        "precision": training.get("precision", "float32"),
        "shape_bucket": training.get("shape_bucket", "auto"),
        "backend": training.get("backend", "tensorflow"),
        "train_downscaler": train_downscaler if model == "irn" else False,
        "widths": model_cfg,
    }
    presets = config.get("presets", {"corrected": {}})
    if preset not in presets:
        raise ValueError(f"studies.{study_name}.presets: unknown preset {preset!r} ({sorted(presets)})")
    for key, value in presets[preset].items():
        if key == "train_downscaler" and model != "irn":
            continue
        params[key] = value
    RunParams.from_dict(params)  # fails early, naming the parameter
    return params


def experiment_table(config: dict) -> list[dict]:
    """All runs of ``config['active_studies']``, in a stable order."""
    studies = config.get("studies", {})
    default_layers = config.get("losses", {}).get("vgg_layers", ["block4_conv4", "block5_conv4"])
    runs = []
    for name in config.get("active_studies", []):
        if name not in studies:
            raise ValueError(f"active_studies: {name!r} is not a key of studies ({sorted(studies)})")
        study = studies[name]
        for ds in study["datasets"]:
            if ds not in config["datasets"]:
                raise ValueError(f"studies.{name}.datasets: unknown dataset {ds!r} ({sorted(config['datasets'])})")
        grid = itertools.product(study.get("presets", ["corrected"]), study["models"], study["datasets"],
                                 study["lambda_s"], study.get("vgg_layers") or [default_layers],
                                 study.get("seeds") or config.get("seeds", [0]))
        for preset, model, dataset, lambda_s, layers, seed in grid:
            runs.append({
                "study": name, "preset": preset, "model": model, "dataset": dataset,
                "lambda_s": float(lambda_s), "seed": int(seed), "vgg": vgg_tag(layers),
                "params": resolve_params(config, name, preset, model, dataset, lambda_s, seed, layers),
            })
    return runs


def check_report_config(config: dict) -> None:
    """The studies the report reads must be active (named by key if not)."""
    report, active = config.get("report", {}), config.get("active_studies", [])
    for key, value in (("report.table1_study", report.get("table1_study")),
                       ("report.appendix_study", report.get("appendix_study")),
                       ("report.stats.study", report.get("stats", {}).get("study"))):
        if value is not None and value not in active:
            raise ValueError(f"{key}: {value!r} is not in active_studies {active}")
    stats_study = config.get("studies", {}).get(report.get("stats", {}).get("study"), {})
    preset = report.get("preset", "corrected")
    if stats_study and preset not in stats_study.get("presets", ["corrected"]):
        raise ValueError(f"report.preset: {preset!r} is not a preset of study "
                         f"{report['stats']['study']!r} ({stats_study.get('presets', ['corrected'])})")
    if "comparisons" in report:
        from .stats import check_pairs

        check_pairs(report["comparisons"], "report.comparisons")
