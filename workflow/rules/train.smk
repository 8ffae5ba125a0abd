# Training: one job per (study, preset, model, dataset, lambda_s, VGG layers, seed).


rule train:
    """Train one SR or IRN run; resumes from its checkpoint when rerun after a kill."""
    input:
        unpack(train_inputs),
    output:
        upscaler=f"{TRAIN_DIR}/upscaler.keras",
        downscaler=f"{TRAIN_DIR}/downscaler.keras",
        history=f"{TRAIN_DIR}/history.csv",
        params=f"{TRAIN_DIR}/params.json",
    params:
        code=code_digest("train"),  # editing its library code reruns it
        run=lambda w: RUNS[run_of(w)],
        data=run_data,  # the dataset's prepared folder, or its seed's split (split.per_seed)
        out=lambda w: TRAIN_DIR.format(**w),
    resources:
        gpu=TRAIN_GPU,
        # a resource, not a param: sharing a GPU does not change results, so no rerun
        jobs_per_gpu=config["training"]["jobs_per_gpu"],
        warm_start=WARM_START,
    conda:
        train_env(config)  # the env of training.backend (envs/tensorflow.yaml, jax.yaml, torch-train.yaml)
    benchmark:
        f"{TRAIN_DIR}/benchmark.tsv"
    log:
        f"{TRAIN_DIR}/train.log",
    script:
        JOB_SCRIPT  # ssimsr.pipeline.jobs.train, as `ssimsr train`
