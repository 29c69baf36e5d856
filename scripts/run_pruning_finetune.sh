#!/usr/bin/env bash
# The fine-tuned arm of branch pruning for the committed checkpoints it covers, written into
# results/branch_pruning_finetune.csv (each checkpoint's rows replaced) with each fine-tune's held-out learning
# curve in results/curves/branch_pruning_finetune.csv. CPU default: 60 iterations at lr 1e-4, about 10 minutes
# per checkpoint on 2 cores. On a GPU scripts/gpu_ablations.sh runs the same command at FT_ITERS=2000.
# RECIPE adds train flags to every fine-tune (`--subsets 579,3` limits the study); the committed rows (S x4, S x2,
# SD x4, M x4 and L x4 at 2,000 iterations, 50, 46, 50, 127 and 127 min on 2 threads (reruns on new weights: S x4 70 min, S x2 75, SD x4 85, M x4 about 3 h in two calls,
# L x4 about 3 h 50 min in four calls, --subsets 3,357,359,379,579 first; L x3 about 3 h 46 min in four calls,
# 14 to 16 min each; S x3 1 h 25 min in one; SD x3 all fifteen in three calls and SD x2 all fifteen in two (1 h 7 min with --subsets as below, then 1 h 40 min without) with --amp none, see below; M x3 all fifteen with --amp none, --subsets 3,357,359, then 3,357,359,379,579,35, then 3,357,359,379,579,35,5,7,9,37,39, then without, 27 to 41 min each; M x2 with --amp none, --subsets 3,357,359,579 first (29 to 37 min each), then in a fresh checkout against a second control, banked in results/store: --subsets 3579,379,35,37,39, then 3579,379,35,37,39,3 (21 min each), then 357,359,579,3,35,37,379,39 (replaced the table's rows, 47 min), then 5,7,9,57 (joined, 1 h 25 min), then 59,79 (joined, 27 min); L x8 with --patch 16 --amp none, --subsets 3,357,359,379,579 (1 h 1 min), then 35,37,39,5 (joined, 40 min), then 57,59,79,7,9 (joined over two sessions, 7 and 9 in 32 min); L x2 with --amp none, --subsets 3,357,359,379,579 (three sessions, 44 to 57 min per fine-tune), then 35,37,39,5 (joined), then 57,59,79,7,9 (joined over three sessions, 39 to 50 min per fine-tune); earlier in several calls);
# each checkpoint's budget in results/README.md; docs/experiments.md "Ablations"). bf16 autocast is fast only on a CPU
# with AVX512-BF16 or AMX: on an AVX2-only CPU (the trainer warns) it is emulated, about 4 s per SD x3 step against 0.3 s
# in float32, so there RECIPE takes --amp none (SD x3: 10 to 12 min per fine-tune on 2 threads):
#   FT_ITERS=2000 RECIPE="--patch 32 --amp bf16 --channels-last" scripts/run_pruning_finetune.sh awsrn-s-x2
#   FT_ITERS=2000 RECIPE="--patch 32 --amp none --channels-last" scripts/run_pruning_finetune.sh awsrn-sd-x3
#   FT_ITERS=2000 RECIPE="--patch 32 --amp none --channels-last --subsets 3,357,359,379,579" scripts/run_pruning_finetune.sh awsrn-sd-x2
#   FT_ITERS=60 scripts/run_pruning_finetune.sh [awsrn-s-x4 awsrn-s-x2 awsrn-sd-x4]
set -eu
ROOT=${AWSRN_DATA:-../shared/data}
for ck in "${@:-awsrn-s-x4 awsrn-s-x2 awsrn-sd-x4}"; do
  for name in $ck; do
    model=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['model'])" "checkpoints/$name/recipe.json")
    ${AWSRN_BENCH:-.venv/bin/awsrn-bench} ablate branch-pruning "checkpoints/$name/model.safetensors" --model "$model" \
      --finetune-iters "${FT_ITERS:-60}" --data "$ROOT/train/T91,$ROOT/train/BSD200" --data-root "$ROOT" \
      --datasets Set5,Set14 --device "${DEVICE:-cpu}" --out "${RESULTS:-results}" ${RECIPE:-}
  done
done
