#!/usr/bin/env bash
# GPU reproducibility check, for a machine with an NVIDIA GPU (under 5 minutes):
#   1. set up .venv (torch 2.13.0; with a GPU present pip must get a CUDA build: see README),
#   2. run the pipeline on cuda in a scratch copy and compare against the committed CPU results,
#   3. run every backend on cpu and cuda and require agreement within the compare tolerances,
#   4. print the table (reports/check.md).
# Exit code: that of ./pipeline check (0 pass, 1 backends differ, 4 drift, 5 stale, 6 broken).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
export CUBLAS_WORKSPACE_CONFIG=:4096:8
start=$(date +%s)
status=0
./pipeline check --devices cpu,cuda --keep || status=$?
echo "gpu_check: ./pipeline check exited $status after $(( $(date +%s) - start )) s"
sed -n '/## Across devices/,/## Environment/p' reports/check.md
exit "$status"
