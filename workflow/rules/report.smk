# Tables, figures and the HTML report (`snakemake --report results/report.html`).


localrules:
    tables,


rule tables:
    """Tables 1-4, A2, the verdict and paper-vs-ours (.tex booktabs, .csv, .md)."""
    input:
        history=f"{RESULTS}/eval/history.csv",
        per_image=f"{RESULTS}/eval/per_image.csv",
        comparisons=f"{RESULTS}/stats/comparisons.csv",
        baseline=f"{RESULTS}/eval/baseline.csv",
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
        splits={name: d["split"]["method"] for name, d in config["datasets"].items()},
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
    """Training curves; equalised difference maps of the showcase crops (Figs. 4-9)."""
    input:
        history=f"{RESULTS}/eval/history.csv",
        evaluations=expand_runs(f"{EVAL_DIR}/metrics.csv"),
        showcase=SHOWCASE_DIR if config["evaluation"]["showcase"]["images"] else [],
    output:
        [
            report(f, caption="../report/training_curves.rst" if "training_curves" in f else "../report/difference_maps.rst",
                   category="Figures")
            if f.endswith(".png")
            else f
            for f in figure_files()
        ],
    params:
        code=code_digest("figures"),  # editing its library code reruns it
        showcase=config["evaluation"]["showcase"],
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
