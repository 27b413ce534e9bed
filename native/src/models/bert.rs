//! `BertForSequenceClassification`: the BERT encoder, then the [CLS] hidden state through the pooler
//! (dense + tanh) and the classifier; `BertForTokenClassification`: the classifier on every token (no pooler);
//! `BertModel` with a Sentence-Transformers cross-encoder's modules. Its config struct is also RoBERTa's,
//! XLM-R's and ELECTRA's.

use candle_core::Tensor;
use candle_nn::VarBuilder;
use classify_protocol::{Engine, OutputKind};
use serde::Deserialize;

use super::checkpoint::Checkpoint;
use super::encoder::{
    BERT_LAYER, Embeddings, EncoderClassifier, EncoderHead, EncoderParts, FirstTokenHead,
    LayerShape, Positions,
};
use super::modular_head::ModularHead;
use super::ops::Activation;

/// The config.json fields of BERT and the encoders that kept its layout.
#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    /// ELECTRA: the embeddings' width when narrower than `hidden_size`.
    #[serde(default)]
    pub embedding_size: Option<usize>,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
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
    pub pad_token_id: Option<u32>,
}

pub fn default_hidden_act() -> String {
    "gelu".to_owned()
}

fn default_type_vocab_size() -> usize {
    2
}

fn default_layer_norm_eps() -> f64 {
    1e-12
}

impl BertConfig {
    /// config.json, with only absolute position embeddings accepted (BERT's relative_key variants are rare).
    pub fn parse(checkpoint: &Checkpoint) -> anyhow::Result<BertConfig> {
        let config: BertConfig = checkpoint.parse_config()?;
        if let Some(kind) = config.position_embedding_type.as_deref() {
            anyhow::ensure!(
                kind == "absolute",
                "position_embedding_type `{kind}` is not supported (only absolute)"
            );
        }
        Ok(config)
    }

    pub fn layer_shape(&self) -> anyhow::Result<LayerShape> {
        Ok(LayerShape {
            hidden: self.hidden_size,
            heads: self.num_attention_heads,
            intermediate: self.intermediate_size,
            activation: Activation::from_name(&self.hidden_act)?,
            layer_norm_eps: self.layer_norm_eps,
        })
    }

    /// The embedding tables under `vb`, `embedding_size` (else `hidden_size`) wide.
    pub fn embeddings(
        &self,
        vb: &VarBuilder,
        positions: Positions,
    ) -> candle_core::Result<Embeddings> {
        Embeddings::load_bert_layout(
            vb,
            self.vocab_size,
            self.max_position_embeddings,
            self.type_vocab_size,
            self.embedding_size.unwrap_or(self.hidden_size),
            self.layer_norm_eps,
            positions,
        )
    }

    /// The encoder under `model` (`embeddings`, `encoder.layer.{i}`) with `head`.
    pub fn classifier(
        &self,
        model: &VarBuilder,
        embeddings: Embeddings,
        head: EncoderHead,
        pad_token_id: u32,
    ) -> anyhow::Result<Box<dyn Engine>> {
        Ok(Box::new(EncoderClassifier::new(EncoderParts {
            embeddings,
            layers: model.pp("encoder.layer"),
            num_layers: self.num_hidden_layers,
            layer_shape: self.layer_shape()?,
            layer_names: &BERT_LAYER,
            head,
            pad_token_id,
            vocab_size: self.vocab_size,
        })?))
    }
}

pub fn load(checkpoint: Checkpoint, output: OutputKind) -> anyhow::Result<Box<dyn Engine>> {
    let config = BertConfig::parse(&checkpoint)?;
    let vb = checkpoint.vb;
    let embeddings = config.embeddings(&vb.pp("bert.embeddings"), Positions::FromZero)?;
    let head = EncoderHead::load(output, &vb, config.hidden_size, || {
        FirstTokenHead::load(
            vb.pp("bert.pooler.dense"),
            Tensor::tanh,
            vb.pp("classifier"),
            config.hidden_size,
        )
    })?;
    config.classifier(
        &vb.pp("bert"),
        embeddings,
        head,
        config.pad_token_id.unwrap_or(0),
    )
}

/// `BertModel` with a Sentence-Transformers cross-encoder's head (modules.json): tensors without the `bert.`
/// prefix, and the pooler, when saved, unused.
pub fn load_cross_encoder(checkpoint: Checkpoint) -> anyhow::Result<Box<dyn Engine>> {
    let config = BertConfig::parse(&checkpoint)?;
    let head = ModularHead::load(
        checkpoint.cross_encoder_head("BertModel")?,
        config.hidden_size,
        checkpoint.vb.device(),
    )?;
    let vb = checkpoint.vb;
    let embeddings = config.embeddings(&vb.pp("embeddings"), Positions::FromZero)?;
    config.classifier(
        &vb,
        embeddings,
        EncoderHead::Modular(head),
        config.pad_token_id.unwrap_or(0),
    )
}
