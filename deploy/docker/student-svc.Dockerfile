# student-svc: the distilled student, pure Rust. No LibTorch anywhere: the build stage never
# runs setup-libtorch.sh and `-p rankdistill-student` compiles no tch/torch-sys.
# Build from the repository root:
#   docker build -f deploy/docker/student-svc.Dockerfile --target student-svc -t REGISTRY/rankdistill/student-svc:TAG .
# Without a registry: deploy/images/build.sh, which makes a distroless-like base of its own
# (deploy/images/cc.Dockerfile) and passes it as RUNTIME_IMAGE.

ARG RUST_IMAGE=rust:1.95-bookworm
# distroless/cc: glibc and libgcc only, no shell, nonroot user 65532.
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot
ARG BUILD=source

FROM ${RUST_IMAGE} AS build-student-source
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    CARGO_TARGET_DIR=/src/target cargo build --release --locked -p rankdistill-student --bin student-svc && \
    cp /src/target/release/student-svc /usr/local/bin/student-svc

FROM scratch AS build-student-prebuilt
COPY prebuilt/bin/student-svc /usr/local/bin/student-svc

FROM build-student-${BUILD} AS build-student

FROM ${RUNTIME_IMAGE} AS student-svc
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="student-svc" \
      org.opencontainers.image.description="rankdistill student server (pure Rust, no LibTorch)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build-student /usr/local/bin/student-svc /usr/local/bin/student-svc
USER 65532:65532
EXPOSE 50051 9464
# Probes: gRPC health on the serving port (Kubernetes `grpc:` probes, see deploy/k8s); the
# image has no shell and no probe client, so no HEALTHCHECK.
ENTRYPOINT ["/usr/local/bin/student-svc"]
