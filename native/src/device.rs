//! Where models run and in which dtype: the one place that chooses.

use candle_core::{DType, Device};

#[derive(Debug, Clone)]
pub struct Placement {
    pub device: Device,
    /// The dtype weights are converted to on load and activations are computed in.
    pub dtype: DType,
}

impl Placement {
    /// CPU in f32: bf16/f16 checkpoints are widened on load.
    pub fn cpu() -> Placement {
        Placement {
            device: Device::Cpu,
            dtype: DType::F32,
        }
    }
}
