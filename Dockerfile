# Darkroom: one image with both binaries (darkroom-web, darkroom-processor) and darkroom-ctl.
FROM rust:1-bookworm AS build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libheif-dev libturbojpeg0-dev pkg-config && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p darkroom-web -p darkroom-processor -p darkroom-core --bins

FROM debian:bookworm-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libheif1 libturbojpeg0 ca-certificates curl && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/darkroom-web /src/target/release/darkroom-processor \
                  /src/target/release/darkroom-ctl /usr/local/bin/
ENV DARKROOM_BIND=0.0.0.0:8080 RUST_LOG=info
EXPOSE 8080
CMD ["darkroom-web", "--init"]
