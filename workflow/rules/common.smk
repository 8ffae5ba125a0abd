# Helpers that turn the validated config into the experiment table, file lists and
# rule parameters. Logic that is not about paths lives in src/ssimsr.
import json
from pathlib import Path

from ssimsr.code_digest import code_digest
from ssimsr.experiments import check_report_config, experiment_table, run_dir
from ssimsr.report import FIGURE_EXTENSIONS, TABLE_EXTENSIONS, figure_names
from ssimsr.tables import table_names

RESULTS = "results"
RESOURCES = "resources"
VGG19_FILE = f"{RESOURCES}/weights/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"


wildcard_constraints:
    dataset="[a-z][a-z0-9]*",
    index=r"\d+",
    study="[a-z][a-z0-9_]*",
    preset="[a-z][a-z0-9_]*",
    model="sr|irn",
    lambda_s=r"[0-9]+(\.[0-9]+)?",
    vgg="[a-z0-9-]+",
    seed=r"\d+",


# One row per training run: study, preset, model, dataset, lambda_s, seed, vgg, params.
RUNS = experiment_table(config)
RUNS_BY_DIR = {run_dir(RESULTS, r): r for r in RUNS}
check_report_config(config)


def active_datasets():
    return sorted({r["dataset"] for r in RUNS})


def dataset_config(wildcards):
    return config["datasets"][wildcards.dataset]


def source_receipts(wildcards):
    sources = config["datasets"][wildcards.dataset]["sources"]
    return [f"{RESOURCES}/datasets/{wildcards.dataset}/source{i}.json" for i in range(len(sources))]


def prepare_options(wildcards):
    """The dataset config that changes prepared images (sources excluded: receipts track them)."""
    ds = dict(config["datasets"][wildcards.dataset])
    ds.pop("sources")
    return json.dumps(ds, sort_keys=True)


RUN_PATH = "{study}/{preset}/{model}/{dataset}/ls{lambda_s}/{vgg}/seed{seed}"
TRAIN_DIR = f"{RESULTS}/train/{RUN_PATH}"
EVAL_DIR = f"{RESULTS}/eval/{RUN_PATH}"
SHOWCASE_DIR = f"{RESULTS}/showcase"
LPIPS_STATUS = f"{RESOURCES}/weights/lpips_backbones.json"


def run_of(wildcards):
    key = TRAIN_DIR.format(**wildcards)
    if key not in RUNS_BY_DIR:
        raise ValueError(f"{key}: not a run of the configured studies")
    return RUNS_BY_DIR[key]


def train_inputs(wildcards):
    run = run_of(wildcards)
    inputs = {"manifest": f"{RESULTS}/data/{run['dataset']}/manifest.csv"}
    if run["params"]["lambda_p"] > 0:
        inputs["vgg19"] = run["params"]["vgg_weights"]
    return inputs


def train_targets():
    return [f"{run_dir(RESULTS, r)}/history.csv" for r in RUNS]


def all_targets():
    return table_files() + figure_files()


def expand_runs(pattern):
    """``pattern`` (with run wildcards) formatted for every run of the experiment table."""
    from ssimsr.experiments import lambda_tag

    return [pattern.format(study=r["study"], preset=r["preset"], model=r["model"], dataset=r["dataset"],
                           lambda_s=lambda_tag(r["lambda_s"]), vgg=r["vgg"], seed=r["seed"]) for r in RUNS]


def is_showcase_run(wildcards):
    show = config["evaluation"]["showcase"]
    return bool(show["images"]) and wildcards.model == show["model"] and wildcards.dataset == show["dataset"]


def showcase_manifests(wildcards):
    names = {e["dataset"] for e in config["evaluation"]["showcase"]["images"] if "dataset" in e}
    return [f"{RESULTS}/data/{d}/manifest.csv" for d in sorted(names)]


def eval_inputs(wildcards):
    run = TRAIN_DIR.format(**wildcards)
    inputs = {"upscaler": f"{run}/upscaler.keras", "downscaler": f"{run}/downscaler.keras",
              "params": f"{run}/params.json", "manifest": f"{RESULTS}/data/{wildcards.dataset}/manifest.csv"}
    if is_showcase_run(wildcards):
        inputs["showcase"] = SHOWCASE_DIR
    return inputs


TABLES = table_names(config["report"])
FIGURES = figure_names(config["evaluation"]["showcase"])


def table_files():
    return [f"{RESULTS}/tables/{n}.{e}" for n in TABLES for e in TABLE_EXTENSIONS]


def figure_files():
    return [f"{RESULTS}/figures/{n}.{e}" for n in FIGURES for e in FIGURE_EXTENSIONS]


def parent(path, levels=1):
    """A folder above a file, for rules whose command takes a folder (lint: not hardcoded)."""
    return str(Path(path).parents[levels - 1])
