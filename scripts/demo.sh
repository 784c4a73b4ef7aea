#!/usr/bin/env bash
# The whole loop on the embedded default dataset (synthetic, generated from a seed):
# generate -> prepare -> baselines -> train the teacher -> serve it with teacher-svc ->
# distill a half-size student from its gRPC ranking stream -> compare.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
SEED="${RD_SEED:-42}"
RUN="${RD_DEMO_DIR:-runs/demo}"
EPOCHS="${RD_DEMO_EPOCHS:-12}"
cargo build --workspace --bins
BIN="$CARGO_TARGET_DIR/debug"

echo "== 1. generate the synthetic dataset (seed $SEED)"
"$BIN/trainer" gen-synthetic --out "$RUN/u.data" --seed "$SEED"
echo "== 2. prepare: per user, time order, last 20% to test"
"$BIN/trainer" prepare --input "$RUN/u.data" --out "$RUN/data"
echo "== 3. baselines"
"$BIN/trainer" evaluate --data "$RUN/data" --model random --seed "$SEED" --json "$RUN/random.json"
"$BIN/trainer" evaluate --data "$RUN/data" --model pop --json "$RUN/pop.json"
echo "== 4. train the teacher (Caser d=100) and, for comparison, the student alone (Caser d=25)"
"$BIN/trainer" train --data "$RUN/data" --out "$RUN/teacher" --model caser --dim 100 --epochs "$EPOCHS" --seed "$SEED"
"$BIN/trainer" train --data "$RUN/data" --out "$RUN/student-alone" --model caser --dim 25 --epochs "$EPOCHS" --seed "$SEED"
echo "== 5. serve the teacher with teacher-svc"
"$BIN/teacher-svc" --data "$RUN/data" --model "$RUN/teacher" --addr 127.0.0.1:0 \
  --metrics-addr 127.0.0.1:0 --device cpu > "$RUN/teacher-svc.log" 2>&1 &
TEACHER_PID=$!
trap 'kill $TEACHER_PID 2>/dev/null || true' EXIT
for _ in $(seq 150); do grep -q "listening on" "$RUN/teacher-svc.log" && break; sleep 0.2; done
ADDR=$(awk '/listening on/ {print $3; exit}' "$RUN/teacher-svc.log")
echo "teacher-svc listening on $ADDR"
echo "== 6. distill the student (Caser d=25) from the teacher's StreamRankings"
"$BIN/trainer" distill --data "$RUN/data" --teacher "$ADDR" --out "$RUN/student-rd" \
  --cache-dir "$RUN/cache" --model caser --dim 25 --epochs "$EPOCHS" \
  --dynamic-start-epoch $((EPOCHS / 2)) --seed "$SEED"
kill "$TEACHER_PID"; wait "$TEACHER_PID" 2>/dev/null || true; trap - EXIT
echo "== 7. compare"
"$BIN/trainer" report --group "teacher=$RUN/teacher" --group "student alone=$RUN/student-alone" \
  --group "student + RD=$RUN/student-rd" --out "$RUN/report.md" --json "$RUN/report.json"
echo "demo done: results in $RUN/ (report.md, student-rd/ is the student artifact)"
