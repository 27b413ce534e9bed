# classify-native for CPU hosts: built in the pinned Rust toolchain, run as a non-root user on a slim base.
#   docker build -f deploy/docker/native.Dockerfile -t classify-native:0.1.0 .
#   docker run -p 8000:8000 -v hf-cache:/cache/huggingface classify-native:0.1.0 --model org/name
FROM rust:1.95.0-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p classify-native \
    && install -D target/release/classify-native /out/classify-native

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --user-group --no-create-home --home-dir /nonexistent classify \
    && mkdir -p /cache/huggingface && chown classify:classify /cache/huggingface
COPY --from=build /out/classify-native /usr/local/bin/classify-native
USER 10001:10001
ENV HF_HOME=/cache/huggingface
EXPOSE 8000
# Without --model it serves the bundled spam/ham classifier (embedded in the binary).
ENTRYPOINT ["classify-native", "--host", "0.0.0.0", "--port", "8000"]
