# A distroless/cc-like base made from the local Debian bookworm image, for hosts that cannot
# pull gcr.io/distroless/cc-debian12: glibc, libgcc_s, CA certificates and a nonroot user
# (65532), with no shell and no package manager. deploy/images/build.sh builds it as
# rankdistill/cc:bookworm-nonroot and passes it to student-svc.Dockerfile as RUNTIME_IMAGE.
ARG DEBIAN_IMAGE=rankdistill/debian:bookworm

FROM ${DEBIAN_IMAGE} AS rootfs
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN set -eu; \
    out=/out; lib=/lib/x86_64-linux-gnu; \
    mkdir -p "$out$lib" "$out/lib64" "$out/etc/ssl/certs" "$out/tmp" "$out/home/nonroot"; \
    for f in ld-linux-x86-64.so.2 libc.so.6 libm.so.6 libgcc_s.so.1 libdl.so.2 libpthread.so.0 librt.so.1; do \
      cp -L "$lib/$f" "$out$lib/$f"; \
    done; \
    ln -s "$lib/ld-linux-x86-64.so.2" "$out/lib64/ld-linux-x86-64.so.2"; \
    cp -L /etc/ssl/certs/ca-certificates.crt "$out/etc/ssl/certs/ca-certificates.crt"; \
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$out/etc/passwd"; \
    printf 'root:x:0:\nnonroot:x:65532:\n' > "$out/etc/group"; \
    printf 'hosts: files dns\n' > "$out/etc/nsswitch.conf"; \
    chmod 1777 "$out/tmp"; chown 65532:65532 "$out/home/nonroot"

FROM scratch
COPY --from=rootfs /out/ /
USER 65532:65532
