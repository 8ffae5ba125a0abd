# Helpers that turn the validated config into the experiment table, file lists and
# rule parameters. Logic that is not about paths lives in src/ssimsr.
import functools
from pathlib import Path

from ssimsr.data.seed_split import per_seed_datasets, split_label
from ssimsr.data.weights import VGG19_NOTOP_FILENAME
from ssimsr.pipeline.code_digest import code_digest
from ssimsr.pipeline.experiments import check_benchmarks, check_report_config, experiment_table
from ssimsr.pipeline.gpus import count_gpus
from ssimsr.pipeline.runs import Run
from ssimsr.registry import architectures
from ssimsr.report.report import FIGURE_EXTENSIONS, TABLE_EXTENSIONS, figure_names
from ssimsr.tables import table_names
from ssimsr.training import backends

RESULTS = "results"
RESOURCES = "resources"
VGG19_FILE = f"{RESOURCES}/weights/{VGG19_NOTOP_FILENAME}"  # fetch_vgg19's output
JOB_SCRIPT = "../scripts/job.py"  # the script: of the workflow-only rules (ssimsr.pipeline.jobs)


def train_env(config):
    """--sdm conda: the train rule's env file (relative to workflow/rules), the one of
    config's training.backend (ssimsr.training.backends)."""
    return f"../../envs/{backends.get(config['training']['backend']).env_file}"


wildcard_constraints:
    index=r"\d+",
    model="|".join(architectures()),  # the registered architectures (src/ssimsr/models/archs)
    **Run.WILDCARDS,


# Every training run (runs.Run) and its resolved parameters.
RUNS = experiment_table(config)
check_report_config(config)
# evaluation.benchmarks: datasets every run is also evaluated on, never trained on
BENCHMARKS = check_benchmarks(config)
BENCHMARK_DIRS = [f"{RESULTS}/data/{b}" for b in BENCHMARKS]  # every run is evaluated on these too
# datasets with split.per_seed: each seed's runs use their own split (rule seed_split)
PER_SEED = per_seed_datasets(config)

# A train job holds one `gpu` slot where this machine has a GPU; where none is visible the
# trainings are CPU jobs and run side by side up to --cores (SLURM's set-resources asks for
# a GPU per train job on its own).
TRAIN_GPU = 1 if count_gpus() else 0
# Keras jobs on this machine's CPU fork from a process that imported Keras once
# (ssimsr.pipeline.warm). A resource, not a param: it does not change results, so no rerun.
WARM_START = int(config["execution"]["warm_start"] and not TRAIN_GPU)

TRAIN_DIR = f"{RESULTS}/train/{Run.PATTERN}"
EVAL_DIR = f"{RESULTS}/eval/{Run.PATTERN}"
SHOWCASE_DIR = f"{RESULTS}/showcase"
LPIPS_STATUS = f"{RESOURCES}/weights/lpips_backbones.json"
MODELS_INDEX = f"{RESULTS}/models/index.csv"  # the study's exported models (rule export_models)


def active_datasets():
    return sorted({run.dataset for run in RUNS})


def baseline_datasets():
    """The datasets with a bicubic baseline: those trained on (their val split) and the benchmarks."""
    return active_datasets() + [b for b in BENCHMARKS if b not in active_datasets()]


def showcase_of(wildcards):
    """The showcase crops' folder for the run that the figures show, else None."""
    return SHOWCASE_DIR if is_showcase_run(wildcards) else None


def dataset_config(wildcards):
    return config["datasets"][wildcards.dataset]


def source_receipts(wildcards):
    sources = config["datasets"][wildcards.dataset]["sources"]
    return [f"{RESOURCES}/datasets/{wildcards.dataset}/source{i}.json" for i in range(len(sources))]


def prepare_options(wildcards):
    """The dataset config that changes prepared images (sources excluded: receipts track them;
    split.per_seed too: the per-seed splits are seed_split's, so setting it reruns no prepare)."""
    options = {k: v for k, v in config["datasets"][wildcards.dataset].items() if k != "sources"}
    return {**options, "split": {k: v for k, v in options["split"].items() if k != "per_seed"}}


def run_data(wildcards):
    """The prepared folder a run (wildcards or runs.Run) trains and is evaluated on: its
    dataset's, or with split.per_seed its seed's split of it (rule seed_split), a sibling
    folder: prepare_dataset replaces the dataset's folder whole, even when run by hand."""
    if wildcards.dataset in PER_SEED:
        return f"{RESULTS}/data/{wildcards.dataset}_seed{int(wildcards.seed)}"
    return f"{RESULTS}/data/{wildcards.dataset}"


def dataset_seeds(dataset):
    """The seeds of the runs that train on ``dataset``."""
    return sorted({run.seed for run in RUNS if run.dataset == dataset})


def baseline_tables():
    """(dataset, file) of each bicubic baseline table that collect_baseline joins: one per
    dataset, one per seed's split where split.per_seed (rule baseline_seed)."""
    tables = []
    for d in baseline_datasets():
        if d in PER_SEED:
            tables += [(d, f"{RESULTS}/eval/baseline/{d}/seed{s}.csv") for s in dataset_seeds(d)]
        else:
            tables.append((d, f"{RESULTS}/eval/baseline/{d}.csv"))
    return tables


