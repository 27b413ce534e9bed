//! The layer types the fused operations take: activations, how attention logits are formed, LayerNorm.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    Silu,
    /// `gelu_pytorch_tanh` / `gelu_new`: the tanh approximation.
    GeluTanh,
    /// `gelu`: the exact (erf) form.
    Gelu,
    Relu,
}

impl Activation {
    pub fn from_name(name: &str) -> anyhow::Result<Activation> {
        match name {
            "silu" | "swish" => Ok(Activation::Silu),
            "gelu_pytorch_tanh" | "gelu_new" | "gelu_fast" => Ok(Activation::GeluTanh),
            "gelu" => Ok(Activation::Gelu),
            "relu" => Ok(Activation::Relu),
            other => anyhow::bail!("unsupported activation `{other}`"),
        }
    }

    pub fn apply(self, xs: &Tensor) -> Result<Tensor> {
        match self {
            Activation::Silu => candle_nn::ops::silu(xs),
            Activation::GeluTanh => xs.gelu(),
            Activation::Gelu => xs.gelu_erf(),
            Activation::Relu => xs.relu(),
        }
    }
}

/// How attention logits are formed before the softmax.
#[derive(Debug, Clone, Copy)]
pub struct AttentionLogits {
    /// Multiplies q·k.
    pub scale: f64,
    /// Gemma2: `cap × tanh(logit / cap)` after scaling.
    pub softcap: Option<f64>,
}

/// LayerNorm over the last dimension (biased variance, as PyTorch).
#[derive(Debug, Clone)]
pub struct LayerNorm {
    pub(super) weight: Tensor,
    pub(super) beta: Tensor,
    pub(super) eps: f64,
}

impl LayerNorm {
    pub fn load(size: usize, eps: f64, vb: VarBuilder) -> Result<LayerNorm> {
        Ok(LayerNorm {
            weight: vb.get(size, "weight")?,
            beta: vb.get(size, "bias")?,
            eps,
        })
    }

    /// A LayerNorm stored without a bias (ModernBERT's `norm_bias: false`): the bias is zero.
    pub fn load_without_bias(size: usize, eps: f64, vb: VarBuilder) -> Result<LayerNorm> {
        let weight = vb.get(size, "weight")?;
        Ok(LayerNorm {
            beta: weight.zeros_like()?,
            weight,
            eps,
        })
    }
}

impl Module for LayerNorm {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        candle_nn::ops::layer_norm(&xs.contiguous()?, &self.weight, &self.beta, self.eps as f32)
    }
}
