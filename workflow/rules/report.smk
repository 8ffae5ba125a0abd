# Tables, figures and the HTML report (`snakemake --report results/report.html`).
from ssimsr.report import FIGURE_EXTENSIONS, TABLE_EXTENSIONS, figure_names, table_names

TABLES = table_names(config["report"])
FIGURES = figure_names(config["evaluation"]["showcase"])


localrules:
    tables,


def table_files():
    return [f"{RESULTS}/tables/{n}.{e}" for n in TABLES for e in TABLE_EXTENSIONS]


def figure_files():
    return [f"{RESULTS}/figures/{n}.{e}" for n in FIGURES for e in FIGURE_EXTENSIONS]


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
        report=json.dumps(config["report"], sort_keys=True),
        showcase=json.dumps(config["evaluation"]["showcase"], sort_keys=True),
    conda:
        "../../envs/tensorflow.yaml"
    log:
        "logs/tables.log",
    shell:
        "ssimsr tables --history {input.history} --per-image {input.per_image} "
        "--comparisons {input.comparisons} --report {params.report:q} --showcase {params.showcase:q} "
        "--out {RESULTS}/tables > {log} 2>&1"


rule figures:
    """Training curves; equalised difference maps of the showcase crops (Figs. 4-9)."""
    input:
        history=f"{RESULTS}/eval/history.csv",
        evaluations=expand_runs(EVAL_DIR + "/metrics.csv"),
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
        showcase=json.dumps(config["evaluation"]["showcase"], sort_keys=True),
        study=config["report"]["table1_study"],
        preset=config["report"]["preset"],
    conda:
        "../../envs/tensorflow.yaml"
    log:
        "logs/figures.log",
    shell:
        "ssimsr figures --history {input.history} --showcase {params.showcase:q} --showcase-dir {SHOWCASE_DIR} "
        "--eval-root {RESULTS}/eval --study {params.study} --preset {params.preset} --out {RESULTS}/figures > {log} 2>&1"
