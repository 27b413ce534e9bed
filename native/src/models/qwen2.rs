//! `Qwen2ForSequenceClassification` (and the backbone of `Qwen2ForRewardModel`): the Llama layout with biases on
//! q, k and v but not o.

use super::decoder::{DecoderSpec, reject_qwen_sliding_window};

/// The decoder options for this architecture, from config.json.
pub fn spec(config_json: &[u8]) -> anyhow::Result<DecoderSpec> {
    let (spec, raw) = DecoderSpec::llama_layout(config_json)?;
    reject_qwen_sliding_window(&raw)?;
    Ok(DecoderSpec {
        q_k_v_bias: true,
        o_bias: false,
        ..spec
    })
}
