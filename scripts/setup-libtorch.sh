#!/usr/bin/env bash
# Installs LibTorch 2.13.0 (the version tch 0.26 needs) from the PyPI torch wheel into a cache
# folder outside the clone, so CI and later builds reuse it. Idempotent: when the marker file
# and the key libraries are present it returns at once.
set -euo pipefail

TORCH_VERSION=2.13.0
CACHE_ROOT="${RANKDISTILL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rankdistill}"
DEST="$CACHE_ROOT/libtorch-$TORCH_VERSION"
MARKER="$DEST/.installed"

if [[ -f "$MARKER" && -f "$DEST/torch/lib/libtorch_cpu.so" && -f "$DEST/torch/include/torch/script.h" ]]; then
  echo "$DEST/torch"
  exit 0
fi

echo "installing LibTorch $TORCH_VERSION into $DEST (about 540 MB download)" >&2
mkdir -p "$CACHE_ROOT"
staging="$(mktemp -d "$CACHE_ROOT/.libtorch-staging.XXXXXX")"
trap 'rm -rf "$staging"' EXIT
python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$staging" \
  "torch==$TORCH_VERSION" nvidia-cuda-runtime==13.0.96 nvidia-cuda-cupti==13.0.85 >&2
test -f "$staging/torch/lib/libtorch_cpu.so"
touch "$staging/.installed"
rm -rf "$DEST"
mv "$staging" "$DEST"
trap - EXIT
echo "$DEST/torch"
