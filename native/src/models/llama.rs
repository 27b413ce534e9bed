//! `LlamaForSequenceClassification`: pre-norm decoder with SwiGLU, GQA and rotary (incl. llama3 scaling);
//! `attention_bias` adds biases to q, k, v and o. This is the layout the other decoders start from.

use super::decoder::DecoderSpec;

/// The decoder options for this architecture, from config.json.
pub fn spec(config_json: &[u8]) -> anyhow::Result<DecoderSpec> {
    Ok(DecoderSpec::llama_layout(config_json)?.0)
}
