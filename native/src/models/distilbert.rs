//! `DistilBertForSequenceClassification`: BERT's encoder under other names and sizes (`dim`, `n_layers`,
//! `hidden_dim`), no token types, and the head `pre_classifier` + ReLU + `classifier` on the first token;
//! `DistilBertForTokenClassification`: `classifier` on every token.
//! Sinusoidal position tables (`sinusoidal_pos_embds`) are stored in the checkpoint like learned ones.

use candle_core::Tensor;
use classify_protocol::{Engine, OutputKind};
use serde::Deserialize;

use super::checkpoint::Checkpoint;
use super::encoder::{
    Embeddings, EncoderClassifier, EncoderHead, EncoderParts, FirstTokenHead, LayerNames,
    LayerShape, Positions,
};
use super::ops::Activation;

/// DistilBERT's LayerNorms use this eps whatever config.json says.
const LAYER_NORM_EPS: f64 = 1e-12;

const LAYER: LayerNames = LayerNames {
    query: "attention.q_lin",
    key: "attention.k_lin",
    value: "attention.v_lin",
    attention_output: "attention.out_lin",
    attention_norm: "sa_layer_norm",
    intermediate: "ffn.lin1",
    output: "ffn.lin2",
    output_norm: "output_layer_norm",
};

#[derive(Debug, Clone, Deserialize)]
struct DistilBertConfig {
    vocab_size: usize,
    dim: usize,
    n_layers: usize,
    n_heads: usize,
    hidden_dim: usize,
    #[serde(default = "super::bert::default_hidden_act")]
    activation: String,
    max_position_embeddings: usize,
    #[serde(default)]
    pad_token_id: Option<u32>,
}

pub fn load(checkpoint: Checkpoint, output: OutputKind) -> anyhow::Result<Box<dyn Engine>> {
    let config: DistilBertConfig = checkpoint.parse_config()?;
    let vb = checkpoint.vb;
    let model = EncoderClassifier::new(EncoderParts {
        embeddings: Embeddings::load_bert_layout(
            &vb.pp("distilbert.embeddings"),
            config.vocab_size,
            config.max_position_embeddings,
            0,
            config.dim,
            LAYER_NORM_EPS,
            Positions::FromZero,
        )?,
        layers: vb.pp("distilbert.transformer.layer"),
        num_layers: config.n_layers,
        layer_shape: LayerShape {
            hidden: config.dim,
            heads: config.n_heads,
            intermediate: config.hidden_dim,
            activation: Activation::from_name(&config.activation)?,
            layer_norm_eps: LAYER_NORM_EPS,
        },
        layer_names: &LAYER,
        head: EncoderHead::load(output, &vb, config.dim, || {
            FirstTokenHead::load(
                vb.pp("pre_classifier"),
                Tensor::relu,
                vb.pp("classifier"),
                config.dim,
            )
        })?,
        pad_token_id: config.pad_token_id.unwrap_or(0),
        vocab_size: config.vocab_size,
    })?;
    Ok(Box::new(model))
}
