# The paper's DAG without the workflow: per run a train, an evaluate and an lpips job with the
# directives, inputs, outputs and parameter functions of workflow/rules (script:, conda:,
# benchmark:, log:, every per-run output a target), and the aggregates that read every run.
# No ssimsr import, no config validation, no code digests: what Snakemake itself costs for a
# dry run of a DAG this size, the floor under the paper's dry run (benchmarks/dry_run.py).
#
#     snakemake -s benchmarks/dry_run_shape.smk -d DIR -n --cores 1 --resources gpu=1 --config runs=138

RUNS = [f"study/preset/model/data/ls{i % 3}/vgg/seed{i}" for i in range(int(config.get("runs", 138)))]
BENCHMARKS = ["Set5", "Set14"]
TRAIN = "results/train/{run}"
EVAL = "results/eval/{run}"


rule all:
    input:
        expand(f"{TRAIN}/{{name}}", run=RUNS, name=["upscaler.keras", "downscaler.keras", "history.csv", "params.json"]),
        expand(f"{EVAL}/{{name}}", run=RUNS, name=["metrics.csv", "recon", "lpips.csv"]),
        "results/tables/table1.csv",
        "results/models/index.csv",


rule prepare_dataset:
    output:
        "results/data/{dataset}/manifest.csv",
    conda:
        "env.yaml"
    script:
        "job.py"


rule fetch_lpips_backbones:
    output:
        "resources/weights/lpips/status.json",
    script:
        "job.py"


rule train:
    input:
        manifest="results/data/div2k/manifest.csv",
    output:
        upscaler=f"{TRAIN}/upscaler.keras",
        downscaler=f"{TRAIN}/downscaler.keras",
        history=f"{TRAIN}/history.csv",
        params=f"{TRAIN}/params.json",
    params:
        code="digest",
        run=lambda w: {"run": w.run},
        data=lambda w: "results/data/div2k",
        out=lambda w: TRAIN.format(**w),
    resources:
        gpu=1,
    conda:
        "env.yaml"
    benchmark:
        f"{TRAIN}/benchmark.tsv"
    log:
        f"{TRAIN}/train.log",
    script:
        "job.py"


def eval_inputs(wildcards):
    run = TRAIN.format(**wildcards)
    inputs = {"upscaler": f"{run}/upscaler.keras", "downscaler": f"{run}/downscaler.keras",
              "params": f"{run}/params.json", "manifest": "results/data/div2k/manifest.csv"}
    inputs.update({f"benchmark_{b}": f"results/data/{b}/manifest.csv" for b in BENCHMARKS})
    return inputs


rule evaluate:
    input:
        unpack(eval_inputs),
    output:
        metrics=f"{EVAL}/metrics.csv",
        recon=directory(f"{EVAL}/recon"),
    params:
        code="digest",
        run=lambda w: TRAIN.format(**w),
        out=lambda w: EVAL.format(**w),
        data=lambda w: "results/data/div2k",
        showcase=lambda w: None,
        benchmarks=[f"results/data/{b}" for b in BENCHMARKS],
    conda:
        "env.yaml"
    benchmark:
        f"{EVAL}/benchmark.tsv"
    log:
        f"{EVAL}/evaluate.log",
    script:
        "job.py"


rule lpips:
    input:
        unpack(eval_inputs),
        recon=f"{EVAL}/recon",
        status="resources/weights/lpips/status.json",
    output:
        f"{EVAL}/lpips.csv",
    params:
        code="digest",
        eval_dir=lambda w: EVAL.format(**w),
        data=lambda w: "results/data/div2k",
        showcase=lambda w: None,
        weights_dir=lambda w, input: os.path.dirname(input.status),
        benchmarks=[f"results/data/{b}" for b in BENCHMARKS],
    conda:
        "env.yaml"
    benchmark:
        f"{EVAL}/lpips_benchmark.tsv"
    log:
        f"{EVAL}/lpips.log",
    script:
        "job.py"


rule collect:
    input:
        metrics=expand(f"{EVAL}/metrics.csv", run=RUNS),
        lpips=expand(f"{EVAL}/lpips.csv", run=RUNS),
        histories=expand(f"{TRAIN}/history.csv", run=RUNS),
    output:
        "results/eval/per_image.csv",
    script:
        "job.py"


rule export_models:
    input:
        expand(f"{TRAIN}/{{name}}", run=RUNS, name=["upscaler.keras", "downscaler.keras", "params.json"]),
    output:
        "results/models/index.csv",
    script:
        "job.py"


rule tables:
    input:
        "results/eval/per_image.csv",
    output:
        "results/tables/table1.csv",
    script:
        "job.py"
