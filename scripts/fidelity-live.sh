#!/usr/bin/env bash
# Live fidelity of served students to a served teacher, measured twice in one run: by
# student-svc's shadow path (--shadow-teacher, --shadow-fraction 1) and by `trainer fidelity`,
# which asks both services for the same users (every user of the dataset, each once).
# Usage: scripts/fidelity-live.sh DATA TEACHER NAME=STUDENT...
#   e.g. scripts/fidelity-live.sh runs/compare/data runs/compare/teacher-s1 \
#          alone=runs/compare/alone-d50-s1 rd=runs/compare/rd-d50-s1
# Writes RD_BENCH_DIR (runs/fidelity)/NAME.json per student and prints a table.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 3 ] || { sed -n '2,8p' "$0"; exit 2; }
DATA="$1" TEACHER="$2"; shift 2
export RD_BENCH_DIR="${RD_BENCH_DIR:-runs/fidelity}"
source scripts/bench-common.sh
serve teacher "$BIN/teacher-svc" --data "$DATA" --model "$TEACHER" --addr 127.0.0.1:0 \
  --metrics-addr 127.0.0.1:0 --device cpu
TEACHER_ADDR="$SERVED_ADDR"
for spec in "$@"; do
  name="${spec%%=*}" student="${spec#*=}"
  serve "student-$name" "$BIN/student-svc" --data "$DATA" --model "$student" --addr 127.0.0.1:0 \
    --metrics-addr 127.0.0.1:0 --shadow-teacher "http://$TEACHER_ADDR" --shadow-fraction 1
  "$BIN/trainer" fidelity --data "$DATA" --student "$SERVED_ADDR" --teacher "$TEACHER_ADDR" \
    --json "$OUT/$name.json" | sed "s/^/$name: /"
  kill "$SERVED_PID"
done
