"""Parity of a running server with the committed reference outputs (transformers' logits).

Sends each fixture's reference token ids, one input per request and all inputs in one mixed-length request, and
compares probs and labels. f32: max |Δprob| <= 1e-4; f16/bf16: labels equal and max |Δprob| <= 2e-2.

    python3 cuda_parity.py URL TOLERANCE MODEL [MODEL...]
"""

import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "models"


def classify(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url + "/v1/classify", json.dumps(body).encode(), {"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.load(response)


def main() -> None:
    url, tolerance, models = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
    failures = 0
    for name in models:
        reference = json.loads((FIXTURES / name / "reference.json").read_text())
        inputs = reference["inputs"]
        try:
            single = [classify(url, {"model": name, "input": [i["ids"]]})["data"][0] for i in inputs]
            batched = classify(url, {"model": name, "input": [i["ids"] for i in inputs]})["data"]
        except urllib.error.HTTPError as error:
            failures += 1
            print(json.dumps({"model": name, "ok": False, "error": f"{error.code}: {error.read().decode()}"}))
            continue
        worst, labels_equal = 0.0, True
        for expected, alone, together in zip(inputs, single, batched):
            for got in (alone, together):
                worst = max(worst, *(abs(a - b) for a, b in zip(got["probs"], expected["probs"])))
                labels_equal &= got["label"] == expected["label"]
        ok = labels_equal and worst <= tolerance
        failures += not ok
        print(json.dumps({"model": name, "max_abs_prob_diff": worst, "labels_equal": labels_equal, "ok": ok}))
    print(json.dumps({"parity_failures": failures}))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
