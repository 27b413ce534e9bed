//! `Qwen3ForSequenceClassification`: the Llama layout with an RMSNorm on each head of q and k before rotary
//! (`q_norm`, `k_norm`) and an explicit `head_dim`.

use super::decoder::{Activation, DecoderConfig, DecoderSpec, Rope};

/// The decoder options for this architecture, from config.json.
pub fn spec(config_json: &[u8]) -> anyhow::Result<DecoderSpec> {
    let raw: serde_json::Value = serde_json::from_slice(config_json)?;
    anyhow::ensure!(
        !raw.get("use_sliding_window")
            .and_then(|v| v.as_bool())
            .unwrap_or(false),
        "use_sliding_window = true is not supported for Qwen3"
    );
    let config: DecoderConfig = serde_json::from_value(raw.clone())?;
    let spec = DecoderSpec {
        rope: Rope::from_config(&raw, config.head_dim(), config.max_position_embeddings)?,
        activation: Activation::from_name(config.hidden_act.as_deref().unwrap_or("silu"))?,
        q_k_v_bias: config.attention_bias,
        o_bias: config.attention_bias,
        qk_norm: true,
        norm_adds_one: false,
        sandwich_norms: false,
        embedding_scale: None,
        attention_scale: (config.head_dim() as f64).powf(-0.5),
        attention_softcap: None,
        sliding_window: Vec::new(),
        config,
    };
    Ok(spec)
}
