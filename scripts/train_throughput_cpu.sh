#!/usr/bin/env bash
# CPU training throughput (AWSRN-S and AWSRN-SD x4, batch 16, 48px LR patches, fp32): 60 iterations
# each, the rate over the last 40 -> results/train_throughput_cpu.csv
set -eu
DATA=${AWSRN_DATA:-../shared/data}/train
THREADS=${THREADS:-2}
out=results/train_throughput_cpu.csv
echo "model,threads,iter,loss,lr,it_per_s,patches_per_s,val_psnr" > $out.tmp
for m in awsrn-s awsrn-sd; do
  OMP_NUM_THREADS=$THREADS .venv/bin/awsrn-bench train --model $m --scale 4 --data $DATA/T91,$DATA/BSD200 \
    --iters 60 --log-every 20 --val-every 100000 --val-images 0 --out /tmp/tp-$m --quiet > /dev/null
  tail -n 1 /tmp/tp-$m/train_log.csv | sed "s/^/$m,$THREADS,/" >> $out.tmp
done
mv $out.tmp $out
cat $out
