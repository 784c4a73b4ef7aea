#!/usr/bin/env bash
# Cost of live fidelity on the request path: student-svc Recommend QPS, p50 and p99 with
# shadowing off and with --shadow-fraction 0.01 and 0.1 against a real teacher-svc, in the
# same run, on the catalog, teacher and student of bench-serving.sh (bench-common.sh makes
# them once per work folder). Each setting is its own student-svc process, loaded in turn by
# rd-loadgen; after each load the student's shadow counters and fidelity are scraped from
# its metrics port. Writes $RD_BENCH_DIR/shadow.json (default runs/bench/shadow.json).
#
#   scripts/bench-shadow.sh     # RD_BENCH_SECONDS (10), RD_BENCH_CONCURRENCY (4),
#                               # RD_BENCH_FRACTIONS ("0.01 0.1"), RD_BENCH_ITEMS, RD_BENCH_USERS
# Everything runs on one machine: the teacher's shadow work competes with the student for
# the same cores, so the figures are an upper bound on the cost with the teacher elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN="${RD_BENCH_SECONDS:-10}"
CONCURRENCY="${RD_BENCH_CONCURRENCY:-4}"
FRACTIONS="${RD_BENCH_FRACTIONS:-0.01 0.1}"
source scripts/bench-common.sh
bench_models

echo "== teacher-svc"
serve teacher "$BIN/teacher-svc" --data "$WORK/data" --model "$WORK/teacher" --addr 127.0.0.1:0 \
  --metrics-addr 127.0.0.1:0 --device cpu
TEACHER_ADDR=$SERVED_ADDR

SETTINGS=()
for f in off $FRACTIONS; do
  shadow=()
  [ "$f" = off ] || shadow=(--shadow-teacher "http://$TEACHER_ADDR" --shadow-fraction "$f")
  echo "== student-svc, shadowing $f: concurrency $CONCURRENCY, ${SECONDS_PER_RUN}s"
  serve "student-shadow-$f" "$BIN/student-svc" --model "$WORK/student" --data "$WORK/data" \
    --addr 127.0.0.1:0 --metrics-addr 127.0.0.1:0 --watch-interval-ms 0 --log-filter info "${shadow[@]}"
  METRICS_ADDR=$(awk '/metrics on/ {print $3; exit}' "$WORK/student-shadow-$f.out")
  "$BIN/rd-loadgen" --target student --addr "http://$SERVED_ADDR" --data "$WORK/data" \
    --concurrency "$CONCURRENCY" --duration-s "$SECONDS_PER_RUN" --k 10 \
    --out "$OUT/shadow-$f.json" > /dev/null
  # Let the queued shadow calls finish before reading the counters.
  sleep 1
  curl -sf "http://$METRICS_ADDR/metrics" > "$WORK/shadow-$f.metrics"
  jq -c '{concurrency, qps, latency_ms: {p50: .latency_ms.p50, p99: .latency_ms.p99}, errors}' "$OUT/shadow-$f.json"
  kill "$SERVED_PID"; wait "$SERVED_PID" 2>/dev/null || true
  SETTINGS+=("$f")
done

python3 - "$OUT" "$WORK" "$NUM_ITEMS" "$CONCURRENCY" "$SECONDS_PER_RUN" "${SETTINGS[@]}" <<'PY'
import json, re, sys
out, work, items, concurrency, seconds, *settings = sys.argv[1:]
def metric(text, name, **labels):
    total = None
    for line in text.splitlines():
        m = re.match(r'^(\w+)(?:\{(.*)\})? (\S+)$', line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            total = (total or 0.0) + float(m.group(3))
    return total
runs = {}
for f in settings:
    load = json.load(open(f"{out}/shadow-{f}.json"))
    text = open(f"{work}/shadow-{f}.metrics").read()
    run = {"shadow_fraction": None if f == "off" else float(f), "qps": load["qps"],
           "latency_ms": load["latency_ms"], "errors": load["errors"]}
    if f != "off":
        run["shadow_calls"] = {o: metric(text, "student_shadow_calls_total", outcome=o) or 0
                               for o in ("ok", "dropped", "failed")}
        run["fidelity"] = {k: metric(text, f"student_fidelity_{k}")
                           for k in ("overlap", "ndcg", "rank_correlation")}
    runs[f] = run
base = runs.get("off")
for f, run in runs.items():
    if base and f != "off":
        run["p99_over_off"] = run["latency_ms"]["p99"] / base["latency_ms"]["p99"]
        run["qps_over_off"] = run["qps"] / base["qps"]
report = {"catalog_items": int(items), "student": "caser d=50", "teacher": "caser d=100 (cpu)",
          "concurrency": int(concurrency), "seconds_per_run": float(seconds), "runs": runs}
json.dump(report, open(f"{out}/shadow.json", "w"), indent=2)
print(json.dumps(report, indent=2))
PY
echo "wrote $OUT/shadow.json"
