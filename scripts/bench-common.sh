# Sourced by the serving benchmarks (bench-serving.sh, bench-shadow.sh): the environment, the
# release build, the synthetic catalog with a teacher (Caser d=100) and a student (Caser d=50)
# trained one epoch on it (made once per work folder), and the background servers.
#
#   RD_BENCH_DIR (runs/bench), RD_BENCH_ITEMS (108000), RD_BENCH_USERS (25000),
#   RD_BENCH_POPULARITY (0.3, the generator's popularity exponent), RD_BENCH_DATA_SEED (7),
#   RD_BENCH_STUDENT ("caser": Caser d=50; "sasrec": SASRec d=50 at its reference shape, 2
#   blocks and L=50, in runs/bench-sasrec unless RD_BENCH_DIR says otherwise)
source scripts/env.sh
STUDENT_KIND="${RD_BENCH_STUDENT:-caser}"
case "$STUDENT_KIND" in
  caser) OUT="${RD_BENCH_DIR:-runs/bench}" ;;
  sasrec) OUT="${RD_BENCH_DIR:-runs/bench-sasrec}" ;;
  *) echo "RD_BENCH_STUDENT must be caser or sasrec, not '$STUDENT_KIND'" >&2; exit 2 ;;
esac
WORK="$OUT/work"
# 108k generated items keep ~105.7k after the 5-interaction filter (the serving target is >= 100k).
ITEMS="${RD_BENCH_ITEMS:-108000}"
USERS="${RD_BENCH_USERS:-25000}"
POPULARITY="${RD_BENCH_POPULARITY:-0.3}"
DATA_SEED="${RD_BENCH_DATA_SEED:-7}"
mkdir -p "$WORK"
cargo build --release -p rankdistill-student -p rankdistill-trainer -p rankdistill-teacher
BIN="$CARGO_TARGET_DIR/release"

# The catalog, the teacher and the student, unless the work folder has them.
bench_models() {
  if [ ! -f "$WORK/student/manifest.json" ]; then
    echo "== data: synthetic catalog ($ITEMS items, $USERS users), teacher d=100 and $STUDENT_KIND student d=50, 1 epoch"
    "$BIN/trainer" gen-synthetic --out "$WORK/u.data" --users "$USERS" --items "$ITEMS" \
      --mean-length 30 --popularity-exponent "$POPULARITY" --seed "$DATA_SEED"
    "$BIN/trainer" prepare --input "$WORK/u.data" --out "$WORK/data"
    "$BIN/trainer" train --data "$WORK/data" --out "$WORK/teacher" --model caser --dim 100 --epochs 1 --seed 7
    "$BIN/trainer" train --data "$WORK/data" --out "$WORK/student" --model "$STUDENT_KIND" --dim 50 --epochs 1 --seed 7
  fi
  NUM_ITEMS=$(wc -l < "$WORK/data/items.txt")
  echo "catalog: $NUM_ITEMS items"
}

source scripts/bench-serve.sh
