# syntax=docker/dockerfile:1
# Image of the chat cell's gateway (REST + WebSocket edge). Build from the repository root:
#   docker build -f docker/gateway.Dockerfile -t chat-cell-gateway .
# Config: mount a TOML file and point CHAT_CONFIG at it; secrets come as CHAT__… env vars.

FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
# The registry and target caches survive between builds on one builder; the binary is copied
# out of the cache mount, since a mount is not part of the layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,id=chat-cell-target-gateway,sharing=locked \
    cargo build --release --locked -p gateway \
    && install -D -m 0755 target/release/gateway /out/gateway \
    && install -d -o 65532 -g 65532 /out/uploads

# glibc and libgcc only, no shell; runs as uid/gid 65532 (nonroot).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/gateway /usr/local/bin/gateway
# The upload directory (uploads.store), owned by nonroot so a fresh named volume is too.
COPY --from=builder --chown=65532:65532 /out/uploads /var/lib/chat/uploads
USER nonroot:nonroot
# Client traffic (gateway.listen = 0.0.0.0:8080) and the admin endpoint
# (gateway.admin_listen = 0.0.0.0:9090: /metrics, /health, /ready).
EXPOSE 8080 9090
# `gateway healthcheck` asks this container's admin endpoint for /health, with the same config.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/gateway", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/gateway"]
