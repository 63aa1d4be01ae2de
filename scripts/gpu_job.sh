#!/usr/bin/env bash
# The one-shot GPU job (experiments/gpu_job.py), run from the repository root on a CUDA machine:
#   OUT=/some/dir scripts/gpu_job.sh [extra gpu_job options]
# Reads .gpu/cifar10-jpeg.tar.gz (override with DYNOFA_TARBALL); results go to the folder OUT names.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the output folder}"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "nvidia-smi unavailable"
exec python3 -m experiments.gpu_job --data "${DYNOFA_TARBALL:-.gpu/cifar10-jpeg.tar.gz}" \
    --cache-dir "${DYNOFA_CACHE:-/tmp/dynofa-cache}" --out "$OUT" "$@"
