# Data stage: fetch (download or verify a local copy) then prepare PNG splits.


localrules:
    download,
    seed_split,


rule download:
    """Fetch one configured source (URL, local archive or folder), verify its sha256, read it through."""
    output:
        receipt=f"{RESOURCES}/datasets/{{dataset}}/source{{index}}.json",
    params:
        source=lambda w: dataset_config(w)["sources"][int(w.index)],
        download_dir=lambda w: f"{RESOURCES}/datasets/{w.dataset}",
        downloads=config["downloads"],
    conda:
        "../../envs/tensorflow.yaml"
    log:
        "logs/download/{dataset}_source{index}.log",
    script:
        JOB_SCRIPT


rule prepare_dataset:
    """Decode, resize, round to a multiple, split; write PNGs and a manifest."""
    input:
        receipts=source_receipts,
    output:
        manifest=f"{RESULTS}/data/{{dataset}}/manifest.csv",
        splits=f"{RESULTS}/data/{{dataset}}/splits.csv",
        train=directory(f"{RESULTS}/data/{{dataset}}/train"),
        val=directory(f"{RESULTS}/data/{{dataset}}/val"),
    params:
        code=code_digest("prepare_dataset"),  # editing its library code reruns it
        options=prepare_options,
        sources=lambda w: dataset_config(w)["sources"],
        scale=config["scale"],
        out=lambda w: f"{RESULTS}/data/{w.dataset}",
    conda:
        "../../envs/tensorflow.yaml"
    log:
        "logs/prepare/{dataset}.log",
    script:
        JOB_SCRIPT


rule seed_split:
    """split.per_seed: seed s's own random split of the prepared images (hard links, no new PNGs)."""
    input:
        manifest=f"{RESULTS}/data/{{dataset}}/manifest.csv",
    output:
        manifest=f"{RESULTS}/data/{{dataset}}_seed{{seed}}/manifest.csv",
        splits=f"{RESULTS}/data/{{dataset}}_seed{{seed}}/splits.csv",
        train=directory(f"{RESULTS}/data/{{dataset}}_seed{{seed}}/train"),
        val=directory(f"{RESULTS}/data/{{dataset}}_seed{{seed}}/val"),
    params:
        code=code_digest("seed_split"),  # editing its library code reruns it
        split=lambda w: dataset_config(w)["split"],
        seed=lambda w: int(w.seed),
        data=lambda w, input: parent(input.manifest),
        out=lambda w, output: parent(output.manifest),
    conda:
        "../../envs/tensorflow.yaml"
    log:
        "logs/seed_split/{dataset}_seed{seed}.log",
    script:
        JOB_SCRIPT
