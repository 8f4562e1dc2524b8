# Muster in a container: a static musl binary in an otherwise empty image.
#   docker build -t muster .
#   docker run -p 8080:8080 -v muster-data:/data muster
# Configure with a file (mount it and pass --config) or MUSTER_* variables.

FROM rust:1-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY web web
COPY config config
COPY benches benches
# The same build step the test suite checks (scripts/test builds it too).
RUN cargo build --release --locked --target x86_64-unknown-linux-musl --bin muster \
 && mkdir -p /out/data \
 && cp target/x86_64-unknown-linux-musl/release/muster /out/muster

FROM scratch
COPY --from=build /out/muster /muster
# An empty data folder owned by the unprivileged user the server runs as.
COPY --from=build --chown=10001:10001 /out/data /data
USER 10001:10001
ENV MUSTER_DATA_DIR=/data \
    MUSTER_LISTEN=0.0.0.0:8080 \
    MUSTER_PUBLIC_URL=http://localhost:8080
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s CMD ["/muster", "health"]
ENTRYPOINT ["/muster"]
CMD ["serve"]
