#!/usr/bin/env bash
# The paper's comparison, with every setting of the students chosen on validation.
#
#   scripts/compare.sh           ML-100K (RD_ML100K or $RD_SHARED_DATA/ml-100k/u.data):
#     1. two prepared splits of the same file: `data` (last 20% of each user to test) and
#        `data-valid` (also the last 10% of the rest to validation);
#     2. on data-valid, never looking at test: a teacher Caser d=100 (seed 1), then `trainer
#        search` for the student alone (epochs) and for RD (settings and epochs, RD_BUDGET
#        trials) at d=50; for the sweeps, the epochs of each student size (d = 5..30) and of
#        each K with the d=50 RD settings; and RD settings searched for each size
#        (RD_TUNED_DIMS, RD_SWEEP_BUDGET trials each);
#     3. on data, 3 seeds each: teacher Caser d=100 (30 epochs, and 50, the reference code's
#        default), the
#        student d=50 alone and with RD, the sweeps over d and K; students distill from the
#        seed-1 teacher through teacher-svc;
#     4. one report: runs/compare/report/ (report.md, report.html, charts, summary.json).
#   scripts/compare.sh --methods the method axis: teacher, student alone and every distillation
#     method (RD_METHODS, default rd cd rrd dcd rcekd) at its reference defaults, 3 seeds, Caser
#     d=100 teacher and d=50 students, 30 epochs, on ML-100K (reusing runs/compare's data,
#     teachers and students alone) and on a synthetic set of 10,000 items (RD_SYNTH_ITEMS,
#     RD_SYNTH_USERS; runs/compare-synth); one report each (report-methods/), with a cost table
#     (pull size and time, seconds per epoch, online ScoreItems calls).
#   scripts/compare.sh --sasrec  the SASRec axis on ML-100K prepared with --protocol leave-one-out
#     (runs/compare-sasrec): a SASRec teacher at its reference defaults (d=50, 2 blocks, 201
#     epochs), a SASRec student (d=RD_SASREC_STUDENT_DIM=10, 1 block) alone and with RD from it,
#     and a Caser student (d=10) alone and with RD from it, 3 seeds (and RD with the teacher
#     lists --exclude-seen true, a named deviation; and the SASRec student's epochs and RD
#     settings chosen on the validation items by `trainer search`); each run evaluated on the
#     full catalogue and with 100 sampled negatives (the SASRec paper's protocol); one table
#     (report-sasrec.md: parameters, HR@10 and NDCG@10 sampled, HR@10, NDCG@10 and MAP full).
#   scripts/compare.sh --quick   the regression guard CI runs: the embedded synthetic set (2,000
#     users, 1,000 items, seed 42), 1 seed, 8 epochs, teacher d=100, students d=25, reference
#     defaults; fails unless MAP orders teacher > student + RD > student alone.
#
# Runs go two at a time with one LibTorch thread each (RD_LANES=2; on 2 cores this does 1.5x
# the work of one run on two threads). Results are deterministic for a given seed and thread
# count. Finished runs and search trials are reused; delete the folder to start over. RD_BIN=DIR
# uses prebuilt binaries from DIR instead of building.
set -euo pipefail
cd "$(dirname "$0")/.."
QUICK=0
METHODS=0
SASREC=0
case "${1:-}" in
  --quick) QUICK=1 ;;
  --methods) METHODS=1 ;;
  --sasrec) SASREC=1 ;;
  "") ;;
  -h|--help) sed -n '2,34p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "unknown option '$1' (use --quick, --methods, --sasrec or nothing)" >&2; exit 2 ;;
esac
source scripts/env.sh
LANES="${RD_LANES:-2}"
if [ "$LANES" -gt 1 ]; then export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1; fi
if [ -n "${RD_BIN:-}" ]; then
  BIN="$RD_BIN"  # prebuilt trainer and teacher-svc (e.g. copied aside so a rebuild cannot change a long run)
else
  cargo build -p rankdistill-trainer -p rankdistill-teacher --bins
  BIN="$CARGO_TARGET_DIR/debug"  # dev profile: optimised (see Cargo.toml), LibTorch does the heavy work
