# classify-native for NVIDIA GPU hosts (CUDA 13 driver): built with native/cuda/build.sh, which assembles the CUDA
# 13.0 toolkit from NVIDIA's PyPI wheels and embeds SASS for CUDA_COMPUTE_CAP (90: H100/H200), so no GPU is needed
# to build; run on NVIDIA's CUDA runtime image as a non-root user.
#   docker build -f deploy/docker/native-cuda.Dockerfile --build-arg CUDA_COMPUTE_CAP=90 -t classify-native:0.1.0-cuda .
#   docker run --gpus all -p 8000:8000 -v hf-cache:/cache/huggingface classify-native:0.1.0-cuda --model org/name
FROM rust:1.95.0-bookworm AS build
ARG CUDA_COMPUTE_CAP=90
RUN apt-get update && apt-get install -y --no-install-recommends python3-pip && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP} native/cuda/build.sh \
    && install -D target/cuda/release/classify-native /out/classify-native

FROM nvidia/cuda:13.0.1-runtime-ubuntu24.04
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libcublas-13-0 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --user-group --no-create-home --home-dir /nonexistent classify \
    && mkdir -p /cache/huggingface /cache/cuda && chown classify:classify /cache/huggingface /cache/cuda
COPY --from=build /out/classify-native /usr/local/bin/classify-native
USER 10001:10001
ENV HF_HOME=/cache/huggingface CUDA_CACHE_PATH=/cache/cuda
EXPOSE 8000
ENTRYPOINT ["classify-native", "--host", "0.0.0.0", "--port", "8000", "--device", "cuda"]
