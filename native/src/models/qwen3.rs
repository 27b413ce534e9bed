//! `Qwen3ForSequenceClassification`: the Llama layout with an RMSNorm on each head of q and k before rotary
//! (`q_norm`, `k_norm`) and an explicit `head_dim`.

use super::decoder::{DecoderSpec, reject_qwen_sliding_window};

/// The decoder options for this architecture, from config.json.
pub fn spec(config_json: &[u8]) -> anyhow::Result<DecoderSpec> {
    let (spec, raw) = DecoderSpec::llama_layout(config_json)?;
    reject_qwen_sliding_window(&raw)?;
    Ok(DecoderSpec {
        qk_norm: true,
        ..spec
    })
}
