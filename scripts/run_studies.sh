#!/usr/bin/env bash
# The training studies (ablations/training_studies.py) at one stated, equal budget, written to
# results/study_<name>.csv; `awsrn-bench reproduce` draws their figures. A GPU user raises ITERS:
#   ITERS=3000 DEVICE=cuda SEEDS=1,2,3 BACKEND=group scripts/run_studies.sh bam unit lrfu n_lfb
# (BACKEND=group trains each study's runs together in one process, one CUDA stream each: no Ray needed)
set -eu
ITERS=${ITERS:-500}
DEVICE=${DEVICE:-cpu}
SEEDS=${SEEDS:-1}
ROOT=${AWSRN_DATA:-../shared/data}   # RESULTS: where study_<name>.csv goes (default results)
for study in "$@"; do
  ${AWSRN_BENCH:-.venv/bin/awsrn-bench} ablate study "$study" --iters "$ITERS" --device "$DEVICE" \
    --data "$ROOT/train/T91,$ROOT/train/BSD200" --data-root "$ROOT" --scale 4 --seeds "$SEEDS" \
    --backend "${BACKEND:-local}" --out "${RESULTS:-results}"
done
