#!/usr/bin/env bash
# The CPU share of the first checkpoints (x3 and x2; x4 came from the GPU run): one thread, one model
# after the other, each with a fixed time budget. Usage: scripts/train_cpu_background.sh [SECONDS]
set -eu
BUDGET=${1:-900}
DATA=${AWSRN_DATA:-../shared/data}/train
for s in 3 2; do for m in awsrn-s awsrn-sd; do
  OMP_NUM_THREADS=1 .venv/bin/awsrn-bench train --model $m --scale $s --data $DATA/T91,$DATA/BSD200 \
    --iters 1000000 --time-budget "$BUDGET" --schedule cosine --val-every 500 --log-every 50 --ckpt-every 500 \
    --out runs/$m-x$s-cpu --quiet
done; done
