#!/usr/bin/env bash
# The whole loop on one machine: prepare -> train the teacher -> teacher-svc -> distill over
# gRPC -> export the student -> student-svc -> query both -> compare quality, size and latency,
# and write a report folder (markdown, HTML, charts) whose path it prints at the end.
#
#   ./scripts/demo.sh                                   # embedded synthetic dataset (seeded)
#   ./scripts/demo.sh --data ../shared/data/ml-100k/u.data --epochs 30
#   ./scripts/demo.sh --users 5000 --items 3000 --seed 7
#
# Every process it starts is stopped when it ends, fails, or is interrupted (Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."

INPUT="" USERS=2000 ITEMS=1000 SEED="${RD_SEED:-42}" EPOCHS="${RD_DEMO_EPOCHS:-12}"
RUN="${RD_DEMO_DIR:-runs/demo}" TEACHER_DIM=100 STUDENT_DIM=25 LOAD_SECONDS=3
usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; echo "options: --data FILE --users N --items N --seed N --epochs N --teacher-dim D --student-dim D --out DIR"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --data) INPUT="$2"; shift 2 ;;
    --users) USERS="$2"; shift 2 ;;
    --items) ITEMS="$2"; shift 2 ;;
    --seed) SEED="$2"; shift 2 ;;
    --epochs) EPOCHS="$2"; shift 2 ;;
    --teacher-dim) TEACHER_DIM="$2"; shift 2 ;;
    --student-dim) STUDENT_DIM="$2"; shift 2 ;;
    --out) RUN="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
done

source scripts/env.sh
cargo build --workspace --bins
BIN="$CARGO_TARGET_DIR/debug"
LOGS="$RUN/logs"
mkdir -p "$LOGS"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM
# start NAME LOGFILE CMD...: runs a server on an ephemeral port, waits until it is SERVING,
# and sets ADDR to its gRPC address.
start() {
  local name="$1" log="$2"; shift 2
  "$@" > "$log.out" 2> "$log" &
  PIDS+=("$!")
  for _ in $(seq 600); do
    if grep -q "SERVING" "$log" 2>/dev/null; then
      ADDR=$(awk '/listening on/ {print $3; exit}' "$log.out"); echo "$name serving on $ADDR (log: $log)"; return 0
    fi
    if ! kill -0 "${PIDS[-1]}" 2>/dev/null; then echo "$name exited; see $log" >&2; tail -5 "$log" >&2; return 1; fi
    sleep 0.1
  done
  echo "$name did not become SERVING; see $log" >&2; return 1
}

if [ -z "$INPUT" ]; then
  echo "== 1. generate the synthetic dataset ($USERS users, $ITEMS items, seed $SEED)"
  INPUT="$RUN/u.data"
  "$BIN/trainer" gen-synthetic --out "$INPUT" --users "$USERS" --items "$ITEMS" --seed "$SEED"
else
  echo "== 1. dataset: $INPUT"
fi
echo "== 2. prepare: per user, time order, last 20% to test"
"$BIN/trainer" prepare --input "$INPUT" --out "$RUN/data"
echo "== 3. baselines"
"$BIN/trainer" evaluate --data "$RUN/data" --model pop --json "$RUN/pop.json"
echo "== 4. train the teacher (Caser d=$TEACHER_DIM) and the student alone (Caser d=$STUDENT_DIM), $EPOCHS epochs"
# --eval-every 1: MAP of every epoch for the report's learning curves.
"$BIN/trainer" train --data "$RUN/data" --out "$RUN/teacher" --model caser --dim "$TEACHER_DIM" \
  --epochs "$EPOCHS" --eval-every 1 --seed "$SEED" > "$LOGS/train-teacher.out" 2> "$LOGS/train-teacher.log"
grep -E "^trained" "$LOGS/train-teacher.out"
"$BIN/trainer" train --data "$RUN/data" --out "$RUN/student-alone" --model caser --dim "$STUDENT_DIM" \
  --epochs "$EPOCHS" --eval-every 1 --seed "$SEED" > "$LOGS/train-student-alone.out" 2> "$LOGS/train-student-alone.log"
grep -E "^trained" "$LOGS/train-student-alone.out"
echo "== 5. serve the teacher"
start teacher-svc "$LOGS/teacher-svc.log" "$BIN/teacher-svc" --data "$RUN/data" --model "$RUN/teacher" \
  --addr 127.0.0.1:0 --metrics-addr 127.0.0.1:0 --device cpu
TEACHER_ADDR="$ADDR"
echo "== 6. distill the student (Caser d=$STUDENT_DIM) from the teacher's StreamRankings"
"$BIN/trainer" distill --data "$RUN/data" --teacher "$TEACHER_ADDR" --out "$RUN/student-rd" \
  --cache-dir "$RUN/cache" --model caser --dim "$STUDENT_DIM" --epochs "$EPOCHS" --eval-every 1 \
  --dynamic-start-epoch $(( EPOCHS / 2 )) --seed "$SEED" > "$LOGS/distill.out" 2> "$LOGS/distill.log"
grep -E "^(rankings|distilled)" "$LOGS/distill.out"
echo "== 7. serve the student artifact"
start student-svc "$LOGS/student-svc.log" "$BIN/student-svc" --model "$RUN/student-rd" --data "$RUN/data" \
  --addr 127.0.0.1:0 --metrics-addr 127.0.0.1:0
STUDENT_ADDR="$ADDR"
echo "== 8. query both services (${LOAD_SECONDS}s each, one client, k=10)"
"$BIN/rd-loadgen" --target teacher --addr "http://$TEACHER_ADDR" --data "$RUN/data" \
  --duration-s "$LOAD_SECONDS" --warmup-s 1 --out "$RUN/latency-teacher.json" > "$LOGS/loadgen-teacher.log" 2>&1
"$BIN/rd-loadgen" --target student --addr "http://$STUDENT_ADDR" --data "$RUN/data" \
  --duration-s "$LOAD_SECONDS" --warmup-s 1 --out "$RUN/latency-student.json" > "$LOGS/loadgen-student.log" 2>&1
cleanup; PIDS=()

echo "== 9. comparison and report"
"$BIN/trainer" report --group "teacher=$RUN/teacher" --group "student alone=$RUN/student-alone" \
  --group "student + RD=$RUN/student-rd" \
  --latency "teacher-svc=$RUN/latency-teacher.json" --latency "student-svc=$RUN/latency-student.json" \
  --out "$RUN/report" --html --json "$RUN/report.json" --quiet
python3 - "$RUN" <<'PY'
import json, sys
run = sys.argv[1]
print("\n| service | model | QPS | p50 ms | p99 ms | errors |\n|---|---|---|---|---|---|")
for name, model in (("teacher-svc", "teacher"), ("student-svc", "student + RD")):
    r = json.load(open(f"{run}/latency-{name.split('-')[0]}.json"))
    lat = r.get("latency_ms", r)
    print(f"| {name} | {model} | {r.get('qps', 0):.0f} | {lat.get('p50', 0):.3f} | {lat.get('p99', 0):.3f} | {r.get('errors', 0)} |")
PY
echo
echo "demo done: results in $RUN/ (latency-*.json; student artifact: $RUN/student-rd; logs: $LOGS/)"
echo "report: $RUN/report/report.md (also report.html; charts: $(cd "$RUN/report" && ls *.png | paste -sd' ' -))"
