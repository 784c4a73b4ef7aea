#!/usr/bin/env bash
# Cost of live fidelity on the request path: student-svc Recommend QPS, p50 and p99 with
# shadowing off and with --shadow-fraction 0.01 and 0.1 against a real teacher-svc, in the
# same run, on the catalog, teacher and student of bench-serving.sh (bench-common.sh makes
# them once per work folder). Each setting is its own student-svc process, loaded in turn by
# rd-loadgen; after each load the student's shadow counters and fidelity are scraped from
# its metrics port. The settings take turns for RD_BENCH_ROUNDS rounds (drift on a shared
# machine hits them alike); the report gives every run and each setting's median.
# Writes $RD_BENCH_DIR/shadow.json (default runs/bench/shadow.json).
#
#   scripts/bench-shadow.sh     # RD_BENCH_SECONDS (10), RD_BENCH_CONCURRENCY (4), RD_BENCH_ROUNDS (3),
#                               # RD_BENCH_FRACTIONS ("0.01 0.1"), RD_BENCH_ITEMS, RD_BENCH_USERS
# Everything runs on one machine: unpinned, the teacher's shadow work competes with the student
# for the same cores, so the figures are an upper bound on the cost with the teacher elsewhere.
# RD_BENCH_TEACHER_CPUS / RD_BENCH_STUDENT_CPUS (taskset lists, e.g. 1 and 0) pin teacher-svc
# (then with one LibTorch thread) and student-svc + rd-loadgen apart, so the student pays only
# for its own shadow path.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN="${RD_BENCH_SECONDS:-10}"
CONCURRENCY="${RD_BENCH_CONCURRENCY:-4}"
FRACTIONS="${RD_BENCH_FRACTIONS:-0.01 0.1}"
ROUNDS="${RD_BENCH_ROUNDS:-3}"
TEACHER_PIN=() STUDENT_PIN=() TEACHER_THREADS=()
if [ -n "${RD_BENCH_TEACHER_CPUS:-}" ]; then
  TEACHER_PIN=(taskset -c "$RD_BENCH_TEACHER_CPUS") TEACHER_THREADS=(--torch-threads 1)
fi
[ -z "${RD_BENCH_STUDENT_CPUS:-}" ] || STUDENT_PIN=(taskset -c "$RD_BENCH_STUDENT_CPUS")
source scripts/bench-common.sh
bench_models

echo "== teacher-svc"
serve teacher "${TEACHER_PIN[@]}" "$BIN/teacher-svc" --data "$WORK/data" --model "$WORK/teacher" \
  --addr 127.0.0.1:0 --metrics-addr 127.0.0.1:0 --device cpu "${TEACHER_THREADS[@]}"
TEACHER_ADDR=$SERVED_ADDR

RUNS=()
for round in $(seq "$ROUNDS"); do
  for f in off $FRACTIONS; do
    shadow=()
    [ "$f" = off ] || shadow=(--shadow-teacher "http://$TEACHER_ADDR" --shadow-fraction "$f")
    run="$f-r$round"
    echo "== round $round, shadowing $f: concurrency $CONCURRENCY, ${SECONDS_PER_RUN}s"
    serve "student-shadow-$run" "${STUDENT_PIN[@]}" "$BIN/student-svc" --model "$WORK/student" --data "$WORK/data" \
      --addr 127.0.0.1:0 --metrics-addr 127.0.0.1:0 --watch-interval-ms 0 --log-filter info "${shadow[@]}"
    METRICS_ADDR=$(awk '/metrics on/ {print $3; exit}' "$WORK/student-shadow-$run.out")
    "${STUDENT_PIN[@]}" "$BIN/rd-loadgen" --target student --addr "http://$SERVED_ADDR" --data "$WORK/data" \
      --concurrency "$CONCURRENCY" --duration-s "$SECONDS_PER_RUN" --k 10 \
      --out "$WORK/shadow-$run.json" > /dev/null
    # Let the queued shadow calls finish before reading the counters.
    sleep 1
    curl -sf "http://$METRICS_ADDR/metrics" > "$WORK/shadow-$run.metrics"
    jq -c '{qps, latency_ms: {p50: .latency_ms.p50, p99: .latency_ms.p99}, errors}' "$WORK/shadow-$run.json"
    kill "$SERVED_PID"; wait "$SERVED_PID" 2>/dev/null || true
    RUNS+=("$run")
  done
done

python3 - "$OUT" "$WORK" "$NUM_ITEMS" "$CONCURRENCY" "$SECONDS_PER_RUN" "${RD_BENCH_TEACHER_CPUS:-}" \
  "${RD_BENCH_STUDENT_CPUS:-}" "${RUNS[@]}" <<'PY'
import json, re, statistics, sys
out, work, items, concurrency, seconds, teacher_cpus, student_cpus, *names = sys.argv[1:]
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
for name in names:
    f = name.rsplit("-r", 1)[0]
    load = json.load(open(f"{work}/shadow-{name}.json"))
    text = open(f"{work}/shadow-{name}.metrics").read()
    run = {"qps": load["qps"], "latency_ms": load["latency_ms"], "errors": load["errors"]}
    if f != "off":
        run["shadow_calls"] = {o: metric(text, "student_shadow_calls_total", outcome=o) or 0
                               for o in ("ok", "dropped", "failed")}
        run["fidelity"] = {k: metric(text, f"student_fidelity_{k}")
                           for k in ("overlap", "ndcg", "rank_correlation")}
    runs.setdefault(f, []).append(run)
settings = {}
for f, rs in runs.items():
    settings[f] = {
        "shadow_fraction": None if f == "off" else float(f),
        "median_qps": statistics.median(r["qps"] for r in rs),
        "median_p50_ms": statistics.median(r["latency_ms"]["p50"] for r in rs),
        "median_p99_ms": statistics.median(r["latency_ms"]["p99"] for r in rs),
        "errors": sum(sum(r["errors"].values()) if isinstance(r["errors"], dict) else r["errors"] for r in rs),
        "runs": rs,
    }
base = settings.get("off")
for f, s in settings.items():
    if base and f != "off":
        s["p99_over_off"] = s["median_p99_ms"] / base["median_p99_ms"]
        s["qps_over_off"] = s["median_qps"] / base["median_qps"]
report = {"catalog_items": int(items), "student": "caser d=50", "teacher": "caser d=100 (cpu)",
          "concurrency": int(concurrency), "seconds_per_run": float(seconds),
          "teacher_cpus": teacher_cpus or None, "student_cpus": student_cpus or None,
          "rounds": len(runs.get("off", [])), "settings": settings}
json.dump(report, open(f"{out}/shadow.json", "w"), indent=2)
for f, s in settings.items():
    print(f"shadowing {f}: median QPS {s['median_qps']:.0f}, p50 {s['median_p50_ms']:.3f} ms, "
          f"p99 {s['median_p99_ms']:.3f} ms, errors {s['errors']}")
PY
echo "wrote $OUT/shadow.json"
