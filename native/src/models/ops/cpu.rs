//! CPU versions of the fused operations, for contiguous f32 tensors: one pass over the matrix product's output,
//! rows split across rayon's threads (the ones gemm already runs on).
//!
//! Why: on DistilBERT-base, batches of 16 short texts on 2 cores, candle's separate bias add, erf GELU (scalar
//! `erff` per element), residual add and LayerNorm took about a third of the forward pass after the matrix
//! products; each is a full pass with its own thread hand-off.

use std::ops::{Deref, Range};

use candle_core::{DType, Result, Storage, Tensor};
use rayon::prelude::*;

use super::layers::{Activation, LayerNorm};

/// Rows handed to one rayon task: enough work per task to amortize the hand-off.
const ROWS_PER_TASK: usize = 8;

/// The storage of `x` and the range of its values, when it is a contiguous f32 tensor on the CPU.
fn f32_storage(x: &Tensor) -> Option<(impl Deref<Target = Storage> + '_, Range<usize>)> {
    if x.dtype() != DType::F32 || !x.device().is_cpu() {
        return None;
    }
    let (storage, layout) = x.storage_and_layout();
    let (start, end) = layout.contiguous_offsets()?;
    matches!(&*storage, Storage::Cpu(_)).then_some((storage, start..end))
}

fn values(storage: &(impl Deref<Target = Storage>, Range<usize>)) -> Result<&[f32]> {
    match &*storage.0 {
        Storage::Cpu(cpu) => Ok(&cpu.as_slice::<f32>()?[storage.1.clone()]),
        _ => candle_core::bail!("not a CPU tensor"),
    }
}

/// `activation(x + bias)` for `x` = `[..., features]`; `None` when the tensors are not contiguous f32 on the
/// CPU or the activation has no kernel here (the caller then uses candle's operations).
pub fn bias_activation(
    x: &Tensor,
    bias: &Tensor,
    activation: Activation,
) -> Result<Option<Tensor>> {
    if !matches!(activation, Activation::Gelu | Activation::Relu) {
        return Ok(None);
    }
    let features = bias.elem_count();
    if features == 0 || x.dims().last() != Some(&features) {
        return Ok(None);
    }
    let (Some(xs), Some(bias)) = (f32_storage(x), f32_storage(bias)) else {
        return Ok(None);
    };
    let (xs, bias) = (values(&xs)?, values(&bias)?);
    let out = match activation {
        Activation::Relu => map_biased(xs, bias, |v| v.max(0.0)),
        _ => map_biased(xs, bias, gelu_erf),
    };
    Ok(Some(Tensor::from_vec(out, x.shape(), x.device())?))
}

/// `activation(gate) × up` for `x` = `[..., 2 × inner]` holding gate then up, in one pass; `None` when `x` is not
/// contiguous f32 on the CPU. GELU (erf) and ReLU vectorize; SiLU and tanh-GELU still save candle's copies of the
/// two halves and its separate passes.
pub fn gated_activation(x: &Tensor, activation: Activation) -> Result<Option<Tensor>> {
    let Some(&width) = x.dims().last() else {
        return Ok(None);
    };
    let Some(xs) = f32_storage(x) else {
        return Ok(None);
    };
    let xs = values(&xs)?;
    let inner = width / 2;
    let out = match activation {
        Activation::Gelu => map_gated(xs, inner, gelu_erf),
        Activation::Relu => map_gated(xs, inner, |v| v.max(0.0)),
        Activation::Silu => map_gated(xs, inner, |v| v / (1.0 + (-v).exp())),
        Activation::GeluTanh => map_gated(xs, inner, |v| {
            0.5 * v
                * (1.0 + ((2.0 / std::f32::consts::PI).sqrt() * (v + 0.044_715 * v * v * v)).tanh())
        }),
    };
    let mut dims = x.dims().to_vec();
    if let Some(last) = dims.last_mut() {
        *last = inner;
    }
    Ok(Some(Tensor::from_vec(out, dims, x.device())?))
}

/// `apply(gate) × up` row by row (rows of `2 × inner`: gate then up).
fn map_gated(xs: &[f32], inner: usize, apply: impl Fn(f32) -> f32 + Sync) -> Vec<f32> {
    let mut out = vec![0f32; xs.len() / 2];
    if inner == 0 {
        return out;
    }
    out.par_chunks_mut(inner * ROWS_PER_TASK)
        .zip(xs.par_chunks(2 * inner * ROWS_PER_TASK))
        .for_each(|(out, xs)| {
            for (out, row) in out.chunks_mut(inner).zip(xs.chunks(2 * inner)) {
                let (gate, up) = row.split_at(inner);
                for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
                    *o = apply(g) * u;
                }
            }
        });
    out
}

