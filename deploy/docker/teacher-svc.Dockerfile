# teacher-svc image: LibTorch 2.13.0 from the PyPI torch wheel (CPU kernels; CUDA needs the
# full wheel set, see README), the binary with an rpath to it.
# Build from the repository root: docker build -f deploy/teacher-svc.Dockerfile -t rankdistill/teacher-svc .
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends python3-pip && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
ENV RANKDISTILL_CACHE=/opt/rankdistill
RUN ./scripts/setup-libtorch.sh && \
    LIBTORCH=/opt/rankdistill/libtorch-2.13.0/torch CARGO_TARGET_DIR=/src/target \
    cargo build --release -p rankdistill-teacher --bin teacher-svc

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 ca-certificates && rm -rf /var/lib/apt/lists/*
# The binary's rpath points here, so the library folder keeps its build path.
COPY --from=build /opt/rankdistill/libtorch-2.13.0 /opt/rankdistill/libtorch-2.13.0
COPY --from=build /src/target/release/teacher-svc /usr/local/bin/teacher-svc
USER 65532:65532
EXPOSE 50051 9464
ENTRYPOINT ["/usr/local/bin/teacher-svc"]
CMD ["--addr", "0.0.0.0:50051", "--metrics-addr", "0.0.0.0:9464", "--data", "/models/data", "--model", "/models/teacher"]
