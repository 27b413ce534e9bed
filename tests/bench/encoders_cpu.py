#!/usr/bin/env python3
"""CPU reference numbers for the encoder benchmark (run by tests/bench/encoders_cpu.sh).

    python tests/bench/encoders_cpu.py generate DIR   # DistilBERT-base- and DeBERTa-v3-small-shaped random models
    python tests/bench/encoders_cpu.py measure MODEL_DIR THREADS

`generate` writes DIR/distilbert-base (6 layers, hidden 768, 12 heads, 30522-row vocabulary) and
DIR/deberta-v3-small (6 layers, hidden 768, 12 heads, 256 position buckets, 128100-row vocabulary), each with
safetensors, a tokenizer and an ONNX export (dynamo, weights inline). The weights are random (perturbed like the
fixtures): these models are for timing only, a few hundred MB, so they are generated on demand, never committed.

`measure` prints, for the texts bench-native sends (one per request, 16 clients):
  - PyTorch eager and onnxruntime throughput in sequences/s on padded batches of 16 of them, THREADS threads,
  - onnxruntime latency of one short text with one thread (the edge's comparison: a component runs one thread).
"""

import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))

# The texts of tests/src/bin/bench_native.rs, in order.
TEXTS = [
    "I loved this movie, it was wonderful and the actors were great!",
    "Terrible service. I will never come back to this place again.",
    "ok",
    "The package arrived on Tuesday, a day later than promised.",
    "What a fantastic day at the beach with friends and family.",
]
BATCH = 16
SECONDS = 10


def generate(out):
    import generate as fixtures
    import torch
    import transformers
    from transformers import PreTrainedTokenizerFast

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    labels = {"num_labels": 2, "id2label": {0: "NEGATIVE", 1: "POSITIVE"}, "label2id": {"NEGATIVE": 0, "POSITIVE": 1}}
    tokenizer, _ = fixtures.bert_tokenizer(512)
    distilbert = transformers.DistilBertConfig(vocab_size=30522, dim=768, n_layers=6, n_heads=12, hidden_dim=3072,
                                               max_position_embeddings=512, pad_token_id=0, **labels)
    specials = ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"]
    unigram, _ = fixtures.unigram_tokenizer(512, specials, ("[CLS] $A [SEP]", "[CLS] $A [SEP] $B:1 [SEP]:1"))
    unigram = PreTrainedTokenizerFast(tokenizer_object=unigram, model_max_length=512, cls_token="[CLS]",
                                      sep_token="[SEP]", pad_token="[PAD]", unk_token="[UNK]", mask_token="[MASK]")
    deberta = transformers.DebertaV2Config(vocab_size=128100, hidden_size=768, num_hidden_layers=6,
                                           num_attention_heads=12, intermediate_size=3072, max_position_embeddings=512,
                                           type_vocab_size=0, relative_attention=True, position_buckets=256,
                                           max_relative_positions=-1, pos_att_type=["p2c", "c2p"],
                                           norm_rel_ebd="layer_norm", share_att_key=True, position_biased_input=False,
                                           pad_token_id=0, layer_norm_eps=1e-7, **labels)
    for name, config, model_class, tok in (
            ("distilbert-base", distilbert, transformers.DistilBertForSequenceClassification, tokenizer),
            ("deberta-v3-small", deberta, transformers.DebertaV2ForSequenceClassification, unigram)):
        directory = out / name
        torch.manual_seed(fixtures.SEED)
        model = model_class(config)
        fixtures.perturb(model, torch.Generator().manual_seed(fixtures.SEED + 1))
        model.save_pretrained(directory)
        tok.save_pretrained(directory)
        model = transformers.AutoModelForSequenceClassification.from_pretrained(
            directory, dtype=torch.float32, attn_implementation="eager")
        fixtures.export_onnx(model, directory)
        print(f"{directory}: {sum(f.stat().st_size for f in directory.iterdir()) / 2**20:.0f} MiB")


def padded(tokenizer, texts):
    rows = [tokenizer.encode(t).ids for t in texts]
    longest = max(len(r) for r in rows)
    ids = np.zeros((len(rows), longest), dtype=np.int64)
    mask = np.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = r
        mask[i, :len(r)] = 1
    return ids, mask


def throughput(run):
    run()
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < SECONDS:
        run()
        done += BATCH
    return done / (time.perf_counter() - started)


def measure(directory, threads):
    import onnxruntime
    import torch
    import transformers
    from tokenizers import Tokenizer

    directory = Path(directory)
    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    batch = [TEXTS[i % len(TEXTS)] for i in range(BATCH)]
    ids, mask = padded(tokenizer, batch)

    torch.set_num_threads(threads)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(directory, dtype=torch.float32).eval()
    tids, tmask = torch.from_numpy(ids), torch.from_numpy(mask)

    def torch_run():
        with torch.inference_mode():
            model(input_ids=tids, attention_mask=tmask)
    print(f"pytorch {torch.__version__} eager, {threads} threads, batches of {BATCH}: "
          f"{throughput(torch_run):8.1f} sequences/s")

    def session(n):
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = n
        options.inter_op_num_threads = 1
        return onnxruntime.InferenceSession(str(directory / "model.onnx"), options,
                                            providers=["CPUExecutionProvider"])
    ort = session(threads)
    names = {i.name for i in ort.get_inputs()}
    feed = {k: v for k, v in {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}.items()
            if k in names}
    print(f"onnxruntime {onnxruntime.__version__}, {threads} threads, batches of {BATCH}: "
          f"{throughput(lambda: ort.run(None, feed)):8.1f} sequences/s")

    single = session(1)
    short_ids, short_mask = padded(tokenizer, ["ok"])
    short = {k: v for k, v in {"input_ids": short_ids, "attention_mask": short_mask,
                               "token_type_ids": np.zeros_like(short_ids)}.items() if k in names}
    single.run(None, short)
    times = []
    for _ in range(100):
        t = time.perf_counter()
        single.run(None, short)
        times.append((time.perf_counter() - t) * 1000)
    print(f"onnxruntime 1 thread, one short text ({short_ids.shape[1]} tokens): p50 {statistics.median(times):.2f} ms")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "generate":
        generate(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "measure":
        measure(sys.argv[2], int(sys.argv[3]))
    else:
        raise SystemExit(__doc__)
