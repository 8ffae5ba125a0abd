# The `script:` of the workflow-only rules: runs ssimsr.pipeline.jobs.<rule> with Snakemake's
# Python values (params, input, output, log); the logic lives in src/ssimsr.
from ssimsr.pipeline.jobs import run

run(snakemake)  # noqa: F821  (Snakemake defines `snakemake` in a script's namespace)