/// `apply(x + bias)` row by row; generic so that `apply` is inlined into the loop, which then vectorizes.
fn map_biased(xs: &[f32], bias: &[f32], apply: impl Fn(f32) -> f32 + Sync) -> Vec<f32> {
    let mut out = vec![0f32; xs.len()];
    let task = bias.len() * ROWS_PER_TASK;
    out.par_chunks_mut(task)
        .zip(xs.par_chunks(task))
        .for_each(|(out, xs)| {
            for (out, xs) in out.chunks_mut(bias.len()).zip(xs.chunks(bias.len())) {
                for ((o, &v), &b) in out.iter_mut().zip(xs).zip(bias) {
                    *o = apply(v + b);
                }
            }
        });
    out
}

/// `norm(x + bias + residual)` over the last dimension; `None` as [`bias_activation`].
pub fn bias_residual_layer_norm(
    x: &Tensor,
    bias: &Tensor,
    residual: &Tensor,
    norm: &LayerNorm,
) -> Result<Option<Tensor>> {
    let hidden = bias.elem_count();
    if hidden == 0
        || x.dims().last() != Some(&hidden)
        || residual.shape() != x.shape()
        || norm.weight.elem_count() != hidden
        || norm.beta.elem_count() != hidden
    {
        return Ok(None);
    }
    let views = [x, bias, residual, &norm.weight, &norm.beta].map(f32_storage);
    let [
        Some(xs),
        Some(bias),
        Some(residual),
        Some(weight),
        Some(beta),
    ] = &views
    else {
        return Ok(None);
    };
    let (xs, bias, residual) = (values(xs)?, values(bias)?, values(residual)?);
    let (weight, beta, eps) = (values(weight)?, values(beta)?, norm.eps as f32);
    let mut out = vec![0f32; xs.len()];
    let task = hidden * ROWS_PER_TASK;
    out.par_chunks_mut(task)
        .zip(xs.par_chunks(task).zip(residual.par_chunks(task)))
        .for_each(|(out, (xs, residual))| {
            let rows = out
                .chunks_mut(hidden)
                .zip(xs.chunks(hidden).zip(residual.chunks(hidden)));
            for (out, (xs, residual)) in rows {
                for ((o, &v), (&b, &r)) in out.iter_mut().zip(xs).zip(bias.iter().zip(residual)) {
                    *o = v + b + r;
                }
                normalize(out, weight, beta, eps);
            }
        });
    Ok(Some(Tensor::from_vec(out, x.shape(), x.device())?))
}

/// Lanes of the partial sums below: independent accumulators the compiler keeps in vector registers (a single
/// f32 accumulator cannot be vectorized without reassociating the sum).
const LANES: usize = 16;

fn lane_sum(values: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut lanes = [0f32; LANES];
    let mut chunks = values.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += f(v);
        }
    }
    lanes.iter().sum::<f32>() + chunks.remainder().iter().map(|&v| f(v)).sum::<f32>()
}

/// LayerNorm of one row in place (biased variance, as PyTorch).
fn normalize(row: &mut [f32], weight: &[f32], beta: &[f32], eps: f32) {
    let n = row.len() as f32;
    let mean = lane_sum(row, |v| v) / n;
    let variance = lane_sum(row, |v| (v - mean) * (v - mean)) / n;
    let scale = 1.0 / (variance + eps).sqrt();
    for ((v, &w), &b) in row.iter_mut().zip(weight).zip(beta) {
        *v = (*v - mean) * scale * w + b;
    }
}

