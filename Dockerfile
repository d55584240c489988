# Multi-stage build: compile in the Rust image, run in a slim Debian with only the binaries.
#   docker build -t tessera:local .
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin tessera \
 && cargo build --release --locked -p tessera-verifier --example resource-service

FROM debian:bookworm-slim
# ca-certificates for https issuers; curl for the health checks.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/tessera --create-home tessera
COPY --from=build /src/target/release/tessera /usr/local/bin/tessera
COPY --from=build /src/target/release/examples/resource-service /usr/local/bin/resource-service
USER tessera
WORKDIR /var/lib/tessera
ENV TESSERA_DATA_DIR=/var/lib/tessera/data
EXPOSE 8080
# Plain HTTP, or HTTPS with --tls-cert (the certificate names the public host, not 127.0.0.1,
# hence -k for this local probe only).
HEALTHCHECK --interval=10s --timeout=3s CMD curl -fsS http://127.0.0.1:8080/readyz || curl -fsSk https://127.0.0.1:8080/readyz || exit 1
ENTRYPOINT ["tessera"]
CMD ["serve", "--listen", "0.0.0.0:8080"]
