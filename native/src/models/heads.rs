//! Heads on a decoder's last-token hidden state, all run in f32: the plain `score` projection of the
//! `*ForSequenceClassification` models, the two reward heads transformers does not ship, and an LLM reranker's
//! two `lm_head` rows.

use std::path::PathBuf;

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Linear, VarBuilder};
use classify_protocol::tokenize::YesNoTokens;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadKind {
    /// `score.weight` `[num_labels, hidden]`, no bias.
    Score,
    /// Qwen2ForRewardModel: `score.0` (h→h) → ReLU → `score.2` (h→1), both with bias.
    Qwen2Reward,
    /// SGLang's LlamaForSequenceClassificationWithNormal_Weights: `score` (h→n, no bias) and `weights.fc`
    /// (h→h, SELU, h→h, SELU, h→n/2); one reward, `sum_k score[2k] * weights[k]`.
    NormalWeights,
    /// An LLM reranker: `lm_head[yes] - lm_head[no]` as a one-row score (the embedding rows when `tied`).
    YesNo { tokens: YesNoTokens, tied: bool },
}

pub enum ClassifierHead {
    Score(Linear),
    Qwen2Reward { hidden: Linear, out: Linear },
    NormalWeights { score: Linear, fc: [Linear; 3] },
}

/// A linear layer read as f32, with its weight shape taken from the file and checked against `[out, in]`.
fn linear_f32(vb: &VarBuilder, in_dim: usize, bias: bool) -> candle_core::Result<Linear> {
    let out_dim = vb.get_unchecked("weight")?.dim(0)?;
    let weight = vb.get((out_dim, in_dim), "weight")?.to_dtype(DType::F32)?;
    let bias = if bias {
        Some(vb.get(out_dim, "bias")?.to_dtype(DType::F32)?)
    } else {
        None
    };
    Ok(Linear::new(weight, bias))
}

/// `rows[yes] - rows[no]` of the `[vocab, hidden]` tensor `name`, read from the files alone: the vocabulary head
/// itself is never loaded.
fn yes_minus_no(
    weights: &[PathBuf],
    name: &str,
    tokens: YesNoTokens,
    hidden_size: usize,
    device: &Device,
) -> candle_core::Result<Linear> {
    // SAFETY: read-only maps of the weight files, as the VarBuilder's; nobody truncates them while the model loads.
    let files = unsafe { MmapedSafetensors::multi(weights)? };
    let view = files.get(name)?;
    let dtype = DType::try_from(view.dtype())?;
    let (rows, width) = match view.shape() {
        [rows, width] => (*rows, *width),
        shape => candle_core::bail!("{name}: shape {shape:?} is not [vocab, hidden]"),
    };
    if width != hidden_size {
        candle_core::bail!("{name}: rows of {width}, the hidden size is {hidden_size}");
    }
    let row_bytes = width * dtype.size_in_bytes();
    let row = |id: u32| {
        let id = id as usize;
        if id >= rows {
            candle_core::bail!("{name}: the answer token {id} is past its {rows} rows");
        }
        let bytes = &view.data()[id * row_bytes..(id + 1) * row_bytes];
        Tensor::from_raw_buffer(bytes, dtype, &[1, width], &Device::Cpu)?.to_dtype(DType::F32)
    };
    let weight = (row(tokens.yes)? - row(tokens.no)?)?.to_device(device)?;
    Ok(Linear::new(weight, None))
}

fn selu(xs: &Tensor) -> candle_core::Result<Tensor> {
    const ALPHA: f64 = 1.673_263_242_354_377_3;
    const SCALE: f64 = 1.050_700_987_355_480_5;
    let positive = xs.relu()?;
    let negative = ((xs.minimum(0.0)?.exp()? - 1.0)? * ALPHA)?;
    (positive + negative)? * SCALE
}

impl ClassifierHead {
    pub fn load(
        kind: HeadKind,
        hidden_size: usize,
        vb: &VarBuilder,
        weights: &[PathBuf],
    ) -> candle_core::Result<ClassifierHead> {
        Ok(match kind {
            HeadKind::Score => {
                ClassifierHead::Score(linear_f32(&vb.pp("score"), hidden_size, false)?)
            }
            HeadKind::Qwen2Reward => ClassifierHead::Qwen2Reward {
                hidden: linear_f32(&vb.pp("score.0"), hidden_size, true)?,
                out: linear_f32(&vb.pp("score.2"), hidden_size, true)?,
            },
            HeadKind::NormalWeights => {
                let fc = vb.pp("weights.fc");
                ClassifierHead::NormalWeights {
                    score: linear_f32(&vb.pp("score"), hidden_size, false)?,
                    fc: [
                        linear_f32(&fc.pp("0"), hidden_size, true)?,
                        linear_f32(&fc.pp("2"), hidden_size, true)?,
                        linear_f32(&fc.pp("4"), hidden_size, true)?,
                    ],
                }
            }
            HeadKind::YesNo { tokens, tied } => {
                let rows = match tied {
                    true => "model.embed_tokens.weight",
                    false => "lm_head.weight",
                };
                ClassifierHead::Score(yes_minus_no(
                    weights,
                    rows,
                    tokens,
                    hidden_size,
                    vb.device(),
                )?)
            }
        })
    }

    pub fn num_classes(&self) -> candle_core::Result<usize> {
        match self {
            ClassifierHead::Score(score) => score.weight().dim(0),
            ClassifierHead::Qwen2Reward { out, .. } => out.weight().dim(0),
            ClassifierHead::NormalWeights { .. } => Ok(1),
        }
    }

    /// `[batch, hidden]` f32 → `[batch, num_classes]`.
    pub fn forward(&self, pooled: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            ClassifierHead::Score(score) => score.forward(pooled),
            ClassifierHead::Qwen2Reward { hidden, out } => {
                out.forward(&hidden.forward(pooled)?.relu()?)
            }
            ClassifierHead::NormalWeights { score, fc } => {
                let logits = score.forward(pooled)?;
                let (batch, labels) = logits.dims2()?;
                let rewards = logits
                    .reshape((batch, labels / 2, 2))?
                    .narrow(2, 0, 1)?
                    .squeeze(2)?;
                let weights =
                    fc[2].forward(&selu(&fc[1].forward(&selu(&fc[0].forward(pooled)?)?)?)?)?;
                (rewards * weights)?.sum_keepdim(1)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    #[test]
    fn selu_matches_its_definition() {
        let xs = Tensor::new(&[-2.0f32, 0.0, 1.5], &Device::Cpu).unwrap();
        let got: Vec<f32> = selu(&xs).unwrap().to_vec1().unwrap();
        let want = [
            1.050_700_9 * 1.673_263_2 * ((-2.0f32).exp() - 1.0),
            0.0,
            1.050_700_9 * 1.5,
        ];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{got:?} vs {want:?}");
        }
    }
}
