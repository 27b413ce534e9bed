//! Tensor operations the models share, each one fused CUDA kernel (native/kernels/) where candle would launch
//! several, and the same computation from candle's operations elsewhere.
//!
//! Why: profiled with Nsight Compute on BERT-base f16 under load, candle's broadcasting add alone took 61% of the
//! GPU time (a strided index with 64-bit divisions per element), and after that was replaced, element-wise work
//! (bias adds, head split/merge copies, GELU, residual adds, layer norms, scaling, softmax) was still ~80% of it
//! against ~20% for the matrix products. Each kernel here reads its inputs once and writes once, computing in f32.

mod cpu;
#[cfg(feature = "cuda")]
mod cuda;
mod layers;

use candle_core::{Module, Result, Tensor};

use super::packed::PackedLayout;
pub use layers::{Activation, AttentionLogits, LayerNorm};

/// Whether `x` runs through this module's CUDA kernels (their index arithmetic is 32-bit).
#[cfg(feature = "cuda")]
fn on_cuda(x: &Tensor) -> bool {
    x.device().is_cuda() && x.elem_count() < u32::MAX as usize / 2
}

/// The `outer` of `x` = `[outer, mid, inner]` and `y` = `[outer, inner]`, or an error naming both shapes.
fn repeated_outer(x: &Tensor, y: &Tensor, mid: usize, inner: usize) -> Result<usize> {
    let outer = y.elem_count() / inner.max(1);
    if outer * inner != y.elem_count() || outer * mid * inner != x.elem_count() {
        candle_core::bail!(
            "{:?} is not [outer, {mid}, {inner}] over {:?}",
            x.shape(),
            y.shape()
        );
    }
    Ok(outer)
}

/// `x + y`, where `y` repeats along x's middle dimension: `x` is viewed as `[outer, mid, inner]` and `y` as
/// `[outer, inner]`. The result has x's shape.
pub fn add_repeated(x: &Tensor, y: &Tensor, mid: usize, inner: usize) -> Result<Tensor> {
    let outer = repeated_outer(x, y, mid, inner)?;
    #[cfg(feature = "cuda")]
    if on_cuda(x) {
        return cuda::add_repeated(x, y, mid, inner);
    }
    x.reshape((outer, mid, inner))?
        .broadcast_add(&y.reshape((outer, 1, inner))?)?
        .reshape(x.shape())
}

/// Dimensions 1 and 2 of a `[batch, a, b, d]` tensor swapped, keeping b-indices `first..first + n` and adding
/// `bias` (`[b, d]`) when given: the result is a contiguous `[batch, n, a, d]`. Splits a fused q/k/v projection
/// into heads (with the projection's bias) and merges heads back, one pass each.
pub fn swap_middle(x: &Tensor, bias: Option<&Tensor>, first: usize, n: usize) -> Result<Tensor> {
    let (_, _, b, d) = x.dims4()?;
    if first + n > b {
        candle_core::bail!(
            "swap_middle: {first}..{} is outside dimension 2 of {:?}",
            first + n,
            x.shape()
        );
    }
    if let Some(bias) = bias
        && bias.elem_count() != b * d
    {
        candle_core::bail!(
            "swap_middle: a bias of {:?} for {:?}",
            bias.shape(),
            x.shape()
        );
    }
    #[cfg(feature = "cuda")]
    if on_cuda(x) {
        return cuda::swap_middle(x, bias, first, n);
    }
    let part = x.narrow(2, first, n)?;
    let part = match bias {
        Some(bias) => part.broadcast_add(&bias.reshape((b, d))?.narrow(0, first, n)?)?,
        None => part,
    };
    part.transpose(1, 2)?.contiguous()
}

/// `activation(gate) × up` for `x` = `[..., 2 × inner]` holding gate then up: a gated MLP whose two input
/// projections ran as one matrix product. The result is `[..., inner]`.
pub fn gated_activation(x: &Tensor, activation: Activation) -> Result<Tensor> {
    let last = x.rank().saturating_sub(1);
    let width = x.dim(last)?;
    if width % 2 != 0 {
        candle_core::bail!("gated_activation: odd last dimension in {:?}", x.shape());
    }
    #[cfg(feature = "cuda")]
    if on_cuda(x) {
        return cuda::gated_activation(x, activation);
    }
    if let Some(gated) = cpu::gated_activation(x, activation)? {
        return Ok(gated);
    }
    let inner = width / 2;
    activation.apply(&x.narrow(last, 0, inner)?)? * x.narrow(last, inner, inner)?
}

