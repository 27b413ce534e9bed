//! `InternLM2ForRewardModel`: the Llama layout under other tensor names, with q, k and v fused into
//! `attention.wqkv` and interleaved per KV group, and the reward head `v_head` (h → 1, no bias) on the last token.
//! The weights are renamed (and wqkv split) on load, so the shared decoder runs them. `reward_token_id` is
//! appended to inputs by the protocol crate (see `ServedModel::append_reward_token`).

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, ensure};
use candle_core::safetensors::MmapedSafetensors;
use candle_core::{Device, Tensor};
use candle_nn::VarBuilder;
use classify_protocol::Engine;
use serde_json::Value;

use super::checkpoint::Checkpoint;
use super::decoder::{DecoderConfig, DecoderSpec, load_classifier};
use super::heads::HeadKind;

/// One reward from `v_head`; a num_labels/id2label left in config.json describes no head.
pub fn load(checkpoint: Checkpoint) -> anyhow::Result<Box<dyn Engine>> {
    checkpoint.config.id2label = None;
    checkpoint.config.num_labels = Some(1);
    let spec = spec(checkpoint.config_json)?;
    let tensors = llama_tensors(checkpoint.weights, &spec.config)?;
    let placement = checkpoint.placement;
    let vb = VarBuilder::from_tensors(tensors, placement.dtype, &placement.device);
    load_classifier(Checkpoint { vb, ..checkpoint }, Ok(spec), HeadKind::Score)
}

/// The decoder options for this architecture, from config.json (`bias` puts biases on wqkv and wo).
fn spec(config_json: &[u8]) -> anyhow::Result<DecoderSpec> {
    let (spec, raw) = DecoderSpec::llama_layout(config_json)?;
    let bias = raw.get("bias").and_then(Value::as_bool).unwrap_or(false);
    Ok(DecoderSpec {
        q_k_v_bias: bias,
        o_bias: bias,
        ..spec
    })
}

/// Every tensor of the checkpoint (on the CPU, in its stored dtype) under the Llama name the decoder loads.
/// `output.*` (the language-model head) is skipped.
fn llama_tensors(
    weights: &[PathBuf],
    config: &DecoderConfig,
) -> anyhow::Result<HashMap<String, Tensor>> {
    // SAFETY: read-only maps of files nobody truncates while the server loads them.
    let files = unsafe { MmapedSafetensors::multi(weights) }?;
    let mut renamed = HashMap::new();
    for (name, _) in files.tensors() {
        if name.starts_with("output.") {
            continue;
        }
        let tensor = files.load(&name, &Device::Cpu)?;
        if name.contains(".attention.wqkv.") {
            let prefix = name.replace(".attention.wqkv.", ".self_attn.");
            let (q, k, v) =
                split_wqkv(&tensor, config).with_context(|| format!("tensor `{name}`"))?;
            let suffix = if name.ends_with(".bias") {
                "bias"
            } else {
                "weight"
            };
            let base = prefix.trim_end_matches(suffix);
            renamed.insert(format!("{base}q_proj.{suffix}"), q);
            renamed.insert(format!("{base}k_proj.{suffix}"), k);
            renamed.insert(format!("{base}v_proj.{suffix}"), v);
        } else {
            renamed.insert(llama_name(&name), tensor);
        }
    }
    // A missing wqkv would otherwise be reported under the Llama name it is loaded as.
    for layer in 0..config.num_hidden_layers {
        ensure!(
            renamed.contains_key(&format!("model.layers.{layer}.self_attn.q_proj.weight")),
            "missing tensor `model.layers.{layer}.attention.wqkv.weight`"
        );
    }
    Ok(renamed)
}

fn llama_name(name: &str) -> String {
    const RENAMES: &[(&str, &str)] = &[
        ("model.tok_embeddings.", "model.embed_tokens."),
        (".attention_norm.", ".input_layernorm."),
        (".ffn_norm.", ".post_attention_layernorm."),
        (".attention.wo.", ".self_attn.o_proj."),
        (".feed_forward.w1.", ".mlp.gate_proj."),
        (".feed_forward.w3.", ".mlp.up_proj."),
        (".feed_forward.w2.", ".mlp.down_proj."),
        ("v_head.", "score."),
    ];
    let mut name = name.to_owned();
    for (from, to) in RENAMES {
        name = name.replace(from, to);
    }
    name
}

/// wqkv's rows are `(kv_heads, groups + 2, head_dim)`: per KV group its `groups` query heads, its key, its value.
fn split_wqkv(wqkv: &Tensor, config: &DecoderConfig) -> anyhow::Result<(Tensor, Tensor, Tensor)> {
    let (heads, kv_heads, head_dim) = (
        config.num_attention_heads,
        config.num_key_value_heads(),
        config.head_dim(),
    );
    ensure!(
        kv_heads > 0 && heads.is_multiple_of(kv_heads),
        "num_attention_heads {heads} is not a multiple of num_key_value_heads {kv_heads}"
    );
    let groups = heads / kv_heads;
    let rows = (heads + 2 * kv_heads) * head_dim;
    let dims = wqkv.dims();
    let expected_columns = if dims.len() == 2 {
        Some(config.hidden_size)
    } else {
        None
    };
    ensure!(
        dims.first() == Some(&rows) && dims.get(1).copied() == expected_columns,
        "shape {dims:?}, expected [{rows}, {}] (weight) or [{rows}] (bias)",
        config.hidden_size
    );
    let columns = expected_columns.unwrap_or(1);
    let grouped = wqkv.reshape((kv_heads, groups + 2, head_dim, columns))?;
    let part = |start: usize, count: usize| -> candle_core::Result<Tensor> {
        let t = grouped.narrow(1, start, count)?.contiguous()?;
        match expected_columns {
            Some(columns) => t.reshape((kv_heads * count * head_dim, columns)),
            None => t.reshape(kv_heads * count * head_dim),
        }
    };
    Ok((part(0, groups)?, part(groups, 1)?, part(groups + 1, 1)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wqkv_rows_split_per_kv_group() {
        let config: DecoderConfig = serde_json::from_value(serde_json::json!({
            "vocab_size": 8, "hidden_size": 1, "intermediate_size": 2, "num_hidden_layers": 1,
            "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 1, "max_position_embeddings": 8
        }))
        .unwrap();
        // Rows: group 0 = q0 q1 k0 v0, group 1 = q2 q3 k1 v1.
        let wqkv = Tensor::new(
            &[[0f32], [1.], [10.], [20.], [2.], [3.], [11.], [21.]],
            &Device::Cpu,
        )
        .unwrap();
        let (q, k, v) = split_wqkv(&wqkv, &config).unwrap();
        let rows = |t: Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(rows(q), [0., 1., 2., 3.]);
        assert_eq!(rows(k), [10., 11.]);
        assert_eq!(rows(v), [20., 21.]);
        let wrong = Tensor::zeros((7, 1), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert!(
            split_wqkv(&wrong, &config)
                .unwrap_err()
                .to_string()
                .contains("expected [8, 1]")
        );
    }

    #[test]
    fn renames_to_the_llama_layout() {
        assert_eq!(
            llama_name("model.tok_embeddings.weight"),
            "model.embed_tokens.weight"
        );
        assert_eq!(
            llama_name("model.layers.3.feed_forward.w3.weight"),
            "model.layers.3.mlp.up_proj.weight"
        );
        assert_eq!(llama_name("v_head.weight"), "score.weight");
    }
}