fi
if [ "$QUICK" = 1 ]; then
  OUT="${RD_COMPARE_DIR:-runs/compare-quick}" EPOCHS=8 SEEDS=1 STUDENT=25
else
  OUT="${RD_COMPARE_DIR:-runs/compare}" EPOCHS="${RD_EPOCHS:-30}" SEEDS="${RD_SEEDS:-1 2 3}" STUDENT=50
fi
BUDGET="${RD_BUDGET:-8}"
DIMS="${RD_SWEEP_DIMS:-5 10 20 30}"
KS="${RD_SWEEP_KS:-5 20}"
TUNED="${RD_TUNED_DIMS:-$DIMS}"
SWEEP_BUDGET="${RD_SWEEP_BUDGET:-6}"
mkdir -p "$OUT/logs"
FAILED="$OUT/logs/FAILED"
rm -f "$FAILED"

SVC_PIDS=()
cleanup() { for pid in "${SVC_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

# serve NAME DATA MODEL: start teacher-svc outside the job table; sets ADDR_<NAME>.
serve() {
  local name="$1" log="$OUT/logs/teacher-svc-$1.log"
  "$BIN/teacher-svc" --data "$2" --model "$3" --addr 127.0.0.1:0 --metrics-addr 127.0.0.1:0 \
    --device cpu > "$log" 2>&1 &
  SVC_PIDS+=("$!")
  for _ in $(seq 300); do grep -q "listening on" "$log" && break; sleep 0.2; done
  local addr; addr=$(awk '/listening on/ {print $3; exit}' "$log")
  [ -n "$addr" ] || { echo "teacher-svc $name did not start; see $log" >&2; exit 1; }
  printf -v "ADDR_$name" '%s' "$addr"
}

# A pool of LANES concurrent jobs, started in the order they are queued. A job that needs
# another's result waits for its file (`await`); it is always queued after it, so it never
# waits for a job that has not started.
POOL=()
queue() { POOL+=("$*"); }
run_pool() {
  local running=() job pid
  for job in "${POOL[@]}"; do
    while :; do
      running=($(for pid in "${running[@]}"; do if kill -0 "$pid" 2>/dev/null; then echo "$pid"; fi; done))
      [ "${#running[@]}" -lt "$LANES" ] && break
      sleep 1
    done
    [ -f "$FAILED" ] && break
    eval "$job" &
    running+=("$!")
  done
  wait "${running[@]}" 2>/dev/null || true
  POOL=()
  if [ -f "$FAILED" ]; then echo "failed:" >&2; cat "$FAILED" >&2; exit 1; fi
}
await() { while [ ! -f "$1" ]; do [ -f "$FAILED" ] && exit 1; sleep 2; done; }
flags_of() { python3 -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))["flags"]))' "$1"; }

# step NAME DIR CMD...: run CMD --out DIR (skipped when DIR is finished), logging to logs/NAME.
step() {
  local name="$1" dir="$2"; shift 2
  if [ -f "$dir/manifest.json" ] || [ -f "$dir/choice.json" ]; then echo "reusing $dir"; return 0; fi
  echo "start $name"
  if "$@" --out "$dir" > "$OUT/logs/$name.out" 2> "$OUT/logs/$name.log"; then
    echo "done  $name: $(grep -E '^(MAP|chose)' "$OUT/logs/$name.out" | head -1)"
  else
    echo "$name (see $OUT/logs/$name.log)" >> "$FAILED"; tail -3 "$OUT/logs/$name.log" >&2; return 1
  fi
}
train() { step "$1" "$2" "$BIN/trainer" train "${@:3}"; }
distill() { # distill NAME DIR TEACHER_ADDR CHOICE_FILE EXTRA...: the choice's flags first
  local name="$1" dir="$2" addr="$3" choice="$4"; shift 4
  await "$choice"
  # shellcheck disable=SC2046
  step "$name" "$dir" "$BIN/trainer" distill --teacher "$addr" --cache-dir "$OUT/cache" $(flags_of "$choice") "$@"
}
search() { step "$1" "$2" "$BIN/trainer" search "${@:3}"; }
dirs() { local prefix="$1" out=""; for s in $SEEDS; do out="$out${out:+,}$OUT/$prefix-s$s"; done; echo "$out"; }

