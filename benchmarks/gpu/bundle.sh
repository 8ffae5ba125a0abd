#!/usr/bin/env bash
# Step 1 of the GPU reproduction, on a machine where pip reaches PyPI: put what the GPU
# machine lacks into gpu-bundle/ (git-ignored), at most 60 MiB:
#   - wheels for Python 3.12 / manylinux x86-64 of keras, snakemake and the pure-Python
#     (or small binary) packages they need that the GPU image does not have;
#   - a copy of the BSDS300 archive (../shared/data, or $BSDS300_ARCHIVE), and of Set5 / Set14.
# The GPU image (device README, KINDS.md) has numpy, pandas, scipy, matplotlib,
# scikit-image, pillow, h5py, pyyaml, jinja2, torch, jax with CUDA, rich, attrs,
# requests, psutil, tabulate, wrapt, packaging, absl-py, ml-dtypes: they are not bundled.
#
#   bash benchmarks/gpu/bundle.sh            # then: benchmarks/gpu/reproduce.sh on the GPU
set -euo pipefail
cd "$(dirname "$0")/../.."
BUNDLE=gpu-bundle
ARCHIVE=${BSDS300_ARCHIVE:-../shared/data/BSDS300-images.tgz}
rm -rf "$BUNDLE" && mkdir -p "$BUNDLE/wheels"

# Pinned to what the project's CI installs, so the GPU runs the code the tests ran.
PACKAGES=(
  keras==3.15.1 namex optree
  snakemake==9.27.1 snakemake-interface-common snakemake-interface-executor-plugins
  snakemake-interface-storage-plugins snakemake-interface-report-plugins
  snakemake-interface-logger-plugins snakemake-interface-scheduler-plugins
  conda-inject configargparse connection_pool docutils dpath gitpython gitdb smmap
  humanfriendly immutables jsonschema jsonschema-specifications referencing rpds-py
  nbformat fastjsonschema jupyter-core traitlets platformdirs pulp smart-open sqlmodel
  sqlalchemy greenlet pydantic pydantic-core annotated-types typing-inspection tenacity
  throttler yte argparse-dataclass lpips
)
# Same versions as this environment (the project's venv, as CI installs it) where the
# registry has that version for Python 3.12; otherwise the newest.
download() {
  python -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --abi cp312 --abi abi3 --abi none \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux_2_5_x86_64 \
    --platform manylinux1_x86_64 --platform any -d "$BUNDLE/wheels" "$1" 2>/dev/null
}
for name in "${PACKAGES[@]}"; do
  base=${name%%==*}
  version=$(python -m pip show "$base" 2>/dev/null | sed -n 's/^Version: //p')
  if [ "$name" != "$base" ] || [ -z "$version" ] || ! download "$base==$version"; then
    download "$name" || { echo "bundle.sh: no wheel of $name for Python 3.12" >&2; exit 1; }
  fi
done

if [ ! -f "$ARCHIVE" ]; then
  echo "bundle.sh: BSDS300 archive not found at $ARCHIVE (set BSDS300_ARCHIVE)" >&2
  exit 1
fi
cp "$ARCHIVE" "$BUNDLE/BSDS300-images.tgz"
# Set5 / Set14 (evaluation.benchmarks of bsds300.yaml), 6 MB, when a local copy is here
for set in Set5 Set14; do
  src=${BENCHMARK_DIR:-../shared/data}/$set
  if [ -d "$src" ]; then cp -r "$src" "$BUNDLE/$set"; else echo "bundle.sh: $src not found: $set not bundled" >&2; fi
done
du -sh "$BUNDLE" "$BUNDLE/wheels"
size=$(du -sm "$BUNDLE" | cut -f1)
if [ "$size" -gt 60 ]; then
  echo "bundle.sh: $BUNDLE is ${size} MiB, over the 60 MiB a GPU call may carry" >&2
  exit 1
fi
