#!/usr/bin/env bash
# The paper's three-way comparison on MovieLens-100K: teacher Caser d=100, student Caser d=50
# alone, student + RD (hybrid), student + RD (position only), and student + RD (hybrid) with the
# user's seen items excluded from the teacher's rankings; 3 seeds each, 30 epochs.
# Outputs the report folder runs/compare/report/ (report.md, report.html, charts) and
# runs/compare/report.json. Existing finished runs are reused.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
UDATA="${RD_ML100K:-$RD_SHARED_DATA/ml-100k/u.data}"
OUT="${RD_COMPARE_DIR:-runs/compare}"
EPOCHS="${RD_EPOCHS:-30}"
SEEDS="${RD_SEEDS:-1 2 3}"
cargo build -p rankdistill-trainer -p rankdistill-teacher --bins
BIN="$CARGO_TARGET_DIR/debug"  # dev profile: optimised (see Cargo.toml), LibTorch does the heavy work
mkdir -p "$OUT"
[ -f "$OUT/data/manifest.json" ] || "$BIN/trainer" prepare --input "$UDATA" --out "$OUT/data"
run() { # run OUTDIR CMD...: skip finished runs; MAP of every epoch for the learning curves
  local dir="$1"; shift
  if [ -f "$dir/manifest.json" ]; then echo "reusing $dir"; else "$@" --out "$dir" --data "$OUT/data" --epochs "$EPOCHS" --eval-every 1; fi
}
for s in $SEEDS; do run "$OUT/teacher-s$s" "$BIN/trainer" train --model caser --dim 100 --seed "$s"; done
for s in $SEEDS; do run "$OUT/student-s$s" "$BIN/trainer" train --model caser --dim 50 --seed "$s"; done

"$BIN/teacher-svc" --data "$OUT/data" --model "$OUT/teacher-s1" --addr 127.0.0.1:0 \
  --metrics-addr 127.0.0.1:0 --device cpu > "$OUT/teacher-svc.log" 2>&1 &
TEACHER_PID=$!
trap 'kill $TEACHER_PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q "listening on" "$OUT/teacher-svc.log" && break; sleep 0.2; done
ADDR=$(awk '/listening on/ {print $3; exit}' "$OUT/teacher-svc.log")
for s in $SEEDS; do
  run "$OUT/rd-hybrid-s$s" "$BIN/trainer" distill --teacher "$ADDR" --cache-dir "$OUT/cache" \
    --model caser --dim 50 --seed "$s" --weighting hybrid
  run "$OUT/rd-position-s$s" "$BIN/trainer" distill --teacher "$ADDR" --cache-dir "$OUT/cache" \
    --model caser --dim 50 --seed "$s" --weighting position
  # method.md: teacher rankings that also leave out the user's other training items.
  run "$OUT/rd-hybrid-noseen-s$s" "$BIN/trainer" distill --teacher "$ADDR" --cache-dir "$OUT/cache" \
    --model caser --dim 50 --seed "$s" --weighting hybrid --exclude-seen true
done
dirs() { local prefix="$1" out=""; for s in $SEEDS; do out="$out${out:+,}$OUT/$prefix-s$s"; done; echo "$out"; }
"$BIN/trainer" report \
  --group "teacher Caser d=100=$(dirs teacher)" \
  --group "student Caser d=50=$(dirs student)" \
  --group "student + RD hybrid=$(dirs rd-hybrid)" \
  --group "student + RD position=$(dirs rd-position)" \
  --group "student + RD hybrid, seen items excluded=$(dirs rd-hybrid-noseen)" \
  --out "$OUT/report" --html --json "$OUT/report.json"
echo "report: $OUT/report/report.md"
