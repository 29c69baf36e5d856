#!/usr/bin/env bash
# The GPU measurements as one prepared run on the lent device: `awsrn-bench bench gpu` (training step eager vs
# fast incl. bf16/channels_last in the CUDA graph, evaluate overhead, the 720p latency table in nine forms with
# each row's memory-traffic floor). Expects .gpu/bench/train/T91 and .gpu/bench/benchmark/{Set5,Set14,B100}
# (copies of ../shared/data, 40 MB, carried, never committed; Urban100's 94 MB cannot travel). Writes
# $OUT/gpu/{train_throughput,eval_overhead,latency}_gpu.csv and $OUT/gpu_bench.log: copy them into results/gpu/.
# STAGES=eval_overhead,latency skips the training step when scripts/gpu_train.sh measured it in the same lease.
# Tried on the CPU first with tiny settings:
#   DEVICE=cpu PATTERN=awsrn-s SCALES=2 LR_SIZE=16x16 REPEATS=1 EAGER_ITERS=2 FAST_ITERS=2 DATASETS=Set5 \
#     EXTRA="--set n_feats=8 --set block_feats=16 --set n_awru=1" bash scripts/gpu_bench.sh
set -u
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 AWSRN_CACHE=${AWSRN_CACHE:-/tmp/awsrn-cache}
DEVICE=${DEVICE:-cuda}
t_start=$(date +%s)
exec > >(tee "$OUT/gpu_bench.log") 2>&1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name(0))"
timeout ${LIMIT_S:-480} python3 -m benchmark.cli bench gpu ${PATTERN:-} --device "$DEVICE" --data .gpu/bench/train/T91 \
  --datasets "${DATASETS:-Set5,Set14,B100}" --data-root .gpu/bench --out "$OUT" --scales "${SCALES:-2,3,4}" \
  ${LR_SIZE:+--lr-size $LR_SIZE} --repeats "${REPEATS:-50}" --eager-iters "${EAGER_ITERS:-300}" \
  --fast-iters "${FAST_ITERS:-2000}" --stages "${STAGES:-train_throughput,eval_overhead,latency}" ${EXTRA:-}
echo "bench gpu rc $?"
ls -la "$OUT" "$OUT/gpu" 2>/dev/null
echo "done in $(( $(date +%s) - t_start ))s"
