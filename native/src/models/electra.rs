//! `ElectraForSequenceClassification`: BERT's encoder whose embeddings may be narrower than the hidden size
//! (`embedding_size`, then `electra.embeddings_project` to `hidden_size`), and the head `classifier.dense` +
//! GELU + `classifier.out_proj` on the first token (GELU whatever `hidden_act` says, as in transformers);
//! `ElectraForTokenClassification`: `classifier` on every token.

use candle_core::Tensor;
use candle_nn::linear;
use classify_protocol::{Engine, OutputKind};

use super::bert::BertConfig;
use super::checkpoint::Checkpoint;
use super::encoder::{EncoderHead, FirstTokenHead, Positions};

pub fn load(checkpoint: Checkpoint, output: OutputKind) -> anyhow::Result<Box<dyn Engine>> {
    let config = BertConfig::parse(&checkpoint)?;
    let vb = checkpoint.vb;
    let hidden = config.hidden_size;
    let mut embeddings = config.embeddings(&vb.pp("electra.embeddings"), Positions::FromZero)?;
    if let Some(width) = config.embedding_size.filter(|&w| w != hidden) {
        embeddings.projection = Some(linear(width, hidden, vb.pp("electra.embeddings_project"))?);
    }
    let head = EncoderHead::load(output, &vb, hidden, || {
        FirstTokenHead::load(
            vb.pp("classifier.dense"),
            Tensor::gelu_erf,
            vb.pp("classifier.out_proj"),
            hidden,
        )
    })?;
    config.classifier(
        &vb.pp("electra"),
        embeddings,
        head,
        config.pad_token_id.unwrap_or(0),
    )
}
