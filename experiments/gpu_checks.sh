#!/usr/bin/env bash
# The GPU checks, in one short run (about 5 minutes on one H200):
#   bash experiments/gpu_checks.sh [OUT_DIR]
# gpu-marked tests, the training throughput benchmark (ResNet-50 pair, batch 1024, bf16) and
# the per-epoch analysis benchmark at CIFAR-10 and CIFAR-100 scale. Logs go to OUT_DIR.
set -uo pipefail
export PYTHONUNBUFFERED=1 WANDB_MODE=offline
out=${1:-${OUT:-gpu_checks}}
mkdir -p "$out"
py=${PYTHON:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
"$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$out/gpu.txt"
"$py" -m pytest -m gpu -q -p no:cacheprovider tests 2>&1 | tee "$out/gpu_tests.log"
"$py" experiments/benchmarks/training.py --device cuda --backbone resnet50 --batch-size 1024 --steps 20 2>&1 | tee "$out/training_benchmark.log"
"$py" experiments/benchmarks/analysis.py --device cuda --skip-baseline 2>&1 | tee "$out/analysis_benchmark_cifar10.log"
"$py" experiments/benchmarks/analysis.py --device cuda --skip-baseline --classes 100 2>&1 | tee "$out/analysis_benchmark_cifar100.log"
