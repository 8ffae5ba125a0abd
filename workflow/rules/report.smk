# Tables, figures and the HTML report (`snakemake --report results/report.html`).


localrules:
    tables,


rule tables:
    """Tables 1-4, A2, the verdict and paper-vs-ours (.tex booktabs, .csv, .md)."""
    input:
        history=f"{RESULTS}/eval/history.csv",
        per_image=f"{RESULTS}/eval/per_image.csv",
        comparisons=f"{RESULTS}/stats/comparisons.csv",
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
        report=json.dumps(config["report"], sort_keys=True),
        showcase=json.dumps(config["evaluation"]["showcase"], sort_keys=True),
        out=lambda w, output: parent(output[0]),
    conda:
        "../../envs/tensorflow.yaml"
    log:
        "logs/tables.log",
    shell:
        "ssimsr tables --history {input.history} --per-image {input.per_image} "
        "--comparisons {input.comparisons} --report {params.report:q} --showcase {params.showcase:q} "
        "--out {params.out} > {log} 2>&1"


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
        showcase=json.dumps(config["evaluation"]["showcase"], sort_keys=True),
        study=config["report"]["table1_study"],
        preset=config["report"]["preset"],
        showcase_dir=lambda w, input: input.showcase or "none",
        eval_root=lambda w, input: parent(input.history),
        out=lambda w, output: parent(output[0]),
    conda:
        "../../envs/tensorflow.yaml"
    log:
        "logs/figures.log",
    shell:
        "ssimsr figures --history {input.history} --showcase {params.showcase:q} "
        "--showcase-dir {params.showcase_dir} --eval-root {params.eval_root} --study {params.study} "
        "--preset {params.preset} --out {params.out} > {log} 2>&1"
