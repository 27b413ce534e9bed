#!/usr/bin/env python3
"""onnxruntime (CPU, one thread) latency for the same inputs bench-edge uses: a short text and a 128-token text.

    python tests/bench/onnxruntime_latency.py MODEL_DIR
"""

import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime
from tokenizers import Tokenizer

SHORT = "ok"
LONG = ("I loved this movie, it was wonderful and the actors were great! " * 40).strip()
ITERATIONS = 200


def main():
    directory = Path(sys.argv[1])
    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    started = time.perf_counter()
    session = onnxruntime.InferenceSession(str(directory / "model.onnx"), options, providers=["CPUExecutionProvider"])
    print(f"onnxruntime {onnxruntime.__version__}: session created in {time.perf_counter() - started:.3f} s")
    for name, text, limit in (("short", SHORT, None), ("128 tokens", LONG, 128)):
        if limit:
            tokenizer.enable_truncation(max_length=limit)
        ids = np.array([tokenizer.encode(text).ids], dtype=np.int64)
        tokenizer.no_truncation()
        feed = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
        session.run(None, feed)
        times = []
        for _ in range(ITERATIONS):
            t = time.perf_counter()
            session.run(None, feed)
            times.append((time.perf_counter() - t) * 1000)
        times.sort()
        print(f"onnxruntime 1 thread  {name:<11} ({ids.shape[1]:>3} tokens): p50 {statistics.median(times):7.2f} ms"
              f"  p99 {times[int(len(times) * 0.99) - 1]:7.2f} ms")


if __name__ == "__main__":
    main()
