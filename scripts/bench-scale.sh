#!/usr/bin/env bash
# Scale benchmark (issue #15): student-svc's approximate index on synthetic catalogs of a
# million items and more. For each size: a synthetic catalog (`trainer gen-synthetic`, 100,000
# users, 1,000 taste clusters), an MF student d=50 trained on it (made once per work folder),
# and then, in one run, release builds:
#
#   - 10,000 held-out queries (users with odd dense index; the index tunes on even ones) and
#     their exact top 10 (`rd-scale vectors`, the exact f32 scan);
#   - student-svc --index ann (no --data: an MF query is the user's vector): start-up to
#     SERVING on the exact scan, the background index build, recall@10 of the 10,000 queries
#     through gRPC against the exact answers (`rd-scale recall`), p50/p99/QPS with 1 and 4
#     clients (`rd-loadgen`), resident memory against the f32 item table;
#   - student-svc --index exact, 1 client (what the index replaces);
#   - faiss-cpu from PyPI (scripts/faiss_baseline.py) on the same vectors and queries: HNSW and
#     IVF, each at the cheapest setting that reaches student-svc's measured recall (at least
#     0.95), single-query latency and QPS per core.
#
# Writes runs/bench-scale/scale-SIZE.json.
#
#   scripts/bench-scale.sh [SIZE...]   SIZE: 1m (default), 5m, or a number of items
#   env: RD_SCALE_DIR (runs/bench-scale), RD_SCALE_QUERIES (10000), RD_SCALE_SECONDS (10),
#        RD_SCALE_FAISS (1; 0 skips faiss), RD_SCALE_HNSW (1; 0 skips faiss HNSW, whose build
#        takes minutes), RD_SCALE_INDEX_FLAGS (extra student-svc flags, e.g. --ann-probes 40)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
OUT="${RD_SCALE_DIR:-runs/bench-scale}"
QUERIES="${RD_SCALE_QUERIES:-10000}"
SECONDS_PER_RUN="${RD_SCALE_SECONDS:-10}"
SIZES=("${@:-1m}")
cargo build --release -p rankdistill-student -p rankdistill-trainer
BIN="$CARGO_TARGET_DIR/release"
PY=$([ "${RD_SCALE_FAISS:-1}" = 1 ] && scripts/python-env.sh faiss || echo python3)
mkdir -p "$OUT"
source scripts/bench-serve.sh
export RD_WAIT_SECONDS=900

rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
# log_field FILE MESSAGE FIELD: a field of the first log line that contains MESSAGE.
log_field() { grep -m1 "$2" "$1" | sed -E "s/.*[ ]$3=([^ ]+).*/\1/"; }

