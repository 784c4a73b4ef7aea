#!/usr/bin/env bash
# The d=50 three-way of scripts/compare.sh again with another BCE balance on every model:
#   scripts/compare-bce.sh [mean|sum]   (default mean)
# Same split (runs/compare/data), seeds 1-3, 30 epochs, and the RD settings compare.sh chose on
# validation (runs/compare/search-rd-d50/choice.json; run compare.sh first). Two runs at a time
# with one LibTorch thread each. Writes runs/compare-bce-FORM/ and its report.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
FORM="${1:-mean}"
case "$FORM" in mean|sum) ;; *) echo "use mean or sum, not '$FORM'" >&2; exit 2 ;; esac
CHOICE=runs/compare/search-rd-d50/choice.json
[ -f "$CHOICE" ] || { echo "$CHOICE is missing: run scripts/compare.sh first" >&2; exit 1; }
if [ -n "${RD_BIN:-}" ]; then B="$RD_BIN"; else
  cargo build -p rankdistill-trainer -p rankdistill-teacher --bins; B="$CARGO_TARGET_DIR/debug"; fi
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
O="runs/compare-bce-$FORM" D=runs/compare/data
mkdir -p "$O/logs"
RD="$(python3 -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))["flags"]))' "$CHOICE")"
t() { [ -f "$O/$1/manifest.json" ] || "$B/trainer" train --data "$D" --out "$O/$1" --bce "$FORM" \
  --eval-every 1 --epochs 30 "${@:2}" > "$O/logs/$1.out" 2> "$O/logs/$1.log"; }
# pair A B: run the commands A and B side by side (each a quoted word list); fail if either does.
pair() { eval "$1" & local pid=$!; eval "$2"; wait "$pid"; }
pair "t teacher-s1 --seed 1 --dim 100" "t teacher-s2 --seed 2 --dim 100"
pair "t teacher-s3 --seed 3 --dim 100" "t alone-s1 --seed 1 --dim 50"
pair "t alone-s2 --seed 2 --dim 50" "t alone-s3 --seed 3 --dim 50"
"$B/teacher-svc" --data "$D" --model "$O/teacher-s1" --addr 127.0.0.1:0 --metrics-addr 127.0.0.1:0 \
  --device cpu > "$O/logs/teacher-svc.log" 2>&1 &
SVC=$!
trap 'kill $SVC 2>/dev/null || true' EXIT
for _ in $(seq 300); do grep -q "listening on" "$O/logs/teacher-svc.log" && break; sleep 0.2; done
A=$(awk '/listening on/ {print $3; exit}' "$O/logs/teacher-svc.log")
# shellcheck disable=SC2086
r() { [ -f "$O/$1/manifest.json" ] || "$B/trainer" distill --data "$D" --teacher "$A" \
  --cache-dir "$O/cache" --out "$O/$1" --bce "$FORM" --eval-every 1 --dim 50 $RD "${@:2}" \
  > "$O/logs/$1.out" 2> "$O/logs/$1.log"; }
pair "r rd-s1 --seed 1" "r rd-s2 --seed 2"
r rd-s3 --seed 3
dirs() { echo "$O/$1-s1,$O/$1-s2,$O/$1-s3"; }
"$B/trainer" report --group "teacher Caser d=100, bce $FORM=$(dirs teacher)" \
  --group "student d=50 alone, bce $FORM=$(dirs alone)" \
  --group "student d=50 + RD, bce $FORM=$(dirs rd)" --out "$O/report"
