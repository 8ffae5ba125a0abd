# Statistics: the lambda_s pairs of `report.comparisons` per (study, preset, model, dataset, VGG layers).


rule stats:
    """Seed-level paired t (the verdict), image-level paired t / Wilcoxon / d_z, the paper's Welch test."""
    input:
        f"{RESULTS}/eval/per_image.csv",
    output:
        f"{RESULTS}/stats/comparisons.csv",
    params:
        code=code_digest("stats"),  # editing its library code reruns it
        pairs=config["report"]["comparisons"],
    conda:
        "../../envs/tensorflow.yaml"
    log:
        "logs/stats.log",
    script:
        JOB_SCRIPT
