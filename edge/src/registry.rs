//! The models mounted into the component: every directory under the models root that holds an ONNX file next to
//! config.json and tokenizer.json, served under its directory name. Directories without an ONNX file are not
//! edge models (requests for them are forwarded to the native server). Which file of a directory is served is
//! decided by [`OnnxFileOrder`].
//!
//! Scanning only lists directories; a model is loaded (tokenizer parsed, graph optimized, one warm-up run) the
//! first time it is asked for, so a request pays only for its own model. `load_all` loads every model, for
//! `/health`, `/v1/models` and the pre-initialized snapshot.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use classify_protocol::cross_encoder;
use classify_protocol::engine::warm_up;
use classify_protocol::model::file_names;
use classify_protocol::{Engine, ModelFiles, ServedModel};

use crate::onnx::OnnxClassifier;

/// Where an ONNX file may sit in a model directory, in the order they are tried: the hub's layout of optimum
/// exports first (fp32, then its int8 copy), then a file at the top of the directory.
pub const DEFAULT_ONNX_FILES: [&str; 3] =
    ["onnx/model.onnx", "onnx/model_quantized.onnx", "model.onnx"];

/// The ONNX file paths tried in each model directory, first match served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnnxFileOrder(Vec<String>);

impl Default for OnnxFileOrder {
    fn default() -> OnnxFileOrder {
        OnnxFileOrder(DEFAULT_ONNX_FILES.map(str::to_owned).to_vec())
    }
}

impl OnnxFileOrder {
    /// A comma-separated list of paths relative to a model directory (the `CLASSIFY_ONNX_FILES` setting), e.g.
    /// `onnx/model_quantized.onnx,model.onnx` to prefer the int8 file.
    pub fn parse(list: &str) -> Result<OnnxFileOrder, String> {
        let files: Vec<String> = list
            .split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(str::to_owned)
            .collect();
        if files.is_empty() {
            return Err(format!("CLASSIFY_ONNX_FILES `{list}` names no file"));
        }
        for file in &files {
            if !crate::onnx_file::stays_inside(Path::new(file)) {
                return Err(format!(
                    "CLASSIFY_ONNX_FILES: `{file}` is not a path inside a model directory"
                ));
            }
        }
        Ok(OnnxFileOrder(files))
    }

    fn first_in(&self, dir: &Path) -> Option<PathBuf> {
        self.0.iter().map(|f| dir.join(f)).find(|p| p.is_file())
    }
}

/// The files of a model directory whose change makes a snapshot of it stale.
const MODEL_FILES: [&str; 8] = [
    file_names::CONFIG,
    file_names::TOKENIZER,
    file_names::TOKENIZER_CONFIG,
    file_names::CHAT_TEMPLATE,
    file_names::MODERATION,
    file_names::RERANKER,
    cross_encoder::MODULES,
    cross_encoder::SETTINGS,
];

pub struct EdgeModels {
    models: Vec<EdgeModel>,
    /// Directories without an ONNX file.
    pub skipped: Vec<String>,
    /// Why the models root could not be listed.
    root_error: Option<String>,
    fingerprint: Fingerprint,
}

/// One mounted model, loaded on first use.
pub struct EdgeModel {
    pub name: String,
    dir: PathBuf,
    onnx: PathBuf,
    loaded: OnceLock<Result<LoadedModel, String>>,
}

pub struct LoadedModel {
    pub served: ServedModel,
    pub engine: OnnxClassifier,
}

/// What is mounted, cheap to read: every model file's path and size, and config.json's bytes. Two equal
/// fingerprints mean the snapshot taken from one serves the other.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fingerprint(Vec<(PathBuf, u64, Option<Vec<u8>>)>);

impl EdgeModels {
    /// No models, and `/health` says why.
    pub fn unusable(reason: String) -> EdgeModels {
        EdgeModels {
            models: Vec::new(),
            skipped: Vec::new(),
            root_error: Some(reason),
            fingerprint: Fingerprint::default(),
        }
    }

