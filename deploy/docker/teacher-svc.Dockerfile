# syntax=docker/dockerfile:1.7
# teacher-svc: the LibTorch teacher server. Two image targets:
#   teacher-svc       LibTorch 2.13.0 from the PyPI torch wheel, CPU kernels only (no CUDA libs).
#   teacher-svc-cuda  the same binary with the CUDA libraries the wheel links against (the
#                     nvidia-* wheels), for `--device cuda` on a node with an NVIDIA driver.
# Build from the repository root (see deploy/README.md):
#   docker build -f deploy/docker/teacher-svc.Dockerfile --target teacher-svc -t REGISTRY/rankdistill/teacher-svc:TAG .
#   docker build -f deploy/docker/teacher-svc.Dockerfile --target teacher-svc-cuda -t REGISTRY/rankdistill/teacher-svc-cuda:TAG .

FROM rust:1.95-bookworm AS build-teacher
RUN apt-get update && apt-get install -y --no-install-recommends python3-pip && rm -rf /var/lib/apt/lists/*
WORKDIR /src
ENV RANKDISTILL_CACHE=/opt/rankdistill PIP_BREAK_SYSTEM_PACKAGES=1
# LibTorch first: its layer survives source changes.
COPY scripts/setup-libtorch.sh scripts/setup-libtorch.sh
RUN ./scripts/setup-libtorch.sh
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    LIBTORCH=/opt/rankdistill/libtorch-2.13.0/torch CARGO_TARGET_DIR=/src/target \
    cargo build --release --locked -p rankdistill-teacher --bin teacher-svc && \
    cp /src/target/release/teacher-svc /usr/local/bin/teacher-svc

# The CUDA libraries: the torch wheel's own dependencies (nvidia-cudnn, cublas, nccl, ...),
# installed beside torch/ so the rpath in libtorch_cuda.so ($ORIGIN/../../nvidia/...) finds them.
FROM build-teacher AS build-teacher-cuda
RUN python3 -m pip install --quiet --no-cache-dir --target /opt/rankdistill/libtorch-2.13.0 \
      --upgrade "torch==2.13.0"

FROM debian:bookworm-slim AS teacher-svc
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 65532 rankdistill && useradd --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin rankdistill
# The binary's rpath points here, so the library folder keeps its build path.
COPY --from=build-teacher /opt/rankdistill/libtorch-2.13.0 /opt/rankdistill/libtorch-2.13.0
COPY --from=build-teacher /usr/local/bin/teacher-svc /usr/local/bin/teacher-svc
USER 65532:65532
EXPOSE 50051 9464
ENTRYPOINT ["/usr/local/bin/teacher-svc"]

FROM debian:bookworm-slim AS teacher-svc-cuda
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 65532 rankdistill && useradd --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin rankdistill
# Only the driver (libcuda.so) comes from the node, mounted by the NVIDIA container runtime.
ENV NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility
COPY --from=build-teacher-cuda /opt/rankdistill/libtorch-2.13.0 /opt/rankdistill/libtorch-2.13.0
COPY --from=build-teacher /usr/local/bin/teacher-svc /usr/local/bin/teacher-svc
USER 65532:65532
EXPOSE 50051 9464
ENTRYPOINT ["/usr/local/bin/teacher-svc"]
