# Evaluation: per-image PSNR/SSIM (TensorFlow side), LPIPS (torch side), collection.

EVAL_DIR = RESULTS + "/eval/{study}/{preset}/{model}/{dataset}/ls{lambda_s}/{vgg}/seed{seed}"
SHOWCASE_DIR = f"{RESULTS}/showcase"
LPIPS_STATUS = f"{RESOURCES}/weights/lpips_backbones.json"


localrules:
    fetch_lpips_backbones,
    collect,


rule fetch_lpips_backbones:
    """torchvision's backbone files for LPIPS; unavailable ones are recorded, not fatal."""
    output:
        LPIPS_STATUS,
    params:
        nets=config["evaluation"]["lpips_nets"],
        source=lambda w: (
            f"--local-dir {config['weights']['lpips']['local_dir']}"
            if config["weights"]["lpips"]["local_dir"]
            else (f"--base-url {config['weights']['lpips']['base_url']}" if config["weights"]["lpips"]["fetch"] else "")
        ),
    conda:
        "../../envs/torch.yaml"
    log:
        "logs/weights/lpips_backbones.log",
    shell:
        "ssimsr fetch-lpips --weights-dir {RESOURCES}/weights --nets {params.nets} "
        "--status {output} {params.source} > {log} 2>&1"


rule showcase:
    """Crops shown in Figs. 4-9 and Table 4."""
    input:
        showcase_manifests,
    output:
        directory(SHOWCASE_DIR),
    params:
        entries=json.dumps(config["evaluation"]["showcase"]["images"]),
        crop=config["evaluation"]["showcase"]["crop"],
        scale=config["scale"],
    conda:
        "../../envs/tensorflow.yaml"
    log:
        "logs/showcase.log",
    shell:
        "ssimsr showcase --entries {params.entries:q} --data-root {RESULTS}/data --crop {params.crop} "
        "--scale {params.scale} --out {output} > {log} 2>&1"


rule evaluate:
    """Reconstruct the val split (and showcase crops) with a run; PSNR/SSIM per image."""
    input:
        unpack(eval_inputs),
    output:
        metrics=f"{EVAL_DIR}/metrics.csv",
        recon=directory(f"{EVAL_DIR}/recon"),
    params:
        run=lambda w: TRAIN_DIR.format(**w),
        out=lambda w: EVAL_DIR.format(**w),
        data=lambda w: f"{RESULTS}/data/{w.dataset}",
        showcase=lambda w: f"--showcase {SHOWCASE_DIR}" if is_showcase_run(w) else "",
    conda:
        "../../envs/tensorflow.yaml"
    benchmark:
        f"{EVAL_DIR}/benchmark.tsv"
    log:
        f"{EVAL_DIR}/evaluate.log",
    shell:
        "ssimsr evaluate --run {params.run} --data {params.data} {params.showcase} "
        "--out {params.out} > {log} 2>&1"


rule lpips:
    """LPIPS (alex, squeeze, vgg) of a run's reconstructions; torch is imported only here."""
    input:
        unpack(eval_inputs),
        recon=f"{EVAL_DIR}/recon",
        status=LPIPS_STATUS,
    output:
        f"{EVAL_DIR}/lpips.csv",
    params:
        eval_dir=lambda w: EVAL_DIR.format(**w),
        data=lambda w: f"{RESULTS}/data/{w.dataset}",
        showcase=lambda w: f"--showcase {SHOWCASE_DIR}" if is_showcase_run(w) else "",
        nets=config["evaluation"]["lpips_nets"],
    conda:
        "../../envs/torch.yaml"
    benchmark:
        f"{EVAL_DIR}/lpips_benchmark.tsv"
    log:
        f"{EVAL_DIR}/lpips.log",
    shell:
        "ssimsr lpips --eval-dir {params.eval_dir} --data {params.data} {params.showcase} "
        "--nets {params.nets} --weights-dir {RESOURCES}/weights > {log} 2>&1"


rule collect:
    """All runs' per-image metrics and training histories in two long tables."""
    input:
        metrics=expand_runs(EVAL_DIR + "/metrics.csv"),
        lpips=expand_runs(EVAL_DIR + "/lpips.csv"),
        histories=expand_runs(TRAIN_DIR + "/history.csv"),
    output:
        per_image=f"{RESULTS}/eval/per_image.csv",
        history=f"{RESULTS}/eval/history.csv",
    params:
        eval_dirs=expand_runs(EVAL_DIR),
    log:
        "logs/collect.log",
    shell:
        "ssimsr collect --eval-dirs {params.eval_dirs} --train-root {RESULTS}/train "
        "--data-root {RESULTS}/data --per-image {output.per_image} --history {output.history} > {log} 2>&1"