    /// Lists the model directories under `root`, each with the first ONNX file of `order` it holds; loads nothing.
    pub fn scan(root: &Path, order: &OnnxFileOrder) -> EdgeModels {
        let mut models = EdgeModels {
            models: Vec::new(),
            skipped: Vec::new(),
            root_error: None,
            fingerprint: Fingerprint::default(),
        };
        let mut dirs: Vec<PathBuf> = match std::fs::read_dir(root) {
            Ok(entries) => entries
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect(),
            Err(e) => {
                models.root_error = Some(format!("{}: {e}", root.display()));
                return models;
            }
        };
        dirs.sort();
        for dir in dirs {
            let Some(name) = dir.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
                continue;
            };
            let Some(onnx) = order.first_in(&dir) else {
                models.skipped.push(name);
                continue;
            };
            models.fingerprint.add(&dir, &onnx);
            models.models.push(EdgeModel {
                name,
                dir,
                onnx,
                loaded: OnceLock::new(),
            });
        }
        models
    }

    pub fn fingerprint(&self) -> &Fingerprint {
        &self.fingerprint
    }

    /// The model served as `name`, with its index for [`EdgeModels::get`].
    pub fn find(&self, name: &str) -> Option<(usize, &EdgeModel)> {
        self.models.iter().enumerate().find(|(_, m)| m.name == name)
    }

    pub fn get(&self, index: usize) -> Option<&EdgeModel> {
        self.models.get(index)
    }

    /// Loads every model (once) and returns one message per model that cannot serve.
    pub fn load_all(&self) -> Vec<String> {
        let mut failures: Vec<String> = self.root_error.iter().cloned().collect();
        for model in &self.models {
            if let Err(e) = model.load() {
                failures.push(e.to_owned());
            }
        }
        failures
    }

    /// Every model that loads, loading those not loaded yet.
    pub fn loaded(&self) -> impl Iterator<Item = &LoadedModel> {
        self.models.iter().filter_map(|m| m.load().ok())
    }
}

impl EdgeModel {
    /// The loaded model, loading it on the first call; the error names the model, the file and the reason.
    pub fn load(&self) -> Result<&LoadedModel, &str> {
        self.loaded
            .get_or_init(|| {
                load_model(&self.name, &self.dir, &self.onnx)
                    .map_err(|e| format!("model `{}`: {e}", self.name))
            })
            .as_ref()
            .map_err(String::as_str)
    }
}

impl Fingerprint {
    /// Fingerprints the model directories under `root` the way [`EdgeModels::scan`] sees them.
    pub fn read(root: &Path, order: &OnnxFileOrder) -> Fingerprint {
        EdgeModels::scan(root, order).fingerprint
    }

    fn add(&mut self, dir: &Path, onnx: &Path) {
        let external_data = onnx.with_extension("onnx.data");
        let files = MODEL_FILES
            .iter()
            .map(|f| dir.join(f))
            .chain([onnx.to_path_buf(), external_data]);
        for path in files {
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            let contents = path
                .ends_with(file_names::CONFIG)
                .then(|| std::fs::read(&path).ok())
                .flatten();
            self.0.push((path, meta.len(), contents));
        }
    }
}

fn load_model(name: &str, dir: &Path, onnx: &Path) -> Result<LoadedModel, String> {
    let files = ModelFiles::read(dir)?;
    let engine = OnnxClassifier::load(onnx, &files.config)
        .map_err(|e| format!("{}: {e}", onnx.display()))?;
    let served = ServedModel::new(name.to_owned(), files, engine.shape())
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    warm_up(&engine, served.max_model_len).map_err(|e| format!("{}: {e}", onnx.display()))?;
    Ok(LoadedModel { served, engine })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_order_takes_relative_paths_only() {
        let order =
            OnnxFileOrder::parse(" onnx/model_quantized.onnx , model.onnx,").expect("valid");
        assert_eq!(order.0, ["onnx/model_quantized.onnx", "model.onnx"]);
        for bad in [
            "",
            " , ",
            "../model.onnx",
            "/models/x/model.onnx",
            "onnx/../../x.onnx",
        ] {
            assert!(OnnxFileOrder::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_first_file_of_the_order_is_served() {
        let dir = std::env::temp_dir().join(format!("classify-order-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("onnx")).expect("temp dir");
        for file in ["model.onnx", "onnx/model_quantized.onnx"] {
            std::fs::write(dir.join(file), b"").expect("write");
        }
        let default = OnnxFileOrder::default().first_in(&dir);
        let quantized_last = OnnxFileOrder::parse("model.onnx,onnx/model_quantized.onnx")
            .expect("valid")
            .first_in(&dir);
        let missing = OnnxFileOrder::parse("onnx/model.onnx")
            .expect("valid")
            .first_in(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(default, Some(dir.join("onnx/model_quantized.onnx")));
        assert_eq!(quantized_last, Some(dir.join("model.onnx")));
        assert_eq!(missing, None);
    }
}