/// `x · Φ(x)`, GELU's exact (erf) form.
#[inline(always)]
fn gelu_erf(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// erf as a rational function of x² (the coefficients of Eigen's `generic_fast_erf_float`), exact to a few ulp
/// in f32 and branch-free, so loops over it vectorize where a call to libm's `erff` does not. Past |x| = 4,
/// erf is ±1 in f32.
#[inline(always)]
fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_3e-10_f32;
    p = p * x2 + 2.770_681_4e-8;
    p = p * x2 - 2.101_024e-6;
    p = p * x2 - 5.692_506_4e-5;
    p = p * x2 - 7.349_906_3e-4;
    p = p * x2 - 2.954_600_1e-3;
    p = p * x2 - 1.609_603_3e-2;
    let mut q = -1.456_607_2e-5_f32;
    q = q * x2 - 2.133_740_6e-4;
    q = q * x2 - 1.682_827e-3;
    q = q * x2 - 7.373_329e-3;
    q = q * x2 - 1.426_474e-2;
    x * p / q
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf in f64 by its Maclaurin series (|x| ≤ 3) and its continued fraction beyond.
    fn erf_reference(x: f64) -> f64 {
        let a = x.abs();
        let value = if a < 3.0 {
            let (mut term, mut sum, mut n) = (a, a, 0.0);
            while term.abs() > 1e-17 {
                n += 1.0;
                term *= -a * a / n;
                sum += term / (2.0 * n + 1.0);
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            let mut fraction = 0.0;
            for k in (1..60).rev() {
                fraction = (k as f64 / 2.0) / (a + fraction);
            }
            1.0 - (-a * a).exp() / std::f64::consts::PI.sqrt() / (a + fraction)
        };
        value.copysign(x)
    }

    fn random(shape: &[usize], seed: u64) -> Tensor {
        let n = shape.iter().product::<usize>();
        let mut state = seed;
        let values = (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 6.0
            })
            .collect::<Vec<_>>();
        Tensor::from_vec(values, shape, &candle_core::Device::Cpu).unwrap()
    }

    fn max_difference(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap()
    }

    // 37 features: not a multiple of the lanes, and 11 rows: not a multiple of a task's rows.
    #[test]
    fn fused_kernels_match_candles_operations() {
        let (x, bias, residual) = (random(&[11, 37], 1), random(&[37], 2), random(&[11, 37], 3));
        for activation in [Activation::Gelu, Activation::Relu] {
            let fused = bias_activation(&x, &bias, activation).unwrap().unwrap();
            let reference = activation.apply(&x.broadcast_add(&bias).unwrap()).unwrap();
            assert!(max_difference(&fused, &reference) < 1e-6, "{activation:?}");
        }
        let norm = LayerNorm {
            weight: random(&[37], 4),
            beta: random(&[37], 5),
            eps: 1e-12,
        };
        let fused = bias_residual_layer_norm(&x, &bias, &residual, &norm)
            .unwrap()
            .unwrap();
        let summed = (x.broadcast_add(&bias).unwrap() + &residual).unwrap();
        let reference =
            candle_nn::ops::layer_norm(&summed, &norm.weight, &norm.beta, 1e-12).unwrap();
        assert!(max_difference(&fused, &reference) < 1e-5);
    }

    #[test]
    fn the_fused_gated_activation_matches_candles_operations() {
        // 2 × 37 features, 11 rows.
        let x = random(&[11, 74], 6);
        let (gate, up) = (x.narrow(1, 0, 37).unwrap(), x.narrow(1, 37, 37).unwrap());
        for activation in [
            Activation::Gelu,
            Activation::GeluTanh,
            Activation::Silu,
            Activation::Relu,
        ] {
            let fused = gated_activation(&x, activation).unwrap().unwrap();
            let reference = (activation.apply(&gate).unwrap() * &up).unwrap();
            assert!(max_difference(&fused, &reference) < 1e-5, "{activation:?}");
        }
        assert!(
            gated_activation(&x.t().unwrap(), Activation::Gelu)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn other_layouts_are_left_to_candle() {
        let (x, bias) = (random(&[4, 6], 1), random(&[4], 2));
        assert!(
            bias_activation(&x.t().unwrap(), &bias, Activation::Gelu)
                .unwrap()
                .is_none()
        );
        let half = x.to_dtype(DType::F16).unwrap();
        assert!(
            bias_activation(&half, &random(&[6], 3), Activation::Gelu)
                .unwrap()
                .is_none()
        );
        assert!(
            bias_activation(&x, &random(&[6], 3), Activation::Silu)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn erf_matches_the_series_within_a_few_ulp() {
        let mut worst = 0f64;
        for i in -6000..=6000 {
            let x = i as f32 / 1000.0;
            worst = worst.max((erf(x) as f64 - erf_reference(x as f64)).abs());
        }
        assert!(worst < 5e-7, "max |erf - reference| = {worst:e}");
    }
}
