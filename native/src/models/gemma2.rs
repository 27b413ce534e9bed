//! `Gemma2ForSequenceClassification`: embeddings scaled by sqrt(hidden_size), (1 + w) RMSNorms with extra norms
//! after attention and around the MLP, attention scaled by `query_pre_attn_scalar` and soft-capped, and
//! sliding-window layers alternating with full ones (`layer_types`, else every even layer).

use classify_protocol::Engine;
use serde_json::Value;

use super::checkpoint::Checkpoint;
use super::decoder::{DecoderSpec, load_classifier};
use super::heads::HeadKind;
use super::ops::Activation;

/// The decoder options for this architecture, from config.json.
fn spec(config_json: &[u8]) -> anyhow::Result<DecoderSpec> {
    let (spec, raw) = DecoderSpec::llama_layout(config_json)?;
    let config = &spec.config;
    let window = raw
        .get("sliding_window")
        .and_then(Value::as_u64)
        .map(|w| w as usize);
    let sliding_window = (0..config.num_hidden_layers)
        .map(|i| {
            let sliding = match raw.get("layer_types").and_then(Value::as_array) {
                Some(types) => types.get(i).and_then(Value::as_str) == Some("sliding_attention"),
                None => i % 2 == 0,
            };
            if sliding { window } else { None }
        })
        .collect();
    let query_scalar = raw
        .get("query_pre_attn_scalar")
        .and_then(Value::as_f64)
        .unwrap_or(config.head_dim() as f64);
    let activation = config
        .hidden_activation
        .as_deref()
        .or(config.hidden_act.as_deref())
        .unwrap_or("gelu_pytorch_tanh");
    Ok(DecoderSpec {
        activation: Activation::from_name(activation)?,
        norm_adds_one: true,
        sandwich_norms: true,
        embedding_scale: Some((config.hidden_size as f64).sqrt()),
        attention_scale: query_scalar.powf(-0.5),
        attention_softcap: raw.get("attn_logit_softcapping").and_then(Value::as_f64),
        sliding_window,
        ..spec
    })
}

pub fn load(checkpoint: Checkpoint) -> anyhow::Result<Box<dyn Engine>> {
    let spec = spec(checkpoint.config_json);
    load_classifier(checkpoint, spec, HeadKind::Score)
}
