# Helpers that turn the validated config into file lists and rule parameters.
import json

RESULTS = "results"
RESOURCES = "resources"


wildcard_constraints:
    dataset="[a-z][a-z0-9]*",
    index=r"\d+",


def _check_studies():
    """Cross-references the schema cannot express, reported by key."""
    studies = config.get("studies", {})
    for name in config["active_studies"]:
        if name not in studies:
            raise ValueError(f"active_studies: {name!r} is not a key of studies ({sorted(studies)})")
        for ds in studies[name]["datasets"]:
            if ds not in config["datasets"]:
                raise ValueError(f"studies.{name}.datasets: unknown dataset {ds!r} ({sorted(config['datasets'])})")


_check_studies()


def active_datasets():
    names = []
    for study in config["active_studies"]:
        names += [d for d in config["studies"][study]["datasets"] if d not in names]
    return names


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


def all_targets():
    return [f"{RESULTS}/data/{d}/manifest.csv" for d in active_datasets()]
