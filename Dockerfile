# Darkroom: one image with darkroom-web, darkroom-processor and darkroom-ctl.
#
#   docker build -t darkroom .                      # or: docker compose build
#   docker build --build-arg RUST_IMAGE=… --build-arg RUNTIME_IMAGE=… .
#
# The builder installs every system library the image engine uses, and the build fails if one
# is missing (DARKROOM_REQUIRE_SYSTEM_LIBS), so the image is the same whatever the base image
# happens to contain. The runtime stage installs each library those binaries link; the
# container test (e2e/containers/test) runs ldd in the image and checks the engine's report.
ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      gcc libc6-dev make pkg-config \
      libheif-dev libturbojpeg0-dev libjpeg62-turbo-dev \
 && rm -rf /var/lib/apt/lists/*
ENV DARKROOM_REQUIRE_SYSTEM_LIBS=1 \
    CARGO_TERM_COLOR=never \
    CARGO_PROFILE_RELEASE_DEBUG=false \
    CARGO_PROFILE_RELEASE_STRIP=symbols
WORKDIR /src

# 1. Dependencies only, in their own layer: the manifests and empty stand-ins for our own
#    crates. A source edit leaves this layer (the AWS SDK, actix, image codecs) as it is.
COPY Cargo.toml Cargo.lock ./
COPY protocol/Cargo.toml protocol/
COPY core/Cargo.toml core/
COPY engine/Cargo.toml engine/
COPY web/Cargo.toml web/
COPY processor/Cargo.toml processor/
COPY e2e/Cargo.toml e2e/
COPY bench/Cargo.toml bench/
COPY bench/engine/Cargo.toml bench/engine/
RUN set -eu; \
    for crate in protocol core engine web processor e2e; do mkdir -p "$crate/src"; : > "$crate/src/lib.rs"; done; \
    mkdir -p core/src/bin bench/src bench/engine/src; \
    for main in core/src/bin/darkroom-ctl.rs web/src/main.rs processor/src/main.rs \
                bench/src/queue_bench.rs bench/engine/src/main.rs; do echo 'fn main() {}' > "$main"; done; \
    cargo build --release --locked -p darkroom-web -p darkroom-processor -p darkroom-core --bins; \
    rm -rf protocol/src core/src engine/src web/src processor/src \
           target/release/.fingerprint/darkroom-* target/release/build/darkroom-* \
           target/release/deps/darkroom_* target/release/deps/libdarkroom_* target/release/darkroom-*

# 2. Our code: only what the three binaries are built from, so an edit to docs, tests or
#    scripts rebuilds nothing.
COPY protocol protocol
COPY core core
COPY engine engine
COPY web web
COPY processor processor
COPY templates templates
COPY static static
# (e2e and bench keep their empty stand-ins from step 1: they are workspace members only.)
RUN cargo build --release --locked -p darkroom-web -p darkroom-processor -p darkroom-core --bins \
 && mkdir -p /out \
 && cp target/release/darkroom-web target/release/darkroom-processor target/release/darkroom-ctl /out/ \
 && /out/darkroom-processor --engine-info --require-complete

FROM ${RUNTIME_IMAGE}
# Exactly the shared libraries the binaries link (libheif pulls its codecs: libde265 for HEIC,
# libaom for AVIF), and the CA bundle for HTTPS to AWS.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libheif1 libturbojpeg0 libjpeg62-turbo ca-certificates \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/darkroom --create-home darkroom
COPY --from=build /out/ /usr/local/bin/
USER 10001:10001
WORKDIR /var/lib/darkroom
# The web app listens on 8080; a processor answers /livez, /readyz and /metrics on 9090. The embedded
# backend (no AWS settings) keeps its data in /var/lib/darkroom: mount a volume there.
ENV DARKROOM_BIND=0.0.0.0:8080 \
    DARKROOM_PROCESSOR_BIND=0.0.0.0:9090 \
    DARKROOM_DATA_DIR=/var/lib/darkroom \
    RUST_LOG=info
EXPOSE 8080 9090
# The web app's /livez (alive even while a queue is unreachable; /readyz says that); a processor container checks its own port instead:
#   darkroom-ctl health http://127.0.0.1:9090/livez   (docker-compose.yml does)
HEALTHCHECK --interval=5s --timeout=5s --start-period=20s --retries=3 CMD ["darkroom-ctl", "health"]
# Exec form: the binary is PID 1 and gets SIGTERM itself (a processor drains on it).
CMD ["darkroom-web", "--init"]
