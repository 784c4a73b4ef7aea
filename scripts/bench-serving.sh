#!/usr/bin/env bash
# Serving benchmark, end to end: a synthetic catalog of >= 100k items, a teacher (Caser d=100)
# and a student (Caser d=50) trained one epoch on it, both served locally (release builds),
# rd-loadgen against student-svc Recommend (the default: the approximate index above 50,000
# items; and for comparison the exact int8 scan with exact rescoring and the exact f32 scan)
# and teacher-svc Rank at the same concurrency, the student's cold
# start to SERVING and resident memory against the artifact size, and the kernel
# microbenchmark with its read-bandwidth roofline. Writes runs/bench/serving.json.
#
#   scripts/bench-serving.sh            # RD_BENCH_SECONDS (10), RD_BENCH_CONCURRENCY ("1 4"),
#                                       # RD_BENCH_KERNEL (1; 0 skips the microbenchmark)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN="${RD_BENCH_SECONDS:-10}"
CONCURRENCY="${RD_BENCH_CONCURRENCY:-1 4}"
source scripts/bench-common.sh
bench_models
if [ "$NUM_ITEMS" -lt 100000 ]; then
  echo "the catalog has $NUM_ITEMS items, under the 100k the benchmark needs: raise RD_BENCH_ITEMS" >&2
  exit 1
fi

echo "== student-svc: cold start"
START_NS=$(date +%s%N)
serve student "$BIN/student-svc" --model "$WORK/student" --data "$WORK/data" --addr 127.0.0.1:0 \
  --metrics-addr 127.0.0.1:0 --watch-interval-ms 0 --log-filter info --scan int8
COLD_START_MS=$(( ($(date +%s%N) - START_NS) / 1000000 ))
STUDENT_ADDR=$SERVED_ADDR; STUDENT_PID=$SERVED_PID
RSS_AFTER_LOAD_KB=$(awk '/VmRSS/ {print $2}' "/proc/$STUDENT_PID/status")
ARTIFACT_BYTES=$(du -sb "$WORK/student" | cut -f1)
STUDENT_DATA_BYTES=$(du -sb "$WORK/data" | cut -f1)

# The default (--index auto) builds the approximate index in the background above 50,000 items.
if grep -q "building the approximate index" "$WORK/student.log"; then
  wait_line "$WORK/student.log" "approximate index serving"
fi
INDEX_LINE=$(grep -m1 "approximate index built" "$WORK/student.log" || echo "exact scan")

echo "== student-svc --index exact (the int8 scan) and --index exact --scan f32 (for comparison)"
serve student-exact "$BIN/student-svc" --model "$WORK/student" --data "$WORK/data" --addr 127.0.0.1:0 \
  --metrics-addr 127.0.0.1:0 --watch-interval-ms 0 --log-filter info --index exact --scan int8
STUDENT_EXACT_ADDR=$SERVED_ADDR
serve student-f32 "$BIN/student-svc" --model "$WORK/student" --data "$WORK/data" --addr 127.0.0.1:0 \
  --metrics-addr 127.0.0.1:0 --watch-interval-ms 0 --log-filter info --index exact --scan f32
STUDENT_F32_ADDR=$SERVED_ADDR

echo "== teacher-svc"
serve teacher "$BIN/teacher-svc" --data "$WORK/data" --model "$WORK/teacher" --addr 127.0.0.1:0 \
  --metrics-addr 127.0.0.1:0 --device cpu
TEACHER_ADDR=$SERVED_ADDR

for c in $CONCURRENCY; do
  echo "== load: concurrency $c, ${SECONDS_PER_RUN}s each"
  "$BIN/rd-loadgen" --target student --addr "http://$STUDENT_ADDR" --data "$WORK/data" \
    --concurrency "$c" --duration-s "$SECONDS_PER_RUN" --k 10 --out "$OUT/student-c$c.json" > /dev/null
  "$BIN/rd-loadgen" --target student --addr "http://$STUDENT_EXACT_ADDR" --data "$WORK/data" \
    --concurrency "$c" --duration-s "$SECONDS_PER_RUN" --k 10 --out "$OUT/student-exact-c$c.json" > /dev/null
  "$BIN/rd-loadgen" --target student --addr "http://$STUDENT_F32_ADDR" --data "$WORK/data" \
    --concurrency "$c" --duration-s "$SECONDS_PER_RUN" --k 10 --out "$OUT/student-f32-c$c.json" > /dev/null
  "$BIN/rd-loadgen" --target teacher --addr "http://$TEACHER_ADDR" --data "$WORK/data" \
    --concurrency "$c" --duration-s "$SECONDS_PER_RUN" --k 10 --out "$OUT/teacher-c$c.json" > /dev/null
  jq -c '{target, concurrency, qps, latency_ms, errors}' "$OUT/student-c$c.json" \
    "$OUT/student-exact-c$c.json" "$OUT/student-f32-c$c.json" "$OUT/teacher-c$c.json"
