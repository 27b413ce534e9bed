//! `RobertaForSequenceClassification` and `XLMRobertaForSequenceClassification` (the same model under
//! `roberta.*`): BERT's encoder with position ids counted from `pad_token_id + 1` that skip pad tokens, a
//! one-row token-type table, and the head `classifier.dense` + tanh + `classifier.out_proj` on `<s>`.

use candle_core::Tensor;
use serde::Deserialize;

use super::bert::{default_hidden_act, default_layer_norm_eps, ensure_absolute_positions};
use super::encoder::{
    BERT_LAYER, Embeddings, EncoderClassifier, EncoderParts, FirstTokenHead, LayerShape, Positions,
};
use super::ops::Activation;
use super::{Checkpoint, SequenceClassifier};

#[derive(Debug, Clone, Deserialize)]
struct RobertaConfig {
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
    #[serde(default = "default_pad_token_id")]
    pad_token_id: u32,
}

fn default_type_vocab_size() -> usize {
    1
}

fn default_pad_token_id() -> u32 {
    1
}

pub fn load(checkpoint: Checkpoint) -> anyhow::Result<Box<dyn SequenceClassifier>> {
    let config: RobertaConfig = checkpoint.parse_config()?;
    ensure_absolute_positions(config.position_embedding_type.as_deref())?;
    let vb = checkpoint.vb;
    let hidden = config.hidden_size;
    let model = EncoderClassifier::new(EncoderParts {
        embeddings: Embeddings::load_bert_layout(
            &vb.pp("roberta.embeddings"),
            config.vocab_size,
            config.max_position_embeddings,
            config.type_vocab_size,
            hidden,
            config.layer_norm_eps,
            Positions::AfterPadding {
                padding_idx: config.pad_token_id,
            },
        )?,
        layers: vb.pp("roberta.encoder.layer"),
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
            Tensor::tanh,
            vb.pp("classifier.out_proj"),
            hidden,
        )?,
        pad_token_id: config.pad_token_id,
        vocab_size: config.vocab_size,
    })?;
    Ok(Box::new(model))
}