if [ "$QUICK" = 1 ]; then
  [ -f "$OUT/u.data" ] || "$BIN/trainer" gen-synthetic --out "$OUT/u.data" --users 2000 --items 1000 --seed 42 -q
  [ -f "$OUT/data/manifest.json" ] || "$BIN/trainer" prepare --input "$OUT/u.data" --out "$OUT/data" -q
  D="--data $OUT/data --eval-every 1 --epochs $EPOCHS --seed 1"
  queue train teacher "$OUT/teacher" $D --model caser --dim 100
  queue train alone "$OUT/alone" $D --model caser --dim "$STUDENT"
  run_pool
  serve T "$OUT/data" "$OUT/teacher"
  queue step rd "$OUT/rd" "$BIN/trainer" distill --teacher "$ADDR_T" --cache-dir "$OUT/cache" $D \
    --model caser --dim "$STUDENT" --dynamic-start-epoch $((EPOCHS / 2))
  run_pool
  "$BIN/trainer" report -q --group "teacher Caser d=100=$OUT/teacher" \
    --group "student Caser d=$STUDENT alone=$OUT/alone" --group "student + RD=$OUT/rd" \
    --out "$OUT/report" --json "$OUT/report.json" > "$OUT/logs/report.out"
  python3 - "$OUT/report.json" <<'EOF'
import json, sys
groups = json.load(open(sys.argv[1]))["groups"]
maps = [dict(g["metrics"])["map"]["mean"] for g in groups]
names = [g["name"] for g in groups]
print("MAP: " + ", ".join(f"{n} {m:.4f}" for n, m in zip(names, maps)))
if not (maps[0] > maps[2] > maps[1]):
    sys.exit("regression: the order teacher > student + RD > student alone does not hold")
print("order holds: teacher > student + RD > student alone")
EOF
  exit 0
fi

