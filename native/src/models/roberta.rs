//! `RobertaForSequenceClassification` and `XLMRobertaForSequenceClassification` (the same model under
//! `roberta.*`): BERT's encoder with position ids counted from `pad_token_id + 1` that skip pad tokens, a
//! one-row token-type table, and the head `classifier.dense` + tanh + `classifier.out_proj` on `<s>`; their
//! `*ForTokenClassification`: `classifier` on every token.

use candle_core::Tensor;
use classify_protocol::{Engine, OutputKind};

use super::bert::BertConfig;
use super::checkpoint::Checkpoint;
use super::encoder::{EncoderHead, FirstTokenHead, Positions};

pub fn load(checkpoint: Checkpoint, output: OutputKind) -> anyhow::Result<Box<dyn Engine>> {
    let config = BertConfig::parse(&checkpoint)?;
    let pad = config.pad_token_id.unwrap_or(1);
    let vb = checkpoint.vb;
    let positions = Positions::AfterPadding { padding_idx: pad };
    let embeddings = config.embeddings(&vb.pp("roberta.embeddings"), positions)?;
    let head = EncoderHead::load(output, &vb, config.hidden_size, || {
        FirstTokenHead::load(
            vb.pp("classifier.dense"),
            Tensor::tanh,
            vb.pp("classifier.out_proj"),
            config.hidden_size,
        )
    })?;
    config.classifier(&vb.pp("roberta"), embeddings, head, pad)
}