/// `softmax(logits(scores) + mask)` over the last dimension, where the additive `mask` repeats along the scores'
/// middle dimension as in [`add_repeated`] (`inner` must be a multiple of the last dimension). Accumulates in f32
/// whatever the dtype.
pub fn masked_softmax(
    scores: &Tensor,
    mask: &Tensor,
    mid: usize,
    inner: usize,
    logits: AttentionLogits,
) -> Result<Tensor> {
    let len = scores.dim(scores.rank().saturating_sub(1))?;
    if len == 0 || !inner.is_multiple_of(len) {
        candle_core::bail!(
            "masked_softmax: mask rows of {inner} do not tile {:?}",
            scores.shape()
        );
    }
    repeated_outer(scores, mask, mid, inner)?;
    #[cfg(feature = "cuda")]
    if on_cuda(scores) {
        return cuda::masked_softmax(scores, mask, mid, inner, logits);
    }
    let mut scores = (scores * logits.scale)?;
    if let Some(cap) = logits.softcap {
        scores = ((scores / cap)?.tanh()? * cap)?;
    }
    candle_nn::ops::softmax_last_dim(&add_repeated(&scores, mask, mid, inner)?)
}

/// The end of a self-attention: `softmax(logits(scores) + mask) · v` for `v` = `[batch, heads, len, head_dim]`,
/// merged back into `[batch, len, heads × head_dim]`. `mask` as in [`masked_softmax`] (`[batch, 1, 1, len]`).
pub fn attend(
    scores: &Tensor,
    v: &Tensor,
    mask: &Tensor,
    logits: AttentionLogits,
) -> Result<Tensor> {
    let (batch, heads, len, head_dim) = v.dims4()?;
    let probs = masked_softmax(scores, mask, heads * len, len, logits)?;
    swap_middle(&probs.matmul(v)?, None, 0, len)?.reshape((batch, len, heads * head_dim))
}

/// A linear layer whose bias add is fused with what follows it.
#[derive(Debug, Clone)]
pub struct Dense {
    /// The matrix product alone.
    product: Product,
    bias: Option<Tensor>,
}

/// A weight in the layout its device multiplies fastest.
#[derive(Debug, Clone)]
enum Product {
    /// `[out, in]` as stored: cuBLAS reads the transpose at no cost.
    AsStored(candle_nn::Linear),
    /// `[in, out]`, transposed once at load (CPU). gemm, candle's CPU matrix product, packs a row-major
    /// right-hand side with vector loads; on the stored layout it gathers one element at a time, and with AVX-512
    /// kernels the encoder shapes ran 1.2–1.6× faster this way (768→768: 160 → 240 GFLOP/s on 2 cores).
    Transposed(Tensor),
}

impl Product {
    fn new(weight: Tensor) -> Result<Product> {
        if weight.device().is_cpu() {
            Ok(Product::Transposed(weight.t()?.contiguous()?))
        } else {
            Ok(Product::AsStored(candle_nn::Linear::new(weight, None)))
        }
    }

    fn out_features(&self) -> Result<usize> {
        match self {
            Product::AsStored(linear) => linear.weight().dim(0),
            Product::Transposed(weight) => weight.dim(1),
        }
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        match self {
            Product::AsStored(linear) => linear.forward(xs),
            Product::Transposed(weight) => {
                let (inner, out) = weight.dims2()?;
                let mut dims = xs.dims().to_vec();
                let rows = xs.elem_count() / inner.max(1);
                let product = xs.reshape((rows, inner))?.matmul(weight)?;
                if let Some(last) = dims.last_mut() {
                    *last = out;
                }
                product.reshape(dims)
            }
        }
    }
}

impl Dense {
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Result<Dense> {
        Ok(Dense {
            product: Product::new(weight)?,
            bias,
        })
    }

