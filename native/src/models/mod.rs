//! The registry of architectures: every model file's loader by its `architectures[0]` name in config.json, and
//! loading a model directory into an [`Engine`] (one file per architecture; what loaders read is in `checkpoint.rs`).

mod bert;
mod checkpoint;
mod deberta_v2;
mod decoder;
mod distilbert;
mod electra;
mod encoder;
mod gemma2;
mod heads;
mod internlm2;
mod llama;
mod modernbert;
mod modular_head;
mod ops;
mod packed;
mod padded;
mod qwen2;
mod qwen3;
mod roberta;
mod rope;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use candle_nn::VarBuilder;
use classify_protocol::OutputKind::{Sequence, Token};
use classify_protocol::model::file_names;
use classify_protocol::{Engine, ModelFiles, ServedModel};

use crate::device::Placement;
use checkpoint::Checkpoint;

type Loader = fn(Checkpoint) -> anyhow::Result<Box<dyn Engine>>;

/// Every architecture this server runs: its `architectures[0]` name and its loader. The startup error's list of
/// supported names comes from here.
pub const ARCHITECTURES: &[(&str, Loader)] = &[
    ("BertForSequenceClassification", |c| bert::load(c, Sequence)),
    ("DistilBertForSequenceClassification", |c| {
        distilbert::load(c, Sequence)
    }),
    ("RobertaForSequenceClassification", |c| {
        roberta::load(c, Sequence)
    }),
    ("XLMRobertaForSequenceClassification", |c| {
        roberta::load(c, Sequence)
    }),
    ("ElectraForSequenceClassification", |c| {
        electra::load(c, Sequence)
    }),
    ("DebertaV2ForSequenceClassification", |c| {
        deberta_v2::load(c, Sequence)
    }),
    ("ModernBertForSequenceClassification", |c| {
        modernbert::load(c, Sequence)
    }),
    ("LlamaForSequenceClassification", llama::load),
    ("Qwen2ForSequenceClassification", qwen2::load),
    ("Qwen3ForSequenceClassification", qwen3::load),
    ("Gemma2ForSequenceClassification", gemma2::load),
    ("Qwen2ForCausalLM", qwen2::load_yes_no),
    ("Qwen3ForCausalLM", qwen3::load_yes_no),
    ("Qwen2ForRewardModel", qwen2::load_reward),
    (
        "LlamaForSequenceClassificationWithNormal_Weights",
        llama::load_normal_weights,
    ),
    ("InternLM2ForRewardModel", internlm2::load),
    ("BertModel", bert::load_cross_encoder),
    ("ModernBertModel", modernbert::load_cross_encoder),
    ("BertForTokenClassification", |c| bert::load(c, Token)),
    ("DistilBertForTokenClassification", |c| {
        distilbert::load(c, Token)
    }),
    ("RobertaForTokenClassification", |c| roberta::load(c, Token)),
    ("XLMRobertaForTokenClassification", |c| {
        roberta::load(c, Token)
    }),
    ("ElectraForTokenClassification", |c| electra::load(c, Token)),
    ("DebertaV2ForTokenClassification", |c| {
        deberta_v2::load(c, Token)
    }),
    ("ModernBertForTokenClassification", |c| {
        modernbert::load(c, Token)
    }),
];

/// The names of [`ARCHITECTURES`].
pub fn supported_architectures() -> impl Iterator<Item = &'static str> {
    ARCHITECTURES.iter().map(|(name, _)| *name)
}

pub struct LoadedModel {
    pub served: ServedModel,
    pub engine: Box<dyn Engine>,
}

/// Loads a Hugging Face model directory. Errors name the directory and the file or tensor at fault.
pub fn load(name: &str, dir: &Path, placement: &Placement) -> anyhow::Result<LoadedModel> {
    let mut files = ModelFiles::read(dir).map_err(anyhow::Error::msg)?;
    let architecture = files.config.architecture().unwrap_or_default().to_owned();
    if architecture.is_empty() {
        bail!("{}: config.json has no `architectures`", dir.display());
    }
    let Some((_, loader)) = ARCHITECTURES.iter().find(|(name, _)| *name == architecture) else {
        bail!(
            "{}: unsupported architecture `{architecture}`; supported: {}",
            dir.display(),
            supported_architectures().collect::<Vec<_>>().join(", ")
        );
    };
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
    let engine = loader(Checkpoint {
        config_json: &config_json,
        config: &mut files.config,
        weights: &weights,
        vb,
        placement,
        yes_no: files.prompt.as_ref().map(|prompt| prompt.tokens),
        cross_encoder: files.cross_encoder.as_ref(),
    })
    .with_context(|| {
        format!(
            "{}: cannot load {architecture} from {weight_names}",
            dir.display()
        )
    })?;
    let served = ServedModel::new(name.to_owned(), files, engine.shape())
        .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    classify_protocol::engine::warm_up(engine.as_ref(), served.max_model_len)
        .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    Ok(LoadedModel { served, engine })
}

/// `model.safetensors`, or every shard named by `model.safetensors.index.json`.
fn weight_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let single = dir.join(file_names::SAFETENSORS);
    if single.exists() {
        return Ok(vec![single]);
    }
    let index = dir.join(file_names::SAFETENSORS_INDEX);
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
