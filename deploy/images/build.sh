#!/usr/bin/env bash
# Builds the rankdistill images on this machine without an image registry:
#   rankdistill/teacher-svc:TAG  rankdistill/student-svc:TAG  rankdistill/trainer:TAG
# from the Dockerfiles in deploy/docker, unchanged, by build args:
#   1. a Docker engine (engine.sh: installs docker.io and starts dockerd when missing, as root);
#   2. the base images, made locally: a Debian bookworm minbase rootfs by debootstrap (cached as
#      a tarball in $RANKDISTILL_CACHE/images, imported as rankdistill/debian:bookworm) and a
#      distroless-like base on top of it (cc.Dockerfile -> rankdistill/cc:bookworm-nonroot);
#   3. the binaries, built here by cargo in release mode (the shared target folder, so a second
#      build is incremental) and staged with the LibTorch run-time files into a small build
#      context (BUILD=prebuilt). The host is Debian bookworm too, so glibc matches the image.
# Usage: deploy/images/build.sh [--tag TAG] [--sizes FILE]
#   --tag TAG     image tag (default: dev, the tag of deploy/k8s/overlays/local)
#   --sizes FILE  also write the images' sizes as JSON to FILE
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh >/dev/null
source deploy/images/engine.sh

TAG=dev SIZES=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --tag) TAG="$2"; shift 2 ;;
    --sizes) SIZES="$2"; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "build.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

DEBIAN_IMAGE=rankdistill/debian:bookworm
CC_IMAGE=rankdistill/cc:bookworm-nonroot
# The images this script builds: NAME DOCKERFILE TARGET. check_deploy.py reads this list to
# check that the manifests name these images.
IMAGES=(
  "teacher-svc deploy/docker/teacher-svc.Dockerfile teacher-svc"
  "student-svc deploy/docker/student-svc.Dockerfile student-svc"
  "trainer deploy/docker/trainer.Dockerfile trainer"
)

need_root_tool() { # PROGRAM PACKAGE: apt-get installs PACKAGE when PROGRAM is missing
  command -v "$1" >/dev/null 2>&1 && return 0
  [[ "$(id -u)" == 0 ]] || { echo "build.sh: $1 is missing (Debian package $2)" >&2; exit 1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >>"$IMAGES_CACHE/apt.log" 2>&1 \
    || { apt-get update -q >>"$IMAGES_CACHE/apt.log" 2>&1 \
         && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >>"$IMAGES_CACHE/apt.log" 2>&1; }
}

ensure_engine
started=$SECONDS

# 2. Base images.
ROOTFS_TAR="$IMAGES_CACHE/debian-bookworm-minbase.tar"
if ! docker image inspect "$DEBIAN_IMAGE" >/dev/null 2>&1; then
  if [[ ! -f "$ROOTFS_TAR" ]]; then
    need_root_tool debootstrap debootstrap
    echo "build.sh: debootstrap bookworm (minbase) into the cache, once" >&2
    rootfs="$(mktemp -d "$IMAGES_CACHE/.rootfs.XXXXXX")"
    trap 'rm -rf "$rootfs"' EXIT
    debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian \
      >"$IMAGES_CACHE/debootstrap.log" 2>&1 \
      || { echo "build.sh: debootstrap failed, see $IMAGES_CACHE/debootstrap.log" >&2; exit 1; }
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -cf "$ROOTFS_TAR.tmp" . && mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
    rm -rf "$rootfs"; trap - EXIT
  fi
  docker import --change 'CMD ["/bin/bash"]' "$ROOTFS_TAR" "$DEBIAN_IMAGE" >/dev/null
fi
if ! docker image inspect "$CC_IMAGE" >/dev/null 2>&1; then
  docker_build -q -f deploy/images/cc.Dockerfile --build-arg DEBIAN_IMAGE="$DEBIAN_IMAGE" \
    -t "$CC_IMAGE" deploy/images >/dev/null
fi

# 3. Binaries and the staged context.
need_root_tool patchelf patchelf
echo "build.sh: cargo build --release (teacher-svc, trainer, student-svc, rd-loadgen)" >&2
cargo build --release --locked -q -p rankdistill-teacher --bin teacher-svc \
  -p rankdistill-trainer --bin trainer -p rankdistill-student --bin student-svc --bin rd-loadgen
CONTEXT="$IMAGES_CACHE/context"
rm -rf "$CONTEXT" && mkdir -p "$CONTEXT/prebuilt/bin" "$CONTEXT/deploy/docker"
for bin in teacher-svc trainer student-svc rd-loadgen; do
  cp "$CARGO_TARGET_DIR/release/$bin" "$CONTEXT/prebuilt/bin/$bin"
done
# The LibTorch binaries' rpath names this machine's cache; in the images LibTorch sits where
# the source build puts it.
for bin in teacher-svc trainer; do
  patchelf --set-rpath /opt/rankdistill/libtorch-2.13.0/torch/lib "$CONTEXT/prebuilt/bin/$bin"
done
deploy/docker/libtorch-runtime.sh "$(dirname "$LIBTORCH")" "$CONTEXT/prebuilt/libtorch-2.13.0"
cp deploy/docker/rd-with-teachers.sh "$CONTEXT/deploy/docker/"

# 4. The images.
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
SOURCE="$(git config --get remote.origin.url 2>/dev/null || echo unknown)"
sizes=()
for spec in "${IMAGES[@]}"; do
  read -r name dockerfile target <<<"$spec"
  runtime="$DEBIAN_IMAGE"
  [[ "$name" == student-svc ]] && runtime="$CC_IMAGE"
  echo "build.sh: rankdistill/$name:$TAG" >&2
  docker_build -q -f "$dockerfile" --target "$target" \
    --build-arg BUILD=prebuilt --build-arg RUNTIME_IMAGE="$runtime" \
    --build-arg VERSION="$VERSION" --build-arg REVISION="$REVISION" --build-arg SOURCE="$SOURCE" \
    -t "rankdistill/$name:$TAG" "$CONTEXT" >/dev/null
  # The image this tag named before, if the build changed it, is left without a name: remove
  # such images of ours, or every build with new binaries would keep another ~700 MB.
  docker image prune -f --filter "label=org.opencontainers.image.title=$name" >/dev/null 2>&1 || true
  bytes="$(docker image inspect --format '{{.Size}}' "rankdistill/$name:$TAG")"
  sizes+=("\"$name\": $bytes")
  printf '  %-12s %6d MB\n' "$name" $((bytes / 1000000))
done
# BuildKit keeps every staged context in its cache (the binaries change with every commit):
# keep the cache of this engine under 3 GB.
docker builder prune -f --keep-storage 3000000000 >/dev/null 2>&1 || true
echo "build.sh: images built in $((SECONDS - started)) s" >&2
if [[ -n "$SIZES" ]]; then
  mkdir -p "$(dirname "$SIZES")"
  (IFS=,; printf '{"tag": "%s", "bytes": {%s}}\n' "$TAG" "${sizes[*]}") >"$SIZES.tmp"
  mv "$SIZES.tmp" "$SIZES"
fi
