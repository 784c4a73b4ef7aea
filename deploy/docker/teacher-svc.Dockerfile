# teacher-svc: the LibTorch teacher server. Two image targets:
#   teacher-svc       LibTorch 2.13.0 from the PyPI torch wheel, CPU kernels only (no CUDA libs).
#   teacher-svc-cuda  the same binary with the CUDA libraries the wheel links against (the
#                     nvidia-* wheels), for `--device cuda` on a node with an NVIDIA driver.
# Build from the repository root (see deploy/README.md):
#   docker build -f deploy/docker/teacher-svc.Dockerfile --target teacher-svc -t REGISTRY/rankdistill/teacher-svc:TAG .
#   docker build -f deploy/docker/teacher-svc.Dockerfile --target teacher-svc-cuda -t REGISTRY/rankdistill/teacher-svc-cuda:TAG .
# Without a registry, deploy/images/build.sh makes the base images locally and passes them
# as the *_IMAGE build args, with BUILD=prebuilt (binaries built on the host, same Debian).

ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim
# source: compile in the build stage. prebuilt: copy prebuilt/ from the context build.sh stages.
ARG BUILD=source

FROM ${RUST_IMAGE} AS build-teacher-source
RUN apt-get update && apt-get install -y --no-install-recommends python3-pip && rm -rf /var/lib/apt/lists/*
WORKDIR /src
ENV RANKDISTILL_CACHE=/opt/rankdistill PIP_BREAK_SYSTEM_PACKAGES=1
# LibTorch first: its layer survives source changes.
COPY scripts/setup-libtorch.sh scripts/setup-libtorch.sh
COPY deploy/docker/libtorch-runtime.sh /usr/local/bin/libtorch-runtime
RUN ./scripts/setup-libtorch.sh && \
    libtorch-runtime /opt/rankdistill/libtorch-2.13.0 /opt/rankdistill/runtime/libtorch-2.13.0
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    LIBTORCH=/opt/rankdistill/libtorch-2.13.0/torch CARGO_TARGET_DIR=/src/target \
    cargo build --release --locked -p rankdistill-teacher --bin teacher-svc && \
    cp /src/target/release/teacher-svc /usr/local/bin/teacher-svc

FROM scratch AS build-teacher-prebuilt
COPY prebuilt/libtorch-2.13.0 /opt/rankdistill/runtime/libtorch-2.13.0
COPY prebuilt/bin/teacher-svc /usr/local/bin/teacher-svc

# Either way: /usr/local/bin/teacher-svc and the LibTorch run-time files under
# /opt/rankdistill/runtime, at the path the binary's rpath names once moved to /opt/rankdistill.
FROM build-teacher-${BUILD} AS build-teacher

# The CUDA libraries: the torch wheel's own dependencies (nvidia-cudnn, cublas, nccl, ...),
# installed beside torch/ so the rpath in libtorch_cuda.so ($ORIGIN/../../nvidia/...) finds them.
FROM build-teacher-source AS build-teacher-cuda
RUN python3 -m pip install --quiet --no-cache-dir --target /opt/rankdistill/libtorch-2.13.0 \
      --upgrade "torch==2.13.0"

FROM ${RUNTIME_IMAGE} AS base-runtime
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libstdc++6 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 65532 rankdistill && useradd --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin rankdistill

FROM base-runtime AS teacher-svc
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="teacher-svc" \
      org.opencontainers.image.description="rankdistill teacher server (LibTorch, CPU)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0"
# The binary's rpath points here, so the library folder keeps its build path.
COPY --from=build-teacher /opt/rankdistill/runtime/ /opt/rankdistill/
COPY --from=build-teacher /usr/local/bin/teacher-svc /usr/local/bin/teacher-svc
USER 65532:65532
EXPOSE 50051 9464
# Probes: gRPC health on the serving port (Kubernetes `grpc:` probes, see deploy/k8s); the
# image has no probe client, so no HEALTHCHECK.
ENTRYPOINT ["/usr/local/bin/teacher-svc"]

FROM base-runtime AS teacher-svc-cuda
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="teacher-svc-cuda" \
      org.opencontainers.image.description="rankdistill teacher server (LibTorch, CUDA)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0"
# Only the driver (libcuda.so) comes from the node, mounted by the NVIDIA container runtime.
ENV NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility
COPY --from=build-teacher-cuda /opt/rankdistill/libtorch-2.13.0 /opt/rankdistill/libtorch-2.13.0
COPY --from=build-teacher-cuda /usr/local/bin/teacher-svc /usr/local/bin/teacher-svc
USER 65532:65532
EXPOSE 50051 9464
ENTRYPOINT ["/usr/local/bin/teacher-svc"]
