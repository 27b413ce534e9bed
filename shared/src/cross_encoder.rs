//! Sentence-Transformers cross-encoders saved as modules (sentence-transformers ≥ 5.4: the Ettin rerankers and
//! others): config.json describes the bare backbone (`ModernBertModel`, `BertModel`), `modules.json` lists the
//! backbone at the root, then a Pooling module and the head's Dense and LayerNorm modules, each in its folder;
//! `config_sentence_transformers.json` says it is a `CrossEncoder` and names the score's activation.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::activation::Activation;

pub const MODULES: &str = "modules.json";
pub const SETTINGS: &str = "config_sentence_transformers.json";
/// What each weighted module folder holds.
pub const MODULE_WEIGHTS: &str = "model.safetensors";

/// How the backbone's token states become one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// The first token's state (`cls`).
    FirstToken,
    /// The mean of the real tokens' states (`mean`).
    Mean,
}

/// The activation a Dense module applies to its output (`activation_function`, a torch class name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenseActivation {
    Identity,
    Tanh,
    /// torch's `nn.GELU()`: the exact (erf) form.
    Gelu,
    Relu,
    Sigmoid,
}

impl DenseActivation {
    fn from_torch_name(name: &str) -> Result<DenseActivation, String> {
        match name.rsplit('.').next() {
            Some("Identity") => Ok(DenseActivation::Identity),
            Some("Tanh") => Ok(DenseActivation::Tanh),
            Some("GELU") => Ok(DenseActivation::Gelu),
            Some("ReLU") => Ok(DenseActivation::Relu),
            Some("Sigmoid") => Ok(DenseActivation::Sigmoid),
            _ => Err(format!(
                "the activation `{name}` is not supported (Identity, Tanh, GELU, ReLU, Sigmoid)"
            )),
        }
    }
}

/// One module of the head, after pooling; weights in the folder's `model.safetensors`.
#[derive(Debug, Clone, PartialEq)]
pub enum HeadModule {
    /// `linear.weight` `[out, in]` (and `linear.bias`), then the activation.
    Dense {
        weights: PathBuf,
        in_features: usize,
        out_features: usize,
        bias: bool,
        activation: DenseActivation,
    },
    /// `norm.weight`, `norm.bias`: torch's `nn.LayerNorm(dimension)` (eps 1e-5).
    LayerNorm { weights: PathBuf, dimension: usize },
}

/// A modular cross-encoder's head: pooling, then the modules in order; its score is the last Dense's output.
#[derive(Debug, Clone, PartialEq)]
pub struct CrossEncoderHead {
    pub pooling: Pooling,
    pub modules: Vec<HeadModule>,
    /// `activation_fn` of config_sentence_transformers.json, which `CrossEncoder.predict` applies.
    pub activation: Option<Activation>,
}

