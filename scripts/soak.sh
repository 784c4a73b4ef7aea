#!/usr/bin/env bash
# Bounded soak of student-svc (release build): closed-loop load from rd-loadgen at the
# concurrency that gives the peak QPS, a new artifact version hot-reloaded every 30 s (SIGHUP),
# resident memory sampled every second. Writes runs/soak/soak.json: requests, errors (by
# code), QPS, latency percentiles, RSS at start / max / end, reloads triggered, done and
# refused, and the version serving at the end. Exits non-zero when a request failed, a reload
# was refused or missed, or the server died.
#
#   scripts/soak.sh                        # 5 minutes
#   RD_SOAK_SECONDS=90 scripts/soak.sh     # shorter
#
# Settings (env): RD_SOAK_SECONDS (300), RD_SOAK_RELOAD_S (30), RD_SOAK_CONCURRENCY (probed
# over RD_SOAK_PROBE, "1 2 4 8 16 32 64", 5 s each, until QPS falls 5% below the best, when
# unset), RD_SOAK_USERS (3000),
# RD_SOAK_ITEMS (20000), RD_SOAK_DIM (32), RD_SOAK_K (10), RD_SOAK_DIR (runs/soak).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
OUT="${RD_SOAK_DIR:-runs/soak}"
WORK="$OUT/work"
SECONDS_TOTAL="${RD_SOAK_SECONDS:-300}"
RELOAD_S="${RD_SOAK_RELOAD_S:-30}"
PROBE="${RD_SOAK_PROBE:-1 2 4 8 16 32 64}"
USERS="${RD_SOAK_USERS:-3000}"
ITEMS="${RD_SOAK_ITEMS:-20000}"
DIM="${RD_SOAK_DIM:-32}"
K="${RD_SOAK_K:-10}"
mkdir -p "$WORK"

# Serving binaries in release; the trainer (data and artifacts only) in the dev profile.
cargo build --release -p rankdistill-student --bin student-svc --bin rd-loadgen
cargo build -p rankdistill-trainer --bin trainer
REL="$CARGO_TARGET_DIR/release"
TRAINER="$CARGO_TARGET_DIR/debug/trainer"

# Two artifact versions trained on the same data (seeds 1 and 2), made once and reused.
if [ ! -f "$WORK/v2/manifest.json" ]; then
  echo "== data: $USERS users, $ITEMS items; two student versions (Caser d=$DIM, 1 epoch)"
  "$TRAINER" gen-synthetic --out "$WORK/u.data" --users "$USERS" --items "$ITEMS" \
    --mean-length 20 --popularity-exponent 0.5 --seed 11
  "$TRAINER" prepare --input "$WORK/u.data" --out "$WORK/data"
  for seed in 1 2; do
    "$TRAINER" train --data "$WORK/data" --out "$WORK/v$seed" --model caser --dim "$DIM" \
      --epochs 1 --seed "$seed"
  done
fi

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
wait_line() { # file pattern
  for _ in $(seq 600); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "timed out waiting for '$2' in $1" >&2; return 1
}
# Replaces the served folder with a copy of version $1, the way a publisher does (the new
# folder is complete before it takes the name).
publish() {
  rm -rf "$WORK/staging" "$WORK/served.old"
  cp -r "$WORK/v$1" "$WORK/staging"
  if [ -d "$WORK/served" ]; then mv "$WORK/served" "$WORK/served.old"; fi
  mv "$WORK/staging" "$WORK/served"
  rm -rf "$WORK/served.old"
}
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
metric() { curl -s "http://$METRICS_ADDR/metrics" | awk -v m="$1" '$1 == m {print $2}'; }

publish 1
rm -f "$WORK/student.out" "$WORK/student.log"
"$REL/student-svc" --model "$WORK/served" --data "$WORK/data" --addr 127.0.0.1:0 \
  --metrics-addr 127.0.0.1:0 --watch-interval-ms 0 --log-filter warn,rankdistill_student=info \
  > "$WORK/student.out" 2> "$WORK/student.log" &
PID=$!; PIDS+=("$PID")
wait_line "$WORK/student.log" "model ready: SERVING"
ADDR=$(awk '/listening on/ {print $3; exit}' "$WORK/student.out")
METRICS_ADDR=$(awk '/metrics on/ {print $3; exit}' "$WORK/student.out")
load() { # concurrency seconds out
  "$REL/rd-loadgen" --target student --addr "http://$ADDR" --data "$WORK/data" \
    --concurrency "$1" --duration-s "$2" --warmup-s 1 --k "$K" --out "$3" > /dev/null
}

PROBED="{}"
if [ -n "${RD_SOAK_CONCURRENCY:-}" ]; then
  CONCURRENCY="$RD_SOAK_CONCURRENCY"
