# Statistics: lambda_s = 1 vs 2 and 1 vs 0 per (study, preset, model, dataset, VGG layers).


rule stats:
    """Paired t, Wilcoxon, CI, Cohen's d_z, and the paper's Welch test, per metric."""
    input:
        f"{RESULTS}/eval/per_image.csv",
    output:
        f"{RESULTS}/stats/comparisons.csv",
    conda:
        "../../envs/tensorflow.yaml"
    log:
        "logs/stats.log",
    shell:
        "ssimsr stats --per-image {input} --out {output} > {log} 2>&1"
