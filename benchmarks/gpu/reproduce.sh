#!/usr/bin/env bash
# Step 2 of the GPU reproduction: Table 1 on BSDS300 (both models, lambda_s 0, 1, 2, preset
# as_run, seed 0, 30 epochs) through the real workflow on Keras/JAX, then the tables.
#
#   bash benchmarks/gpu/reproduce.sh           # on the GPU machine (after bundle.sh here)
#   bash benchmarks/gpu/reproduce.sh --smoke   # CPU, 2 epochs, 4 images: CI runs this
#
# On a machine without keras/snakemake (the GPU image has jax, torch, numpy, pandas,
# scipy, matplotlib, scikit-image, pillow, h5py, pyyaml, jinja2 but no internet), the
# wheels of gpu-bundle/ are installed offline into a private folder and the project
# without its dependencies. Results: $OUT (or results/gpu-reproduction) gets
#   summary.md          Table 1 ours vs the paper, timing, GPU, date, commit
#   reproduction.tar.gz every table, every history.csv, timing.json and train log
set -euo pipefail
cd "$(dirname "$0")/../.."
MODE=full
[ "${1:-}" = "--smoke" ] && MODE=smoke
DEST=${OUT:-results/gpu-reproduction}
WORK=${SSIMSR_GPU_WORKDIR:-$(mktemp -d "${TMPDIR:-/tmp}/ssimsr-gpu.XXXXXX")}
ARCHIVE=${BSDS300_ARCHIVE:-}
if [ -z "$ARCHIVE" ]; then
  for candidate in gpu-bundle/BSDS300-images.tgz ../shared/data/BSDS300-images.tgz; do
    [ -f "$candidate" ] && ARCHIVE=$candidate && break
  done
fi
[ -f "${ARCHIVE:-}" ] || { echo "reproduce.sh: no BSDS300 archive (run bundle.sh or set BSDS300_ARCHIVE)" >&2; exit 1; }
ARCHIVE=$(realpath "$ARCHIVE")
PY=${PYTHON:-python3}
start=$SECONDS

if ! "$PY" -c "import keras, snakemake, ssimsr" 2>/dev/null; then
  [ -d gpu-bundle/wheels ] || { echo "reproduce.sh: keras/snakemake missing and no gpu-bundle/ (run bundle.sh)" >&2; exit 1; }
  SITE=$WORK/site
  # one pip call: a second --target install would skip the existing bin/ (no `ssimsr`)
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-build-isolation --target "$SITE" \
    gpu-bundle/wheels/*.whl .
  export PYTHONPATH=$SITE${PYTHONPATH:+:$PYTHONPATH} PATH=$SITE/bin:$PATH
  echo "installed the bundle and the project offline in $((SECONDS - start))s"
fi

# The workflow runs in a copy of the repository's workflow files, so the results of
# this run never mix with results/ of the checkout.
RUN=$WORK/run
mkdir -p "$RUN"
cp -r Snakefile config.yaml workflow envs profiles "$RUN"/
cp benchmarks/gpu/bsds300.yaml "$RUN/gpu.yaml"
cp benchmarks/gpu/smoke.yaml "$RUN/smoke.yaml"
"$PY" - "$RUN/gpu.yaml" "$ARCHIVE" "$PWD" <<'EOF'
import os, sys, yaml
path, archive, repo = sys.argv[1:]
cfg = yaml.safe_load(open(path))
cfg["datasets"]["bsds300"]["sources"][0]["uri"] = archive
# Benchmarks (Set5, Set14) are local folders relative to the repository, or their copies in
# gpu-bundle/: made absolute (the workflow runs in another folder); one not found is dropped.
kept = []
for name in cfg.get("evaluation", {}).get("benchmarks", []):
    found = True
    for source in cfg["datasets"][name]["sources"]:
        uri = source["uri"]
        if "://" in uri or uri.startswith("skimage:") or os.path.isabs(uri):
            continue
        hits = [c for c in (os.path.join(repo, uri), os.path.join(repo, "gpu-bundle", os.path.basename(uri)))
                if os.path.exists(c)]
        if hits:
            source["uri"] = os.path.realpath(hits[0])
        else:
            found = False
            print(f"reproduce.sh: benchmark {name}: {uri} not found (nor in gpu-bundle/): not evaluated",
                  file=sys.stderr)
    if found:
        kept.append(name)
if "evaluation" in cfg:
    cfg["evaluation"]["benchmarks"] = kept
yaml.safe_dump(cfg, open(path, "w"), sort_keys=False)
EOF

if [ "$MODE" = smoke ]; then
  CONFIGS=(gpu.yaml smoke.yaml); CORES=${CORES:-2}; SLOTS=1  # smoke.yaml: jobs_per_gpu 1
else
  CONFIGS=(gpu.yaml); CORES=${CORES:-$(nproc)}; SLOTS=6      # gpu.yaml: jobs_per_gpu 6
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
fi
echo "mode $MODE; workflow in $RUN; archive $ARCHIVE"
# SSIMSR_TIME_LIMIT (seconds): stop the workflow then and summarise what finished (the
# epochs of unfinished runs are read from their checkpoints), rather than lose it all.
t0=$SECONDS
status=0
(cd "$RUN" && timeout "${SSIMSR_TIME_LIMIT:-0}" snakemake --cores "$CORES" --resources gpu=$SLOTS \
  --configfile "${CONFIGS[@]}" --keep-going --show-failed-logs) || status=$?
wall=$((SECONDS - t0))
echo "workflow took ${wall}s (exit status $status)"

mkdir -p "$DEST"
"$PY" benchmarks/gpu/summarise.py "$RUN" "$DEST" --mode "$MODE" --workflow-seconds "$wall" \
  --commit "${SSIMSR_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}"
echo "reproduce.sh ($MODE) done in $((SECONDS - start))s; results in $DEST"
exit "$status"