else
  echo "== probing the concurrency of peak QPS: $PROBE"
  CONCURRENCY=1; BEST=0
  for c in $PROBE; do
    load "$c" 5 "$WORK/probe-c$c.json"
    qps=$(jq '.qps' "$WORK/probe-c$c.json")
    echo "   concurrency $c: $(printf '%.0f' "$qps") QPS"
    PROBED=$(jq -c --arg c "$c" --argjson q "$qps" '. + {($c): ($q | round)}' <<< "$PROBED")
    if jq -e --argjson q "$qps" --argjson b "$BEST" -n '$q > $b' > /dev/null; then
      BEST=$qps; CONCURRENCY=$c
    elif jq -e --argjson q "$qps" --argjson b "$BEST" -n '$q < 0.95 * $b' > /dev/null; then
      break
    fi
  done
fi

echo "== soak: ${SECONDS_TOTAL}s at concurrency $CONCURRENCY, a new version every ${RELOAD_S}s"
RSS_START=$(rss_kb "$PID")
RELOADS_BEFORE=$(metric student_reloads_total)
FAILURES_BEFORE=$(metric student_reload_failures_total)
load "$CONCURRENCY" "$SECONDS_TOTAL" "$OUT/soak-load.json" &
LOAD_PID=$!; PIDS+=("$LOAD_PID")
: > "$OUT/rss.tsv"
START=$(date +%s)
NEXT_RELOAD=$((START + RELOAD_S))
TRIGGERED=0
VERSION=1
while kill -0 "$LOAD_PID" 2>/dev/null; do
  kill -0 "$PID" 2>/dev/null || { echo "student-svc died" >&2; exit 1; }
  NOW=$(date +%s)
  echo -e "$((NOW - START))\t$(rss_kb "$PID")" >> "$OUT/rss.tsv"
  if [ "$NOW" -ge "$NEXT_RELOAD" ] && [ $((NOW - START)) -lt "$SECONDS_TOTAL" ]; then
    VERSION=$((3 - VERSION))
    publish "$VERSION"
    kill -HUP "$PID"
    TRIGGERED=$((TRIGGERED + 1))
    NEXT_RELOAD=$((NEXT_RELOAD + RELOAD_S))
  fi
  sleep 1
done
wait "$LOAD_PID"
kill -0 "$PID" 2>/dev/null || { echo "student-svc died" >&2; exit 1; }
# The last reload may still be warming up.
EXPECTED=$(jq -r .version "$WORK/v$VERSION/manifest.json")
for _ in $(seq 100); do
  [ "$(curl -s "http://$METRICS_ADDR/metrics" | grep -c "version=\"$EXPECTED\"")" -gt 0 ] && break
  sleep 0.1
done
RSS_END=$(rss_kb "$PID")
RSS_MAX=$(awk -v m="$RSS_START" '$2 > m {m = $2} END {print m}' "$OUT/rss.tsv")
RELOADED=$(( $(metric student_reloads_total) - RELOADS_BEFORE ))
REFUSED=$(( $(metric student_reload_failures_total) - FAILURES_BEFORE ))
SERVING=$(curl -s "http://$METRICS_ADDR/metrics" | sed -n 's/.*student_model_info{.*version="\([0-9a-f]*\)".*/\1/p' | head -1)

jq -n \
  --slurpfile load "$OUT/soak-load.json" \
  --argjson probe "$PROBED" \
  --argjson seconds "$SECONDS_TOTAL" --argjson reload_s "$RELOAD_S" \
  --argjson concurrency "$CONCURRENCY" \
  --argjson rss_start "$RSS_START" --argjson rss_max "$RSS_MAX" --argjson rss_end "$RSS_END" \
  --argjson triggered "$TRIGGERED" --argjson reloaded "$RELOADED" --argjson refused "$REFUSED" \
  --arg serving "$SERVING" --arg expected "$EXPECTED" \
  --argjson items "$(wc -l < "$WORK/data/items.txt")" --argjson dim "$DIM" \
  --arg cpus "$(nproc)" \
  '{
    seconds: $seconds, concurrency: $concurrency, probed_qps: $probe, cpus: ($cpus | tonumber),
    catalog: {items: $items, dim: $dim},
    requests: $load[0].requests, ok: $load[0].ok, errors: $load[0].errors,
    errors_by_code: $load[0].errors_by_code, qps: $load[0].qps, latency_ms: $load[0].latency_ms,
    rss_kb: {start: $rss_start, max: $rss_max, end: $rss_end},
    reloads: {every_s: $reload_s, triggered: $triggered, done: $reloaded, refused: $refused},
    serving_at_end: $serving, expected_at_end: $expected
  }' > "$OUT/soak.json"
cat "$OUT/soak.json"

FAIL=0
[ "$(jq .errors "$OUT/soak.json")" -eq 0 ] || { echo "soak: requests failed" >&2; FAIL=1; }
[ "$REFUSED" -eq 0 ] || { echo "soak: reloads were refused" >&2; FAIL=1; }
[ "$RELOADED" -eq "$TRIGGERED" ] || { echo "soak: $TRIGGERED reloads triggered, $RELOADED done" >&2; FAIL=1; }
[ "$SERVING" = "$EXPECTED" ] || { echo "soak: serving $SERVING, expected $EXPECTED" >&2; FAIL=1; }
exit "$FAIL"
