# Sourced by deploy/images/build.sh and e2e.sh (after scripts/env.sh). Provides:
#   engine_available   true when a Docker engine answers, starting one if it can
#   ensure_engine      the same, or exits with what to do
#   docker_build ARGS  `docker build` with BuildKit, whichever client this machine has
# The engine: Debian's docker.io (dockerd 20.10). As root, a missing engine is installed with
# apt-get and dockerd is started in the background (log: $RANKDISTILL_CACHE/images/dockerd.log).
# A non-root user needs an engine that is already running and reachable.

IMAGES_CACHE="$RANKDISTILL_CACHE/images"
mkdir -p "$IMAGES_CACHE"

engine_available() {
  docker info >/dev/null 2>&1 && return 0
  [[ "$(id -u)" == 0 ]] || return 1
  if ! command -v dockerd >/dev/null 2>&1; then
    echo "images: installing docker.io with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q docker.io >"$IMAGES_CACHE/apt.log" 2>&1 \
      || { apt-get update -q >>"$IMAGES_CACHE/apt.log" 2>&1 \
           && apt-get install -y -q docker.io >>"$IMAGES_CACHE/apt.log" 2>&1; } \
      || { echo "images: apt-get install docker.io failed, see $IMAGES_CACHE/apt.log" >&2; return 1; }
  fi
  echo "images: starting dockerd (log: $IMAGES_CACHE/dockerd.log)" >&2
  nohup dockerd >"$IMAGES_CACHE/dockerd.log" 2>&1 &
  for _ in $(seq 120); do
    docker info >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  echo "images: dockerd did not answer within 60 s, see $IMAGES_CACHE/dockerd.log" >&2
  return 1
}

ensure_engine() {
  engine_available || {
    echo "images: no Docker engine: run as root (it installs docker.io and starts dockerd)" \
         "or start one that \`docker info\` reaches" >&2
    exit 1
  }
}

# BuildKit is needed (RUN --mount, and stages the target does not use are skipped). Clients
# from 23 on build with the buildx plugin; without it, Debian's own client (/usr/bin/docker,
# 20.10) still has BuildKit built in.
docker_build() {
  if docker buildx version >/dev/null 2>&1; then
    docker buildx build --load "$@"
  elif [[ -x /usr/bin/docker ]]; then
    DOCKER_BUILDKIT=1 /usr/bin/docker build "$@"
  else
    DOCKER_BUILDKIT=1 docker build "$@"
  fi
}
