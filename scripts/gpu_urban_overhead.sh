#!/usr/bin/env bash
# The evaluate overhead on a GPU over Set5, Set14, B100 and Urban100, which cannot travel in one call (94 MiB
# of the 64 MiB a call carries). Three calls on one warm machine (ignored paths carried earlier stay there),
# with the tree staged by `python scripts/gpu_carry.py stage urban` (results/ and checkpoints/ out; `restore` after)
# and the folders made by `scripts/gpu_stage.sh urban`:
#   1. carry .gpu/bench-sets and .gpu/u100-1, command `true`
#   2. carry .gpu/u100-2 and .gpu/u100-3, command `true`
#   3. carry .gpu/u100-4, command `bash scripts/gpu_urban_overhead.sh`
# Writes $OUT/gpu/eval_overhead_gpu.csv (copy it into results/gpu/) and $OUT/gpu_urban_overhead.log.
# Tried on the CPU with: DEVICE=cpu DATASETS=Set5 bash scripts/gpu_urban_overhead.sh
set -u
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 AWSRN_CACHE=${AWSRN_CACHE:-/tmp/awsrn-cache}
ROOT=.gpu/bench-sets
exec > >(tee "$OUT/gpu_urban_overhead.log") 2>&1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
mkdir -p "$ROOT/benchmark/Urban100/HR" && cp .gpu/u100-*/HR/* "$ROOT/benchmark/Urban100/HR/"
count=$(find "$ROOT/benchmark/Urban100/HR" -type f | wc -l)
if [ "$count" -ne 100 ]; then
  echo "gpu_urban_overhead.sh: expected 100 Urban100 images from .gpu/u100-{1..4}, found $count (were the three calls made on one warm machine?)"
  exit 2
fi
timeout "${LIMIT_S:-420}" python3 -m benchmark.cli bench eval-overhead --datasets "${DATASETS:-Set5,Set14,B100,Urban100}" \
  --device "${DEVICE:-cuda}" --data-root "$ROOT" --out "$OUT"
echo "eval-overhead rc $?"
