//! `DebertaV2ForSequenceClassification` (DeBERTa-v2 and -v3, mDeBERTa): disentangled attention (content→position
//! and position→content over shared relative embeddings, with log buckets), the `ContextPooler` on the first token
//! and the classifier. The model is candle-transformers' `debertav2`, run in f32 on the placement's device: its
//! masked softmax builds f32 masks, so it cannot run in f16/bf16. Two gaps of that implementation are handled
//! here: its convolution layer (`conv_kernel_size`, DeBERTa-v2 xlarge/xxlarge) is unimplemented, so such
//! checkpoints are refused at load; and with `position_biased_input` it cannot add the position table to a batch
//! of more than one sequence, so those checkpoints run one sequence at a time.
//!
//! On the CPU its linear layers get their weights laid out transposed in memory (same values, `[out, in]`
//! shape), as [`super::ops::Dense`] keeps them: candle-nn's `Linear` multiplies by `weightᵀ`, which is then a
//! row-major matrix that gemm reads fast.

use std::collections::HashMap;

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};
use candle_transformers::models::debertav2::{Config, DebertaV2SeqClassificationModel};
use classify_protocol::{ModelShape, TokenSequence};

use super::{Checkpoint, RightPadded, SequenceClassifier};

pub struct DebertaV2Classifier {
    model: DebertaV2SeqClassificationModel,
    one_sequence_at_a_time: bool,
    /// `type_vocab_size > 0` (DeBERTa-v2; v3 has none and ignores the tokenizer's type ids, as transformers).
    has_token_types: bool,
    pad_token_id: u32,
    shape: ModelShape,
}

pub fn load(checkpoint: Checkpoint) -> anyhow::Result<Box<dyn SequenceClassifier>> {
    let mut config: Config = checkpoint.parse_config()?;
    anyhow::ensure!(
        config.conv_kernel_size.unwrap_or(0) == 0,
        "DeBERTa-v2's convolution layer (conv_kernel_size {}) is not supported",
        config.conv_kernel_size.unwrap_or(0)
    );
    let device = &checkpoint.placement.device;
    // SAFETY: read-only maps of files nobody truncates while the server runs (as in `models::load`).
    let tensors = unsafe { MmapedSafetensors::multi(checkpoint.weights) }?;
    let vb = if device.is_cpu() {
        VarBuilder::from_backend(
            Box::new(TransposedLinearWeights(tensors)),
            DType::F32,
            device.clone(),
        )
    } else {
        VarBuilder::from_backend(Box::new(tensors), DType::F32, device.clone())
    };
    // The head's size comes from its weights, not from whatever labels config.json lists.
    let num_classes = vb.get_unchecked("classifier.weight")?.dim(0)?;
    config.id2label = Some(
        (0..num_classes as u32)
            .map(|i| (i, format!("LABEL_{i}")))
            .collect::<HashMap<_, _>>(),
    );
    config.label2id = None;
    // transformers' defaults for fields DebertaV2Config writes but older configs may lack.
    config.pooler_hidden_size.get_or_insert(config.hidden_size);
    config.pooler_dropout.get_or_insert(0.0);
    config
        .pooler_hidden_act
        .get_or_insert(candle_transformers::models::debertav2::HiddenAct::Gelu);
    let max_positions = if config.position_biased_input {
        config.max_position_embeddings
    } else {
        // Relative positions only: no absolute table bounds the length, transformers' tokenizers cap it.
        config.max_position_embeddings.max(512)
    };
    let shape = ModelShape {
        num_classes,
        max_positions,
        vocab_size: config.vocab_size,
    };
    let pad_token_id = config.pad_token_id.unwrap_or(0) as u32;
    let model = DebertaV2SeqClassificationModel::load(vb.pp("deberta"), &config, None)?;
    Ok(Box::new(DebertaV2Classifier {
        model,
        one_sequence_at_a_time: config.position_biased_input,
        has_token_types: config.type_vocab_size > 0,
        pad_token_id,
        shape,
    }))
}

/// The linear layers of candle-transformers' DeBERTa, by the last part of their prefix.
const LINEAR_LAYERS: &[&str] = &[
    "query_proj",
    "key_proj",
    "value_proj",
    "pos_key_proj",
    "pos_query_proj",
    "dense",
    "classifier",
];

/// Safetensors whose linear-layer weights come back as the transpose of a contiguous `[in, out]` copy.
struct TransposedLinearWeights(MmapedSafetensors);

impl TransposedLinearWeights {
    fn relayout(name: &str, tensor: Tensor) -> candle_core::Result<Tensor> {
        let linear = name.strip_suffix(".weight").is_some_and(|prefix| {
            LINEAR_LAYERS
                .iter()
                .any(|layer| prefix.rsplit('.').next() == Some(layer))
        });
        if linear && tensor.rank() == 2 {
            tensor.t()?.contiguous()?.t()
        } else {
            Ok(tensor)
        }
    }
}

impl SimpleBackend for TransposedLinearWeights {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        hints: Init,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        Self::relayout(
            name,
            SimpleBackend::get(&self.0, shape, name, hints, dtype, device)?,
        )
    }

    fn get_unchecked(
        &self,
        name: &str,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        Self::relayout(
            name,
            SimpleBackend::get_unchecked(&self.0, name, dtype, device)?,
        )
    }

    fn contains_tensor(&self, name: &str) -> bool {
        SimpleBackend::contains_tensor(&self.0, name)
    }
}

impl SequenceClassifier for DebertaV2Classifier {
    fn shape(&self) -> ModelShape {
        self.shape
    }

    fn forward(&self, batch: &[&TokenSequence]) -> candle_core::Result<Vec<Vec<f32>>> {
        if self.one_sequence_at_a_time && batch.len() > 1 {
            let mut logits = Vec::with_capacity(batch.len());
            for sequence in batch {
                logits.extend(self.forward_padded(&[sequence])?);
            }
            return Ok(logits);
        }
        self.forward_padded(batch)
    }
}

impl DebertaV2Classifier {
    fn forward_padded(&self, batch: &[&TokenSequence]) -> candle_core::Result<Vec<Vec<f32>>> {
        let padded = RightPadded::new(batch, self.pad_token_id);
        let device = &self.model.device;
        let shape = (batch.len(), padded.longest);
        let mask = Tensor::from_vec(padded.mask(1i64, 0i64), shape, device)?;
        let ids = Tensor::from_vec(padded.ids, shape, device)?;
        let types = match padded.type_ids {
            Some(types) if self.has_token_types => Tensor::from_vec(types, shape, device)?,
            _ => Tensor::zeros(shape, DType::U32, device)?,
        };
        self.model
            .forward(&ids, Some(types), Some(mask))?
            .to_dtype(DType::F32)?
            .to_vec2()
    }
}
