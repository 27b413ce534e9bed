#!/usr/bin/env bash
# Edge benchmark, one run: a MiniLM-L6-shaped random BERT (mounted with its int8 copy and the four BERT fixtures,
# so several models are mounted) run natively with tract and with onnxruntime (one thread), then the component in edge-host and under
# Spin (when ../shared/tools/spin or SPIN is there), as built and pre-initialized, warm and on fresh instances; under
# Spin also the in-process call of the example edge/examples/comment-filter next to the HTTP route.
#   PYTHON=/path/to/venv/python tests/bench/edge.sh      (the venv of tests/fixtures/requirements.txt)
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/models"
"$PYTHON" tests/fixtures/generate.py --bench-model "$work/models/minilm" > /dev/null 2>&1
# Its int8 copy (onnxruntime's quantize_dynamic, as hub model_quantized.onnx files are made), timed warm.
mkdir "$work/models/minilm-int8"
cp "$work/models/minilm"/{config.json,tokenizer.json,tokenizer_config.json} "$work/models/minilm-int8/"
"$PYTHON" tests/bench/quantize_dynamic.py "$work/models/minilm/model.onnx" "$work/models/minilm-int8/model.onnx" 2> /dev/null
# Copies, not links: Spin does not mount what links inside the application's directory point to, and a
# snapshot taken of other files than the ones mounted is not used.
for model in bert-3label bert-multilabel bert-score bert-sentiment; do
  cp -r "$PWD/tests/fixtures/models/$model" "$work/models/$model"
done
cargo build --release -p classify-edge --target wasm32-wasip2 --quiet
cp target/wasm32-wasip2/release/classify_edge.wasm "$work/classify_edge-p3-rc.wasm"
cargo build --release -p classify-edge --target wasm32-wasip2 --no-default-features --features wasi-http-p3 --quiet
cp target/wasm32-wasip2/release/classify_edge.wasm "$work/classify_edge-p3.wasm"
cargo build --release -p classify-comment-filter --target wasm32-wasip2 --quiet
cp target/wasm32-wasip2/release/classify_comment_filter.wasm "$work/comment-filter.wasm"
cargo build --release -p classify-tests --bin bench-edge --quiet
"$PYTHON" tests/bench/onnxruntime_latency.py "$work/models/minilm"
target/release/bench-edge --models "$work/models" --model minilm \
  --component "$work/classify_edge-p3.wasm" --spin-component "$work/classify_edge-p3-rc.wasm" \
  --comment-filter "$work/comment-filter.wasm" "$@"
echo "--- int8 (model.onnx of minilm-int8: quantize_dynamic of the same model)"
"$PYTHON" tests/bench/onnxruntime_latency.py "$work/models/minilm-int8"
target/release/bench-edge --models "$work/models" --model minilm-int8 --warm-only \
  --component "$work/classify_edge-p3.wasm" "$@"
