# syntax=docker/dockerfile:1.7
# student-svc: the distilled student, pure Rust. No LibTorch anywhere: the build stage never
# runs setup-libtorch.sh and `-p rankdistill-student` compiles no tch/torch-sys.
# Build from the repository root:
#   docker build -f deploy/docker/student-svc.Dockerfile --target student-svc -t REGISTRY/rankdistill/student-svc:TAG .

FROM rust:1.95-bookworm AS build-student
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    CARGO_TARGET_DIR=/src/target cargo build --release --locked -p rankdistill-student --bin student-svc && \
    cp /src/target/release/student-svc /usr/local/bin/student-svc

# distroless/cc: glibc and libgcc only, no shell, nonroot user 65532.
FROM gcr.io/distroless/cc-debian12:nonroot AS student-svc
COPY --from=build-student /usr/local/bin/student-svc /usr/local/bin/student-svc
USER 65532:65532
EXPOSE 50051 9464
ENTRYPOINT ["/usr/local/bin/student-svc"]
