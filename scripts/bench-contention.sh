#!/usr/bin/env bash
# LibTorch with a busy neighbour (issue #15): a Caser d=100 training epoch, teacher-svc's Rank
# (rd-loadgen, QPS and latency) and the ML-100K pull of every training ranking, each alone and
# with `yes > /dev/null` running, for the default thread choice (`--torch-threads auto`) and
# the old behaviour (`--torch-threads 0`: LibTorch's default, one thread per core), in one run.
# Every figure alternates idle and busy and the configurations, RD_CONTENTION_REPEATS times;
# the best of the repeats counts (least time, most QPS). Writes runs/contention/contention.json.
#
#   scripts/bench-contention.sh      # RD_ML100K (u.data), RD_CONTENTION_REPEATS (3),
#                                    # RD_CONTENTION_LOAD_S (5: seconds of each Rank load)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
UDATA="${RD_ML100K:-$RD_SHARED_DATA/ml-100k/u.data}"
REPEATS="${RD_CONTENTION_REPEATS:-3}"
LOAD_S="${RD_CONTENTION_LOAD_S:-5}"
OUT="${RD_CONTENTION_DIR:-runs/contention}"
WORK="$OUT/work"
mkdir -p "$WORK"
# RD_BENCH_PREBUILT=DIR: time the release binaries in DIR instead of building them here.
if [ -n "${RD_BENCH_PREBUILT:-}" ]; then
  BIN="$RD_BENCH_PREBUILT"
else
  cargo build --release -p rankdistill-student -p rankdistill-trainer -p rankdistill-teacher
  BIN="$CARGO_TARGET_DIR/release"
fi
CONFIGS=(auto 0)

if [ ! -f "$WORK/teacher/manifest.json" ]; then
  "$BIN/trainer" -q prepare --input "$UDATA" --out "$WORK/data"
  "$BIN/trainer" -q train --data "$WORK/data" --out "$WORK/teacher" --model caser --dim 100 --epochs 1 --seed 7
fi

NEIGHBOUR=""
TEACHER_PID=""
cleanup() {
  [ -n "$NEIGHBOUR" ] && kill "$NEIGHBOUR" 2>/dev/null || true
  [ -n "$TEACHER_PID" ] && kill "$TEACHER_PID" 2>/dev/null || true
}
trap cleanup EXIT
busy() { yes > /dev/null & NEIGHBOUR=$!; sleep 0.3; }
idle() { if [ -n "$NEIGHBOUR" ]; then kill "$NEIGHBOUR"; wait "$NEIGHBOUR" 2>/dev/null || true; NEIGHBOUR=""; fi; sleep 0.3; }
# in STATE COMMAND...: runs COMMAND alone (idle) or beside the busy neighbour (busy).
in_state() { local state=$1; shift; if [ "$state" = busy ]; then busy; fi; "$@"; idle; }

RESULTS="$WORK/results.jsonl"
: > "$RESULTS"
record() { echo "{\"config\":\"$1\",\"state\":\"$2\",\"what\":\"$3\",\"value\":$4}" >> "$RESULTS"; }

train_epoch() { # config state
  "$BIN/trainer" -q --torch-threads "$1" train --data "$WORK/data" --out "$WORK/scratch-model" \
    --model caser --dim 100 --epochs 1 --seed 7 --json "$WORK/train.json" > /dev/null
  record "$1" "$2" train_epoch_s "$(jq '.history[0].seconds' "$WORK/train.json")"
}

start_teacher() { # config
  rm -f "$WORK/teacher.out" "$WORK/teacher.log"
  "$BIN/teacher-svc" --data "$WORK/data" --model "$WORK/teacher" --addr 127.0.0.1:0 \
    --metrics-addr 127.0.0.1:0 --device cpu --torch-threads "$1" > "$WORK/teacher.out" 2> "$WORK/teacher.log" &
  TEACHER_PID=$!
  for _ in $(seq 600); do grep -qs "model ready: SERVING" "$WORK/teacher.log" && break; sleep 0.1; done
  TEACHER_ADDR=$(awk '/listening on/ {print $3; exit}' "$WORK/teacher.out")
}
stop_teacher() { kill "$TEACHER_PID"; wait "$TEACHER_PID" 2>/dev/null || true; TEACHER_PID=""; }

rank_load() { # config state
  "$BIN/rd-loadgen" --target teacher --addr "http://$TEACHER_ADDR" --data "$WORK/data" \
    --concurrency 4 --duration-s "$LOAD_S" --k 10 --out "$WORK/rank.json" > /dev/null
  record "$1" "$2" rank_qps "$(jq '.qps' "$WORK/rank.json")"
  record "$1" "$2" rank_p50_ms "$(jq '.latency_ms.p50' "$WORK/rank.json")"
  record "$1" "$2" rank_p99_ms "$(jq '.latency_ms.p99' "$WORK/rank.json")"
}

pull() { # config state
  rm -rf "$WORK/cache"
  "$BIN/trainer" -q --torch-threads "$1" pull --data "$WORK/data" --teacher "$TEACHER_ADDR" \
    --cache-dir "$WORK/cache" --json "$WORK/pull.json" > /dev/null
  record "$1" "$2" pull_s "$(jq '.seconds' "$WORK/pull.json")"
}

for r in $(seq "$REPEATS"); do
  for config in "${CONFIGS[@]}"; do
    for state in idle busy; do
      echo "== repeat $r, --torch-threads $config, $state"
      in_state "$state" train_epoch "$config" "$state"
      start_teacher "$config"
      in_state "$state" rank_load "$config" "$state"
      in_state "$state" pull "$config" "$state"
      stop_teacher
    done
  done
done

python3 - "$RESULTS" "$OUT/contention.json" "$REPEATS" "$(nproc)" "$(cat /proc/loadavg)" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
best = {}
for r in rows:
    key = (r["config"], r["state"], r["what"])
    pick = max if r["what"] == "rank_qps" else min
    best[key] = pick(best.get(key, r["value"]), r["value"])
configs = {}
for (config, state, what), value in best.items():
    configs.setdefault(config, {}).setdefault(what, {})[state] = value
for figures in configs.values():
    for what, v in figures.items():
        if "idle" in v and "busy" in v:
            # Times: busy / idle; QPS: idle / busy (both > 1 when the neighbour hurts).
            slowdown = v["idle"] / v["busy"] if what == "rank_qps" else v["busy"] / v["idle"]
            v["busy_slowdown_x"] = round(slowdown, 2)
report = {
    "neighbour": "yes > /dev/null", "repeats": int(sys.argv[3]), "cpus": int(sys.argv[4]),
    "loadavg_at_end": sys.argv[5],
    "configs": {"auto" if c == "auto" else "libtorch_default (--torch-threads 0, the old behaviour)": f
                for c, f in configs.items()},
    "runs": rows,
}
json.dump(report, open(sys.argv[2], "w"), indent=2)
print(json.dumps(report["configs"], indent=2))
PY
echo "wrote $OUT/contention.json"
