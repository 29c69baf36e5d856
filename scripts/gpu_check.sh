#!/usr/bin/env bash
# The GPU checks, as one prepared run on the lent device (see README "GPU"). Expects the training
# images in .gpu/data/{T91,BSD200} (a copy of ../shared/data/train, carried, never committed) and
# writes everything under $OUT: gpu_check.log, latency_gpu.csv, train_throughput_gpu.csv, runs.tar.gz.
set -u
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 AWSRN_CACHE=/tmp/awsrn-cache
TRAIN_BUDGET=${TRAIN_BUDGET:-270}
DATA=.gpu/data/T91,.gpu/data/BSD200
exec > >(tee "$OUT/gpu_check.log") 2>&1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"

echo "== 1. training throughput, AWSRN-S x4, batch 16, 48px LR patches (solo, 300 iters each)"
for opts in "--amp none" "--amp bf16" "--amp bf16 --channels-last"; do
  tag=$(echo "$opts" | tr -d ' -')
  python3 -m benchmark.cli train --model awsrn-s --scale 4 --data $DATA --iters 300 --log-every 100 \
    --val-every 100000 --ckpt-every 100000 --device cuda $opts --out /tmp/tp/$tag --quiet >/dev/null \
    && tail -n 1 /tmp/tp/$tag/train_log.csv | sed "s/^/$tag,/"
done | tee /tmp/tp.csv
{ echo "config,iter,loss,lr,it_per_s,patches_per_s,val_psnr"; cat /tmp/tp.csv; } > "$OUT/train_throughput_gpu.csv"

echo "== 2. the first checkpoints: AWSRN-S and AWSRN-SD at x2, x3, x4, six runs side by side, ${TRAIN_BUDGET}s each"
for m in awsrn-s awsrn-sd; do for s in 4 3 2; do
  python3 -m benchmark.cli train --model $m --scale $s --data $DATA --iters 1000000 --time-budget $TRAIN_BUDGET \
    --schedule cosine --device cuda --val-every 2000 --log-every 100 --ckpt-every 2000 \
    --out runs/$m-x$s --quiet > /tmp/train-$m-x$s.log 2>&1 &
  pids="${pids:-} $!"
done; done
wait $pids   # (a bare `wait` would also wait for the tee above)
for f in /tmp/train-*.log; do echo "$f: $(tail -n 1 $f)"; done
tar czf "$OUT/runs.tar.gz" runs/*/model.safetensors runs/*/model.json runs/*/train_log.csv runs/*/recipe.json

echo "== 3. latency table, 720p preset, all variants x2/x3/x4/x8"
for form in "" "--deploy" "--deploy --precision fp16" "--deploy --precision bf16"; do
  python3 -m benchmark.cli latency --scales 2,3,4,8 --device cuda --preset 720p $form --format csv --no-store
done | awk 'NR==1 || !/^variant,/' > "$OUT/latency_gpu.csv"
python3 -m benchmark.cli latency 'awsrn-*-bam' --scales 2,3,4 --device cuda --deploy --format csv --no-store \
  | tail -n +2 >> "$OUT/latency_gpu.csv"
echo done