if [ "$SASREC" = 1 ]; then
  OUT="${RD_COMPARE_DIR:-runs/compare-sasrec}"
  mkdir -p "$OUT/logs"; FAILED="$OUT/logs/FAILED"; rm -f "$FAILED"
  UDATA="${RD_ML100K:-$RD_SHARED_DATA/ml-100k/u.data}"
  [ -f "$OUT/data/manifest.json" ] || \
    "$BIN/trainer" prepare --input "$UDATA" --out "$OUT/data" --protocol leave-one-out -q
  SD="${RD_SASREC_STUDENT_DIM:-10}"
  # SASRec's reference evaluates every 20 epochs; its other defaults follow --model sasrec.
  S="--data $OUT/data --eval-every 20 --model sasrec"
  C="--data $OUT/data --eval-every 5 --model caser --dim $SD"
  for s in $SEEDS; do queue train teacher-s$s "$OUT/teacher-s$s" $S --seed "$s"; done
  for s in $SEEDS; do queue train sasrec-alone-s$s "$OUT/sasrec-alone-s$s" $S --seed "$s" --dim "$SD" --num-blocks 1; done
  for s in $SEEDS; do queue train caser-alone-s$s "$OUT/caser-alone-s$s" $C --seed "$s"; done
  run_pool
  serve T "$OUT/data" "$OUT/teacher-s1"
  for s in $SEEDS; do
    queue step sasrec-rd-s$s "$OUT/sasrec-rd-s$s" "$BIN/trainer" distill --teacher "$ADDR_T" \
      --cache-dir "$OUT/cache" $S --seed "$s" --dim "$SD" --num-blocks 1
    queue step caser-rd-s$s "$OUT/caser-rd-s$s" "$BIN/trainer" distill --teacher "$ADDR_T" \
      --cache-dir "$OUT/cache" $C --seed "$s"
  done
  # A named deviation beside the reference's RD: the teacher lists without the user's training
  # items (`--exclude-seen true`, the default of the methods after RD), which the full-ranking
  # evaluation never counts.
  for s in $SEEDS; do
    queue step sasrec-rd-unseen-s$s "$OUT/sasrec-rd-unseen-s$s" "$BIN/trainer" distill --teacher "$ADDR_T" \
      --cache-dir "$OUT/cache" $S --seed "$s" --dim "$SD" --num-blocks 1 --exclude-seen true
    queue step caser-rd-unseen-s$s "$OUT/caser-rd-unseen-s$s" "$BIN/trainer" distill --teacher "$ADDR_T" \
      --cache-dir "$OUT/cache" $C --seed "$s" --exclude-seen true
  done
  run_pool
  # As the faithful baselines: the SASRec student's epochs (alone) and RD settings and epochs
  # chosen on the validation items (never test), RD_BUDGET trials, then 3 seeds of each.
  V="--data $OUT/data --seed 1 --model sasrec --dim $SD --num-blocks 1"
  queue search search-sasrec-alone "$OUT/search-sasrec-alone" $V --method alone
  queue search search-sasrec-rd "$OUT/search-sasrec-rd" $V --method rd --budget "$BUDGET" \
    --teacher "$ADDR_T" --cache-dir "$OUT/cache"
  run_pool
  for s in $SEEDS; do
    # shellcheck disable=SC2046
    queue train sasrec-alone-tuned-s$s "$OUT/sasrec-alone-tuned-s$s" $S --dim "$SD" --num-blocks 1 \
      $(flags_of "$OUT/search-sasrec-alone/choice.json") --seed "$s"
    queue distill sasrec-rd-tuned-s$s "$OUT/sasrec-rd-tuned-s$s" "$ADDR_T" \
      "$OUT/search-sasrec-rd/choice.json" $S --dim "$SD" --num-blocks 1 --seed "$s"
  done
  run_pool
  # Both protocols on test for every run: the full catalogue and 100 sampled negatives.
  mkdir -p "$OUT/eval"
  for run in teacher sasrec-alone sasrec-rd sasrec-rd-unseen sasrec-alone-tuned sasrec-rd-tuned \
    caser-alone caser-rd caser-rd-unseen; do
    for s in $SEEDS; do
      [ -f "$OUT/eval/$run-s$s.json" ] || "$BIN/trainer" evaluate --data "$OUT/data" \
        --model "$OUT/$run-s$s" --sampled-negatives 100 --seed 1 --json "$OUT/eval/$run-s$s.json" \
        -q > /dev/null
    done
  done
  python3 scripts/sasrec_table.py "$OUT" > "$OUT/report-sasrec.md"
  cat "$OUT/report-sasrec.md"
  exit 0
fi

