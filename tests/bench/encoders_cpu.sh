#!/usr/bin/env bash
# Encoder CPU benchmark, one run: a DistilBERT-base- and a DeBERTa-v3-small-shaped random model (generated into a
# temporary directory), each served by the native server (bench-native: 16 clients, one text per request) and
# compared with PyTorch eager and onnxruntime on the same texts in padded batches of 16, with the same threads;
# then the edge engine's warm latency (bench-edge: tract natively and the component in edge-host) next to
# onnxruntime with one thread.
#   PYTHON=/path/to/venv/python tests/bench/encoders_cpu.sh      (the venv of tests/fixtures/requirements.txt)
#   MODELS=DIR reuses models generated before (`encoders_cpu.py generate DIR`).
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
THREADS=${THREADS:-$(nproc)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
models=${MODELS:-$work/models}
[ -d "$models/distilbert-base" ] || "$PYTHON" tests/bench/encoders_cpu.py generate "$models" > /dev/null 2>&1
cargo build --release -p classify-edge --target wasm32-wasip2 --no-default-features --features wasi-http-p3 --quiet
cp "${CARGO_TARGET_DIR:-target}/wasm32-wasip2/release/classify_edge.wasm" "$work/classify_edge-p3.wasm"
cargo build --release -p classify-tests --bin bench-native --bin bench-edge --quiet
for model in distilbert-base deberta-v3-small; do
  echo "== $model ($THREADS threads)"
  "$PYTHON" tests/bench/encoders_cpu.py measure "$models/$model" "$THREADS"
  "${CARGO_TARGET_DIR:-target}/release/bench-native" --model "$models/$model" --clients 16 --requests 800 --max-seconds 60
  mkdir -p "$work/edge-$model"
  cp -rl "$models/$model" "$work/edge-$model/$model"  # hard links: the component may not follow symlinks out of its mount
  "${CARGO_TARGET_DIR:-target}/release/bench-edge" --models "$work/edge-$model" --model "$model" \
    --component "$work/classify_edge-p3.wasm" --iterations 50 --warm-only
done
