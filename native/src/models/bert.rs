//! `BertForSequenceClassification`: the encoder from candle-transformers, then the [CLS] hidden state through
//! the pooler (dense + tanh) and the classifier.

use candle_core::{DType, IndexOp, Module, Tensor};
use candle_nn::{Linear, VarBuilder, linear};
use candle_transformers::models::bert::{BertModel, Config};
use classify_protocol::ModelShape;
use classify_protocol::config::ModelConfig;

use super::SequenceClassifier;

pub struct BertClassifier {
    bert: BertModel,
    pooler: Linear,
    classifier: Linear,
    pad_token_id: u32,
    shape: ModelShape,
}

impl BertClassifier {
    pub fn load(
        config_json: &[u8],
        model_config: &ModelConfig,
        vb: VarBuilder,
    ) -> anyhow::Result<Self> {
        let config: Config = serde_json::from_slice(config_json)?;
        let bert = BertModel::load(vb.pp("bert"), &config)?;
        let pooler = linear(
            config.hidden_size,
            config.hidden_size,
            vb.pp("bert.pooler.dense"),
        )?;
        let num_classes = vb.get_unchecked("classifier.weight")?.dim(0)?;
        let classifier = linear(config.hidden_size, num_classes, vb.pp("classifier"))?;
        Ok(BertClassifier {
            bert,
            pooler,
            classifier,
            pad_token_id: model_config.pad_token_id.unwrap_or(0),
            shape: ModelShape {
                num_classes,
                max_positions: config.max_position_embeddings,
                vocab_size: config.vocab_size,
            },
        })
    }

    pub fn shape(&self) -> ModelShape {
        self.shape
    }
}

impl SequenceClassifier for BertClassifier {
    fn forward(&self, batch: &[&[u32]]) -> candle_core::Result<Vec<Vec<f32>>> {
        let device = &self.bert.device;
        let longest = batch.iter().map(|s| s.len()).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(batch.len() * longest);
        let mut mask = Vec::with_capacity(batch.len() * longest);
        for sequence in batch {
            let padding = longest - sequence.len();
            ids.extend_from_slice(sequence);
            ids.extend(std::iter::repeat_n(self.pad_token_id, padding));
            mask.extend(std::iter::repeat_n(1u32, sequence.len()));
            mask.extend(std::iter::repeat_n(0u32, padding));
        }
        let ids = Tensor::from_vec(ids, (batch.len(), longest), device)?;
        let mask = Tensor::from_vec(mask, (batch.len(), longest), device)?;
        let token_types = ids.zeros_like()?;
        let hidden = self.bert.forward(&ids, &token_types, Some(&mask))?;
        let first_token = hidden.i((.., 0))?;
        let pooled = self.pooler.forward(&first_token)?.tanh()?;
        self.classifier
            .forward(&pooled)?
            .to_dtype(DType::F32)?
            .to_vec2()
    }
}
