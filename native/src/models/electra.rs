//! `ElectraForSequenceClassification`: BERT's encoder whose embeddings may be narrower than the hidden size
//! (`embedding_size`, then `electra.embeddings_project` to `hidden_size`), and the head `classifier.dense` +
//! GELU + `classifier.out_proj` on the first token (GELU whatever `hidden_act` says, as in transformers).

use candle_core::Tensor;
use candle_nn::linear;
use serde::Deserialize;

use super::bert::{default_hidden_act, default_layer_norm_eps, ensure_absolute_positions};
use super::encoder::{
    BERT_LAYER, Embeddings, EncoderClassifier, EncoderParts, FirstTokenHead, LayerShape, Positions,
};
use super::ops::Activation;
use super::{Checkpoint, SequenceClassifier};

#[derive(Debug, Clone, Deserialize)]
struct ElectraConfig {
    vocab_size: usize,
    #[serde(default)]
    embedding_size: Option<usize>,
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

fn default_type_vocab_size() -> usize {
    2
}

pub fn load(checkpoint: Checkpoint) -> anyhow::Result<Box<dyn SequenceClassifier>> {
    let config: ElectraConfig = checkpoint.parse_config()?;
    ensure_absolute_positions(config.position_embedding_type.as_deref())?;
    let vb = checkpoint.vb;
    let hidden = config.hidden_size;
    let width = config.embedding_size.unwrap_or(hidden);
    let mut embeddings = Embeddings::load_bert_layout(
        &vb.pp("electra.embeddings"),
        config.vocab_size,
        config.max_position_embeddings,
        config.type_vocab_size,
        width,
        config.layer_norm_eps,
        Positions::FromZero,
    )?;
    if width != hidden {
        embeddings.projection = Some(linear(width, hidden, vb.pp("electra.embeddings_project"))?);
    }
    let model = EncoderClassifier::new(EncoderParts {
        embeddings,
        layers: vb.pp("electra.encoder.layer"),
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
            vb.pp("classifier.dense"),
            Tensor::gelu_erf,
            vb.pp("classifier.out_proj"),
            hidden,
        )?,
        pad_token_id: config.pad_token_id.unwrap_or(0),
        vocab_size: config.vocab_size,
    })?;
    Ok(Box::new(model))
}
