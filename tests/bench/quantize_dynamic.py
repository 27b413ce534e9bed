#!/usr/bin/env python3
"""int8 copy of an ONNX file the way hub `model_quantized.onnx` files are made (onnxruntime's quantize_dynamic).

    python tests/bench/quantize_dynamic.py IN.onnx OUT.onnx

The shapes torch's dynamo exporter records for intermediate values disagree with onnx's shape inference, which
quantize_dynamic runs first; they are dropped (onnx infers them again).
"""

import sys
import tempfile
from pathlib import Path

import onnx
from onnxruntime.quantization import QuantType, quantize_dynamic


def main():
    source, target = sys.argv[1], sys.argv[2]
    model = onnx.load(source)
    del model.graph.value_info[:]
    with tempfile.TemporaryDirectory() as scratch:
        stripped = Path(scratch) / "model.onnx"
        onnx.save(model, str(stripped))
        quantize_dynamic(str(stripped), target, weight_type=QuantType.QInt8)


if __name__ == "__main__":
    main()
