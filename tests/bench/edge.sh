#!/usr/bin/env bash
# Edge benchmark: the component in edge-host (first request on a new instance, then warm) next to the same ONNX
# model run natively with tract and with onnxruntime (one thread), on a MiniLM-L6-shaped random BERT.
#   PYTHON=/path/to/venv/python tests/bench/edge.sh      (the venv of tests/fixtures/requirements.txt)
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PYTHON" tests/fixtures/generate.py --bench-model "$work/minilm" > /dev/null 2>&1
cargo build --release -p classify-edge --target wasm32-wasip2 --quiet
cargo build --release -p classify-tests --bin bench-edge --quiet
"$PYTHON" tests/bench/onnxruntime_latency.py "$work/minilm"
target/release/bench-edge --component target/wasm32-wasip2/release/classify_edge.wasm --models "$work"
