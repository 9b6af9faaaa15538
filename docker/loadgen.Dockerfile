# syntax=docker/dockerfile:1
# Image of the cell's load generator and delivery checker (loadgen/): a one-shot job, such as
# the checker task of the Chaos Mesh game day (chaos/workflow.yaml). Build from the root:
#   docker build -f docker/loadgen.Dockerfile -t chat-cell-loadgen .
# Arguments are loadgen's flags (loadgen/README.md); its exit status is the verdict.

FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,id=chat-cell-target-loadgen,sharing=locked \
    cargo build --release --locked -p loadgen \
    && install -D -m 0755 target/release/loadgen /out/loadgen

# glibc and libgcc only, no shell; runs as uid/gid 65532 (nonroot). No port, no health check:
# it runs to its verdict and exits.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/loadgen /usr/local/bin/loadgen
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/loadgen"]
