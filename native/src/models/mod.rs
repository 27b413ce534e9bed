//! Sequence classifiers, one file per architecture, chosen by `architectures[0]` in config.json.

mod bert;
mod decoder;
mod gemma2;
mod heads;
mod internlm2;
mod llama;
mod ops;
mod qwen2;
mod qwen3;
mod rope;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use candle_nn::VarBuilder;
use classify_protocol::{ModelFiles, ModelShape, ServedModel};

use crate::device::Placement;
use decoder::DecoderClassifier;
use heads::HeadKind;

/// A model's forward pass over a batch of token-id sequences (any lengths; the model pads).
pub trait SequenceClassifier: Send {
    /// Raw logits, one row per sequence, in f32.
    fn forward(&self, batch: &[&[u32]]) -> candle_core::Result<Vec<Vec<f32>>>;
}

/// The architectures this server runs, by their `architectures[0]` name.
pub const SUPPORTED_ARCHITECTURES: &[&str] = &[
    "BertForSequenceClassification",
    "LlamaForSequenceClassification",
    "Qwen2ForSequenceClassification",
    "Qwen3ForSequenceClassification",
    "Gemma2ForSequenceClassification",
    "Qwen2ForRewardModel",
    "LlamaForSequenceClassificationWithNormal_Weights",
    "InternLM2ForRewardModel",
];

pub struct LoadedModel {
    pub served: ServedModel,
    pub classifier: Box<dyn SequenceClassifier>,
}

/// Loads a Hugging Face model directory. Errors name the directory and the file or tensor at fault.
pub fn load(name: &str, dir: &Path, placement: &Placement) -> anyhow::Result<LoadedModel> {
    let mut files = ModelFiles::read(dir).map_err(anyhow::Error::msg)?;
    let architecture = files.config.architecture().unwrap_or_default().to_owned();
    let config_json = std::mem::take(&mut files.config_json);
    let weights = weight_files(dir)?;
    // SAFETY: the weight files are memory-mapped read-only; like every safetensors loader we rely on nobody
    // truncating them while the server runs.
    let vb = unsafe {
        VarBuilder::from_mmaped_safetensors(&weights, placement.dtype, &placement.device)
    }
    .with_context(|| format!("{}: cannot read the safetensors weights", dir.display()))?;
    let weight_names = weights
        .iter()
        .filter_map(|p| p.file_name()?.to_str())
        .collect::<Vec<_>>()
        .join(", ");
    let cannot_load = || {
        format!(
            "{}: cannot load {architecture} from {weight_names}",
            dir.display()
        )
    };
    let (classifier, shape): (Box<dyn SequenceClassifier>, ModelShape) = match architecture.as_str()
    {
        "BertForSequenceClassification" => {
            let model = bert::BertClassifier::load(&config_json, &files.config, vb)
                .with_context(cannot_load)?;
            let shape = model.shape();
            (Box::new(model), shape)
        }
        arch @ ("LlamaForSequenceClassification"
        | "Qwen2ForSequenceClassification"
        | "Qwen3ForSequenceClassification"
        | "Gemma2ForSequenceClassification"
        | "Qwen2ForRewardModel"
        | "LlamaForSequenceClassificationWithNormal_Weights") => {
            let (spec, head) = match arch {
                "LlamaForSequenceClassification" => (llama::spec(&config_json), HeadKind::Score),
                "Qwen2ForSequenceClassification" => (qwen2::spec(&config_json), HeadKind::Score),
                "Qwen3ForSequenceClassification" => (qwen3::spec(&config_json), HeadKind::Score),
                "Gemma2ForSequenceClassification" => (gemma2::spec(&config_json), HeadKind::Score),
                "Qwen2ForRewardModel" => (qwen2::spec(&config_json), HeadKind::Qwen2Reward),
                _ => {
                    // The head's num_labels/id2label describe its internal pairs; it answers one reward.
                    files.config.id2label = None;
                    files.config.num_labels = Some(1);
                    (llama::spec(&config_json), HeadKind::NormalWeights)
                }
            };
            let spec = spec.with_context(|| format!("{}: config.json", dir.display()))?;
            let pad = decoder::pad_token_id(&spec.config);
            let model = DecoderClassifier::load(spec, head, pad, vb).with_context(cannot_load)?;
            let shape = model.shape();
            (Box::new(model), shape)
        }
        "InternLM2ForRewardModel" => {
            // One reward from `v_head`; a num_labels/id2label left in config.json describes no head.
            files.config.id2label = None;
            files.config.num_labels = Some(1);
            let spec = internlm2::spec(&config_json)
                .with_context(|| format!("{}: config.json", dir.display()))?;
            let tensors =
                internlm2::llama_tensors(&weights, &spec.config).with_context(cannot_load)?;
            let vb = VarBuilder::from_tensors(tensors, placement.dtype, &placement.device);
            let pad = decoder::pad_token_id(&spec.config);
            let model = DecoderClassifier::load(spec, HeadKind::Score, pad, vb)
                .with_context(cannot_load)?;
            let shape = model.shape();
            (Box::new(model), shape)
        }
        "" => bail!("{}: config.json has no `architectures`", dir.display()),
        other => bail!(
            "{}: unsupported architecture `{other}`; supported: {}",
            dir.display(),
            SUPPORTED_ARCHITECTURES.join(", ")
        ),
    };
    let served = ServedModel::new(name.to_owned(), files, shape)
        .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    Ok(LoadedModel { served, classifier })
}

/// `model.safetensors`, or every shard named by `model.safetensors.index.json`.
fn weight_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let single = dir.join("model.safetensors");
    if single.exists() {
        return Ok(vec![single]);
    }
    let index = dir.join("model.safetensors.index.json");
    if !index.exists() {
        bail!(
            "{}: neither model.safetensors nor model.safetensors.index.json exists",
            dir.display()
        );
    }
    let text = std::fs::read(&index).with_context(|| index.display().to_string())?;
    let json: serde_json::Value = serde_json::from_slice(&text)
        .with_context(|| format!("{}: not valid JSON", index.display()))?;
    let Some(map) = json.get("weight_map").and_then(|m| m.as_object()) else {
        bail!("{}: no `weight_map` object", index.display());
    };
    let shards: BTreeSet<&str> = map.values().filter_map(|v| v.as_str()).collect();
    let mut files = Vec::with_capacity(shards.len());
    for shard in shards {
        let path = dir.join(shard);
        // A shard name is data from the file: it must stay inside the model directory.
        if Path::new(shard).components().count() != 1 || !path.exists() {
            bail!(
                "{}: shard `{shard}` is missing or not a plain file name",
                index.display()
            );
        }
        files.push(path);
    }
    Ok(files)
}
