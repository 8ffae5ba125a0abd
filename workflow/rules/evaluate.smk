# Evaluation: per-image PSNR/SSIM (TensorFlow side), LPIPS (torch side), collection.

localrules:
    fetch_lpips_backbones,
    collect,
    collect_baseline,


rule fetch_lpips_backbones:
    """torchvision's backbone files for LPIPS; unavailable ones are recorded, not fatal."""
    output:
        LPIPS_STATUS,
    params:
        nets=config["evaluation"]["lpips_nets"],
        weights_dir=lambda w, output: parent(output[0]),
        local_dir=config["weights"]["lpips"]["local_dir"],  # a folder that has the files wins
        base_url=config["weights"]["lpips"]["base_url"] if config["weights"]["lpips"]["fetch"] else None,
        downloads=config["downloads"],
    conda:
        "../../envs/torch.yaml"
    log:
        "logs/weights/lpips_backbones.log",
    script:
        JOB_SCRIPT


rule showcase:
    """Crops shown in Figs. 4-9 and Table 4."""
    input:
        showcase_manifests,
    output:
        directory(SHOWCASE_DIR),
    params:
        code=code_digest("showcase"),  # editing its library code reruns it
        entries=config["evaluation"]["showcase"]["images"],
        crop=config["evaluation"]["showcase"]["crop"],
        scale=config["scale"],
        data_root=lambda w, input: parent(input[0], 2),
    conda:
        "../../envs/tensorflow.yaml"
    log:
        "logs/showcase.log",
    script:
        JOB_SCRIPT


rule evaluate:
    """Reconstruct the val split (and showcase crops) with a run; PSNR/SSIM per image."""
    input:
        # with the VGG19 file for a run that trained with its features: its perceptual term
        # per image (evaluate.term_extractor)
        unpack(lambda w: eval_inputs(w, vgg19=True)),
    output:
        metrics=f"{EVAL_DIR}/metrics.csv",
        recon=directory(f"{EVAL_DIR}/recon"),
    params:
        code=code_digest("evaluate"),  # editing its library code reruns it
        run=lambda w: TRAIN_DIR.format(**w),
        out=lambda w: EVAL_DIR.format(**w),
        data=run_data,  # the seed's split where split.per_seed
        showcase=showcase_of,
        benchmarks=BENCHMARK_DIRS,
    resources:
        warm_start=WARM_START,  # not a param: no rerun (ssimsr.pipeline.warm)
    conda:
        "../../envs/tensorflow.yaml"
    benchmark:
        f"{EVAL_DIR}/benchmark.tsv"
    log:
        f"{EVAL_DIR}/evaluate.log",
    script:
        JOB_SCRIPT  # ssimsr.pipeline.jobs.evaluate, as `ssimsr evaluate` (on the run's own backend)


rule lpips:
    """LPIPS (alex, squeeze, vgg) of a run's reconstructions; torch is imported only here."""
    input:
        unpack(eval_inputs),
        recon=f"{EVAL_DIR}/recon",
        status=LPIPS_STATUS,
    output:
        f"{EVAL_DIR}/lpips.csv",
    params:
        code=code_digest("lpips"),  # editing its library code reruns it
        eval_dir=lambda w: EVAL_DIR.format(**w),
        data=run_data,  # the seed's split where split.per_seed
        showcase=showcase_of,
        nets=config["evaluation"]["lpips_nets"],
        weights_dir=lambda w, input: parent(input.status),
        benchmarks=BENCHMARK_DIRS,
    conda:
        "../../envs/torch.yaml"
    benchmark:
        f"{EVAL_DIR}/lpips_benchmark.tsv"
    log:
        f"{EVAL_DIR}/lpips.log",
    script:
        JOB_SCRIPT  # ssimsr.pipeline.jobs.lpips, as `ssimsr lpips`


rule collect:
    """All runs' per-image metrics and training histories in two long tables."""
    input:
        metrics=expand_runs(f"{EVAL_DIR}/metrics.csv"),
        lpips=expand_runs(f"{EVAL_DIR}/lpips.csv"),
        histories=expand_runs(f"{TRAIN_DIR}/history.csv"),
        manifests=[f"{RESULTS}/data/{d}/manifest.csv" for d in baseline_datasets()],  # image origins
    output:
        per_image=f"{RESULTS}/eval/per_image.csv",
        history=f"{RESULTS}/eval/history.csv",
    params:
        code=code_digest("collect"),  # editing its library code reruns it
        train_dirs=expand_runs(TRAIN_DIR),  # the same runs in the same order
        eval_dirs=expand_runs(EVAL_DIR),
        data_root=lambda w, input: parent(input.manifests[0], 2),
    conda:
        "../../envs/tensorflow.yaml"
    log:
        "logs/collect.log",
    script:
        JOB_SCRIPT


rule baseline:
    """Bicubic upscaling of the decimated HR (the SR model's LR input), per val / benchmark image."""
    input:
        manifest=f"{RESULTS}/data/{{dataset}}/manifest.csv",
    output:
        f"{RESULTS}/eval/baseline/{{dataset}}.csv",
    params:
        code=code_digest("baseline"),  # editing its library code reruns it
        data=lambda w, input: parent(input.manifest),
        scale=config["scale"],
        image_set=lambda w: w.dataset if w.dataset in BENCHMARKS else "val",
    conda:
        "../../envs/tensorflow.yaml"
    log:
        "logs/baseline/{dataset}.log",
    script:
        JOB_SCRIPT


rule baseline_seed:
    """split.per_seed: the bicubic baseline of one seed's val split, with a `seed` column."""
    input:
        manifest=f"{RESULTS}/data/{{dataset}}_seed{{seed}}/manifest.csv",
    output:
        f"{RESULTS}/eval/baseline/{{dataset}}/seed{{seed}}.csv",
    params:
        code=code_digest("baseline_seed"),  # editing its library code reruns it
        data=lambda w, input: parent(input.manifest),
        scale=config["scale"],
        seed=lambda w: int(w.seed),
    conda:
        "../../envs/tensorflow.yaml"
    log:
        "logs/baseline/{dataset}_seed{seed}.log",
    script:
        JOB_SCRIPT


rule collect_baseline:
    """The bicubic baseline of every dataset in one table, with a `dataset` column."""
    input:
        [path for _, path in baseline_tables()],
    output:
        f"{RESULTS}/eval/baseline.csv",
    params:
        code=code_digest("collect_baseline"),  # editing its library code reruns it
        datasets=[dataset for dataset, _ in baseline_tables()],  # in the order of the inputs
    conda:
        "../../envs/tensorflow.yaml"
    log:
        "logs/collect_baseline.log",
    script:
        JOB_SCRIPT


rule preprocessing:
    """The bicubic baseline (val split and all images) under each candidate offline resize filter."""
    input:
        unpack(preprocessing_inputs),
    output:
        f"{RESULTS}/eval/preprocessing.csv",
    params:
        code=code_digest("preprocessing"),  # editing its library code reruns it
        datasets=preprocessing_entries(),  # dataset, options, sources
        scale=config["scale"],
    threads: 8  # image-parallel (capped at --cores)
    conda:
        "../../envs/tensorflow.yaml"
    log:
        "logs/preprocessing.log",
    script:
        JOB_SCRIPT
