#!/usr/bin/env bash
# The whole loop across containers, on an internal network this script creates and removes
# (`docker network create --internal`, no port published). Called by scripts/test.sh; skips
# with a message when no Docker engine can be had (not root and none running).
#   1. trainer: gen-synthetic, prepare, train a teacher (no network).
#   2. 2 teacher-svc replicas; 3 `trainer pull` workers, one shard each, rate-capped so the pull
#      lasts ~35 s (the cap shrinks the stream window, so the teachers cannot run ahead); mid-pull one teacher is killed (and started again, as a kubelet would) and
#      the other is cut off the network, then reconnected. `trainer distill` merges the shards.
#   3. The same pull and distill again, undisturbed, with the same seed: the student's weights
#      must be byte-identical (the manifest also carries wall-clock timings, so its version,
#      the hash of the weights, and its metrics are compared instead of its bytes).
#   4. 2 student-svc replicas serve the first student from a shared read-only artifact volume;
#      rd-loadgen (trainer image) balances over both by health. While it runs, a new student
#      is published into the volume: both replicas hot-reload; then one replica gets
#      `docker stop` (SIGTERM, drain). rd-loadgen must report zero failed requests.
#   5. The images: non-root user, read-only root filesystem (every container runs --read-only),
#      OCI labels, no shell and no LibTorch in student-svc.
# Figures go to runs/e2e/result.json (E2E_OUT to change).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh >/dev/null
source deploy/images/engine.sh

if ! engine_available; then
  echo "e2e: SKIPPED: no Docker engine here (run as root to install docker.io, or start dockerd)" >&2
  exit 0
fi
TAG="${TAG:-dev}"
OUT="${E2E_OUT:-runs/e2e}"
started=$SECONDS
deploy/images/build.sh --tag "$TAG" --sizes "$OUT/sizes.json"
build_s=$((SECONDS - started))

ID="rd-e2e-$$"
NET="$ID"
WORK="$(mktemp -d /tmp/rd-e2e.XXXXXX)"
cleanup() {
  local ids
  ids="$(docker ps -aq --filter "label=rankdistill.e2e=$ID")"
  [[ -n "$ids" ]] && docker rm -f $ids >/dev/null 2>&1
  docker network rm "$NET" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "e2e: FAILED: $*" >&2; exit 1; }
log() { echo "e2e [$((SECONDS - started))s] $*" >&2; }

docker network create --internal --label "rankdistill.e2e=$ID" "$NET" >/dev/null
A="$WORK/artifacts"
mkdir -p "$A" && chown 65532:65532 "$A"
# Every container: the images' non-root user, read-only root, no capabilities, /tmp in memory.
COMMON=(--label "rankdistill.e2e=$ID" --read-only --tmpfs /tmp --cap-drop ALL
        --security-opt no-new-privileges --user 65532:65532)
TRAINER="rankdistill/trainer:$TAG"
trainer() { docker run --rm "${COMMON[@]}" --network none -v "$A:/artifacts" "$TRAINER" "$@"; }
on_net() { docker run "${COMMON[@]}" --network "$NET" "$@"; }
wait_log() { # CONTAINER EXTENDED-REGEX SECONDS [LINES]: until LINES (1) log lines match
  for _ in $(seq $(($3 * 10))); do
    [[ "$(docker logs "$1" 2>&1 | grep -c -E -- "$2")" -ge "${4:-1}" ]] && return 0
    sleep 0.1
  done
  docker logs "$1" 2>&1 | tail -20 >&2
  fail "$1 never logged '$2'"
}