done
RSS_AFTER_LOAD_TEST_KB=$(awk '/VmRSS/ {print $2}' "/proc/$STUDENT_PID/status")
cleanup; PIDS=()

if [ "${RD_BENCH_KERNEL:-1}" = 1 ]; then
  echo "== kernel microbenchmark (criterion)"
  cargo bench -p rankdistill-student --bench kernel -- --noplot 2>&1 | tee "$WORK/kernel-bench.txt" | grep -E "^(scan|topk)|thrpt|time:" || true
fi

python3 - "$OUT" "$WORK" "$NUM_ITEMS" "$COLD_START_MS" "$RSS_AFTER_LOAD_KB" "$RSS_AFTER_LOAD_TEST_KB" \
  "$ARTIFACT_BYTES" "$STUDENT_DATA_BYTES" "$CONCURRENCY" "$CARGO_TARGET_DIR" "$INDEX_LINE" <<'PY'
import json, sys, os
out, work, items, cold, rss_load, rss_end, art, data, conc, target, index_line = sys.argv[1:]
runs = {}
for c in conc.split():
    s = json.load(open(f"{out}/student-c{c}.json")); t = json.load(open(f"{out}/teacher-c{c}.json"))
    f = json.load(open(f"{out}/student-f32-c{c}.json"))
    e = json.load(open(f"{out}/student-exact-c{c}.json"))
    runs[c] = {"student": s, "student_exact_int8": e, "student_scan_f32": f, "teacher": t,
               "qps_ratio_student_over_teacher": s["qps"] / max(t["qps"], 1e-9),
               "qps_ratio_student_exact_over_teacher": e["qps"] / max(t["qps"], 1e-9),
               "qps_ratio_student_f32_over_teacher": f["qps"] / max(t["qps"], 1e-9)}
def estimates(group):
    found = {}
    base = os.path.join(target, "criterion", group)
    for name in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        est = os.path.join(base, name, "new", "estimates.json")
        if os.path.exists(est):
            found[name] = {"mean_ms": json.load(open(est))["mean"]["point_estimate"] / 1e6}
    return found
kernel = estimates("scan_100k_items_2d100")
# Bytes each scan reads: the f32 table + bias, or the int8 codes (stride 112) + 16 bytes of
# row constants + bias. The roofline of a scan is the probe's time scaled by its bytes.
table_bytes = (100_000 * 104 + 100_000) * 4
int8_bytes = 100_000 * (112 + 16 + 4)
probe = kernel.get("read_bandwidth_probe", {}).get("mean_ms")
for name, v in kernel.items():
    v["bytes_read"] = int8_bytes if name.startswith("int8_") else table_bytes
    v["gb_per_s"] = v["bytes_read"] / (v["mean_ms"] / 1e3) / 1e9
    if probe:
        v["roofline_ms"] = probe * v["bytes_read"] / table_bytes
        v["x_roofline"] = v["mean_ms"] / v["roofline_ms"]
topk = estimates("topk10_100k_items_caser_d50")
report = {
    "catalog_items": int(items),
    "student": {"model": os.environ.get("RD_BENCH_STUDENT", "caser") + " d=50", "cold_start_to_serving_ms": int(cold),
                "vmrss_after_load_mib": int(rss_load) / 1024, "vmrss_after_load_test_mib": int(rss_end) / 1024,
                "artifact_mib": int(art) / 2**20, "prepared_data_mib": int(data) / 2**20},
    "student_index": index_line.split("approximate index built ")[-1],
    "teacher": {"model": "caser d=100", "device": "cpu"},
    "load": runs,
    "kernel_100k_items_stride104": kernel,
    "topk10_100k_items_caser_d50_random": topk,
}
json.dump(report, open(f"{out}/serving.json", "w"), indent=2)
print(json.dumps(report, indent=2))
PY
echo "wrote $OUT/serving.json"
