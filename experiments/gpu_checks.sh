#!/usr/bin/env bash
# The GPU checks, each step under its own timeout:
#   bash experiments/gpu_checks.sh [OUT_DIR] [STEPS]
# STEPS is a comma-separated choice of (default: all of them, in this order)
#   tests       the gpu-marked tests                                     (TESTS_TIMEOUT, 180 s)
#   training    the training benchmark beside the reference SupCon loop: ResNet-50 pair, batch
#               1024, bf16 both (the reference in bf16 autocast), compiled (TRAINING_TIMEOUT, 220 s)
#   cifar       the per-epoch analysis benchmark at CIFAR-10 and CIFAR-100 scale, with intervals
#               (CIFAR_TIMEOUT, 90 s each)
#   imagenet32  the one-GPU analysis at the ImageNet32 shape (K = 1000, d = 2048, 50,000 test
#               rows) over N = 100,000 class-balanced training rows and over N = 300,000, each
#               in a fresh process with its time, peak memory and the modelled memory per rank
#               (--world 1) (ANALYSIS_TIMEOUT, 100 s at 100k and 180 s at 300k when unset)
# All of it needs about 15 minutes of limits; a session with 15 minutes of device time runs
# two commands, e.g. STEPS=tests,training then cifar,imagenet32, and says which it ran. The
# figures taken so far are in README.md (Speed). Logs go to OUT_DIR, with each
# step's seconds in OUT_DIR/summary.txt. Exits non-zero when a GPU test fails, when no GPU test
# ran (no CUDA: everything skipped), or when a benchmark fails or runs past its timeout.
set -euo pipefail
export PYTHONUNBUFFERED=1 WANDB_MODE=offline
out=${1:-${OUT:-gpu_checks}}
steps=,${2:-tests,training,cifar,imagenet32},
for want in ${steps//,/ }; do
  case $want in
    tests | training | cifar | imagenet32) ;;
    *) echo "unknown step '$want': choose from tests, training, cifar, imagenet32" >&2; exit 2 ;;
  esac
done
chosen() { [[ $steps == *",$1,"* ]]; }
mkdir -p "$out"
py=${PYTHON:-python3}
status=0
step() {  # step NAME LOG LIMIT COMMAND...: run under a timeout, tee to the log, time it,
  # remember a failure (124: past its limit), go on
  local name=$1 log=$2 limit=$3 start rc=0
  shift 3
  echo "== $name" | tee "$out/$log"
  start=$(date +%s)
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$out/$log" || rc=${PIPESTATUS[0]}
  echo "$name: rc $rc, $(($(date +%s) - start)) s (limit $limit s)" | tee -a "$out/summary.txt"
  if [ "$rc" != 0 ]; then
    echo "FAILED: $name (see $out/$log)" | tee -a "$out/summary.txt"
    status=1
  fi
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
"$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" |
  tee -a "$out/gpu.txt"
if chosen tests; then
  step "gpu tests" gpu_tests.log "${TESTS_TIMEOUT:-180}" \
    "$py" -m pytest -m gpu -q -rs -p no:cacheprovider tests --junitxml="$out/gpu_tests.xml"
  # every selected test skipped means no CUDA reached the tests: that is a failure here
  if ! "$py" - "$out/gpu_tests.xml" <<'PY'
import sys
import xml.etree.ElementTree as ET
suite = ET.parse(sys.argv[1]).getroot()
suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
ran = int(suite.get("tests", 0)) - int(suite.get("skipped", 0))
print(f"gpu tests that ran: {ran} of {suite.get('tests')}")
sys.exit(0 if ran > 0 else 1)
PY
  then
    echo "FAILED: no GPU test ran (all skipped: no CUDA?)" | tee -a "$out/summary.txt"
    status=1
  fi
fi
if chosen training; then
  step "training benchmark (ncib vs the reference loop)" training_benchmark.log \
    "${TRAINING_TIMEOUT:-220}" "$py" experiments/benchmarks/training.py --device cuda \
    --backbone resnet50 --batch-size 1024 --steps 20 --round-steps 10 --reference \
    --reference-amp bf16 --settle 4 --compile --compile-augment
fi
if chosen cifar; then
  step "analysis benchmark, CIFAR-10 scale" analysis_benchmark_cifar10.log \
    "${CIFAR_TIMEOUT:-90}" "$py" experiments/benchmarks/analysis.py --device cuda --skip-baseline
  step "analysis benchmark, CIFAR-100 scale" analysis_benchmark_cifar100.log \
    "${CIFAR_TIMEOUT:-90}" "$py" experiments/benchmarks/analysis.py --device cuda --skip-baseline \
    --classes 100
fi
if chosen imagenet32; then
  step "analysis benchmark, ImageNet32 shape, N = 100k class-balanced (K = 1000)" \
    analysis_benchmark_imagenet32.log "${ANALYSIS_TIMEOUT:-100}" \
    "$py" experiments/benchmarks/analysis.py --device cuda --world 1 --balanced --classes 1000 \
    --n-train 100000 --n-test 50000
  step "analysis benchmark, ImageNet32 shape, N = 300k (K = 1000)" \
    analysis_benchmark_imagenet32_300k.log "${ANALYSIS_TIMEOUT:-180}" \
    "$py" experiments/benchmarks/analysis.py --device cuda --world 1 --balanced --classes 1000 \
    --n-train 300000 --n-test 50000
fi
exit $status
