//! Sequence classifiers, one file per architecture, chosen by `architectures[0]` in config.json.

mod bert;
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
mod ops;
mod packed;
mod qwen2;
mod qwen3;
mod roberta;
mod rope;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use candle_nn::VarBuilder;
use classify_protocol::config::ModelConfig;
use classify_protocol::{ModelFiles, ModelShape, ServedModel, TokenSequence};

use crate::device::Placement;

/// A model's forward pass over a batch of token-id sequences (any lengths; the model pads).
pub trait SequenceClassifier: Send {
    /// Raw logits, one row per sequence, in f32.
    fn forward(&self, batch: &[&TokenSequence]) -> candle_core::Result<Vec<Vec<f32>>>;

    /// Classes, usable positions and vocabulary, as read from the weights.
    fn shape(&self) -> ModelShape;
}

/// A batch padded on the right with `pad` to its longest sequence.
pub struct RightPadded {
    /// `[batch × longest]` token ids, row-major.
    pub ids: Vec<u32>,
    /// `[batch × longest]` token type ids (0 on padding and single segments); `None` when every sequence of the
    /// batch is a single segment.
    pub type_ids: Option<Vec<u32>>,
    pub longest: usize,
    lengths: Vec<usize>,
}

impl RightPadded {
    pub fn new(batch: &[&TokenSequence], pad: u32) -> RightPadded {
        let longest = batch.iter().map(|s| s.len()).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(batch.len() * longest);
        for sequence in batch {
            ids.extend_from_slice(&sequence.ids);
            ids.extend(std::iter::repeat_n(pad, longest - sequence.len()));
        }
        let type_ids = batch.iter().any(|s| s.type_ids.is_some()).then(|| {
            let mut type_ids = Vec::with_capacity(batch.len() * longest);
            for sequence in batch {
                match &sequence.type_ids {
                    Some(types) => type_ids.extend_from_slice(types),
                    None => type_ids.extend(std::iter::repeat_n(0, sequence.len())),
                }
                type_ids.extend(std::iter::repeat_n(0, longest - sequence.len()));
            }
            type_ids
        });
        RightPadded {
            ids,
            type_ids,
            longest,
            lengths: batch.iter().map(|s| s.len()).collect(),
        }
    }

    /// `[batch × longest]`: `real` at each input's tokens, `padding` after them.
    pub fn mask<T: Copy>(&self, real: T, padding: T) -> Vec<T> {
        let mut mask = Vec::with_capacity(self.lengths.len() * self.longest);
        for &length in &self.lengths {
            mask.extend(std::iter::repeat_n(real, length));
            mask.extend(std::iter::repeat_n(padding, self.longest - length));
        }
        mask
    }
}

/// What an architecture's loader reads: config.json (parsed for the protocol, and as bytes for the
/// architecture's own config struct) and the weights. A loader may adjust `config`, e.g. a reward head that
/// answers one score whatever labels config.json lists.
pub struct Checkpoint<'a> {
    pub config_json: &'a [u8],
    pub config: &'a mut ModelConfig,
    pub weights: &'a [PathBuf],
    pub vb: VarBuilder<'a>,
    pub placement: &'a Placement,
}

impl Checkpoint<'_> {
    /// config.json as an architecture's config struct.
    pub fn parse_config<T: serde::de::DeserializeOwned>(&self) -> anyhow::Result<T> {
        serde_json::from_slice(self.config_json).context("config.json")
    }
}

type Loader = fn(Checkpoint) -> anyhow::Result<Box<dyn SequenceClassifier>>;

/// Every architecture this server runs: its `architectures[0]` name and its loader. The startup error's list of
/// supported names comes from here.
pub const ARCHITECTURES: &[(&str, Loader)] = &[
    ("BertForSequenceClassification", bert::load),
    ("DistilBertForSequenceClassification", distilbert::load),
    ("RobertaForSequenceClassification", roberta::load),
    ("XLMRobertaForSequenceClassification", roberta::load),
    ("ElectraForSequenceClassification", electra::load),
    ("DebertaV2ForSequenceClassification", deberta_v2::load),
    ("ModernBertForSequenceClassification", modernbert::load),
    ("LlamaForSequenceClassification", llama::load),
    ("Qwen2ForSequenceClassification", qwen2::load),
    ("Qwen3ForSequenceClassification", qwen3::load),
    ("Gemma2ForSequenceClassification", gemma2::load),
    ("Qwen2ForRewardModel", qwen2::load_reward),
    (
        "LlamaForSequenceClassificationWithNormal_Weights",
        llama::load_normal_weights,
    ),
    ("InternLM2ForRewardModel", internlm2::load),
];

/// The names of [`ARCHITECTURES`].
pub fn supported_architectures() -> impl Iterator<Item = &'static str> {
    ARCHITECTURES.iter().map(|(name, _)| *name)
}

pub struct LoadedModel {
    pub served: ServedModel,
    pub classifier: Box<dyn SequenceClassifier>,
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
    let classifier = loader(Checkpoint {
        config_json: &config_json,
        config: &mut files.config,
        weights: &weights,
        vb,
        placement,
    })
    .with_context(|| {
        format!(
            "{}: cannot load {architecture} from {weight_names}",
            dir.display()
        )
    })?;
    let served = ServedModel::new(name.to_owned(), files, classifier.shape())
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