for size in "${SIZES[@]}"; do
  case "$size" in
    1m) ITEMS=1030000 ;;
    5m) ITEMS=5600000 ;;
    *[!0-9]*) echo "SIZE must be 1m, 5m or a number of items, not '$size'" >&2; exit 2 ;;
    *) ITEMS="$size" ;;
  esac
  # 100,000 users in 1,000 taste clusters (each user prefers 2 or 3), 120 interactions each
  # on average: about 12 per item at a million items; 240 (about 4 per item, a long tail of
  # barely trained items) above 2M, where 5.6M generated items keep about 5.4M with a
  # training interaction.
  USERS=100000
  MEAN_LENGTH=$(( ITEMS > 2000000 ? 240 : 120 ))
  # LibTorch's Adam updates the whole item table every step (4 s a step at 1M items here, 20
  # s at 5M), so the steps are large and few, at a 10x learning rate: two epochs of 65,536
  # interactions a step, or one of 262,144 above 2M items.
  BATCH=$(( ITEMS > 2000000 ? 262144 : 65536 ))
  EPOCHS=$(( ITEMS > 2000000 ? 1 : 2 ))
  WORK="$OUT/work-$size"
  mkdir -p "$WORK"
  if [ ! -f "$WORK/student/manifest.json" ]; then
    echo "== $size: synthetic catalog ($ITEMS items, $USERS users), MF student d=50, $EPOCHS epochs"
    "$BIN/trainer" gen-synthetic --out "$WORK/u.data" --users "$USERS" --items "$ITEMS" \
      --clusters 1000 --mean-length "$MEAN_LENGTH" --popularity-exponent 0.3 --seed 11
    "$BIN/trainer" prepare --input "$WORK/u.data" --out "$WORK/data"
    rm -f "$WORK/u.data"
    # --eval-split valid: the catalog has no validation rows, so the final full-ranking
    # evaluation (hours at this size) has nothing to rank; the benchmark measures retrieval.
    "$BIN/trainer" train --data "$WORK/data" --out "$WORK/student" --model mf --dim 50 \
      --epochs "$EPOCHS" --batch-size "$BATCH" --lr 0.01 \
      --seed 7 --eval-split valid
  fi

  if [ ! "$WORK/vectors/vectors.json" -nt "$WORK/student/manifest.json" ] \
    || [ "$(jq .queries "$WORK/vectors/vectors.json")" != "$QUERIES" ]; then
    echo "== $size: held-out queries and their exact top 10"
    "$BIN/rd-scale" vectors --model "$WORK/student" --out "$WORK/vectors" --queries "$QUERIES"
  fi

  echo "== $size: student-svc --index ann"
  START_NS=$(date +%s%N)
  # shellcheck disable=SC2086
  serve ann "$BIN/student-svc" --model "$WORK/student" --addr 127.0.0.1:0 --metrics-addr 127.0.0.1:0 \
    --watch-interval-ms 0 --log-filter info --index ann ${RD_SCALE_INDEX_FLAGS:-}
  SERVING_MS=$(( ($(date +%s%N) - START_NS) / 1000000 ))
  wait_line "$WORK/ann.log" "approximate index serving"
  INDEXED_MS=$(( ($(date +%s%N) - START_NS) / 1000000 ))
  ANN_ADDR=$SERVED_ADDR; ANN_PID=$SERVED_PID
  RSS_INDEXED_KB=$(rss_kb "$ANN_PID")
  "$BIN/rd-scale" recall --addr "http://$ANN_ADDR" --dir "$WORK/vectors" | tee "$WORK/recall.json"
  for c in 1 4; do
    "$BIN/rd-loadgen" --target student --addr "http://$ANN_ADDR" --data "$WORK/vectors" \
      --concurrency "$c" --duration-s "$SECONDS_PER_RUN" --k 10 --out "$WORK/ann-c$c.json" > /dev/null
    jq -c '{concurrency, qps, latency_ms, errors}' "$WORK/ann-c$c.json"
  done
  RSS_AFTER_KB=$(rss_kb "$ANN_PID")
  LISTS=$(log_field "$WORK/ann.log" "approximate index built" lists)
  cleanup; PIDS=()

  echo "== $size: student-svc --index exact (1 client)"
  serve exact "$BIN/student-svc" --model "$WORK/student" --addr 127.0.0.1:0 --metrics-addr 127.0.0.1:0 \
    --watch-interval-ms 0 --log-filter info --index exact
  RSS_EXACT_KB=$(rss_kb "$SERVED_PID")
  "$BIN/rd-loadgen" --target student --addr "http://$SERVED_ADDR" --data "$WORK/vectors" \
    --concurrency 1 --duration-s "$SECONDS_PER_RUN" --k 10 --out "$WORK/exact-c1.json" > /dev/null
  jq -c '{concurrency, qps, latency_ms, errors}' "$WORK/exact-c1.json"
  cleanup; PIDS=()

  TARGET=$(jq '[.recall_at_10, 0.95] | max' "$WORK/recall.json")
  if [ "${RD_SCALE_FAISS:-1}" = 1 ]; then
    echo "== $size: faiss-cpu at recall@10 >= $TARGET"
    HNSW_FLAG=$([ "${RD_SCALE_HNSW:-1}" = 1 ] || echo --skip-hnsw)
    # shellcheck disable=SC2086
    "$PY" scripts/faiss_baseline.py "$WORK/vectors" "$TARGET" "$LISTS" $HNSW_FLAG > "$WORK/faiss.log"
    grep -E "at_target|qps_per_core" "$WORK/faiss.log" | head -5 || true
  fi

  python3 - "$OUT/scale-$size.json" "$WORK" "$SERVING_MS" "$INDEXED_MS" "$RSS_INDEXED_KB" \
    "$RSS_AFTER_KB" "$RSS_EXACT_KB" <<'PY'
import json, os, re, sys
out, work, serving_ms, indexed_ms, rss_indexed, rss_after, rss_exact = sys.argv[1:]
def load(name):
    path = os.path.join(work, name)
    return json.load(open(path)) if os.path.exists(path) else None
vectors = load("vectors/vectors.json")
log = open(os.path.join(work, "ann.log")).read()
built = re.search(r"approximate index built.*", log).group(0)
field = lambda f: float(re.search(rf"\b{f}=([0-9.eE+-]+)", built).group(1))
table_mib = vectors["f32_table_bytes"] / 2**20
def run(name):
    r = load(name)
    return {"qps": r["qps"], "latency_ms": r["latency_ms"], "errors": r.get("errors")}
ann = {c: run(f"ann-c{c}.json") for c in (1, 4)}
faiss = load("vectors/faiss.json")
report = {
    "items": vectors["items"],
    "student": "MF d=50: 2 epochs of 65,536 interactions a step (1 of 262,144 above 2M items), lr 0.01",
    "queries": vectors["queries"],
    "index": {"lists": int(field("lists")), "probes": int(field("probes")),
              "build_time_recall_at_10": field("recall_at_10"), "build_seconds": field("build_s")},
    "recall_at_10_grpc_held_out": load("recall.json")["recall_at_10"],
    "start_to_serving_exact_ms": int(serving_ms),
    "start_to_index_serving_ms": int(indexed_ms),
    "ann": ann,
    "exact_scan_c1": run("exact-c1.json"),
    "memory": {"f32_item_table_mib": table_mib,
               "vmrss_indexed_mib": int(rss_indexed) / 1024,
               "vmrss_after_load_mib": int(rss_after) / 1024,
               "vmrss_exact_int8_mib": int(rss_exact) / 1024,
               "ratio_to_f32_table": max(int(rss_indexed), int(rss_after)) / 1024 / table_mib},
    "faiss": faiss,
}
if faiss and faiss.get("best_qps_per_core"):
    cores = os.cpu_count() or 1
    report["qps_ratio"] = {
        "ann_1_client_over_faiss_best_per_core": ann[1]["qps"] / faiss["best_qps_per_core"],
        "ann_4_clients_over_faiss_best_all_cores": ann[4]["qps"] / (faiss["best_qps_per_core"] * cores),
    }
json.dump(report, open(out, "w"), indent=2)
print(json.dumps({k: v for k, v in report.items() if k != "faiss"}, indent=2))
PY
  echo "wrote $OUT/scale-$size.json"
done
