#!/usr/bin/env bash
# Makes .gpu/study, the git-ignored folder that scripts/gpu_ablations.sh reads on the GPU machine (carry it):
# copies of T91, BSD200, Set5 and Set14 from the data root (never committed) and wheels of fvcore and its
# pure-Python needs, which the GPU image lacks (pip cannot reach an index there). About 46 MiB.
set -eu
ROOT=${AWSRN_DATA:-../shared/data}
D=${1:-.gpu/study}
PIP=${PIP:-.venv/bin/pip}
rm -rf "$D" && mkdir -p "$D/train" "$D/benchmark" "$D/whl"
cp -r "$ROOT/train/T91" "$ROOT/train/BSD200" "$D/train/"
cp -r "$ROOT/benchmark/Set5" "$ROOT/benchmark/Set14" "$D/benchmark/"
# the versions this venv runs; fvcore and iopath ship only as sources: build them into wheels here
pins=$($PIP freeze | grep -i -E '^(fvcore|iopath|yacs|termcolor)==' | tr '\n' ' ')
src=$(mktemp -d)
# shellcheck disable=SC2086
$PIP download -q --no-deps -d "$src" $pins
$PIP wheel -q --no-deps -w "$D/whl" "$src"/*
rm -rf "$src"
ls "$D/whl"
du -sh "$D"
