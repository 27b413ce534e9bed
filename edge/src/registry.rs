//! The models mounted into the component: every directory under the models root that holds model.onnx (or
//! onnx/model.onnx) next to config.json and tokenizer.json, served under its directory name. Directories without
//! an ONNX file are not edge models (requests for them are forwarded to the native server).

use std::path::{Path, PathBuf};

use classify_protocol::{ModelFiles, ModelShape, ServedModel};

use crate::onnx::OnnxClassifier;

#[derive(Default)]
pub struct EdgeModels {
    pub served: Vec<ServedModel>,
    pub classifiers: Vec<OnnxClassifier>,
    /// One message per model directory that failed to load, naming the file and the reason.
    pub failures: Vec<String>,
    /// Directories without an ONNX file.
    pub skipped: Vec<String>,
}

impl EdgeModels {
    /// Loads every model directory under `root`. One broken model does not stop the others.
    pub fn load(root: &Path) -> EdgeModels {
        let mut models = EdgeModels::default();
        let mut dirs: Vec<PathBuf> = match std::fs::read_dir(root) {
            Ok(entries) => entries
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect(),
            Err(e) => {
                models.failures.push(format!("{}: {e}", root.display()));
                return models;
            }
        };
        dirs.sort();
        for dir in dirs {
            let Some(name) = dir.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
                continue;
            };
            let Some(onnx) = onnx_file(&dir) else {
                models.skipped.push(name);
                continue;
            };
            match load_model(&name, &dir, &onnx) {
                Ok((served, classifier)) => {
                    models.served.push(served);
                    models.classifiers.push(classifier);
                }
                Err(e) => models.failures.push(format!("model `{name}`: {e}")),
            }
        }
        models
    }
}

fn onnx_file(dir: &Path) -> Option<PathBuf> {
    [dir.join("model.onnx"), dir.join("onnx").join("model.onnx")]
        .into_iter()
        .find(|p| p.is_file())
}

fn load_model(
    name: &str,
    dir: &Path,
    onnx: &Path,
) -> Result<(ServedModel, OnnxClassifier), String> {
    let files = ModelFiles::read(dir)?;
    let classifier = OnnxClassifier::load(onnx, files.config.pad_token_id.unwrap_or(0))
        .map_err(|e| format!("{}: {e}", onnx.display()))?;
    let config_path = dir.join("config.json");
    let max_positions = files
        .config
        .max_position_embeddings
        .ok_or_else(|| format!("{}: no max_position_embeddings", config_path.display()))?;
    let vocab_size = files
        .config
        .vocab_size
        .ok_or_else(|| format!("{}: no vocab_size", config_path.display()))?;
    let shape = ModelShape {
        num_classes: classifier.num_classes(),
        max_positions,
        vocab_size,
    };
    let served = ServedModel::new(name.to_owned(), files, shape)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok((served, classifier))
}
