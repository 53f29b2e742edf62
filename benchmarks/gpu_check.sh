#!/usr/bin/env bash
# The first thing to run on a machine with an NVIDIA GPU: one command, one report.
#
#     bash benchmarks/gpu_check.sh [REPORT_FOLDER]     (default: $OUT, else gpu-check/)
#
# Steps, each under its own time limit so that one hang cannot eat the rest, each logged:
#   setup       tqdm from .carry/wheels if it is missing; real CIFAR-10 (JPEG q75) built from
#               .carry/data/cifar10-jpeg-q75.npz by .carry/tools/make_cifar10.py, if carried
#               (../shared/ does not travel to a lent machine: copy those two there)
#   versions    nvidia-smi, Python, NumPy, CuPy, PyTorch; python -m minran.cuda (CuPy, the GPU,
#               whether the kernels compile there, every kernel's registers)
#   gpu-tier    every gpu-marked test: each kernel against NumPy, cuBLAS against its
#               reference, a float64 whole-network step against the CPU's, the CUDA graph
#               against the eager step bit for bit, the memory pools steady
#   bench       Attention-92, batch 64: minran graph, eager, kernels off, PyTorch eager, TF32
#               off, alternated (benchmarks/gpu_bench.py)
#   train       python train_cifar.py --device gpu, one epoch of 10,000 real images
#   memcheck    compute-sanitizer memcheck on a tiny network's steps, every array its own
#               allocation
#   racecheck   compute-sanitizer racecheck on the same, graph included
# Without a GPU each step fails with its reason. Budget: about 7 minutes on an H100 or H200.
# The whole check stops within GPU_CHECK_BUDGET seconds (default 500, under a lent machine's
# 10-minute command): a step gets its own limit or what is left of the budget, whichever is
# less, and a step with under 20 s left is not started (reported as such).
set -u
cd "$(dirname "$0")/.."
out="${1:-${OUT:-gpu-check}}"
mkdir -p "$out"
report="$out/report.md"
logs="$out/logs.txt"
: > "$logs"
python=${PYTHON:-python3}
budget=${GPU_CHECK_BUDGET:-500}
{
  echo "# minran GPU check"
  echo
  echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)'), $(date -u '+%Y-%m-%d %H:%M UTC'), host $(hostname)"
  echo
  echo "| step | result | seconds |"
  echo "|---|---|---|"
} > "$report"
summary=""
failed=0

step() {   # step NAME SECONDS 'COMMAND': run it in bash (the functions below known), log it
  local name=$1 limit=$2 command=$3
  local start=$SECONDS left=$((budget - SECONDS))
  if [ $left -lt 20 ]; then
    echo "| $name | FAIL: not started, ${left} s left of the ${budget} s budget |  |" >> "$report"
    failed=$((failed + 1))
    return
  fi
  [ $limit -gt $left ] && limit=$left
  echo "===== $name: $command (limit ${limit}s)" >> "$logs"
  timeout --kill-after=10 "$limit" env out="$out" python="$python" \
    bash -c "$(declare -f setup versions train sanitizer); $command" > "$out/.step.log" 2>&1
  local rc=$?
  cat "$out/.step.log" >> "$logs"
  local took=$((SECONDS - start)) result
  if [ $rc -eq 0 ]; then
    result="pass"
  elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    result="FAIL: did not finish within ${limit} s"
    failed=$((failed + 1))
  else
    result="FAIL (exit $rc): $(grep -v '^\s*$' "$out/.step.log" | tail -n 1 | cut -c1-300 | tr '|' '/')"
    failed=$((failed + 1))
  fi
  echo "| $name | $result | $took |" >> "$report"
  summary="$summary"$'\n'"## $name"$'\n\n```\n'"$(tail -n 40 "$out/.step.log")"$'\n```\n'
  rm -f "$out/.step.log"
}

setup() {
  if ! "$python" -c "import tqdm" 2>/dev/null; then
    ls .carry/wheels/*.whl > /dev/null 2>&1 || { echo "tqdm missing and no wheel in .carry/wheels"; return 1; }
    "$python" -m pip install -q --no-index --no-deps .carry/wheels/*.whl || return 1
  fi
  if [ -f .carry/data/cifar10-jpeg-q75.npz ] && [ ! -d data/real/cifar-10-batches-py ]; then
    mkdir -p data/real   # the tool reads ../data/ beside its own folder
    "$python" .carry/tools/make_cifar10.py data/real > /dev/null || return 1
  fi
  "$python" -c "import numpy, tqdm; print('numpy', numpy.__version__, 'tqdm', tqdm.__version__)"
  if [ -d data/real/cifar-10-batches-py ]; then echo "real CIFAR-10 (JPEG q75) in data/real"; else echo "no CIFAR-10 carried: the train step will fail"; fi
}

versions() {
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "nvidia-smi: not found or failed"
  "$python" - <<'EOF'
import sys, platform
print("Python", sys.version.split()[0], platform.machine())
for name in ("numpy", "cupy", "torch"):
    try:
        module = __import__(name)
        print(name, module.__version__)
    except Exception as error:
        print(name, "not importable:", type(error).__name__, error)
EOF
  "$python" -m minran.cuda
}

train() {
  rm -rf "$out/train"
  "$python" train_cifar.py --device gpu --arch attention92 --epochs 1 --subset 10000 \
    --test-subset 2000 --data-dir data/real --out "$out/train" --no-progress || return 1
  cp "$out/train/log.csv" "$out/train-log.csv" 2>/dev/null
  rm -rf "$out/train"
}

sanitizer() {   # sanitizer TOOL [ARGS...]
  command -v compute-sanitizer > /dev/null || { echo "compute-sanitizer: not found"; return 1; }
  local tool=$1
  shift
  compute-sanitizer --tool "$tool" --error-exitcode 1 "$python" benchmarks/tiny_step.py "$@"
}

step setup 90 'setup'
step versions 120 'versions'
step gpu-tier 150 'MINRAN_REQUIRE_GPU=1 "$python" -m pytest -q -p no:cacheprovider -m gpu tests'
step bench 200 '"$python" benchmarks/gpu_bench.py --arch attention92 --batch 64 --rounds 2 \
  --steps 20 --warmup 5 --timeout 90 --json "$out/bench.json" \
  --configs minran-graph,minran-eager,minran-kernels-off,torch-eager'
step train 150 'train'
step memcheck 90 'sanitizer memcheck --no-pool'
step racecheck 90 'sanitizer racecheck'

{
  echo
  echo "$failed step(s) failed."
  echo "$summary"
} >> "$report"
echo "report: $report ($failed step(s) failed); every log: $logs"
[ $failed -eq 0 ]
