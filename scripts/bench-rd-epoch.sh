#!/usr/bin/env bash
# Seconds per hybrid RD distillation epoch on ML-100K (issue #15), with the loop's phase
# profile, written as JSON. A Caser d=100 teacher is trained one epoch (speed does not depend
# on its quality) and served by teacher-svc; its rankings are pulled once into the cache; then
# `trainer distill` (Caser d=50, reference defaults, hybrid weights) runs RD_EPOCHS epochs with
# the rank estimate from the first one (--dynamic-start-epoch 0), for each binary folder in
# RD_BINS in turn, RD_ROUNDS rounds (drift on a shared machine hits them alike). The figure is
# the minimum epoch time per binary folder; the phases are those of that epoch.
#
#   scripts/bench-rd-epoch.sh   # RD_BINS (the release build; e.g. "/tmp/before $CARGO_TARGET_DIR/release"
#                               # to compare binaries), RD_EPOCHS (3), RD_ROUNDS (1), RD_THREADS
#                               # (LibTorch threads; unset: its default), RD_ML100K (u.data),
#                               # RD_BENCH_DIR (runs/bench-rd); writes $RD_BENCH_DIR/rd-epoch.json
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
OUT="${RD_BENCH_DIR:-runs/bench-rd}"
EPOCHS="${RD_EPOCHS:-3}"
ROUNDS="${RD_ROUNDS:-1}"
ML="${RD_ML100K:-$RD_SHARED_DATA/ml-100k/u.data}"
if [ -z "${RD_BINS:-}" ]; then
  cargo build --release -p rankdistill-trainer -p rankdistill-teacher --bins
  RD_BINS="$CARGO_TARGET_DIR/release"
fi
FIRST="${RD_BINS%% *}"
if [ -n "${RD_THREADS:-}" ]; then export OMP_NUM_THREADS="$RD_THREADS" MKL_NUM_THREADS="$RD_THREADS"; fi
mkdir -p "$OUT/runs"
[ -f "$OUT/data/manifest.json" ] || "$FIRST/trainer" -q prepare --input "$ML" --out "$OUT/data"
[ -f "$OUT/teacher/manifest.json" ] || "$FIRST/trainer" -q train --data "$OUT/data" --out "$OUT/teacher" --epochs 1

"$FIRST/teacher-svc" --data "$OUT/data" --model "$OUT/teacher" --addr 127.0.0.1:0 \
  --metrics-addr 127.0.0.1:0 --device cpu > "$OUT/teacher-svc.log" 2>&1 &
SVC=$!
trap 'kill $SVC 2>/dev/null || true' EXIT
for _ in $(seq 300); do grep -q "listening on" "$OUT/teacher-svc.log" && break; sleep 0.2; done
ADDR=$(awk '/listening on/ {print $3; exit}' "$OUT/teacher-svc.log")
[ -n "$ADDR" ] || { echo "teacher-svc did not start; see $OUT/teacher-svc.log" >&2; exit 1; }

RUNS=()
for round in $(seq "$ROUNDS"); do
  i=0
  for bin in $RD_BINS; do
    i=$((i + 1))
    json="$OUT/runs/bin$i-round$round.json"
    "$bin/trainer" -q distill --data "$OUT/data" --out "$OUT/student" --teacher "$ADDR" \
      --cache-dir "$OUT/cache" --epochs "$EPOCHS" --dynamic-start-epoch 0 --json "$json" > /dev/null
    RUNS+=("$bin=$json")
  done
done
python3 - "$OUT/rd-epoch.json" "${OMP_NUM_THREADS:-default}" "${RUNS[@]}" <<'EOF'
import json, sys
out, threads, runs = sys.argv[1], sys.argv[2], sys.argv[3:]
by_bin = {}
for run in runs:
    binary, path = run.split("=", 1)
    j = json.load(open(path))
    phases = j.get("epoch_phases") or [None] * len(j["history"])
    for record, phase in zip(j["history"], phases):
        by_bin.setdefault(binary, []).append(
            {"seconds": record["seconds"], "phases": phase, "map": j["metrics"]["map"]})
results = []
for binary, epochs in by_bin.items():
    best = min(epochs, key=lambda e: e["seconds"])
    results.append({"binary": binary, "epochs": len(epochs),
                    "min_seconds_per_epoch": best["seconds"],
                    "epoch_seconds": [e["seconds"] for e in epochs],
                    "phases_of_fastest_epoch": best["phases"],
                    "map": sorted({e["map"] for e in epochs})})
doc = {"benchmark": "rd-epoch", "dataset": "ml-100k", "method": "rd hybrid (dynamic from epoch 1)",
       "student": "caser d=50", "threads": threads, "results": results}
json.dump(doc, open(out, "w"), indent=2)
print(json.dumps(doc, indent=2))
print("wrote", out)
EOF
