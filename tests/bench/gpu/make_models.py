"""Random-weight checkpoints with real model shapes for GPU benchmarks (not committed: hundreds of MB to GB).

BERT-base (110M, f16) and Qwen2.5-1.5B (bf16), each with a 2-label head. The tokenizer is the repository's tiny
fixture tokenizer of the same family: token ids stay inside the real vocabularies, and the forward pass costs what
the real model costs.

    python3 make_models.py OUT_DIR
"""

import json
import shutil
import sys
from pathlib import Path

import torch
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    Qwen2Config,
    Qwen2ForSequenceClassification,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "models"


def save(model, out: Path, tokenizer_from: str) -> None:
    model.save_pretrained(out)
    shutil.copy(FIXTURES / tokenizer_from / "tokenizer.json", out / "tokenizer.json")
    tokenizer_config = json.loads((FIXTURES / tokenizer_from / "tokenizer_config.json").read_text())
    tokenizer_config["model_max_length"] = model.config.max_position_embeddings
    (out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2))
    print(f"{out}: {sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters", flush=True)


def main() -> None:
    out = Path(sys.argv[1])
    torch.manual_seed(0)
    bert = BertConfig(
        vocab_size=30522,
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        max_position_embeddings=512,
        num_labels=2,
    )
    with torch.device("cuda"):
        save(BertForSequenceClassification(bert).half(), out / "bert-base", "bert-sentiment")
    qwen = Qwen2Config(
        vocab_size=151936,
        hidden_size=1536,
        intermediate_size=8960,
        num_hidden_layers=28,
        num_attention_heads=12,
        num_key_value_heads=2,
        max_position_embeddings=32768,
        rope_theta=1000000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        num_labels=2,
        pad_token_id=0,
    )
    with torch.device("cuda"):
        save(Qwen2ForSequenceClassification(qwen).to(torch.bfloat16), out / "qwen2.5-1.5b", "qwen2-3label")


if __name__ == "__main__":
    main()
