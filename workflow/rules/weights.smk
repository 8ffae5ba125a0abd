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
    conda:
        "../../envs/tensorflow.yaml"
    log:
        "logs/weights/vgg19.log",
    shell:
        "ssimsr fetch-weights --uri {params.uri:q} --md5 {params.md5} --out {output} > {log} 2>&1"
