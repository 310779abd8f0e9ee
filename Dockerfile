# syntax=docker/dockerfile:1
#
# feedback-loop: build with the official Rust image, run on Debian slim as a non-root user.
#
#   docker build -t feedback-loop .
#   docker run --rm -p 9898:9898 -v $PWD/config/feedback-loop.toml:/etc/feedback-loop/feedback-loop.toml:ro feedback-loop
#   docker run --rm -p 9898:9898 feedback-loop demo          # no Kafka needed
#
# Sizes, the health check and the runtime libraries are explained in docs/operations.md.

############################ build ############################
FROM rust:1.95-bookworm AS build

# rdkafka builds the bundled librdkafka with the `ssl` and `zstd` features. libsasl2-dev is
# only needed if the `gssapi` feature (Kerberos) is turned on; it is installed so that this
# is a one-line change in Cargo.toml (the runtime stage then needs libsasl2-2 too).
RUN apt-get update \
 && apt-get install -y --no-install-recommends pkg-config libssl-dev libsasl2-dev libzstd-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# Only what the build needs (see .dockerignore): the manifest, the lock file, the sources.
# benches/ is declared by Cargo.toml ([[bench]]), so cargo wants it present to read the manifest.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches

# Cache mounts keep the registry and target dir between builds (BuildKit); the binary is
# copied out of the cached target dir because cache mounts are not part of the layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin feedback-loop \
 && install -D -m 0755 target/release/feedback-loop /out/feedback-loop \
 && strip --strip-debug /out/feedback-loop
# --strip-debug drops the DWARF line tables of the release profile (64 MB -> ~11 MB) but
# keeps the symbol table, so backtraces still name functions.

############################ runtime ############################
FROM debian:bookworm-slim AS runtime

# `ldd` of the binary: libssl.so.3, libcrypto.so.3, libz.so.1, libgcc_s, libm, libc (zstd is
# linked statically by zstd-sys; SASL/GSSAPI is off, so no libsasl2). bookworm-slim has zlib1g
# and libgcc-s1; add OpenSSL and the CA bundle (for SSL / SASL_SSL clusters). Nothing else:
# no curl (see HEALTHCHECK).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 feedback-loop \
 && useradd --system --uid 10001 --gid feedback-loop --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin feedback-loop

COPY --from=build /out/feedback-loop /usr/local/bin/feedback-loop
# The default config (`run --config` defaults to this path; FEEDBACK_LOOP_CONFIG overrides it,
# FEEDBACK_LOOP__SECTION__KEY variables override single keys). Mount your own over it.
COPY config/feedback-loop.toml /etc/feedback-loop/feedback-loop.toml

USER 10001:10001
EXPOSE 9898

# Liveness against /healthz without installing curl or wget: bash (part of every Debian
# image) opens a TCP connection with /dev/tcp and sends a bare HTTP/1.0 request. The port
# follows FEEDBACK_LOOP_HEALTH_PORT (default 9898, the default `http.listen`).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${FEEDBACK_LOOP_HEALTH_PORT:-9898} && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]

ENTRYPOINT ["feedback-loop"]
CMD ["run"]
