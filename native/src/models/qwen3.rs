//! `Qwen3ForSequenceClassification`: the Llama layout with an RMSNorm on each head of q and k before rotary
//! (`q_norm`, `k_norm`) and an explicit `head_dim`.

use classify_protocol::Engine;

use super::checkpoint::Checkpoint;
use super::decoder::{
    DecoderSpec, load_classifier, load_yes_no_reranker, reject_qwen_sliding_window,
};
use super::heads::HeadKind;

/// The decoder options for this architecture, from config.json.
fn spec(config_json: &[u8]) -> anyhow::Result<DecoderSpec> {
    let (spec, raw) = DecoderSpec::llama_layout(config_json)?;
    reject_qwen_sliding_window(&raw)?;
    Ok(DecoderSpec {
        qk_norm: true,
        ..spec
    })
}

pub fn load(checkpoint: Checkpoint) -> anyhow::Result<Box<dyn Engine>> {
    let spec = spec(checkpoint.config_json);
    load_classifier(checkpoint, spec, HeadKind::Score)
}

/// `Qwen3ForCausalLM`, served as an LLM reranker (Qwen3-Reranker).
pub fn load_yes_no(checkpoint: Checkpoint) -> anyhow::Result<Box<dyn Engine>> {
    let spec = spec(checkpoint.config_json);
    load_yes_no_reranker(checkpoint, spec)
}
