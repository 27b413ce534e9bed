"""Hugging Face transformers forward-only throughput on the GPU, eager and torch.compile(mode="reduce-overhead").

The yardstick for the native server's end-to-end numbers: same checkpoints, same shapes, same GPU, same run.
Prints one JSON line per (model, mode, batch, length).

    python3 transformers_forward.py MODEL_DIR[,MODEL_DIR...] [--shapes 1x16,32x128,256x128] [--compile]
"""

import argparse
import json
import time

import torch
from transformers import AutoModelForSequenceClassification


def measure(forward, batch: int, length: int, vocab: int, seconds: float = 2.0) -> dict:
    ids = torch.randint(1000, min(vocab, 20000), (batch, length), device="cuda")
    mask = torch.ones_like(ids)
    for _ in range(3):
        forward(ids, mask)
    torch.cuda.synchronize()
    iterations, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        forward(ids, mask)
        iterations += 1
        if iterations % 10 == 0:
            torch.cuda.synchronize()
    torch.cuda.synchronize()
    elapsed = time.perf_counter() - started
    return {
        "ms_per_forward": elapsed / iterations * 1000,
        "tokens_per_s": batch * length * iterations / elapsed,
        "sequences_per_s": batch * iterations / elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("models")
    parser.add_argument("--shapes", default="1x16,32x128,256x128")
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()
    shapes = [tuple(int(n) for n in s.split("x")) for s in args.shapes.split(",")]
    for directory in args.models.split(","):
        model = AutoModelForSequenceClassification.from_pretrained(directory, dtype="auto").cuda().eval()
        vocab = model.config.vocab_size
        modes = [("eager", model)]
        if args.compile:
            modes.append(("compiled", torch.compile(model, mode="reduce-overhead")))
        for mode, module in modes:
            for batch, length in shapes:

                @torch.inference_mode()
                def forward(ids, mask):
                    return module(input_ids=ids, attention_mask=mask).logits

                started = time.perf_counter()
                result = measure(forward, batch, length, vocab)
                row = {
                    "model": directory.rstrip("/").split("/")[-1],
                    "dtype": str(model.dtype).removeprefix("torch."),
                    "mode": mode,
                    "batch": batch,
                    "length": length,
                    **result,
                    "wall_s": time.perf_counter() - started,
                }
                print(json.dumps(row), flush=True)
        del model, modes
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
