# trainer: the CLI (prepare, train, pull, distill, evaluate, report) and rd-loadgen; the
# distillation Jobs run it. LibTorch 2.13.0 CPU kernels, as in the teacher image.
# Build from the repository root:
#   docker build -f deploy/docker/trainer.Dockerfile --target trainer -t REGISTRY/rankdistill/trainer:TAG .
# Without a registry: deploy/images/build.sh (see teacher-svc.Dockerfile).

ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim
ARG BUILD=source

FROM ${RUST_IMAGE} AS build-trainer-source
RUN apt-get update && apt-get install -y --no-install-recommends python3-pip && rm -rf /var/lib/apt/lists/*
WORKDIR /src
ENV RANKDISTILL_CACHE=/opt/rankdistill PIP_BREAK_SYSTEM_PACKAGES=1
COPY scripts/setup-libtorch.sh scripts/setup-libtorch.sh
COPY deploy/docker/libtorch-runtime.sh /usr/local/bin/libtorch-runtime
RUN ./scripts/setup-libtorch.sh && \
    libtorch-runtime /opt/rankdistill/libtorch-2.13.0 /opt/rankdistill/runtime/libtorch-2.13.0
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    LIBTORCH=/opt/rankdistill/libtorch-2.13.0/torch CARGO_TARGET_DIR=/src/target \
    cargo build --release --locked -p rankdistill-trainer --bin trainer -p rankdistill-student --bin rd-loadgen && \
    cp /src/target/release/trainer /src/target/release/rd-loadgen /usr/local/bin/

FROM scratch AS build-trainer-prebuilt
COPY prebuilt/libtorch-2.13.0 /opt/rankdistill/runtime/libtorch-2.13.0
COPY prebuilt/bin/trainer prebuilt/bin/rd-loadgen /usr/local/bin/

FROM build-trainer-${BUILD} AS build-trainer

FROM ${RUNTIME_IMAGE} AS trainer
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="trainer" \
      org.opencontainers.image.description="rankdistill trainer CLI and rd-loadgen (LibTorch, CPU)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libstdc++6 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 65532 rankdistill && useradd --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin rankdistill
COPY --from=build-trainer /opt/rankdistill/runtime/ /opt/rankdistill/
COPY --from=build-trainer /usr/local/bin/trainer /usr/local/bin/rd-loadgen /usr/local/bin/
# Expands a headless Service into one endpoint per ready pod for `--teacher` (see the Job).
COPY deploy/docker/rd-with-teachers.sh /usr/local/bin/rd-with-teachers
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/trainer"]
