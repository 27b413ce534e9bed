//! `Qwen2ForSequenceClassification` (and the backbone of `Qwen2ForRewardModel`): the Llama layout with biases on
//! q, k and v but not o.

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
        q_k_v_bias: true,
        o_bias: false,
        ..spec
    })
}

pub fn load(checkpoint: Checkpoint) -> anyhow::Result<Box<dyn Engine>> {
    let spec = spec(checkpoint.config_json);
    load_classifier(checkpoint, spec, HeadKind::Score)
}

/// `Qwen2ForRewardModel`: the Qwen2 backbone with a two-layer reward head.
pub fn load_reward(checkpoint: Checkpoint) -> anyhow::Result<Box<dyn Engine>> {
    let spec = spec(checkpoint.config_json);
    load_classifier(checkpoint, spec, HeadKind::Qwen2Reward)
}

/// `Qwen2ForCausalLM`, served as an LLM reranker.
pub fn load_yes_no(checkpoint: Checkpoint) -> anyhow::Result<Box<dyn Engine>> {
    let spec = spec(checkpoint.config_json);
    load_yes_no_reranker(checkpoint, spec)
}
