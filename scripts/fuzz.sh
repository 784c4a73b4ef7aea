#!/usr/bin/env bash
# The long fuzzing budget: every proptest property of the parsers, the artifact loader and
# the services' request validation with PROPTEST_CASES cases each (CI runs a small fixed
# budget). Failing seeds are written beside the test files (*.proptest-regressions) and
# replayed first from then on; commit them, and add a crafted input to core/tests/corpus/.
#
#   scripts/fuzz.sh                 # PROPTEST_CASES=20000
#   PROPTEST_CASES=200000 scripts/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
export PROPTEST_CASES="${PROPTEST_CASES:-20000}"
echo "== fuzzing with PROPTEST_CASES=$PROPTEST_CASES"
started=$(date +%s)
cargo nextest run --no-fail-fast \
  -p rankdistill-core --test fuzz \
  -p rankdistill-student --test fuzz_validation \
  -p rankdistill-teacher --test fuzz_validation
# The unit-level properties of the crates (parsers, split, top-k, kernels, int8 scan).
cargo nextest run --no-fail-fast -p rankdistill-core -p rankdistill-student --lib
echo "== fuzzing done in $(( $(date +%s) - started ))s"