    /// Several projections of the same input stacked into one (their outputs concatenated along the last
    /// dimension): one matrix product instead of several. Either all have a bias or the result has none.
    pub fn stacked(parts: &[&candle_nn::Linear]) -> Result<Dense> {
        let weights = parts.iter().map(|p| p.weight()).collect::<Vec<_>>();
        let biases = parts.iter().map(|p| p.bias()).collect::<Option<Vec<_>>>();
        Dense::new(
            Tensor::cat(&weights, 0)?,
            biases.map(|b| Tensor::cat(&b, 0)).transpose()?,
        )
    }

    /// The projection of `xs` (`[batch, len, hidden]`) as heads of `head_dim` features, ready to be split by
    /// [`Heads::take`], which adds the bias.
    pub fn heads(&self, xs: &Tensor, head_dim: usize) -> Result<Heads<'_>> {
        self.split_heads(self.product.forward(xs)?, head_dim)
    }

    /// As [`Dense::heads`] for the rows of a packed batch (`[tokens, hidden]`), laid out padded.
    pub fn heads_padded(
        &self,
        xs: &Tensor,
        head_dim: usize,
        layout: &PackedLayout,
    ) -> Result<Heads<'_>> {
        self.split_heads(layout.padded(&self.product.forward(xs)?)?, head_dim)
    }

    fn split_heads(&self, product: Tensor, head_dim: usize) -> Result<Heads<'_>> {
        let (batch, len, features) = product.dims3()?;
        Ok(Heads {
            product: product.reshape((batch, len, features / head_dim.max(1), head_dim))?,
            bias: self.bias.as_ref(),
        })
    }

    /// The projection's output features.
    pub fn weight_rows(&self) -> Result<usize> {
        self.product.out_features()
    }

    fn features(&self) -> usize {
        self.product.out_features().unwrap_or(0)
    }

    /// `activation(x·Wᵀ + b)` with the bias add and the activation in one pass.
    pub fn forward_activated(&self, xs: &Tensor, activation: Activation) -> Result<Tensor> {
        let product = self.product.forward(xs)?;
        #[cfg(feature = "cuda")]
        if let (true, Some(bias)) = (on_cuda(&product), &self.bias) {
            return cuda::bias_activation(&product, bias, activation);
        }
        if let Some(bias) = &self.bias
            && let Some(activated) = cpu::bias_activation(&product, bias, activation)?
        {
            return Ok(activated);
        }
        activation.apply(&self.forward_bias(product)?)
    }

    /// `norm(x·Wᵀ + b + residual)`: a transformer block's output projection, residual connection and LayerNorm in
    /// one pass after the matrix product.
    pub fn forward_residual_norm(
        &self,
        xs: &Tensor,
        residual: &Tensor,
        norm: &LayerNorm,
    ) -> Result<Tensor> {
        let product = self.product.forward(xs)?;
        #[cfg(feature = "cuda")]
        if let (true, Some(bias)) = (on_cuda(&product), &self.bias) {
            return cuda::bias_residual_layer_norm(&product, bias, residual, norm);
        }
        if let Some(bias) = &self.bias
            && let Some(normed) = cpu::bias_residual_layer_norm(&product, bias, residual, norm)?
        {
            return Ok(normed);
        }
        norm.forward(&(self.forward_bias(product)? + residual)?)
    }

    fn forward_bias(&self, product: Tensor) -> Result<Tensor> {
        match &self.bias {
            None => Ok(product),
            Some(bias) => add_repeated(
                &product,
                bias,
                product.elem_count() / self.features().max(1),
                self.features(),
            ),
        }
    }
}

/// A projection's product as `[batch, len, heads, head_dim]`, its bias not yet added.
pub struct Heads<'a> {
    product: Tensor,
    bias: Option<&'a Tensor>,
}

impl Heads<'_> {
    /// Heads `first..first + n` with the bias, as a contiguous `[batch, n, len, head_dim]`.
    pub fn take(&self, first: usize, n: usize) -> Result<Tensor> {
        swap_middle(&self.product, self.bias, first, n)
    }
}

impl TryFrom<candle_nn::Linear> for Dense {
    type Error = candle_core::Error;

    fn try_from(linear: candle_nn::Linear) -> Result<Dense> {
        Dense::new(linear.weight().clone(), linear.bias().cloned())
    }
}

impl Module for Dense {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.forward_bias(self.product.forward(xs)?)
    }
}

#[cfg(test)]
mod tests;
