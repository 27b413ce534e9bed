use super::*;
use candle_core::{DType, Device};

#[test]
fn repeats_along_the_middle_dimension() {
    let x = Tensor::arange(0f32, 12.0, &Device::Cpu)
        .unwrap()
        .reshape((2, 3, 2))
        .unwrap();
    let y = Tensor::new(&[[100f32, 200.0], [300.0, 400.0]], &Device::Cpu).unwrap();
    let sum = add_repeated(&x, &y, 3, 2).unwrap();
    assert_eq!(sum.dims(), [2, 3, 2]);
    assert_eq!(
        sum.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        [
            100., 201., 102., 203., 104., 205., 306., 407., 308., 409., 310., 411.
        ]
    );
    assert!(add_repeated(&x, &y, 2, 2).is_err());
}

#[test]
fn swap_middle_selects_and_transposes() {
    // [1, a=2, b=3, d=1]: value = 10 * a + b.
    let x = Tensor::new(
        &[[[[0f32], [1.], [2.]], [[10.], [11.], [12.]]]],
        &Device::Cpu,
    )
    .unwrap();
    let swapped = swap_middle(&x, None, 1, 2).unwrap();
    assert_eq!(swapped.dims(), [1, 2, 2, 1]);
    assert_eq!(
        swapped.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        [1., 11., 2., 12.]
    );
    assert!(swap_middle(&x, None, 2, 2).is_err());
    // A bias per (b, d): [3, 1].
    let bias = Tensor::new(&[[100f32], [200.], [300.]], &Device::Cpu).unwrap();
    let biased = swap_middle(&x, Some(&bias), 1, 2).unwrap();
    assert_eq!(
        biased.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        [201., 211., 302., 312.]
    );
    assert!(swap_middle(&x, Some(&bias.narrow(0, 0, 2).unwrap()), 1, 2).is_err());
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

fn close(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6)
}

#[test]
fn gated_activation_multiplies_the_activated_gate_by_up() {
    // One row: gate [-1, 2], up [3, 4].
    let x = Tensor::new(&[[-1f32, 2., 3., 4.]], &Device::Cpu).unwrap();
    let silu = |v: f32| v / (1.0 + (-v).exp());
    let out = gated_activation(&x, Activation::Silu).unwrap();
    assert_eq!(out.dims(), [1, 2]);
    assert!(close(&values(&out), &[silu(-1.) * 3., silu(2.) * 4.]));
    let relu = gated_activation(&x, Activation::Relu).unwrap();
    assert!(close(&values(&relu), &[0., 8.]));
    assert!(
        gated_activation(
            &Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap(),
            Activation::Silu
        )
        .is_err()
    );
}

#[test]
fn masked_softmax_scales_caps_and_masks() {
    // scores [outer = 2, mid = 1, len = 3]; mask per outer row.
    let scores = Tensor::new(&[[[1f32, 2., 3.]], [[0.5, 0.5, 4.]]], &Device::Cpu).unwrap();
    let mask = Tensor::new(
        &[[0f32, 0., f32::NEG_INFINITY], [0., f32::NEG_INFINITY, 0.]],
        &Device::Cpu,
    )
    .unwrap();
    let softmax = |logits: &[f32]| {
        let largest = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let sum: f32 = logits.iter().map(|l| (l - largest).exp()).sum();
        logits
            .iter()
            .map(|l| (l - largest).exp() / sum)
            .collect::<Vec<_>>()
    };
    let plain = masked_softmax(
        &scores,
        &mask,
        1,
        3,
        AttentionLogits {
            scale: 0.5,
            softcap: None,
        },
    )
    .unwrap();
    let mut expected = softmax(&[0.5, 1.0, f32::NEG_INFINITY]);
    expected.extend(softmax(&[0.25, f32::NEG_INFINITY, 2.0]));
    assert!(close(&values(&plain), &expected), "{:?}", values(&plain));
    let capped = masked_softmax(
        &scores,
        &mask,
        1,
        3,
        AttentionLogits {
            scale: 1.0,
            softcap: Some(2.0),
        },
    )
    .unwrap();
    let cap = |v: f32| 2.0 * (v / 2.0).tanh();
    let mut expected = softmax(&[cap(1.), cap(2.), f32::NEG_INFINITY]);
    expected.extend(softmax(&[cap(0.5), f32::NEG_INFINITY, cap(4.)]));
    assert!(close(&values(&capped), &expected), "{:?}", values(&capped));
    assert!(
        masked_softmax(
            &scores,
            &mask,
            1,
            4,
            AttentionLogits {
                scale: 1.0,
                softcap: None
            }
        )
        .is_err()
    );
}

#[test]
fn dense_fuses_bias_with_activation_and_residual_norm() {
    let device = Device::Cpu;
    // Two features from two inputs, weights `[out, in]` as checkpoints store them: x·Wᵀ = [1, 2], bias [1, -3].
    let dense = Dense::new(
        Tensor::new(&[[1f32, 0.], [2., 0.]], &device).unwrap(),
        Some(Tensor::new(&[1f32, -3.], &device).unwrap()),
    )
    .unwrap();
    let xs = Tensor::new(&[[1f32, 2.]], &device).unwrap();
    assert!(close(&values(&dense.forward(&xs).unwrap()), &[2., -1.]));
    let activated = dense.forward_activated(&xs, Activation::Relu).unwrap();
    assert!(close(&values(&activated), &[2., 0.]));
    let norm = LayerNorm {
        weight: Tensor::new(&[2f32, 1.], &device).unwrap(),
        beta: Tensor::new(&[0f32, 10.], &device).unwrap(),
        eps: 0.0,
    };
    // x·W + b + residual = [2, -1] + [2, 1] = [4, 0]: mean 2, std 2, normalized [1, -1].
    let residual = Tensor::new(&[[2f32, 1.]], &device).unwrap();
    let normed = dense.forward_residual_norm(&xs, &residual, &norm).unwrap();
    assert!(close(&values(&normed), &[2., 9.]), "{:?}", values(&normed));
}

#[test]
fn stacked_projections_concatenate_outputs() {
    let device = Device::Cpu;
    let a = candle_nn::Linear::new(Tensor::new(&[[1f32, 0.]], &device).unwrap(), None);
    let b = candle_nn::Linear::new(Tensor::new(&[[0f32, 2.]], &device).unwrap(), None);
    let xs = Tensor::new(&[[3f32, 4.]], &device).unwrap();
    let stacked = Dense::stacked(&[&a, &b]).unwrap();
    assert!(close(&values(&stacked.forward(&xs).unwrap()), &[3., 8.]));
}
