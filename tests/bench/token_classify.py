#!/usr/bin/env python3
"""CPU reference numbers for the token-classification benchmark (run by tests/bench/token_classify.sh).

    python tests/bench/token_classify.py generate DIR   # BERT-base- and DeBERTa-v3-small-shaped random taggers
    python tests/bench/token_classify.py measure MODEL_DIR THREADS

`generate` writes DIR/bert-base-ner (BertForTokenClassification: 12 layers, hidden 768, 12 heads, 30522-row
vocabulary, 9 NER labels) and DIR/deberta-v3-small-pii (DebertaV2ForTokenClassification: 6 layers, hidden 768,
256 position buckets, 128100-row vocabulary, 9 labels), each with safetensors, a tokenizer and an ONNX export
(dynamo, weights inline). Random weights (perturbed like the fixtures): for timing only, generated on demand.

`measure` prints, for the texts bench-native sends (one per request, 16 clients):
  - transformers' token-classification pipeline (aggregation "simple", its post-processing included) in texts/s
    over those texts with batch_size 16, THREADS threads: what a Python service answering /v1/token-classify does;
  - PyTorch eager, the model alone on padded batches of 16, for comparison with bench-native's forward line;
  - onnxruntime latency of one short text with one thread (the edge's comparison: a component runs one thread).
"""

import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))

from encoders_cpu import BATCH, TEXTS, padded, throughput  # noqa: E402

LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]


def generate(out):
    import generate as fixtures
    import torch
    import transformers
    from transformers import PreTrainedTokenizerFast

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    labels = {"num_labels": len(LABELS), "id2label": dict(enumerate(LABELS)),
              "label2id": {label: i for i, label in enumerate(LABELS)}}
    tokenizer, _ = fixtures.bert_tokenizer(512)
    bert = transformers.BertConfig(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                   intermediate_size=3072, max_position_embeddings=512, pad_token_id=0, **labels)
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
            ("bert-base-ner", bert, transformers.BertForTokenClassification, tokenizer),
            ("deberta-v3-small-pii", deberta, transformers.DebertaV2ForTokenClassification, unigram)):
        directory = out / name
        torch.manual_seed(fixtures.SEED)
        model = model_class(config)
        fixtures.perturb(model, torch.Generator().manual_seed(fixtures.SEED + 1))
        model.save_pretrained(directory)
        tok.save_pretrained(directory)
        model = transformers.AutoModelForTokenClassification.from_pretrained(
            directory, dtype=torch.float32, attn_implementation="eager")
        fixtures.export_onnx(model, directory)
        print(f"{directory}: {sum(f.stat().st_size for f in directory.iterdir()) / 2**20:.0f} MiB")


def measure(directory, threads):
    import onnxruntime
    import torch
    import transformers
    from tokenizers import Tokenizer

    directory = Path(directory)
    torch.set_num_threads(threads)
    model = transformers.AutoModelForTokenClassification.from_pretrained(directory, dtype=torch.float32).eval()
    auto = transformers.AutoTokenizer.from_pretrained(directory)
    pipeline = transformers.pipeline("token-classification", model=model, tokenizer=auto,
                                     aggregation_strategy="simple", device="cpu")
    batch = [TEXTS[i % len(TEXTS)] for i in range(BATCH)]
    print(f"transformers {transformers.__version__} token-classification pipeline (simple), {threads} threads, "
          f"batch_size {BATCH}: {throughput(lambda: pipeline(batch, batch_size=BATCH)):8.1f} texts/s")

    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    ids, mask = padded(tokenizer, batch)
    tids, tmask = torch.from_numpy(ids), torch.from_numpy(mask)

    def torch_run():
        with torch.inference_mode():
            model(input_ids=tids, attention_mask=tmask)
    print(f"pytorch {torch.__version__} eager, model alone, {threads} threads, padded batches of {BATCH}: "
          f"{throughput(torch_run):8.1f} sequences/s")

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(directory / "model.onnx"), options,
                                           providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    ids, mask = padded(tokenizer, ["ok"])
    feed = {k: v for k, v in {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}.items()
            if k in names}
    session.run(None, feed)
    times = []
    for _ in range(50):
        started = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - started) * 1e3)
    print(f"onnxruntime {onnxruntime.__version__}, 1 thread, one short text ({ids.shape[1]} tokens): "
          f"median {statistics.median(times):.2f} ms")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "generate":
        generate(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "measure":
        measure(sys.argv[2], int(sys.argv[3]))
    else:
        raise SystemExit(__doc__)
