#!/usr/bin/env bash
# Makes the git-ignored folders that a GPU call carries (never committed; ../shared does not travel):
#   scripts/gpu_stage.sh [study]  .gpu/study: copies of T91, BSD200, Set5 and Set14 from the data root and
#                                 wheels of fvcore and its pure-Python needs, which the GPU image lacks (pip
#                                 cannot reach an index there); read by scripts/gpu_ablations.sh. About 46 MiB.
#   scripts/gpu_stage.sh train    .gpu/data: copies of T91, BSD200 and Set5 for scripts/gpu_train.sh and the wheels (40.2 MiB); with
#                                 the M/L checkpoints alone in the tree a call is 63.4 MiB of the 64 (2026-12-04):
#                                 scripts/gpu_carry.py stages the tree for a call and checks that it fits.
#   scripts/gpu_stage.sh urban    .gpu/bench-sets (Set5, Set14, B100: 32 MiB) and .gpu/u100-{1,2,3,4} (Urban100/HR
#                                 in quarters, about 24 MiB each): Urban100 (94 MiB) cannot travel in one call, so
#                                 the evaluate-overhead run takes three calls on one warm machine (README).
set -eu
ROOT=${AWSRN_DATA:-../shared/data}
PIP=${PIP:-.venv/bin/pip}
wheels() {   # $1: folder. The versions this venv runs; fvcore and iopath ship only as sources: build them into wheels here
  mkdir -p "$1"
  pins=$($PIP freeze | grep -i -E '^(fvcore|iopath|yacs|termcolor)==' | tr '\n' ' ')
  src=$(mktemp -d)
  # shellcheck disable=SC2086
  $PIP download -q --no-deps -d "$src" $pins
  $PIP wheel -q --no-deps -w "$1" "$src"/*
  rm -rf "$src"
  ls "$1"
}
case "${1:-study}" in
study)
  D=.gpu/study
  rm -rf "$D" && mkdir -p "$D/train" "$D/benchmark"
  cp -r "$ROOT/train/T91" "$ROOT/train/BSD200" "$D/train/"
  cp -r "$ROOT/benchmark/Set5" "$ROOT/benchmark/Set14" "$D/benchmark/"
  wheels "$D/whl"
  du -sh "$D" ;;
train)
  # with the wheels (0.1 MiB) so that a training lease can run the CUDA-only tests too (README "Training on a GPU")
  rm -rf .gpu/data && mkdir -p .gpu/data/train .gpu/data/benchmark
  cp -r "$ROOT/train/T91" "$ROOT/train/BSD200" .gpu/data/train/
  cp -r "$ROOT/benchmark/Set5" .gpu/data/benchmark/
  wheels .gpu/data/whl
  du -sh .gpu/data ;;
urban)
  rm -rf .gpu/bench-sets .gpu/u100-*
  mkdir -p .gpu/bench-sets/benchmark
  cp -r "$ROOT/benchmark/Set5" "$ROOT/benchmark/Set14" "$ROOT/benchmark/B100" .gpu/bench-sets/benchmark/
  i=0
  for f in "$ROOT"/benchmark/Urban100/HR/*; do
    part=$(( i * 4 / $(find "$ROOT/benchmark/Urban100/HR" -type f | wc -l) + 1 ))
    mkdir -p ".gpu/u100-$part/HR" && cp "$f" ".gpu/u100-$part/HR/"
    i=$((i + 1))
  done
  du -sh .gpu/bench-sets .gpu/u100-* ;;
*) echo "gpu_stage.sh: expected 'study', 'train' or 'urban', got '$1'" >&2; exit 2 ;;
esac
