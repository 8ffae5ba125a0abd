# Tables, figures and the HTML report (`snakemake --report results/report.html`).


localrules:
    tables,
    export_models,


rule tables:
    """Tables 1-4, A2, the verdict and paper-vs-ours (.tex booktabs, .csv, .md)."""
    input:
        history=f"{RESULTS}/eval/history.csv",
        per_image=f"{RESULTS}/eval/per_image.csv",
        comparisons=f"{RESULTS}/stats/comparisons.csv",
        baseline=f"{RESULTS}/eval/baseline.csv",
        preprocessing=f"{RESULTS}/eval/preprocessing.csv",  # the baseline per offline resize filter
    output:
        [
            report(f, caption=f"../report/{n}.rst", category="Tables", subcategory=n)
            if f.endswith(".csv")
            else f
            for f in table_files()
            for n in [Path(f).stem]
        ],
    params:
        code=code_digest("tables"),  # editing its library code reruns it
        report=config["report"],
        # dataset -> split method; "random_per_seed" where split.per_seed (ssimsr.data.seed_split)
        splits={name: split_label(d["split"]) for name, d in config["datasets"].items()},
        showcase=config["evaluation"]["showcase"],
        benchmarks=BENCHMARKS,
        out=lambda w, output: parent(output[0]),
    conda:
        "../../envs/tensorflow.yaml"
    log:
        "logs/tables.log",
    script:
        JOB_SCRIPT


rule figures:
    """Training curves, loss terms, the verdict's forest plot, the SR comparison (HR, bicubic,
    each λ_s) and equalised difference maps of the showcase crops (Figs. 4-9)."""
    input:
        history=f"{RESULTS}/eval/history.csv",
        comparisons=f"{RESULTS}/stats/comparisons.csv",
        contrasts=f"{RESULTS}/tables/paper_vs_ours_contrasts.csv",
        evaluations=expand_runs(f"{EVAL_DIR}/metrics.csv"),
        showcase=SHOWCASE_DIR if config["evaluation"]["showcase"]["images"] else [],
    output:
        [
            report(f, caption=f"../report/{c}.rst", category="Figures", subcategory=c)
            if f.endswith(".png")
            else f
            for f in figure_files()
            # the caption of figure <name> is <name>.rst, of every diff_<image> difference_maps.rst
            # (ssimsr.report.report.figure_caption)
            for c in ["difference_maps" if Path(f).stem.startswith("diff_") else Path(f).stem]
        ],
    params:
        code=code_digest("figures"),  # editing its library code reruns it
        showcase=config["evaluation"]["showcase"],
        scale=config["scale"],
        study=config["report"]["table1_study"],
        preset=config["report"]["preset"],
        showcase_dir=lambda w, input: input.showcase or "none",
        eval_root=lambda w, input: parent(input.history),
        out=lambda w, output: parent(output[0]),
    conda:
        "../../envs/tensorflow.yaml"
    log:
        "logs/figures.log",
    script:
        JOB_SCRIPT


rule export_models:
    """The report's table1 study's trained runs, each as one export file (`ssimsr export`:
    networks, parameters, provenance, model card), and their index (run, file, size, sha256)."""
    input:
        # the train outputs an export carries (history.csv: the model card's final scores)
        [f"{run}/{n}" for run in model_runs() for n in ("upscaler.keras", "downscaler.keras", "params.json", "history.csv")],
    output:
        models=[f for f in model_files() if f != MODELS_INDEX],
        index=report(MODELS_INDEX, caption="../report/models.rst", category="Models"),
    params:
        runs=model_runs(),
        out=lambda w, output: parent(output.index),
    conda:
        "../../envs/tensorflow.yaml"
    log:
        "logs/export_models.log",
    script:
        JOB_SCRIPT
