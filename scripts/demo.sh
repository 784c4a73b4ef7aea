#!/usr/bin/env bash
# The demo on the embedded default dataset (synthetic, generated from a seed):
# generate -> prepare -> evaluate the POP and random baselines.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
SEED="${RD_SEED:-42}"
RUN="${RD_DEMO_DIR:-runs/demo}"
cargo build --workspace --bins
TRAINER="$CARGO_TARGET_DIR/debug/trainer"

echo "== 1. generate the synthetic dataset (seed $SEED)"
"$TRAINER" gen-synthetic --out "$RUN/u.data" --seed "$SEED"
echo "== 2. prepare: split per user by time, last 20% to test"
"$TRAINER" prepare --input "$RUN/u.data" --out "$RUN/data"
echo "== 3. evaluate the baselines"
"$TRAINER" evaluate --data "$RUN/data" --model random --seed "$SEED" --json "$RUN/random.json"
"$TRAINER" evaluate --data "$RUN/data" --model pop --json "$RUN/pop.json"
echo "demo done: results in $RUN/"