#[derive(Deserialize)]
struct ModuleEntry {
    path: String,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct Settings {
    model_type: Option<String>,
    activation_fn: Option<String>,
}

#[derive(Deserialize)]
struct PoolingConfig {
    pooling_mode: Option<PoolingModes>,
    /// The layout before sentence-transformers 5.4.
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum PoolingModes {
    One(String),
    Several(Vec<String>),
}

#[derive(Deserialize)]
struct DenseConfig {
    in_features: usize,
    out_features: usize,
    #[serde(default = "yes")]
    bias: bool,
    activation_function: Option<String>,
    #[serde(default)]
    use_residual: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
struct LayerNormConfig {
    dimension: usize,
}

impl CrossEncoderHead {
    /// The head of the model in `dir` when it is a Sentence-Transformers cross-encoder saved as modules (a
    /// `CrossEncoder` in config_sentence_transformers.json, with modules.json); `None` for any other model
    /// (including Sentence-Transformers embedding models). Errors name the file.
    pub fn read(dir: &Path) -> Result<Option<CrossEncoderHead>, String> {
        let read =
            |path: PathBuf| std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()));
        let parse = |path: PathBuf| -> Result<serde_json::Value, String> {
            serde_json::from_slice(&read(path.clone())?)
                .map_err(|e| format!("{}: {e}", path.display()))
        };
        let (settings_path, modules_path) = (dir.join(SETTINGS), dir.join(MODULES));
        if !settings_path.is_file() || !modules_path.is_file() {
            return Ok(None);
        }
        let settings: Settings = serde_json::from_value(parse(settings_path.clone())?)
            .map_err(|e| in_file(&settings_path)(e.to_string()))?;
        if settings.model_type.as_deref() != Some("CrossEncoder") {
            return Ok(None);
        }
        let activation = settings
            .activation_fn
            .map(|name| Activation::from_torch_name(&name))
            .transpose()
            .map_err(in_file(&settings_path))?;
        let entries: Vec<ModuleEntry> = serde_json::from_value(parse(modules_path.clone())?)
            .map_err(|e| in_file(&modules_path)(e.to_string()))?;
        let kind = |entry: &ModuleEntry| entry.kind.rsplit('.').next().unwrap_or("").to_owned();
        let mut entries = entries.iter();
        match entries.next() {
            Some(first) if kind(first) == "Transformer" && first.path.is_empty() => {}
            _ => {
                return Err(in_file(&modules_path)(
                    "the first module must be the Transformer saved at the root (path \"\")"
                        .to_owned(),
                ));
            }
        }
        let folder = |entry: &ModuleEntry| -> Result<PathBuf, String> {
            // A module path is data from the file: it must stay inside the model directory.
            match Path::new(&entry.path).components().count() == 1 {
                true => Ok(dir.join(&entry.path)),
                false => Err(in_file(&modules_path)(format!(
                    "module path `{}` is not a folder name",
                    entry.path
                ))),
            }
        };
        let pooling = match entries.next() {
            Some(entry) if kind(entry) == "Pooling" => {
                let config_path = folder(entry)?.join("config.json");
                let config: PoolingConfig = serde_json::from_value(parse(config_path.clone())?)
                    .map_err(|e| in_file(&config_path)(e.to_string()))?;
                pooling_of(&config).map_err(in_file(&config_path))?
            }
            _ => {
                return Err(in_file(&modules_path)(
                    "a Pooling module must follow the Transformer".to_owned(),
                ));
            }
        };
        let mut modules = Vec::new();
        for entry in entries {
            let dir = folder(entry)?;
            let config_path = dir.join("config.json");
            let weights = dir.join(MODULE_WEIGHTS);
            match kind(entry).as_str() {
                "Dense" => {
                    let config: DenseConfig = serde_json::from_value(parse(config_path.clone())?)
                        .map_err(|e| in_file(&config_path)(e.to_string()))?;
                    if config.use_residual {
                        return Err(in_file(&config_path)(
                            "use_residual is not supported".to_owned(),
                        ));
                    }
                    let activation = match &config.activation_function {
                        Some(name) => {
                            DenseActivation::from_torch_name(name).map_err(in_file(&config_path))?
                        }
                        // The class's default.
                        None => DenseActivation::Tanh,
                    };
                    modules.push(HeadModule::Dense {
                        weights,
                        in_features: config.in_features,
                        out_features: config.out_features,
                        bias: config.bias,
                        activation,
                    });
                }
                "LayerNorm" => {
                    let config: LayerNormConfig =
                        serde_json::from_value(parse(config_path.clone())?)
                            .map_err(|e| in_file(&config_path)(e.to_string()))?;
                    modules.push(HeadModule::LayerNorm {
                        weights,
                        dimension: config.dimension,
                    });
                }
                // Dropout is the identity at inference.
                "Dropout" => {}
                other => {
                    return Err(in_file(&modules_path)(format!(
                        "module `{other}` is not supported in a cross-encoder head (Pooling, Dense, LayerNorm, \
                         Dropout)"
                    )));
                }
            }
        }
        let head = CrossEncoderHead {
            pooling,
            modules,
            activation,
        };
        head.num_scores().ok_or_else(|| {
            in_file(&modules_path)("the head has no Dense module to give the score".to_owned())
        })?;
        Ok(Some(head))
    }

    /// How many scores the head gives: the last Dense's `out_features`.
    pub fn num_scores(&self) -> Option<usize> {
        self.modules.iter().rev().find_map(|module| match module {
            HeadModule::Dense { out_features, .. } => Some(*out_features),
            HeadModule::LayerNorm { .. } => None,
        })
    }
}

/// An error message prefixed with the file it is about.
fn in_file(path: &Path) -> impl Fn(String) -> String + '_ {
    move |e| format!("{}: {e}", path.display())
}

