# syntax=docker/dockerfile:1.7
# trainer: the CLI (prepare, train, pull, distill, evaluate, report); the distillation Jobs run it.
# LibTorch 2.13.0 CPU kernels, as in the teacher image.
# Build from the repository root:
#   docker build -f deploy/docker/trainer.Dockerfile --target trainer -t REGISTRY/rankdistill/trainer:TAG .

FROM rust:1.95-bookworm AS build-trainer
RUN apt-get update && apt-get install -y --no-install-recommends python3-pip && rm -rf /var/lib/apt/lists/*
WORKDIR /src
ENV RANKDISTILL_CACHE=/opt/rankdistill PIP_BREAK_SYSTEM_PACKAGES=1
COPY scripts/setup-libtorch.sh scripts/setup-libtorch.sh
RUN ./scripts/setup-libtorch.sh
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    LIBTORCH=/opt/rankdistill/libtorch-2.13.0/torch CARGO_TARGET_DIR=/src/target \
    cargo build --release --locked -p rankdistill-trainer --bin trainer && \
    cp /src/target/release/trainer /usr/local/bin/trainer

FROM debian:bookworm-slim AS trainer
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 65532 rankdistill && useradd --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin rankdistill
COPY --from=build-trainer /opt/rankdistill/libtorch-2.13.0 /opt/rankdistill/libtorch-2.13.0
COPY --from=build-trainer /usr/local/bin/trainer /usr/local/bin/trainer
# Expands a headless Service into one endpoint per ready pod for `--teacher` (see the Job).
COPY deploy/docker/rd-with-teachers.sh /usr/local/bin/rd-with-teachers
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/trainer"]
