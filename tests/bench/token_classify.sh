#!/usr/bin/env bash
# Token-classification CPU benchmark, one run: a BERT-base- and a DeBERTa-v3-small-shaped random tagger (generated
# into a temporary directory), each served by the native server on /v1/token-classify (bench-native: 16 clients,
# one text per request, entities with aggregation "simple") next to transformers' token-classification pipeline
# on the same texts and threads (its post-processing included); then the edge component's warm latency on
# /v1/token-classify (bench-edge in edge-host) next to onnxruntime with one thread.
#   PYTHON=/path/to/venv/python tests/bench/token_classify.sh      (the venv of tests/fixtures/requirements.txt)
#   MODELS=DIR reuses models generated before (`token_classify.py generate DIR`).
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
THREADS=${THREADS:-$(nproc)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
models=${MODELS:-$work/models}
[ -d "$models/bert-base-ner" ] || "$PYTHON" tests/bench/token_classify.py generate "$models" > /dev/null 2>&1
cargo build --release -p classify-edge --target wasm32-wasip2 --no-default-features --features wasi-http-p3 --quiet
cp "${CARGO_TARGET_DIR:-target}/wasm32-wasip2/release/classify_edge.wasm" "$work/classify_edge-p3.wasm"
cargo build --release -p classify-tests --bin bench-native --bin bench-edge --quiet
for model in bert-base-ner deberta-v3-small-pii; do
  echo "== $model ($THREADS threads)"
  "$PYTHON" tests/bench/token_classify.py measure "$models/$model" "$THREADS"
  "${CARGO_TARGET_DIR:-target}/release/bench-native" --model "$models/$model" --route token-classify \
    --clients 16 --requests 800 --rerank-requests 0 --max-seconds 60
  mkdir -p "$work/edge-$model"
  cp -rl "$models/$model" "$work/edge-$model/$model"  # hard links: the component may not follow symlinks out of its mount
  "${CARGO_TARGET_DIR:-target}/release/bench-edge" --models "$work/edge-$model" --model "$model" \
    --component "$work/classify_edge-p3.wasm" --iterations 30 --warm-only --route /v1/token-classify
done
