#!/usr/bin/env bash
# Rerank CPU benchmark, one run: a MiniLM-L6-shaped (ms-marco-MiniLM-L6-v2: BertForSequenceClassification) and an
# Ettin-68m-shaped (ModernBERT with Ettin's Sentence-Transformers head, saved as modules) cross-encoder with random
# weights, generated into a temporary directory; each timed with sentence-transformers' CrossEncoder.predict and
# served by the native server (bench-native: 4 clients, one query x 100 documents per /v1/rerank request, HTTP and
# tokenization included) on the same pairs, with the same threads.
#   PYTHON=/path/to/venv/python tests/bench/rerank_cpu.sh      (the venv of tests/fixtures/requirements.txt)
#   MODELS=DIR reuses models generated before (`rerank_cpu.py generate DIR`).
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
THREADS=${THREADS:-$(nproc)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
models=${MODELS:-$work/models}
[ -d "$models/ettin-68m" ] || "$PYTHON" tests/bench/rerank_cpu.py generate "$models" > /dev/null 2>&1
cargo build --release -p classify-tests --bin bench-native --quiet
for model in minilm-l6 ettin-68m; do
  echo "== $model ($THREADS threads)"
  "$PYTHON" tests/bench/rerank_cpu.py measure "$models/$model" "$THREADS"
  "${CARGO_TARGET_DIR:-target}/release/bench-native" --model "$models/$model" --requests 0 \
    --rerank-model "$models/$model" --clients 4 --rerank-requests 60 --max-seconds 40
done
