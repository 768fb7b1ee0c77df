# syntax=docker/dockerfile:1
# The kube-notify image: a release build on Debian bookworm, run on distroless
# (glibc, CA certificates and a nonroot user; no shell, no package manager).
#
#   docker build -t kube-notify:0.1.0 .
#   docker run --rm kube-notify:0.1.0 --help
#
# tests/dockerfile.rs checks this file's structure, and scripts/image-build
# runs the build stage's commands on a machine without a Docker engine.

# At least the crate's rust-version (Cargo.toml).
ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
# The dependencies first, in their own layer: rebuilt only when Cargo.toml or
# Cargo.lock change. The placeholder sources are removed right after.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && cargo build --release --locked \
 && rm -rf src
COPY src ./src
# touch: newer than the placeholder's artifacts, so cargo rebuilds the crate.
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --bin kube-notify

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="kube-notify" \
      org.opencontainers.image.description="Kubernetes notification operator: Slack, Chatwork, Microsoft Teams and webhooks" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /src/target/release/kube-notify /usr/local/bin/kube-notify
# distroless's nonroot user and group.
USER 65532:65532
# HTTP ingestion, and the admin endpoints (/livez, /readyz, /metrics).
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/kube-notify"]
CMD ["run"]
