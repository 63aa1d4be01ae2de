#!/usr/bin/env bash
# Fill .gpu/ (ignored by git) with what a lent GPU machine needs and cannot fetch: the CIFAR-10 tarball, the
# `ofa` wheel (the machine has torch but no package registry) and, optionally, a training state to continue.
#   scripts/prepare_gpu.sh                      # tarball + wheel
#   scripts/prepare_gpu.sh --resume-from DIR    # + DIR's supernet.pt, momentum.pt, progress.json -> .gpu/resume/
# Then run(carry=[".gpu"], ...) as docs/TRAINING.md shows. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
RESUME=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --resume-from) RESUME="${2:?--resume-from needs a folder}"; shift 2 ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "prepare_gpu.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
TARBALL="${DYNOFA_TARBALL:-../shared/data/cifar10-jpeg.tar.gz}"
[[ -f "$TARBALL" ]] || { echo "prepare_gpu.sh: CIFAR-10 tarball not found: $TARBALL" >&2; exit 2; }
mkdir -p .gpu
cmp -s "$TARBALL" .gpu/cifar10-jpeg.tar.gz || cp "$TARBALL" .gpu/cifar10-jpeg.tar.gz
OFA=$(grep '^ofa==' requirements.txt)
if ! ls .gpu/ofa-"${OFA#ofa==}"-*.whl >/dev/null 2>&1; then
  python3 -m pip download -q --no-deps --only-binary=:all: -d .gpu "$OFA"
fi
if [[ -n "$RESUME" ]]; then
  for f in supernet.pt momentum.pt progress.json; do
    [[ -f "$RESUME/$f" ]] || { echo "prepare_gpu.sh: $RESUME/$f missing (a training state needs all three)" >&2; exit 2; }
  done
  mkdir -p .gpu/resume
  cp "$RESUME"/supernet.pt "$RESUME"/momentum.pt "$RESUME"/progress.json .gpu/resume/
fi
du -sh .gpu
git ls-files -z | xargs -0 du -cb | tail -1 | awk '{printf "tracked files: %.1f MB (with .gpu, the working tree that travels must stay under 64 MiB)\n", $1/1e6}'