if [ "$METHODS" = 1 ]; then
  METHOD_LIST="${RD_METHODS:-rd cd rrd dcd rcekd}"
  # method_axis DIR DATA_SOURCE TITLE: teacher, students alone and every method under DIR.
  method_axis() {
    local dir="$1" source="$2" title="$3"
    OUT="$dir"; mkdir -p "$OUT/logs"; FAILED="$OUT/logs/FAILED"; rm -f "$FAILED"
    [ -f "$OUT/data/manifest.json" ] || "$BIN/trainer" prepare --input "$source" --out "$OUT/data" -q
    local F="--data $OUT/data --eval-every 1 --epochs $EPOCHS"
    for s in $SEEDS; do queue train teacher-s$s "$OUT/teacher-s$s" $F --seed "$s" --model caser --dim 100; done
    for s in $SEEDS; do queue train alone-d$STUDENT-s$s "$OUT/alone-d$STUDENT-s$s" $F --seed "$s" --model caser --dim "$STUDENT"; done
    run_pool
    serve T "$OUT/data" "$OUT/teacher-s1"
    for m in $METHOD_LIST; do
      for s in $SEEDS; do
        queue step m-$m-d$STUDENT-s$s "$OUT/m-$m-d$STUDENT-s$s" "$BIN/trainer" distill --method "$m" \
          --teacher "$ADDR_T" --cache-dir "$OUT/cache" $F --seed "$s" --model caser --dim "$STUDENT"
      done
    done
    run_pool
    local groups=(--group "teacher Caser d=100=$(dirs teacher)"
      --group "student Caser d=$STUDENT alone=$(dirs alone-d$STUDENT)")
    for m in $METHOD_LIST; do groups+=(--group "student + ${m^^}=$(dirs m-$m-d$STUDENT)"); done
    "$BIN/trainer" report "${groups[@]}" --title "$title" --out "$OUT/report-methods" --html \
      --json "$OUT/report-methods.json" > "$OUT/logs/report-methods.out"
    python3 scripts/method_costs.py "$OUT" "$STUDENT" $METHOD_LIST >> "$OUT/report-methods/report.md"
    echo "report: $OUT/report-methods/report.md"
  }
  method_axis runs/compare "${RD_ML100K:-$RD_SHARED_DATA/ml-100k/u.data}" \
    "Distillation methods on MovieLens-100K (reference defaults)"
  SYNTH="${RD_COMPARE_SYNTH_DIR:-runs/compare-synth}"
  mkdir -p "$SYNTH"
  [ -f "$SYNTH/u.data" ] || "$BIN/trainer" gen-synthetic --out "$SYNTH/u.data" \
    --users "${RD_SYNTH_USERS:-3000}" --items "${RD_SYNTH_ITEMS:-10000}" --seed 7 -q
  method_axis "$SYNTH" "$SYNTH/u.data" \
    "Distillation methods on a synthetic set of ${RD_SYNTH_ITEMS:-10000} items (reference defaults)"
  exit 0
fi

UDATA="${RD_ML100K:-$RD_SHARED_DATA/ml-100k/u.data}"
[ -f "$OUT/data/manifest.json" ] || "$BIN/trainer" prepare --input "$UDATA" --out "$OUT/data" -q
[ -f "$OUT/data-valid/manifest.json" ] || \
  "$BIN/trainer" prepare --input "$UDATA" --out "$OUT/data-valid" --valid-fraction 0.1 -q
V="--data $OUT/data-valid --epochs $EPOCHS --seed 1"
F="--data $OUT/data --eval-every 1"

echo "== teachers for validation and for the final runs"
queue train teacher-valid "$OUT/teacher-valid" $V --eval-split valid --eval-every 1 --model caser --dim 100
queue train teacher-s1 "$OUT/teacher-s1" $F --epochs "$EPOCHS" --seed 1 --model caser --dim 100
run_pool
serve V "$OUT/data-valid" "$OUT/teacher-valid"
serve T "$OUT/data" "$OUT/teacher-s1"

echo "== searches on validation, then the final runs on test"
RD_CHOICE="$OUT/search-rd-d$STUDENT/choice.json"
queue search search-rd-d$STUDENT "$OUT/search-rd-d$STUDENT" $V --method rd --budget "$BUDGET" \
  --teacher "$ADDR_V" --cache-dir "$OUT/cache" --model caser --dim "$STUDENT"
for s in $SEEDS; do [ "$s" = 1 ] || queue train teacher-s$s "$OUT/teacher-s$s" $F --epochs "$EPOCHS" --seed "$s" --model caser --dim 100; done
# The teacher again at the reference code's own default of 50 epochs (n_iter), for comparison.
for s in $SEEDS; do queue train teacher50-s$s "$OUT/teacher50-s$s" $F --epochs 50 --seed "$s" --model caser --dim 100; done
for d in $STUDENT $DIMS; do
  queue search search-alone-d$d "$OUT/search-alone-d$d" $V --method alone --model caser --dim "$d"
done
for d in $STUDENT $DIMS; do
  for s in $SEEDS; do
    queue 'await '"$OUT/search-alone-d$d/choice.json"' && train alone-d'$d'-s'$s' '"$OUT/alone-d$d-s$s"' '"$F"' $(flags_of '"$OUT/search-alone-d$d/choice.json"') --seed '$s' --model caser --dim '$d
  done
