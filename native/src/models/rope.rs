//! Rotary position embeddings: frequencies from config.json (with the scalings Llama 3 and Qwen configs use)
//! and the cos/sin tables for a forward pass.

use candle_core::{Device, Tensor};
use serde_json::Value;

/// One rotary frequency per pair of head dimensions.
#[derive(Debug, Clone, PartialEq)]
pub struct Rope {
    pub inv_freq: Vec<f32>,
}

impl Rope {
    /// From `rope_parameters` (transformers 5) or `rope_theta` + `rope_scaling` (transformers 4).
    pub fn from_config(
        config: &Value,
        head_dim: usize,
        max_positions: usize,
    ) -> anyhow::Result<Rope> {
        let parameters = config.get("rope_parameters").filter(|v| v.is_object());
        let scaling = parameters.or_else(|| config.get("rope_scaling").filter(|v| v.is_object()));
        let theta = parameters
            .and_then(|p| p.get("rope_theta"))
            .or_else(|| config.get("rope_theta"))
            .and_then(Value::as_f64)
            .unwrap_or(10_000.0);
        let number = |key: &str| scaling.and_then(|s| s.get(key)).and_then(Value::as_f64);
        let kind = scaling
            .and_then(|s| s.get("rope_type").or_else(|| s.get("type")))
            .and_then(Value::as_str)
            .unwrap_or("default");
        let base: Vec<f64> = (0..head_dim / 2)
            .map(|i| 1.0 / theta.powf((2 * i) as f64 / head_dim as f64))
            .collect();
        let inv_freq: Vec<f64> = match kind {
            "default" => base,
            "linear" => {
                let factor = number("factor")
                    .ok_or_else(|| anyhow::anyhow!("linear rope scaling needs `factor`"))?;
                base.iter().map(|f| f / factor).collect()
            }
            // Dynamic NTK scaling only changes frequencies past max_position_embeddings, which inputs never reach.
            "dynamic" => {
                let original = number("original_max_position_embeddings")
                    .map_or(max_positions, |n| n as usize);
                anyhow::ensure!(
                    original >= max_positions,
                    "dynamic rope scaling beyond original_max_position_embeddings ({original}) is not supported"
                );
                base
            }
            "llama3" => {
                let get = |key: &str| {
                    number(key).ok_or_else(|| anyhow::anyhow!("llama3 rope scaling needs `{key}`"))
                };
                let (factor, low, high) = (
                    get("factor")?,
                    get("low_freq_factor")?,
                    get("high_freq_factor")?,
                );
                let original = get("original_max_position_embeddings")?;
                let (low_wavelen, high_wavelen) = (original / low, original / high);
                base.iter()
                    .map(|&f| {
                        let wavelen = 2.0 * std::f64::consts::PI / f;
                        if wavelen < high_wavelen {
                            f
                        } else if wavelen > low_wavelen {
                            f / factor
                        } else {
                            let smooth = (original / wavelen - low) / (high - low);
                            (1.0 - smooth) * f / factor + smooth * f
                        }
                    })
                    .collect()
            }
            other => anyhow::bail!(
                "unsupported rope scaling `{other}` (supported: default, linear, dynamic, llama3)"
            ),
        };
        Ok(Rope {
            inv_freq: inv_freq.into_iter().map(|f| f as f32).collect(),
        })
    }

    /// cos and sin tables `[positions, head_dim / 2]`.
    pub fn tables(
        &self,
        positions: usize,
        device: &Device,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let half = self.inv_freq.len();
        let mut angles = Vec::with_capacity(positions * half);
        for t in 0..positions {
            angles.extend(self.inv_freq.iter().map(|f| t as f32 * f));
        }
        let angles = Tensor::from_vec(angles, (positions, half), device)?;
        Ok((angles.cos()?, angles.sin()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rope_parameters_in_either_layout() {
        let v5 =
            serde_json::json!({"rope_parameters": {"rope_type": "default", "rope_theta": 100.0}});
        let rope = Rope::from_config(&v5, 4, 16).unwrap();
        assert_eq!(rope.inv_freq, [1.0, 0.1]);
        let v4 = serde_json::json!({"rope_theta": 100.0, "rope_scaling": {"type": "linear", "factor": 2.0}});
        assert_eq!(Rope::from_config(&v4, 4, 16).unwrap().inv_freq, [0.5, 0.05]);
        let yarn = serde_json::json!({"rope_scaling": {"rope_type": "yarn", "factor": 4.0}});
        assert!(
            Rope::from_config(&yarn, 4, 16)
                .unwrap_err()
                .to_string()
                .contains("yarn")
        );
    }

    #[test]
    fn llama3_scaling_keeps_high_frequencies_and_divides_low_ones() {
        let config = serde_json::json!({"rope_theta": 500000.0, "rope_scaling": {"rope_type": "llama3",
            "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192}});
        let scaled = Rope::from_config(&config, 128, 131072).unwrap().inv_freq;
        let plain = Rope::from_config(&serde_json::json!({"rope_theta": 500000.0}), 128, 131072)
            .unwrap()
            .inv_freq;
        assert_eq!(scaled[0], plain[0]);
        assert!((scaled[63] - plain[63] / 8.0).abs() < 1e-12);
    }
}
