#!/usr/bin/env bash
# The training studies (ablations/training_studies.py) at one stated, equal budget, written to
# results/study_<name>.csv with each run's held-out learning curve in results/curves/study_<name>.csv (the
# figure marks where each variant separated from the baseline); `awsrn-bench reproduce` redraws the figures.
# On a CPU with AVX512-BF16 (or AMX) bf16 autocast is 1.8x faster (results/train_throughput_cpu.csv); the
# committed bam, unit, lrfu and n_lfb tables: ITERS=5000 SEEDS=1,2,3 RECIPE="--amp bf16 --channels-last --patch 32"
# scripts/run_studies.sh bam unit lrfu n_lfb (bam, unit and lrfu share the AWSRN-S runs; a run already there is
# reused, so more SEEDS train only the new seeds: n_lfb takes 75 to 90 min a seed); the command is under each
# table in results/README.md
# A GPU user raises ITERS:
#   ITERS=2500 DEVICE=cuda SEEDS=1,2,3 BACKEND=group RECIPE="--amp bf16 --channels-last" scripts/run_studies.sh bam unit lrfu n_lfb
# (BACKEND=group trains each study's runs together in one process, one CUDA stream each: no Ray needed;
#  RECIPE: more `train` flags for every run, recorded in the table's recipe column and the run folders' names)
set -eu
ITERS=${ITERS:-500}
DEVICE=${DEVICE:-cpu}
SEEDS=${SEEDS:-1}
ROOT=${AWSRN_DATA:-../shared/data}   # RESULTS: where study_<name>.csv goes (default results)
for study in "$@"; do
  # shellcheck disable=SC2086   # RECIPE is a list of flags
  ${AWSRN_BENCH:-.venv/bin/awsrn-bench} ablate study "$study" --iters "$ITERS" --device "$DEVICE" \
    --data "$ROOT/train/T91,$ROOT/train/BSD200" --data-root "$ROOT" --scale 4 --seeds "$SEEDS" \
    --curve-points "${CURVE_POINTS:-10}" --backend "${BACKEND:-local}" --out "${RESULTS:-results}" ${RECIPE:-}
done