def run_of(wildcards):
    run = Run.from_mapping(wildcards)
    if run not in RUNS:
        raise ValueError(f"{TRAIN_DIR.format(**wildcards)}: not a run of the configured studies")
    return run


def train_inputs(wildcards):
    run = run_of(wildcards)
    return {"manifest": f"{run_data(run)}/manifest.csv", **vgg19_input(run)}


def vgg19_input(run):
    """The VGG19 weights file for a run whose loss uses its features (the perceptual term), else none."""
    return {"vgg19": RUNS[run]["vgg_weights"]} if uses_extractor(run) else {}


@functools.cache  # asked by train and evaluate of each run; RUNS does not change in a process
def uses_extractor(run):
    from ssimsr.training.run_params import RunParams

    return RunParams.from_dict(RUNS[run]).uses_extractor()


def all_targets():
    return table_files() + figure_files() + run_outputs() + model_files()


def run_outputs():
    """Every per-run output (training, evaluation, LPIPS) of every configured run. Targets of
    the default rule so that one a failed or killed job left missing is rebuilt, and all
    that reads it after it: Snakemake rebuilds a missing intermediate file only when
    something downstream is out of date, so without them the tables of the last successful
    run would stand as up to date over a retraining that died."""
    names = [*(f"{TRAIN_DIR}/{n}" for n in ("upscaler.keras", "downscaler.keras", "history.csv", "params.json")),
             f"{EVAL_DIR}/metrics.csv", f"{EVAL_DIR}/recon", f"{EVAL_DIR}/lpips.csv"]
    return [path for name in names for path in expand_runs(name)]


def expand_runs(pattern):
    """``pattern`` (with the run wildcards) filled in for every run of the experiment table."""
    return [run.fill(pattern) for run in RUNS]


def is_showcase_run(wildcards):
    show = config["evaluation"]["showcase"]
    return bool(show["images"]) and wildcards.model == show["model"] and wildcards.dataset == show["dataset"]


def showcase_manifests(wildcards):
    names = {e["dataset"] for e in config["evaluation"]["showcase"]["images"] if "dataset" in e}
    return [f"{RESULTS}/data/{d}/manifest.csv" for d in sorted(names)]


def eval_inputs(wildcards, vgg19=False):
    """A run's networks and the images it is evaluated on; with ``vgg19``, the VGG19 file
    too for a run that trained with its features (one input function per job: Snakemake
    inspects each function's signature on every call)."""
    run = TRAIN_DIR.format(**wildcards)
    inputs = {"upscaler": f"{run}/upscaler.keras", "downscaler": f"{run}/downscaler.keras",
              "params": f"{run}/params.json", "manifest": f"{run_data(wildcards)}/manifest.csv"}
    if vgg19:
        inputs.update(vgg19_input(run_of(wildcards)))
    if is_showcase_run(wildcards):
        inputs["showcase"] = SHOWCASE_DIR
    for name in BENCHMARKS:  # every run is also evaluated on each benchmark's images
        inputs[f"benchmark_{name}"] = f"{RESULTS}/data/{name}/manifest.csv"
    return inputs


TABLES = table_names(config["report"])
FIGURES = figure_names(config["evaluation"]["showcase"])


def table_files():
    return [f"{RESULTS}/tables/{n}.{e}" for n in TABLES for e in TABLE_EXTENSIONS]


def figure_files():
    return [f"{RESULTS}/figures/{n}.{e}" for n in FIGURES for e in FIGURE_EXTENSIONS]


def model_runs():
    """The run folders of the report's table1 study, whose models the report lists (rule
    export_models)."""
    study = config["report"]["table1_study"]
    return [run.fill(TRAIN_DIR) for run in RUNS if run.study == study]


def model_files():
    """Rule export_models' outputs: each table1-study run as one export file
    (``ssimsr export``'s name for it), and their index."""
    from ssimsr.evaluation.export import default_name

    return [f"{RESULTS}/models/{default_name(Path(run))}" for run in model_runs()] + [MODELS_INDEX]


def parent(path, levels=1):
    """A folder above a file, for rules whose command takes a folder (lint: not hardcoded)."""
    return str(Path(path).parents[levels - 1])


def preprocessing_datasets():
    """The trained datasets with an offline resize (datasets.<name>.resize), whose bicubic
    baseline the preprocessing rule measures under each candidate resize filter."""
    return [d for d in active_datasets() if config["datasets"][d].get("resize")]


def preprocessing_inputs(wildcards):
    """Per such dataset: its source receipts and its prepared split (the val images)."""
    from types import SimpleNamespace

    inputs = {}
    for d in preprocessing_datasets():
        inputs[f"receipts_{d}"] = source_receipts(SimpleNamespace(dataset=d))
        inputs[f"splits_{d}"] = f"{RESULTS}/data/{d}/splits.csv"
    return inputs


def preprocessing_entries():
    """Per such dataset: its name, prepare options and sources (ssimsr.evaluation.preprocessing)."""
    from types import SimpleNamespace

    return [{"dataset": d, "options": prepare_options(SimpleNamespace(dataset=d)),
             "sources": config["datasets"][d]["sources"]} for d in preprocessing_datasets()]
