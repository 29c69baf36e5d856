#!/usr/bin/env bash
# The GPU call for the ablations that train, as one prepared script: (tests) the CUDA-only tests, never run
# on a CPU machine; (studies) the training studies $STUDIES, by default the data study (AWSRN-S x4 from
# scratch on a quarter, half and all of the training images, and all with downscaled copies: where the
# 291 images stop teaching); (prune) the pruning fine-tune of $PRUNE, all 15 AWMS subsets and the
# full-set control trained together; (throughput) eager vs fast step forms. Each stage has its own time
# limit and writes its tables into results/ as it finishes; everything it wrote is packed into
# $OUT/results.tar (unpack over the tree: `tar xf results.tar`), the studies' runs (weights, recipes, logs)
# into $OUT/study_runs.tar.part*, the log into $OUT.
# Carry .gpu/study (made by scripts/gpu_stage.sh: T91, BSD200, Set5, Set14 and the fvcore wheels the GPU
# image lacks) and stage the tree first: `python scripts/gpu_carry.py stage ablations` keeps $PRUNE's checkpoint
# and the fine-tune table it merges into, and checks the call fits in its 64 MiB (`restore` after).
# Two calls on one warm machine (the second within its 30 s idle window), each inside the 600 s a device
# command may run:
#   1. bash scripts/gpu_ablations.sh                                   (tests 80 s + data study <= 420 s)
#   2. STAGES=prune bash scripts/gpu_ablations.sh                      (<= 330 s; add throughput: +150 s)
# A stage cut by its limit leaves its runs under runs/ on the warm machine: the same call again at once resumes them.
# The bam, unit, lrfu and n_lfb studies ran 5,000 iterations on the CPU (bf16, 32 px, seeds 1-3);
# STUDIES="bam unit lrfu n_lfb" SEEDS=1,2,3 reruns them here at $ITERS. Tried on the CPU first with tiny settings:
#   DEVICE=cpu RECIPE= ITERS=4 FT_ITERS=4 STAGES=studies,prune bash scripts/gpu_ablations.sh
set -u
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
STAGE_ROOT=${STAGE_ROOT:-$PWD/.gpu/study}
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 AWSRN_CACHE=/tmp/awsrn-cache AWSRN_DATA=$STAGE_ROOT
DEVICE=${DEVICE:-cuda}
STAGES=${STAGES:-tests,studies}
STUDIES=${STUDIES:-data}
ITERS=${ITERS:-16000}; SEEDS=${SEEDS:-1}
# The pruning fine-tunes of every x4 variant, S x2, S x3 and L x3 ran 2,000 iterations on the CPU and their held-out
# gaps stopped closing (docs/experiments.md "Ablations"; L x3 took 3 h 46 min there): the GPU minutes go to
# L x2, the costliest left for the CPU. Its body is L x4's (the same 4 LFBs of 4 units at the same LR patch; only
# the tail's last convolution is smaller), so L x4's sizing holds: 16 fine-tunes are 32,000 steps (the subsets'
# fewer branches make them shorter); at L x4's solo 92 it/s on an H200 and the group's 1.28x
# (results/gpu/train_group_gpu_3.csv) at most 275 s with bf16 off, less with it: hence PRUNE_S 330
FT_ITERS=${FT_ITERS:-2000}; PRUNE=${PRUNE:-checkpoints/awsrn-l-x2/model.safetensors}
# bf16 autocast + channels_last, equal for every variant: 1.49x the fp32 graph step on an H200 for at most
# 0.0012 dB (results/bf16_training_check.csv); RECIPE= trains in fp32
RECIPE=${RECIPE---amp bf16 --channels-last}
DATA=$STAGE_ROOT/train/T91,$STAGE_ROOT/train/BSD200
CLI="python3 -m benchmark.cli"
t_start=$(date +%s)
exec > >(tee "$OUT/gpu_ablations.log") 2>&1
stage() { case ",$STAGES," in *",$1,"*) return 0 ;; esac; return 1; }
since() { echo "  [$(( $(date +%s) - t_start ))s] $*"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name(0))"
if ! python3 -c "import fvcore" 2>/dev/null; then      # the complexity counts of the tables need it
  python3 -m pip install -q --upgrade --no-index --no-deps --no-compile --target /tmp/site "$STAGE_ROOT"/whl/*.whl \
    && export PYTHONPATH=$PYTHONPATH:/tmp/site
fi
touch /tmp/gpu_stamp

if stage tests; then
  since "== tests: the CUDA-only checks (graph replay equal to the eager forward in evaluate and latency)"
  timeout "${TESTS_S:-80}" python3 -m pytest -q -p no:cacheprovider -n 0 -k cuda \
    tests/test_evaluate.py tests/test_deploy_latency.py tests/test_train.py 2>&1 | tail -15
fi

if stage prune; then
  since "== prune: $PRUNE, 15 subsets + the control, $FT_ITERS iterations each, together"
  # shellcheck disable=SC2086   # RECIPE is a list of flags
  timeout "${PRUNE_S:-330}" $CLI ablate branch-pruning "$PRUNE" --finetune-iters "$FT_ITERS" --data "$DATA" \
    --datasets Set5,Set14 --data-root "$AWSRN_DATA" --device "$DEVICE" --backend group --runs-dir runs \
    --out results --format csv $RECIPE | tail -20
  echo "prune rc ${PIPESTATUS[0]}"
fi

if stage studies; then
  since "== studies: $STUDIES, $ITERS iterations, seeds $SEEDS"
  ITERS=$ITERS SEEDS=$SEEDS DEVICE=$DEVICE BACKEND=group RESULTS=results AWSRN_BENCH="$CLI" RECIPE="$RECIPE" \
    timeout "${STUDIES_S:-420}" bash scripts/run_studies.sh $STUDIES
  echo "studies rc $?"
  # this call's runs (weights, recipes, logs), in parts of 15 MB (what one file may bring back):
  # cat study_runs.tar.part* | tar x
  find runs/studies -newer /tmp/gpu_stamp \( -name model.safetensors -o -name model.json -o -name recipe.json -o -name train_log.csv \) \
    | sort | tar cf /tmp/study_runs.tar -T - && split -b 15m -d /tmp/study_runs.tar "$OUT/study_runs.tar.part"
fi

if stage throughput; then
  since "== throughput: eager vs fast forms (AWSRN-S x4, batch 16, 48 px)"
  timeout "${THROUGHPUT_S:-150}" $CLI bench train-throughput --data "$DATA" --device "$DEVICE" \
    --fast-iters "${SPEED_ITERS:-1000}" --eager-iters $(( ${SPEED_ITERS:-1000} / 5 )) --out results
fi

since "== pack: the files this call wrote under results/"
find results -newer /tmp/gpu_stamp -type f | sort > /tmp/gpu_files
cat /tmp/gpu_files
tar cf "$OUT/results.tar" -T /tmp/gpu_files
since "done"
