#!/usr/bin/env bash
# The GPU training run, as one prepared script on the lent device (README "Training on a GPU"; results: docs/experiments.md).
# Expects .gpu/data/train/{T91,BSD200} and .gpu/data/benchmark/Set5 (copies of ../shared/data, carried,
# never committed). Steps: (1) check the CUDA-graph step against the eager step and measure eager vs fast
# throughput side by side (fp32, bf16 and channels_last inside the graph, batch 64); (2) train every variant of the paper's table together (one process, one CUDA
# stream each), continuing from checkpoints/ where a checkpoint exists, for TOTAL_S seconds in all;
# (3) pack the runs into $OUT. Tried on the CPU first with: DEVICE=cpu TOTAL_S=60 RUNS=awsrn-s:4 ...
# Stage the tree first: `python scripts/gpu_carry.py stage train --runs $RUNS` (the 13 runs' checkpoints and the
# training images do not fit in one call's 64 MiB: README "Training on a GPU" splits them over two calls).
# A run named probe-* starts from scratch (no checkpoint of that name): the batch/lr recipe probes, whose
# Set5 PSNR against GPU-seconds is the evidence for the recipe (README "Training on a GPU"; results: docs/experiments.md).
set -u
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 AWSRN_CACHE=/tmp/awsrn-cache AWSRN_DATA=$PWD/.gpu/data
DEVICE=${DEVICE:-cuda}
TOTAL_S=${TOTAL_S:-450}          # the whole script, from now
DATA=.gpu/data/train/T91,.gpu/data/train/BSD200
# The x4 runs on 32 px LR patches (128 px HR) and L x8 on 16 px (128 px HR): a training image smaller than the HR patch
# is left out, so 48 px at x4 (192 px HR) trains on 232 of the 281 images (38 of T91's 87) and 32 px on 274. Continuing
# the committed AWSRN-S x4 for 4,000 iterations on 32 px beat the same cycle on 48 px by +0.025 [+0.020, +0.031] dB on
# all 219 test images, every set up, at 0.47x the CPU time (docs/experiments.md); L x8 on 16 px gained held-out +0.10 dB
# (x2 and x3 on 32 px too, as every CPU cycle since; a run's own :lr= or :patch= overrides the defaults)
RUNS=${RUNS:-awsrn-s:4:32,awsrn-s:3:32,awsrn-s:2:32,awsrn-sd:4:32,awsrn-sd:3:32,awsrn-sd:2:32,awsrn-m:4:32,awsrn-m:3:32,awsrn-m:2:32,awsrn-l:4:32,awsrn-l:3:32,awsrn-l:2:32,awsrn-l:8:16}
# the peak of each new cosine cycle: 1e-3 (the paper's) restarted young checkpoints; the committed ones had 26,800 to
# 78,300 iterations when one 5e-4 cycle (14,681 or 30,858 iterations) lifted the held-out PSNR of 12 of 13 (GPU
# session of 2026-12-04, docs/experiments.md)
LR=${LR:-5e-4}
CONTINUE_FROM=${CONTINUE_FROM:-checkpoints}   # a second call on the warm machine: runs_prev (see README)
VAL_EVERY=${VAL_EVERY:-2500}
# bf16 autocast + channels_last: 1.49x the fp32 graph step on an H200 (results/gpu/train_throughput_gpu.csv) for
# at most 0.0012 dB late in training (results/bf16_training_check.csv); PRECISION="--amp none" trains in fp32
PRECISION=${PRECISION:---amp bf16 --channels-last}
SPEED_ITERS=${SPEED_ITERS:-2000}
# four downscaled copies of each training image (VDSR's augmentation): fine-tuning the plateaued AWSRN-S x4 with them
# gave Set14 +0.116 [+0.086, +0.152] dB over the same fine-tune without (results/study_data_ft.csv); 7 to 9 s of
# set-up per scale on 2 CPU cores. HR_RESCALE=0 trains on the 281 images alone
HR_RESCALE=${HR_RESCALE:-4}
# a moving average of the weights (train --ema; e.g. EMA=0.999), off by default: on the plateaued AWSRN-S x4 it did
# not lift the fine-tune (results/study_ema_ft.csv); the throughput check compares it graph vs eager
EMA=${EMA:-0}
# the pixel loss (train --loss): l1 as the paper; LOSS=l2 for a last cycle on the mean squared error (docs/experiments.md)
LOSS=${LOSS:-l1}
# the AWMS trained as one conv (train --awms-one-conv: the same gradients, 81 instead of 164 taps; 1.25x the CPU's
# bf16 step of AWSRN-S x4, results/train_throughput_cpu.csv). auto: on when step 1 of this run measured its graph step faster than the same
# step with the four branches (bf16, channels_last), off when it did not or was skipped (SPEED_ITERS=0); 1 or 0 force it
AWMS_ONE_CONV=${AWMS_ONE_CONV:-auto}
t_start=$(date +%s)
exec > >(tee "$OUT/gpu_train.log") 2>&1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name(0))"