# 5 first: cheap, and a broken image fails fast.
for name in teacher-svc student-svc trainer; do
  image="rankdistill/$name:$TAG"
  user="$(docker image inspect --format '{{.Config.User}}' "$image")"
  [[ "$user" == 65532:65532 ]] || fail "$image runs as '$user', not 65532:65532"
  for label in version revision source; do
    value="$(docker image inspect --format "{{index .Config.Labels \"org.opencontainers.image.$label\"}}" "$image")"
    [[ -n "$value" && "$value" != "<no value>" ]] || fail "$image has no org.opencontainers.image.$label label"
  done
done
if docker run --rm --entrypoint /bin/sh "rankdistill/student-svc:$TAG" -c true >/dev/null 2>&1; then
  fail "the student-svc image has a shell"
fi
probe="$(docker create "rankdistill/student-svc:$TAG")"
if docker export "$probe" | tar -t | grep -E 'libtorch|libc10'; then
  docker rm "$probe" >/dev/null; fail "the student-svc image contains LibTorch"
fi
docker rm "$probe" >/dev/null
log "images: non-root, labelled; student-svc has no shell and no LibTorch"

# 1. Data and teacher.
trainer gen-synthetic --out /artifacts/u.data --users 1000 --items 600 --seed 7 >/dev/null
trainer prepare --input /artifacts/u.data --out /artifacts/data -q
trainer train --data /artifacts/data --out /artifacts/teacher --model caser --dim 50 \
  --epochs 2 --seed 1 -q >/dev/null
log "data prepared and teacher trained in the trainer image"

# 2. Teachers, and the disturbed pull.
T1="$ID-teacher-1" T2="$ID-teacher-2"
for t in "$T1" "$T2"; do
  on_net -d --name "$t" -v "$A:/artifacts:ro" "rankdistill/teacher-svc:$TAG" \
    --addr 0.0.0.0:50051 --metrics-addr 0.0.0.0:9464 --data /artifacts/data \
    --model /artifacts/teacher --device cpu >/dev/null
done
wait_log "$T1" "model ready: SERVING" 120
wait_log "$T2" "model ready: SERVING" 120
TEACHERS="http://$T1:50051,http://$T2:50051"
SHARDS=3
pull() { # RUN RATE_FLAGS...: one container per shard, detached
  local run="$1"; shift
  for i in $(seq 0 $((SHARDS - 1))); do
    on_net -d --name "$ID-$run-pull-$i" -v "$A:/artifacts" "$TRAINER" pull --data /artifacts/data \
      --teacher "$TEACHERS" --cache-dir "/artifacts/$run/cache" --shard-count "$SHARDS" \
      --shard-index "$i" --max-retries 30 "$@" >/dev/null
  done
}
wait_pulls() { # RUN
  for i in $(seq 0 $((SHARDS - 1))); do
    code="$(docker wait "$ID-$1-pull-$i")"
    [[ "$code" == 0 ]] || { docker logs "$ID-$1-pull-$i" 2>&1 | tail -20 >&2; fail "$1 pull worker $i exited $code"; }
  done
}
distill() { # RUN OUT SEED
  trainer distill --data /artifacts/data --cache-dir "/artifacts/$1/cache" --shard-count "$SHARDS" \
    --out "$2" --model caser --dim 20 --epochs 2 --seed "$3" -q >/dev/null
}
pull run1 --pull-rate 60 --stream-batch 32
# Every worker streams from both teachers by now (start-up takes 1-2 s of the ~35 s pull).
sleep 6
docker kill "$T1" >/dev/null
log "killed $T1 mid-pull"
sleep 1
docker start "$T1" >/dev/null
# The log of a restarted container goes on from the old one: wait for a second SERVING.
wait_log "$T1" "model ready: SERVING" 120 2
# Longer than the trainer's keep-alive detection (5 s ping interval + 5 s timeout), so the
# streams from the cut teacher fail and are resumed after the reconnection.
docker network disconnect "$NET" "$T2"
log "cut $T2 off the network"
sleep 12
docker network connect "$NET" "$T2"
log "reconnected $T2"
wait_pulls run1
# Each worker's summary line: "pull: shard I of N, Q queries from ... (R retries, ...)".
retried=0
for i in $(seq 0 $((SHARDS - 1))); do
  r="$(docker logs "$ID-run1-pull-$i" 2>&1 | sed -n 's/^pull: shard .*(\([0-9]*\) retries.*/\1/p' | tail -1)"
  [[ -n "$r" ]] || fail "pull worker $i printed no summary line"
  retried=$((retried + r))
done
if [[ "$retried" == 0 ]]; then
  docker logs "$ID-run1-pull-0" 2>&1 | tail -30 >&2
  fail "no pull worker retried: the pull ended before the faults"
fi
distill run1 /artifacts/run1/student 1
log "disturbed pull ($retried retries) and distill done"

# 3. The undisturbed run.
pull run2
wait_pulls run2
distill run2 /artifacts/run2/student 1
cmp "$A/run1/student/model.safetensors" "$A/run2/student/model.safetensors" \
  || fail "the disturbed run's student weights differ from the undisturbed run's"
manifest_key() { python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(m["version"], json.dumps(m["metrics"], sort_keys=True))' "$1"; }
[[ "$(manifest_key "$A/run1/student/manifest.json")" == "$(manifest_key "$A/run2/student/manifest.json")" ]] \
  || fail "the two students' manifests differ in version or metrics"
weights_sha="$(sha256sum "$A/run1/student/model.safetensors" | cut -d' ' -f1)"
log "students identical (weights sha256 $weights_sha)"

# 4. Serving: publish v1, two replicas, load, publish v2, stop one replica.
cp -a "$A/run1/student" "$A/student"
S1="$ID-student-1" S2="$ID-student-2"
for s in "$S1" "$S2"; do
  on_net -d --name "$s" -v "$A:/artifacts:ro" "rankdistill/student-svc:$TAG" \
    --addr 0.0.0.0:50051 --metrics-addr 0.0.0.0:9464 --model /artifacts/student \
    --data /artifacts/data --watch-interval-ms 200 --drain-delay-ms 2000 >/dev/null
done
wait_log "$S1" "model ready: SERVING" 60
wait_log "$S2" "model ready: SERVING" 60
# v2 is distilled first (another seed) and published under load the way trainer publishes:
# the old folder renamed away, the new one renamed in (core::atomic::replace_dir_atomic).
distill run1 /artifacts/v2 2
v2="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$A/v2/manifest.json")"
on_net -d --name "$ID-loadgen" -v "$A:/artifacts" --entrypoint /usr/local/bin/rd-loadgen "$TRAINER" \
  --addr "http://$S1:50051,http://$S2:50051" --data /artifacts/data --duration-s 30 \
  --warmup-s 0 --concurrency 2 --out /artifacts/loadgen.json >/dev/null
running() { [[ "$(docker inspect -f '{{.State.Running}}' "$1")" == true ]]; }
sleep 3
mv "$A/student" "$A/.student-old" && mv "$A/v2" "$A/student" && rm -rf "$A/.student-old"
log "published student v2 ($v2) under load"
wait_log "$S1" "reloaded: new version serving.*$v2" 30
wait_log "$S2" "reloaded: new version serving.*$v2" 30
log "both replicas reloaded v2"
sleep 2
running "$ID-loadgen" || fail "rd-loadgen ended before the replica was stopped"
docker stop -t 30 "$S1" >/dev/null
stopped="$(docker wait "$S1")"
[[ "$stopped" == 0 ]] || fail "$S1 exited $stopped after SIGTERM"
running "$ID-loadgen" || fail "rd-loadgen ended before the stopped replica had drained"
log "stopped $S1 (SIGTERM) under load; it drained and exited 0"
code="$(docker wait "$ID-loadgen")"
[[ "$code" == 0 ]] || { docker logs "$ID-loadgen" 2>&1 | tail -20 >&2; fail "rd-loadgen exited $code"; }
python3 - "$A/loadgen.json" <<'PY' || fail "rd-loadgen counted failed requests"
import json, sys
r = json.load(open(sys.argv[1]))
print(f"e2e: rd-loadgen {r['requests']} requests, {r['errors']} errors, by replica {r['ok_by_addr']}", file=sys.stderr)
stopped, other = r["ok_by_addr"].values()  # student-1 (stopped), student-2
sys.exit(0 if r["errors"] == 0 and 0 < stopped < other else 1)
PY
reloads=0
for s in "$S1" "$S2"; do
  n="$(docker logs "$s" 2>&1 | grep -c "reloaded: new version serving.*$v2" || true)"
  reloads=$((reloads + (n > 0 ? 1 : 0)))
done

mkdir -p "$OUT"
python3 - "$A/loadgen.json" "$OUT/sizes.json" "$OUT/result.json" "$weights_sha" "$retried" "$reloads" \
  "$build_s" "$((SECONDS - started))" <<'PY'
import json, sys
load, sizes = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
result = {
    "requests": load["requests"], "errors": load["errors"], "ok_by_replica": load["ok_by_addr"],
    "latency_ms": load["latency_ms"], "replicas_reloaded": int(sys.argv[6]),
    "students_identical": True, "weights_sha256": sys.argv[4], "pull_retries": int(sys.argv[5]),
    "image_bytes": sizes["bytes"], "build_seconds": int(sys.argv[7]), "total_seconds": int(sys.argv[8]),
}
with open(sys.argv[3] + ".tmp", "w") as f:
    json.dump(result, f, indent=2)
import os; os.replace(sys.argv[3] + ".tmp", sys.argv[3])
print(json.dumps(result, indent=2))
PY
log "PASSED"
