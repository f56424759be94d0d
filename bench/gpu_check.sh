#!/usr/bin/env bash
# GPU reproducibility check, for a machine with an NVIDIA GPU (under 5 minutes):
#   1. set up .venv with torch 2.13.0's CUDA build from PyPI (ADALINE_TORCH=cuda: docs/dependencies.md),
#   2. run the pipeline from scratch on cpu and on cuda, each against the committed CPU results
#      (cpu: identical bytes expected; cuda: within tolerance, explained by the device),
#   3. require every backend to agree across the two devices within the compare tolerances,
#   4. print each device's outcome and the CPU-CUDA table (from reports/check.md),
#   5. run a 20-trial sweep, 10 seeds on cpu and the same 10 on cuda, and print its agreement table.
# Exit code: that of ./pipeline check (0 pass, 1 backends differ, 4 drift, 5 stale, 6 broken), else the sweep's.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CUBLAS_WORKSPACE_CONFIG=:4096:8 ADALINE_TORCH=cuda
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
start=$(date +%s)
status=0
./pipeline check --devices cpu,cuda --keep >/dev/null || status=$?
echo "gpu_check: ./pipeline check exited $status after $(( $(date +%s) - start )) s"
grep -E '^## (cpu|cuda)|^\*\*(Identical|Within tolerance|Drift)\*\*|^Expected, because' reports/check.md || true
sed -n '/## Across devices/,/## Environment/p' reports/check.md
# 20 sweep trials, 10 shuffle seeds on each device: cuda trials ask Ray for the GPU (num_gpus=1). The table's
# device, seed, verdict and largest difference in tolerance units, side by side.
sweep_status=0
./pipeline sweep -S 'train.seed=range(1,11)' -S train.device=cpu,cuda --no-log | tail -1 || sweep_status=$?
table="$(ls -td sweeps/*/ | head -1)trials.csv"
if command -v column >/dev/null; then cut -d, -f2-5 "$table" | column -s, -t; else cut -d, -f2-5 "$table"; fi
echo "gpu_check: ./pipeline sweep exited $sweep_status"
exit $(( status ? status : sweep_status ))
