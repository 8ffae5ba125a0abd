# Pretrained weights: fetched on the submit host (localrules), verified, loaded by path.


localrules:
    fetch_vgg19,


rule fetch_vgg19:
    """Keras VGG19 no-top ImageNet weights for the perceptual loss (md5-checked)."""
    output:
        VGG19_FILE,
    params:
        uri=config["weights"]["vgg19"]["uri"],
        md5=config["weights"]["vgg19"]["md5"],
        downloads=config["downloads"],
    conda:
        "../../envs/tensorflow.yaml"
    log:
        "logs/weights/vgg19.log",
    script:
        JOB_SCRIPT  # ssimsr.pipeline.jobs.fetch_vgg19, as `ssimsr fetch-weights`
