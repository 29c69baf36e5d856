#!/usr/bin/env bash
# A committed checkpoint fine-tuned on the CPU for one more cosine cycle on the training images with four
# downscaled copies each (--hr-rescale 4: +0.15 dB on Set5 for AWSRN-S x4 and +0.09 for SD x4, README
# "Ablations"), bf16 autocast + channels_last where the CPU runs bf16 natively (1.8x on an AVX512-BF16 CPU),
# else float32 in NCHW (bf16 is emulated there, many times slower); AMP=none|bf16 forces it.
# Several checkpoints train side by side, one thread each, into runs/ft/<checkpoint>/; nothing is copied into
# checkpoints/ (README says how a run whose held-out PSNR beats its checkpoint's becomes the checkpoint).
# PATCH sets the LR patch side (default: the checkpoint's own). A smaller patch admits more of the small T91
# images (at x4, 48 px needs 192 px HR: 38 of the 87 T91 training images; 32 px needs 128: 80; docs/experiments.md).
#   ITERS=4000 LR=2e-4 scripts/cpu_finetune.sh awsrn-s-x3 awsrn-sd-x3
#   ITERS=4000 LR=2e-4 PATCH=32 RUNS=runs/ft-p32 scripts/cpu_finetune.sh awsrn-s-x4
set -eu
ROOT=${AWSRN_DATA:-../shared/data}
ITERS=${ITERS:-4000}
LR=${LR:-2e-4}
RUNS=${RUNS:-runs/ft}
PY=${PYTHON:-.venv/bin/python}
AMP=${AMP:-$("$PY" -c "from benchmark.train import native_bf16; print('bf16' if native_bf16('cpu') else 'none')")}
case $AMP in
  bf16) PRECISION="--amp bf16 --channels-last" ;;
  none) PRECISION="--amp none" ;;
  *) echo "cpu_finetune: AMP=$AMP: expected none or bf16" >&2; exit 2 ;;
esac
echo "cpu_finetune: $PRECISION" >&2
pids=()
for name in "$@"; do
  ck=checkpoints/$name
  [ -f "$ck/model.safetensors" ] || { echo "cpu_finetune: $ck/model.safetensors does not exist" >&2; exit 2; }
  # model, scale, LR patch and storage dtype as the checkpoint was trained (L x8: 40 px; M/L: float16)
  read -r model scale patch dtype < <("$PY" -c "import json,sys; r=json.load(open(sys.argv[1])); \
print(r['model'], r['scale'], r['patch'], r.get('save_dtype', 'float32'))" "$ck/recipe.json")
  patch=${PATCH:-$patch}
  mkdir -p "$RUNS"
  # shellcheck disable=SC2086   # PRECISION and EXTRA (more train flags, e.g. --ema 0.999) are word lists
  OMP_NUM_THREADS=${THREADS:-1} ${AWSRN_BENCH:-.venv/bin/awsrn-bench} train --model "$model" --scale "$scale" \
    --data "$ROOT/train/T91,$ROOT/train/BSD200" --patch "$patch" --save-dtype "$dtype" --hr-rescale "${HR_RESCALE:-4}" --init-from "$ck/model.safetensors" \
    --iters "$ITERS" --lr "$LR" --schedule cosine --val-every $((ITERS / 5)) --ckpt-every $((ITERS / 5)) \
    --log-every 250 $PRECISION --monitor Set5 --data-root "$ROOT" --resume ${EXTRA:-} \
    --out "$RUNS/$name" --quiet > "$RUNS/$name.log" 2>&1 &
  pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=$?; done
for name in "$@"; do
  echo "$name: $(tail -1 "$RUNS/$name/train_log.csv")"
done
exit $rc