echo "== 1. graph step vs eager step; eager vs fast throughput (AWSRN-S x4, batch 16, 48px)"
GRAPH_FLAG=""
if [ "$SPEED_ITERS" -gt 0 ]; then
timeout 180 python3 -m benchmark.cli bench train-throughput --data $DATA --device $DEVICE --fast-iters $SPEED_ITERS \
  --eager-iters $((SPEED_ITERS / 6)) --out "$OUT" || echo "speed check failed: rc $?"   # -> $OUT/gpu/train_throughput_gpu.csv
fi
if grep -q "'equal': False" "$OUT/gpu_train.log"; then
  echo "the graph step differs from the eager step: training without graphs"; GRAPH_FLAG="--no-graph"
fi
if [ "$AWMS_ONE_CONV" = auto ]; then
  AWMS_ONE_CONV=$(python3 - "$OUT/gpu/train_throughput_gpu.csv" <<'PY'
import sys, pandas as pd
try:
    t = pd.read_csv(sys.argv[1]).set_index("step")
    one, branches = t.loc["fast, bf16, channels_last, AWMS one conv"], t.loc["fast, bf16, channels_last"]
    # faster, and its graph step equal to its eager step (the check the table records for each form)
    print(int(one.it_per_s > branches.it_per_s and bool(one.graph_equals_eager)))
except Exception:          # no table (SPEED_ITERS=0) or a form that failed: the branches, as measured before
    print(0)
PY
)
fi
ONE_CONV_FLAG=""; [ "$AWMS_ONE_CONV" = 1 ] && ONE_CONV_FLAG="--awms-one-conv"
echo "AWMS one conv: $AWMS_ONE_CONV"

# seconds left of TOTAL_S, less 25 s for packing
left() { echo $(( TOTAL_S - ($(date +%s) - t_start) - 25 )); }
MIN_TRAIN_S=${MIN_TRAIN_S:-60}   # below this a train-group call would spend its time on set-up: skip it
train_group() {   # $1: seconds for train-group (set-up included); more flags follow. The hard timeout leaves 60 s
  # past the budget; its SIGTERM makes every run validate and save where it is (SIGKILL 45 s later). `timeout 0`
  # would mean no limit, so callers check MIN_TRAIN_S first
  local budget=$1; shift
  timeout -k 45 $((budget + 60)) python3 -m benchmark.cli train-group --runs "$RUNS" --data $DATA --device $DEVICE \
    --time-budget "$budget" --out runs --continue-from $CONTINUE_FROM --monitor Set5 --lr "$LR" \
    --compact-above ${COMPACT_ABOVE:-1000000} --log-every 500 --val-every $VAL_EVERY --ckpt-every 100000 \
    --hr-rescale $HR_RESCALE --ema $EMA --loss $LOSS $PRECISION $ONE_CONV_FLAG --quiet "$@"
}
budget=$(left)
echo "== 2. train $RUNS together for ${budget}s (set-up included)"
if [ "$budget" -lt "$MIN_TRAIN_S" ]; then
  echo "only ${budget}s left (MIN_TRAIN_S $MIN_TRAIN_S): not training"; rc=0
else
  train_group "$budget" $GRAPH_FLAG; rc=$?
fi
echo "train-group rc $rc"
# a failure of the graph step (not a timeout: 124) gets one retry without graphs, if there is time for one;
# the failed attempt's runs are kept aside as runs_failed/, not packed
budget=$(left)
if [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ -z "$GRAPH_FLAG" ] && [ "$budget" -ge "$MIN_TRAIN_S" ]; then
  echo "== 2b. retry without CUDA graphs for ${budget}s"
  rm -rf runs_failed; mv runs runs_failed 2>/dev/null
  train_group "$budget" --no-graph; echo "train-group (no graph) rc $?"
elif [ $rc -ne 0 ]; then
  echo "no retry (rc $rc, ${budget}s left)"
fi

echo "== 3. pack"
cp runs/group.csv "$OUT/" 2>/dev/null
tar cf /tmp/runs.tar runs/*/model.safetensors runs/*/model.json runs/*/recipe.json runs/*/train_log.csv 2>/dev/null
split -b 15m -d /tmp/runs.tar "$OUT/runs.tar.part"
ls -la "$OUT"
echo "done in $(( $(date +%s) - t_start ))s"
