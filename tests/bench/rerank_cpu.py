#!/usr/bin/env python3
"""sentence-transformers' side of the rerank benchmark (run by tests/bench/rerank_cpu.sh).

    python tests/bench/rerank_cpu.py generate DIR          # the two cross-encoders, random weights
    python tests/bench/rerank_cpu.py measure MODEL_DIR THREADS

`generate` writes
  - DIR/minilm-l6: cross-encoder/ms-marco-MiniLM-L6-v2's shape, a `BertForSequenceClassification` with one label
    (6 layers, hidden 384, 12 heads, 30522-row vocabulary; tests/fixtures/generate.py --bench-reranker),
  - DIR/ettin-68m: the Ettin reranker's shape on ettin-encoder-68m (ModernBERT, 19 layers, hidden 512, 8 heads,
    intermediate 768, 50368-row vocabulary, a global layer every 3 with local windows of 128) with Ettin's head
    (Pooling cls, Dense without bias + GELU, LayerNorm, Dense to one raw score), built and saved by
    sentence-transformers as modules.
They are for timing only (hundreds of MB), generated on demand and never committed.

`measure` prints `CrossEncoder.predict`'s pairs/s on the pairs bench-native sends (one query against 100
documents per call, sentence-transformers' default batch size of 32, tokenization included), THREADS threads.
"""

import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))

# The rerank load of tests/src/bin/bench_native.rs: this query against the texts in turn, 100 per request.
QUERY = "Was the movie good?"
TEXTS = [
    "I loved this movie, it was wonderful and the actors were great!",
    "Terrible service. I will never come back to this place again.",
    "ok",
    "The package arrived on Tuesday, a day later than promised.",
    "What a fantastic day at the beach with friends and family.",
]
DOCUMENTS = 100
SECONDS = 20


def generate(out):
    import generate as fixtures
    import torch
    import transformers
    from sentence_transformers import CrossEncoder
    from sentence_transformers.base.modules import Dense
    from sentence_transformers.sentence_transformer.modules import LayerNorm, Pooling, Transformer
    from torch import nn

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fixtures.bench_model(out / "minilm-l6", num_labels=1)
    backbone = out / ".ettin-backbone"
    shutil.rmtree(backbone, ignore_errors=True)
    tokenizer, _ = fixtures.modernbert_tokenizer(7999)
    config = transformers.ModernBertConfig(
        vocab_size=50368, hidden_size=512, intermediate_size=768, num_hidden_layers=19, num_attention_heads=8,
        max_position_embeddings=7999, local_attention=128, global_attn_every_n_layers=3, pad_token_id=0,
        cls_token_id=2, sep_token_id=3, bos_token_id=None, eos_token_id=None)
    torch.manual_seed(fixtures.SEED)
    model = transformers.ModernBertModel(config)
    fixtures.perturb(model, torch.Generator().manual_seed(fixtures.SEED + 1))
    model.save_pretrained(backbone)
    tokenizer.save_pretrained(backbone)
    hidden = config.hidden_size
    cross_encoder = CrossEncoder(
        modules=[Transformer(str(backbone)), Pooling(hidden, pooling_mode="cls"),
                 Dense(hidden, hidden, bias=False, activation_function=nn.GELU()), LayerNorm(hidden),
                 Dense(hidden, 1, activation_function=nn.Identity(), module_output_name="scores")],
        activation_fn=nn.Identity(), device="cpu")
    cross_encoder.save_pretrained(str(out / "ettin-68m"))
    shutil.rmtree(backbone)
    for name in ("minilm-l6", "ettin-68m"):
        size = sum(f.stat().st_size for f in (out / name).rglob("*") if f.is_file())
        print(f"{out / name}: {size / 2**20:.0f} MiB")


def measure(directory, threads):
    import sentence_transformers
    import torch
    from sentence_transformers import CrossEncoder

    torch.set_num_threads(threads)
    model = CrossEncoder(str(directory), device="cpu")
    calls, started = 0, None
    while started is None or time.perf_counter() - started < SECONDS:
        pairs = [(QUERY, TEXTS[(calls + i) % len(TEXTS)]) for i in range(DOCUMENTS)]
        model.predict(pairs, batch_size=32, show_progress_bar=False)
        if started is None:
            started = time.perf_counter()
        else:
            calls += 1
    rate = calls * DOCUMENTS / (time.perf_counter() - started)
    print(f"sentence-transformers {sentence_transformers.__version__} CrossEncoder.predict (pytorch "
          f"{torch.__version__}), {threads} threads, {DOCUMENTS} pairs per call: {rate:8.1f} pairs/s")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "generate":
        generate(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "measure":
        measure(sys.argv[2], int(sys.argv[3]))
    else:
        raise SystemExit(__doc__)
