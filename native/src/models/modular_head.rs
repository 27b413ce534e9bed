//! A Sentence-Transformers cross-encoder's head (`classify_protocol::cross_encoder`): after the backbone's
//! pooling, its Dense and LayerNorm modules in order, each read from its own folder, run in f32.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{LayerNorm, Linear};
use classify_protocol::cross_encoder::{CrossEncoderHead, DenseActivation, HeadModule, Pooling};

/// torch's `nn.LayerNorm` default, which sentence-transformers' LayerNorm module keeps.
const LAYER_NORM_EPS: f64 = 1e-5;

enum Layer {
    Dense {
        linear: Linear,
        activation: DenseActivation,
    },
    Norm(LayerNorm),
}

pub struct ModularHead {
    pub pooling: Pooling,
    layers: Vec<Layer>,
    num_scores: usize,
}

/// A module folder's tensors, each checked for its shape.
struct ModuleWeights<'a> {
    path: &'a Path,
    tensors: HashMap<String, Tensor>,
}

impl ModuleWeights<'_> {
    fn get(&self, name: &str, shape: &[usize]) -> anyhow::Result<Tensor> {
        let tensor = self
            .tensors
            .get(name)
            .with_context(|| format!("{}: no tensor `{name}`", self.path.display()))?;
        anyhow::ensure!(
            tensor.dims() == shape,
            "{}: `{name}` has shape {:?}, expected {shape:?}",
            self.path.display(),
            tensor.dims()
        );
        Ok(tensor.to_dtype(DType::F32)?)
    }
}

impl ModularHead {
    /// The head's modules on `device`; each one's input width must be the previous one's output (`hidden` for
    /// the first).
    pub fn load(
        head: &CrossEncoderHead,
        hidden: usize,
        device: &Device,
    ) -> anyhow::Result<ModularHead> {
        let mut width = hidden;
        let mut layers = Vec::with_capacity(head.modules.len());
        for module in &head.modules {
            let path = match module {
                HeadModule::Dense { weights, .. } | HeadModule::LayerNorm { weights, .. } => {
                    weights
                }
            };
            let weights = ModuleWeights {
                path,
                tensors: candle_core::safetensors::load(path, device)
                    .with_context(|| format!("{}: cannot read the weights", path.display()))?,
            };
            layers.push(match *module {
                HeadModule::Dense {
                    in_features,
                    out_features,
                    bias,
                    activation,
                    ..
                } => {
                    anyhow::ensure!(
                        in_features == width,
                        "{}: in_features {in_features}, but its input is {width} wide",
                        path.display()
                    );
                    width = out_features;
                    let bias = bias
                        .then(|| weights.get("linear.bias", &[out_features]))
                        .transpose()?;
                    Layer::Dense {
                        linear: Linear::new(
                            weights.get("linear.weight", &[out_features, in_features])?,
                            bias,
                        ),
                        activation,
                    }
                }
                HeadModule::LayerNorm { dimension, .. } => {
                    anyhow::ensure!(
                        dimension == width,
                        "{}: dimension {dimension}, but its input is {width} wide",
                        path.display()
                    );
                    Layer::Norm(LayerNorm::new(
                        weights.get("norm.weight", &[dimension])?,
                        weights.get("norm.bias", &[dimension])?,
                        LAYER_NORM_EPS,
                    ))
                }
            });
        }
        Ok(ModularHead {
            pooling: head.pooling,
            layers,
            num_scores: width,
        })
    }

    pub fn num_scores(&self) -> usize {
        self.num_scores
    }

    /// The pooled states `[batch, hidden]` (any dtype) → the scores `[batch, num_scores]` in f32.
    pub fn forward(&self, pooled: &Tensor) -> candle_core::Result<Tensor> {
        let mut xs = pooled.to_dtype(DType::F32)?;
        for layer in &self.layers {
            xs = match layer {
                Layer::Dense { linear, activation } => {
                    let ys = linear.forward(&xs)?;
                    match activation {
                        DenseActivation::Identity => ys,
                        DenseActivation::Tanh => ys.tanh()?,
                        DenseActivation::Gelu => ys.gelu_erf()?,
                        DenseActivation::Relu => ys.relu()?,
                        DenseActivation::Sigmoid => candle_nn::ops::sigmoid(&ys)?,
                    }
                }
                Layer::Norm(norm) => norm.forward(&xs)?,
            };
        }
        Ok(xs)
    }
}