done
# The sweeps reuse the d=50 RD settings; only the epochs are chosen for each size and K.
for d in $DIMS; do
  queue 'await '"$RD_CHOICE"' && search search-rd-d'$d' '"$OUT/search-rd-d$d"' '"$V"' --method rd --budget 1 $(flags_of '"$RD_CHOICE"' | sed "s/--epochs [0-9]*//") --teacher '"$ADDR_V"' --cache-dir '"$OUT/cache"' --model caser --dim '$d
done
for k in $KS; do
  queue 'await '"$RD_CHOICE"' && search search-rd-k'$k' '"$OUT/search-rd-k$k"' '"$V"' --method rd --budget 1 $(flags_of '"$RD_CHOICE"' | sed "s/--epochs [0-9]*//") --rd-k '$k' --teacher '"$ADDR_V"' --cache-dir '"$OUT/cache"' --model caser --dim '$STUDENT
done
for s in $SEEDS; do
  queue distill rd-d$STUDENT-s$s "$OUT/rd-d$STUDENT-s$s" "$ADDR_T" "$RD_CHOICE" $F --seed "$s" --model caser --dim "$STUDENT"
done
for d in $DIMS; do
  for s in $SEEDS; do
    queue distill rd-d$d-s$s "$OUT/rd-d$d-s$s" "$ADDR_T" "$OUT/search-rd-d$d/choice.json" $F --seed "$s" --model caser --dim "$d"
  done
done
for k in $KS; do
  for s in $SEEDS; do
    queue distill rd-k$k-s$s "$OUT/rd-k$k-s$s" "$ADDR_T" "$OUT/search-rd-k$k/choice.json" $F --seed "$s" --rd-k "$k" --model caser --dim "$STUDENT"
  done
done
# The size sweep again, with RD's settings chosen on validation for each size.
for d in $TUNED; do
  queue search search-rd-tuned-d$d "$OUT/search-rd-tuned-d$d" $V --method rd --budget "$SWEEP_BUDGET" \
    --teacher "$ADDR_V" --cache-dir "$OUT/cache" --model caser --dim "$d"
done
for d in $TUNED; do
  for s in $SEEDS; do
    queue distill rd-tuned-d$d-s$s "$OUT/rd-tuned-d$d-s$s" "$ADDR_T" "$OUT/search-rd-tuned-d$d/choice.json" $F --seed "$s" --model caser --dim "$d"
  done
done
run_pool

echo "== report"
REPORT_GROUPS=(--group "teacher Caser d=100=$(dirs teacher)"
  --group "teacher Caser d=100, 50 epochs=$(dirs teacher50)"
  --group "student Caser d=$STUDENT alone=$(dirs alone-d$STUDENT)"
  --group "student Caser d=$STUDENT + RD=$(dirs rd-d$STUDENT)")
for d in $DIMS $STUDENT; do
  REPORT_GROUPS+=(--group "student alone @ d=$d=$(dirs alone-d$d)" --group "student + RD @ d=$d=$(dirs rd-d$d)")
done
for d in $TUNED $STUDENT; do
  if [ "$d" = "$STUDENT" ]; then rd=$(dirs rd-d$STUDENT); else rd=$(dirs rd-tuned-d$d); fi
  REPORT_GROUPS+=(--group "student alone @ tuned d=$d=$(dirs alone-d$d)" --group "student + RD @ tuned d=$d=$rd")
done
for k in $KS 10; do
  if [ "$k" = 10 ]; then rd=$(dirs rd-d$STUDENT); else rd=$(dirs rd-k$k); fi
  REPORT_GROUPS+=(--group "student alone @ K=$k=$(dirs alone-d$STUDENT)" --group "student + RD @ K=$k=$rd")
done
"$BIN/trainer" report "${REPORT_GROUPS[@]}" --title "rankdistill on MovieLens-100K: settings chosen on validation" \
  --out "$OUT/report" --html --json "$OUT/report.json"
echo "report: $OUT/report/report.md"
