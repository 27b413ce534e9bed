//! `LlamaForSequenceClassification`: pre-norm decoder with SwiGLU, GQA and rotary (incl. llama3 scaling);
//! `attention_bias` adds biases to q, k, v and o. This is the layout the other decoders start from.

use classify_protocol::Engine;

use super::checkpoint::Checkpoint;
use super::decoder::{DecoderSpec, load_classifier};
use super::heads::HeadKind;

/// The decoder options for this architecture, from config.json.
fn spec(config_json: &[u8]) -> anyhow::Result<DecoderSpec> {
    Ok(DecoderSpec::llama_layout(config_json)?.0)
}

pub fn load(checkpoint: Checkpoint) -> anyhow::Result<Box<dyn Engine>> {
    let spec = spec(checkpoint.config_json);
    load_classifier(checkpoint, spec, HeadKind::Score)
}

/// SGLang's `LlamaForSequenceClassificationWithNormal_Weights`: the head's num_labels/id2label describe its
/// internal pairs; it answers one reward.
pub fn load_normal_weights(checkpoint: Checkpoint) -> anyhow::Result<Box<dyn Engine>> {
    checkpoint.config.id2label = None;
    checkpoint.config.num_labels = Some(1);
    let spec = spec(checkpoint.config_json);
    load_classifier(checkpoint, spec, HeadKind::NormalWeights)
}
