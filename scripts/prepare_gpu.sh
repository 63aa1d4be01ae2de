#!/usr/bin/env bash
# Fill .gpu/ (ignored by git) with what a GPU machine needs and cannot fetch: the CIFAR-10 tarball, the
# `ofa` wheel (the machine has torch but no package registry) and, optionally, a training state to continue.
#   scripts/prepare_gpu.sh                      # tarball + wheel (and no stale state)
#   scripts/prepare_gpu.sh --resume-from DIR    # + DIR's supernet.pt, momentum.pt, progress.json -> .gpu/resume/
# Then copy the checkout with .gpu/ to the GPU machine and run scripts/gpu_job.sh there (experiments/README.md).
# Idempotent; fails if .gpu/ exceeds 64 MiB.
set -euo pipefail
RESUME=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --resume-from) RESUME="$(realpath "${2:?--resume-from needs a folder}")"; shift 2 ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "prepare_gpu.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
TARBALL="$(realpath "${DYNOFA_TARBALL:-$(dirname "$0")/../../shared/data/cifar10-jpeg.tar.gz}")"
cd "$(dirname "$0")/.."
[[ -f "$TARBALL" ]] || { echo "prepare_gpu.sh: CIFAR-10 tarball not found: $TARBALL" >&2; exit 2; }
mkdir -p .gpu
cmp -s "$TARBALL" .gpu/cifar10-jpeg.tar.gz || cp "$TARBALL" .gpu/cifar10-jpeg.tar.gz
OFA=$(grep '^ofa==' requirements.txt)
if ! ls .gpu/ofa-"${OFA#ofa==}"-*.whl >/dev/null 2>&1; then
  python3 -m pip download -q --no-deps --only-binary=:all: -d .gpu "$OFA"
fi
rm -rf .gpu/resume
if [[ -n "$RESUME" ]]; then
  for f in supernet.pt momentum.pt progress.json; do
    [[ -f "$RESUME/$f" ]] || { echo "prepare_gpu.sh: $RESUME/$f missing (a training state needs all three)" >&2; exit 2; }
  done
  mkdir -p .gpu/resume
  cp "$RESUME"/supernet.pt "$RESUME"/momentum.pt "$RESUME"/progress.json .gpu/resume/
fi
# what a device call sends: tracked files, untracked files git does not ignore, and the carried .gpu/
python3 - <<'PY'
import os, subprocess
files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], check=True,
                       capture_output=True, text=True).stdout.split("\0")
tree = sum(os.path.getsize(f) for f in files if f and os.path.isfile(f))
gpu = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(".gpu") for f in fs)
total, limit = tree + gpu, 64 * 2**20
print(f"travels: {total / 2**20:.1f} MiB (working tree {tree / 2**20:.1f} + .gpu {gpu / 2**20:.1f}) of {limit / 2**20:.0f} MiB")
raise SystemExit(0 if total <= limit else f"prepare_gpu.sh: {total / 2**20:.1f} MiB would travel, over the limit")
PY
