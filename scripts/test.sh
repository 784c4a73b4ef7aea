#!/usr/bin/env bash
# Runs every test of the workspace (unit, property, integration with real servers).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
# Incremental caches only help edit-rebuild loops; in a test run they only fill the disk
# (tens of GB in the shared target folder over a day of work).
export CARGO_INCREMENTAL=0
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
# No import cycle between the modules of any crate.
python3 scripts/module-cycles.py
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
  cargo test --workspace --doc
else
  cargo test --workspace --no-fail-fast "$@"
fi
deploy/check/run.sh
# Regression guard on the comparison's ordering: the fixed synthetic set, 1 seed, 8 epochs
# (about 2 minutes); fails unless MAP orders teacher > student + RD > student alone.
QUICK_DIR="$(mktemp -d)"
trap 'rm -rf "$QUICK_DIR"' EXIT
RD_COMPARE_DIR="$QUICK_DIR" scripts/compare.sh --quick
# The images, built here without a registry, and the whole loop across containers (about
# 3 minutes warm); skipped with a message where no Docker engine can be had.
deploy/images/e2e.sh
