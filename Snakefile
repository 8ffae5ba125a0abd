# ssimsr: rebuilds "Effects of Normalised SSIM Loss on Super-Resolution Tasks" end to end.
# Logic lives in src/ssimsr; rules call `ssimsr <stage>` or ssimsr.pipeline.jobs (`script:`). See README.md.
from snakemake.utils import min_version, validate

from ssimsr.config import SCHEMA_PATH, check_config

min_version("9.0")


report: "workflow/report/workflow.rst"


configfile: "config.yaml"


# Name the offending key first (ssimsr.config), then let Snakemake validate and fill defaults.
# The schema (keys, types, defaults) ships with the library: src/ssimsr/config.schema.yaml.
check_config(config, SCHEMA_PATH)
validate(config, str(SCHEMA_PATH))


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/weights.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/stats.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        all_targets(),
    default_target: True
