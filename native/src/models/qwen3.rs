//! `Qwen3ForSequenceClassification`: the Llama layout with an RMSNorm on each head of q and k before rotary
//! (`q_norm`, `k_norm`) and an explicit `head_dim`.

use super::decoder::{DecoderSpec, load_classifier, reject_qwen_sliding_window};
use super::heads::HeadKind;
use super::{Checkpoint, SequenceClassifier};

/// The decoder options for this architecture, from config.json.
fn spec(config_json: &[u8]) -> anyhow::Result<DecoderSpec> {
    let (spec, raw) = DecoderSpec::llama_layout(config_json)?;
    reject_qwen_sliding_window(&raw)?;
    Ok(DecoderSpec {
        qk_norm: true,
        ..spec
    })
}

pub fn load(checkpoint: Checkpoint) -> anyhow::Result<Box<dyn SequenceClassifier>> {
    let spec = spec(checkpoint.config_json);
    load_classifier(checkpoint, spec, HeadKind::Score)
}
