#!/usr/bin/env bash
# The teacher's pull against this machine's f32 GEMM peak (issue #15): the GEMM probe
# (`gemm-probe`: LibTorch matmuls, the best of large shapes and the scoring shapes), then
# `trainer pull` of every ML-100K training ranking through gRPC from a local teacher-svc
# (Caser d=100, one epoch), and a shard of the pull on the >= 100k-item synthetic catalog of
# bench-common.sh (its folder and seeds; made here when missing), all in one run. Achieved FLOP/s = queries x (items x 2 x 2d + the Caser
# encoder's 2 x multiply-adds per query) / seconds; the best of RD_PULL_REPEATS pulls counts.
# RD_PULL_BASELINE_BIN=DIR also times the binaries in DIR (an older build) the same way,
# alternating with this build. Writes runs/pull/pull.json.
#
#   scripts/bench-pull.sh      # RD_PULL_REPEATS (3), RD_PULL_SHARDS (64: the 100k catalog's
#                              # pull is shard 0 of this many), RD_PULL_SKIP_100K (unset)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
REPEATS="${RD_PULL_REPEATS:-3}"
SHARDS="${RD_PULL_SHARDS:-64}"
UDATA="${RD_ML100K:-$RD_SHARED_DATA/ml-100k/u.data}"
PULL_OUT="${RD_PULL_DIR:-runs/pull}"
PULL_WORK="$PULL_OUT/work"
mkdir -p "$PULL_WORK"
# RD_BENCH_PREBUILT=DIR: time the release binaries in DIR instead of building them here.
if [ -n "${RD_BENCH_PREBUILT:-}" ]; then
  BIN="$RD_BENCH_PREBUILT"
else
  cargo build --release -p rankdistill-trainer -p rankdistill-teacher
  BIN="$CARGO_TARGET_DIR/release"
fi
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
if [ -z "${RD_PULL_SKIP_100K:-}" ]; then
  # The catalog and the teacher of bench-common.sh (same folder, same seeds), made once.
  BIG_WORK="${RD_BENCH_DIR:-runs/bench}/work"
  if [ ! -f "$BIG_WORK/teacher/manifest.json" ]; then
    mkdir -p "$BIG_WORK"
    "$BIN/trainer" -q gen-synthetic --out "$BIG_WORK/u.data" --users "${RD_BENCH_USERS:-25000}" \
      --items "${RD_BENCH_ITEMS:-108000}" --mean-length 30 --popularity-exponent 0.3 --seed 7
    "$BIN/trainer" -q prepare --input "$BIG_WORK/u.data" --out "$BIG_WORK/data"
    "$BIN/trainer" -q train --data "$BIG_WORK/data" --out "$BIG_WORK/teacher" --model caser --dim 100 --epochs 1 --seed 7
  fi
fi
BUILDS=("$BIN")
[ -n "${RD_PULL_BASELINE_BIN:-}" ] && BUILDS+=("$RD_PULL_BASELINE_BIN")

if [ ! -f "$PULL_WORK/teacher/manifest.json" ]; then
  "$BIN/trainer" -q prepare --input "$UDATA" --out "$PULL_WORK/data"
  "$BIN/trainer" -q train --data "$PULL_WORK/data" --out "$PULL_WORK/teacher" --model caser --dim 100 --epochs 1 --seed 7
fi

RESULTS="$PULL_WORK/results.jsonl"
: > "$RESULTS"

# gemm_probe FILE: the probe at the scoring shapes of both catalogs, as JSON in FILE. It runs
# before and after the pulls; the better peak counts (a busy machine lowers either).
gemm_probe() {
  "$BIN/gemm-probe" --shape "256x$(wc -l < "$PULL_WORK/data/items.txt")x200" \
    ${BIG_WORK:+--shape "256x$(wc -l < "$BIG_WORK/data/items.txt")x200"} > "$1"
  jq -c . "$1"
}
echo "== GEMM probe (before the pulls)"
gemm_probe "$PULL_WORK/gemm-before.json"