fn pooling_of(config: &PoolingConfig) -> Result<Pooling, String> {
    let mode = match &config.pooling_mode {
        Some(PoolingModes::One(mode)) => mode.as_str(),
        Some(PoolingModes::Several(modes)) if modes.len() == 1 => modes[0].as_str(),
        Some(PoolingModes::Several(modes)) => {
            return Err(format!(
                "pooling modes {modes:?} together are not supported (one of cls, mean)"
            ));
        }
        None if config.pooling_mode_cls_token => "cls",
        None if config.pooling_mode_mean_tokens => "mean",
        None => "",
    };
    match mode {
        "cls" => Ok(Pooling::FirstToken),
        "mean" => Ok(Pooling::Mean),
        other => Err(format!(
            "pooling mode `{other}` is not supported (cls, mean)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, files: &[(&str, &str)]) {
        for (name, text) in files {
            let path = dir.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
    }

    const ETTIN_MODULES: &str = r#"[
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.base.modules.transformer.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.sentence_transformer.modules.pooling.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.base.modules.dense.Dense"},
        {"idx": 3, "name": "3", "path": "3_LayerNorm", "type": "sentence_transformers.sentence_transformer.modules.layer_norm.LayerNorm"},
        {"idx": 4, "name": "4", "path": "4_Dense", "type": "sentence_transformers.base.modules.dense.Dense"}]"#;

    fn ettin(dir: &Path, model_type: &str) {
        write(
            dir,
            &[
                (MODULES, ETTIN_MODULES),
                (
                    SETTINGS,
                    &format!(
                        r#"{{"model_type": "{model_type}", "activation_fn": "torch.nn.modules.linear.Identity"}}"#
                    ),
                ),
                (
                    "1_Pooling/config.json",
                    r#"{"embedding_dimension": 8, "pooling_mode": "cls", "include_prompt": true}"#,
                ),
                (
                    "2_Dense/config.json",
                    r#"{"in_features": 8, "out_features": 8, "bias": false,
                        "activation_function": "torch.nn.modules.activation.GELU"}"#,
                ),
                ("3_LayerNorm/config.json", r#"{"dimension": 8}"#),
                (
                    "4_Dense/config.json",
                    r#"{"in_features": 8, "out_features": 1, "bias": true,
                        "activation_function": "torch.nn.modules.linear.Identity", "module_output_name": "scores"}"#,
                ),
            ],
        );
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("classify-ce-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn an_ettin_head_is_read_module_by_module() {
        let dir = temp_dir("ettin");
        ettin(&dir, "CrossEncoder");
        let head = CrossEncoderHead::read(&dir).unwrap().unwrap();
        assert_eq!(head.pooling, Pooling::FirstToken);
        assert_eq!(head.activation, Some(Activation::Identity));
        assert_eq!(head.num_scores(), Some(1));
        assert_eq!(
            head.modules[0],
            HeadModule::Dense {
                weights: dir.join("2_Dense/model.safetensors"),
                in_features: 8,
                out_features: 8,
                bias: false,
                activation: DenseActivation::Gelu
            }
        );
        assert!(matches!(
            head.modules[1],
            HeadModule::LayerNorm { dimension: 8, .. }
        ));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn embedding_models_and_plain_checkpoints_have_no_head() {
        let dir = temp_dir("embedding");
        ettin(&dir, "SentenceTransformer");
        assert_eq!(CrossEncoderHead::read(&dir), Ok(None));
        std::fs::remove_file(dir.join(SETTINGS)).unwrap();
        assert_eq!(CrossEncoderHead::read(&dir), Ok(None));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn unsupported_heads_are_refused_by_file() {
        let dir = temp_dir("refused");
        ettin(&dir, "CrossEncoder");
        write(
            &dir,
            &[(
                "1_Pooling/config.json",
                r#"{"embedding_dimension": 8, "pooling_mode": "lasttoken"}"#,
            )],
        );
        let err = CrossEncoderHead::read(&dir).unwrap_err();
        assert!(
            err.contains("1_Pooling") && err.contains("lasttoken"),
            "{err}"
        );
        ettin(&dir, "CrossEncoder");
        write(
            &dir,
            &[(
                MODULES,
                &ETTIN_MODULES.replace("layer_norm.LayerNorm", "normalize.Normalize"),
            )],
        );
        let err = CrossEncoderHead::read(&dir).unwrap_err();
        assert!(err.contains("Normalize"), "{err}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
