//! `BertForSequenceClassification`: the BERT encoder, then the [CLS] hidden state through the pooler
//! (dense + tanh) and the classifier.

use candle_core::Tensor;
use serde::Deserialize;

use super::encoder::{
    BERT_LAYER, Embeddings, EncoderClassifier, EncoderParts, FirstTokenHead, LayerShape, Positions,
};
use super::ops::Activation;
use super::{Checkpoint, SequenceClassifier};

#[derive(Debug, Clone, Deserialize)]
struct BertConfig {
    vocab_size: usize,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    #[serde(default = "default_hidden_act")]
    hidden_act: String,
    max_position_embeddings: usize,
    #[serde(default = "default_type_vocab_size")]
    type_vocab_size: usize,
    #[serde(default = "default_layer_norm_eps")]
    layer_norm_eps: f64,
    #[serde(default)]
    position_embedding_type: Option<String>,
    #[serde(default)]
    pad_token_id: Option<u32>,
}

pub fn default_hidden_act() -> String {
    "gelu".to_owned()
}

fn default_type_vocab_size() -> usize {
    2
}

pub fn default_layer_norm_eps() -> f64 {
    1e-12
}

/// Only absolute position embeddings are implemented (BERT's relative_key variants are rare on the hub).
pub fn ensure_absolute_positions(kind: Option<&str>) -> anyhow::Result<()> {
    if let Some(kind) = kind {
        anyhow::ensure!(
            kind == "absolute",
            "position_embedding_type `{kind}` is not supported (only absolute)"
        );
    }
    Ok(())
}

pub fn load(checkpoint: Checkpoint) -> anyhow::Result<Box<dyn SequenceClassifier>> {
    let config: BertConfig = checkpoint.parse_config()?;
    ensure_absolute_positions(config.position_embedding_type.as_deref())?;
    let vb = checkpoint.vb;
    let hidden = config.hidden_size;
    let model = EncoderClassifier::new(EncoderParts {
        embeddings: Embeddings::load_bert_layout(
            &vb.pp("bert.embeddings"),
            config.vocab_size,
            config.max_position_embeddings,
            config.type_vocab_size,
            hidden,
            config.layer_norm_eps,
            Positions::FromZero,
        )?,
        layers: vb.pp("bert.encoder.layer"),
        num_layers: config.num_hidden_layers,
        layer_shape: LayerShape {
            hidden,
            heads: config.num_attention_heads,
            intermediate: config.intermediate_size,
            activation: Activation::from_name(&config.hidden_act)?,
            layer_norm_eps: config.layer_norm_eps,
        },
        layer_names: &BERT_LAYER,
        head: FirstTokenHead::load(
            vb.pp("bert.pooler.dense"),
            Tensor::tanh,
            vb.pp("classifier"),
            hidden,
        )?,
        pad_token_id: config.pad_token_id.unwrap_or(0),
        vocab_size: config.vocab_size,
    })?;
    Ok(Box::new(model))
}