# pull_case NAME DATA MODEL SHARD_FLAGS...: for every build, a teacher-svc and RD_PULL_REPEATS
# pulls through it, alternating the builds; one JSON line per pull.
pull_case() {
  local name=$1 data=$2 model=$3; shift 3
  for r in $(seq "$REPEATS"); do
    for b in "${BUILDS[@]}"; do
      rm -f "$PULL_WORK/teacher.out" "$PULL_WORK/teacher.log"
      "$b/teacher-svc" --data "$data" --model "$model" --addr 127.0.0.1:0 --metrics-addr 127.0.0.1:0 \
        --device cpu > "$PULL_WORK/teacher.out" 2> "$PULL_WORK/teacher.log" &
      local pid=$!
      PIDS+=("$pid")
      for _ in $(seq 600); do grep -qs "model ready: SERVING" "$PULL_WORK/teacher.log" && break; sleep 0.1; done
      local addr
      addr=$(awk '/listening on/ {print $3; exit}' "$PULL_WORK/teacher.out")
      rm -rf "$PULL_WORK/cache"
      "$b/trainer" -q pull --data "$data" --teacher "$addr" --cache-dir "$PULL_WORK/cache" "$@" \
        --json "$PULL_WORK/pull.json" > /dev/null
      kill "$pid"; wait "$pid" 2>/dev/null || true
      local digest
      digest=$(cat "$PULL_WORK"/cache/rankings-* | sha256sum | cut -c1-16)
      echo "{\"case\":\"$name\",\"build\":\"$b\",\"repeat\":$r,\"seconds\":$(jq .seconds "$PULL_WORK/pull.json"),\"queries\":$(jq .queries "$PULL_WORK/pull.json"),\"rankings_sha256\":\"$digest\",\"loadavg\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}" | tee -a "$RESULTS"
    done
  done
}

echo "== ML-100K pull"
pull_case ml-100k "$PULL_WORK/data" "$PULL_WORK/teacher"
if [ -n "${BIG_WORK:-}" ]; then
  echo "== 100k-item catalog: shard 0 of $SHARDS"
  pull_case catalog-100k "$BIG_WORK/data" "$BIG_WORK/teacher" --shard-count "$SHARDS" --shard-index 0
fi

echo "== GEMM probe (after the pulls)"
gemm_probe "$PULL_WORK/gemm-after.json"
jq -s 'max_by(.peak_gflops) + {probes: .}' "$PULL_WORK/gemm-before.json" "$PULL_WORK/gemm-after.json" \
  > "$PULL_WORK/gemm.json"

python3 - "$RESULTS" "$PULL_WORK/gemm.json" "$PULL_OUT/pull.json" "$PULL_WORK/data" "${BIG_WORK:+$BIG_WORK/data}" "$BIN" <<'PY'
import json, sys
results, gemm_file, out, ml_data, big_data, this_build = sys.argv[1:]
rows = [json.loads(l) for l in open(results)]
gemm = json.load(open(gemm_file))
peak = gemm["peak_gflops"]
d, L, nv, nh = 100, 5, 4, 16
# Caser's encoder per query, multiply-adds: vertical conv, horizontal convs, fc1.
encoder_macs = nv * L * d + sum(nh * (L - h + 1) * h * d for h in range(1, L + 1)) + (nv * d + nh * L) * d
def items(data):
    return sum(1 for _ in open(f"{data}/items.txt"))
cases = {"ml-100k": items(ml_data)}
if big_data:
    cases["catalog-100k"] = items(big_data)
report = {"gemm_probe": gemm, "peak_gflops": peak, "encoder_flops_per_query": 2 * encoder_macs, "cases": {}}
for case, n_items in cases.items():
    flops_per_query = n_items * 2 * 2 * d + 2 * encoder_macs
    by_build = {}
    for r in rows:
        if r["case"] != case:
            continue
        b = by_build.setdefault(r["build"], {"seconds": [], "queries": r["queries"], "rankings_sha256": set()})
        b["seconds"].append(r["seconds"])
        b["rankings_sha256"].add(r["rankings_sha256"])
    entry = {"items": n_items, "flops_per_query": flops_per_query, "builds": {}}
    for build, b in by_build.items():
        best = min(b["seconds"])
        gflops = b["queries"] * flops_per_query / best / 1e9
        entry["builds"]["this" if build == this_build else build] = {
            "queries": b["queries"], "seconds": b["seconds"], "best_seconds": best,
            "achieved_gflops": gflops, "fraction_of_peak": gflops / peak,
            "rankings_sha256": sorted(b["rankings_sha256"])}
    hashes = {h for b in entry["builds"].values() for h in b["rankings_sha256"]}
    entry["rankings_identical_across_builds_and_repeats"] = len(hashes) == 1
    report["cases"][case] = entry
report["runs"] = rows
json.dump(report, open(out, "w"), indent=2)
print(json.dumps({c: {b: {k: v[k] for k in ("best_seconds", "achieved_gflops", "fraction_of_peak")}
                      for b, v in e["builds"].items()} | {"identical": e["rankings_identical_across_builds_and_repeats"]}
                  for c, e in report["cases"].items()} | {"peak_gflops": peak}, indent=2))
PY
echo "wrote $PULL_OUT/pull.json"
