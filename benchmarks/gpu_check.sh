#!/usr/bin/env bash
# Issue 12's GPU check in one go: at most 8 minutes of one CUDA GPU (sized for an H200) on a
# machine with torch, numpy and scipy but without Ray or Optuna, and nothing to install.
#
#   1. the pretraining step of the phc reference model (batch 768 = the reference's 512 target
#      + 256 surrogate inputs), bf16 autocast + channels-last, eager and torch.compile'd:
#      inputs/s and MFU (target: >= 35 % of the chip's bf16 peak);
#   2. the same for the tise 3D reference model (batch 192 = 128 + 64);
#   3. batched invariance transforms against per-sample loops with the data on the GPU,
#      256x32^3 among the batches (target: >= 50x a per-sample loop);
#   4. the other models, eager, for completeness.
# Each step runs under `timeout` (the limits add up to 7.5 minutes), so a step that hangs or
# runs long costs only its own slot; the script's exit status is 1 if any step failed.
#
#   bash benchmarks/gpu_check.sh          # from anywhere; writes to $OUT if set, else ./gpu_check_out
#
# Everything lands in that folder: gpu_check.log (all output, step by step) and one JSON per
# benchmark (benchmarks/results_file.py's format, the machine description included).
set -u -o pipefail
cd "$(dirname "$0")/.."
out="${OUT:-./gpu_check_out}"
mkdir -p "$out"
log="$out/gpu_check.log"
py="${PYTHON:-python3}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
status=0

step() {  # step NAME SECONDS COMMAND...: run COMMAND under a time limit, its output into the log
    local name=$1 limit=$2 start=$SECONDS rc
    shift 2
    echo "== $name (at most ${limit} s): $*" | tee -a "$log"
    timeout --kill-after=5 "$limit" "$@" 2>&1 | tee -a "$log"
    rc=${PIPESTATUS[0]}
    echo "== $name: exit $rc after $((SECONDS - start)) s" | tee -a "$log"
    [ "$rc" -eq 0 ] || status=1
}

step environment 20 "$py" -c "
import importlib.util, sys, torch
print('python', sys.version.split()[0], '| torch', torch.__version__, '| CUDA', torch.version.cuda,
      '| GPU', torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
print('ray importable:', importlib.util.find_spec('ray') is not None, '(not needed)')
"
step "phc reference, bf16 + channels-last, eager and compiled" 130 \
    "$py" benchmarks/bench_training.py --no-ray --devices cuda --cells phc:reference --batch 768 --compile both \
    --json "$out/training_phc_reference.json"
step "tise 3D reference, bf16 + channels-last, eager and compiled" 160 \
    "$py" benchmarks/bench_training.py --no-ray --devices cuda --cells tise3d:reference --batch 192 --compile both \
    --json "$out/training_tise3d_reference.json"
step "batched transforms vs per-sample loops on the GPU" 70 \
    "$py" benchmarks/bench_transforms.py --device cuda --json "$out/transforms_cuda.json"
step "small models and tise 2D reference, eager" 60 \
    "$py" benchmarks/bench_training.py --no-ray --devices cuda --cells phc:small tise2d:small tise2d:reference \
    tise3d:small --batch 192 --json "$out/training_others.json"
echo "gpu_check: $([ "$status" -eq 0 ] && echo 'every step finished' || echo 'a step failed or timed out'); see $log" | tee -a "$log"
exit "$status"
