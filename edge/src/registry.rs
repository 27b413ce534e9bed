//! The models mounted into the component: every directory under the models root that holds an ONNX file next to
//! config.json and tokenizer.json, served under its directory name. Directories without an ONNX file are not
//! edge models (requests for them are forwarded to the native server). Which file of a directory is served is
//! decided by [`OnnxFileOrder`].
//!
//! Scanning only lists directories; a model is loaded (tokenizer parsed, graph optimized, one warm-up run) the
//! first time it is asked for, so a request pays only for its own model. `load_all` loads every model, for
//! `/health`, `/v1/models` and the pre-initialized snapshot.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};
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

    fn first_in(&self, dir: &Path, listing: &Listing) -> Option<PathBuf> {
        self.0
            .iter()
            .filter(|f| listing.may_hold(Path::new(f)))
            .map(|f| dir.join(f))
            .find(|p| p.is_file())
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
}

/// One mounted model, loaded on first use.
pub struct EdgeModel {
    pub name: String,
    dir: PathBuf,
    origin: Origin,
    loaded: OnceLock<Result<Loaded, String>>,
}

enum Origin {
    /// The ONNX file the scan found.
    File(PathBuf),
    /// The model of this name loaded ahead of time (the pre-initialized snapshot's): served if the files mounted
    /// for it are the ones it was loaded from, which is checked on first use; otherwise the mounted files load.
    Preloaded {
        model: &'static EdgeModel,
        fingerprint: &'static Fingerprint,
        order: OnnxFileOrder,
    },
}

enum Loaded {
    Here(Box<LoadedModel>),
    Preloaded(&'static LoadedModel),
}

pub struct LoadedModel {
    pub served: ServedModel,
    pub engine: OnnxClassifier,
}

/// Models loaded ahead of time (by the pre-initialized snapshot), each with the fingerprint of its files.
pub struct Preloaded {
    models: EdgeModels,
    order: OnnxFileOrder,
    fingerprints: Vec<Fingerprint>,
}

/// What a model was loaded from, cheap to read: each of its files' path and size, and config.json's bytes. Equal
/// fingerprints mean the model loaded from one serves the other.
#[derive(Clone, PartialEq, Eq)]
struct Fingerprint(Vec<(PathBuf, u64, Option<Vec<u8>>)>);

impl EdgeModels {
    /// No models, and `/health` says why.
    pub fn unusable(reason: String) -> EdgeModels {
        EdgeModels {
            models: Vec::new(),
            skipped: Vec::new(),
            root_error: Some(reason),
        }
    }

    /// Lists the model directories under `root`, each with the first ONNX file of `order` it holds; loads nothing.
    pub fn scan(root: &Path, order: &OnnxFileOrder) -> EdgeModels {
        let dirs = match model_dirs(root) {
            Ok(dirs) => dirs,
            Err(e) => return EdgeModels::unusable(format!("{}: {e}", root.display())),
        };
        let mut models = EdgeModels {
            models: Vec::new(),
            skipped: Vec::new(),
            root_error: None,
        };
        for (name, dir) in dirs {
            let Some(onnx) = order.first_in(&dir, &Listing::of(&dir)) else {
                models.skipped.push(name);
                continue;
            };
            models.models.push(EdgeModel {
                name,
                dir,
                origin: Origin::File(onnx),
                loaded: OnceLock::new(),
            });
        }
        models
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

    /// Every directory name under the root, with or without an ONNX file, in order.
    fn names(&self) -> impl Iterator<Item = &str> {
        let mut names: Vec<&str> = self.models.iter().map(|m| m.name.as_str()).collect();
        names.extend(self.skipped.iter().map(String::as_str));
        names.sort_unstable();
        names.into_iter()
    }
}

impl Preloaded {
    /// Scans `root` and loads every model there; failures are kept with their model.
    pub fn load(root: &Path, order: &OnnxFileOrder) -> Preloaded {
        let models = EdgeModels::scan(root, order);
        let fingerprints = models
            .models
            .iter()
            .map(|model| match &model.origin {
                Origin::File(onnx) => Fingerprint::read(&model.dir, onnx, &Listing::of(&model.dir)),
                Origin::Preloaded { fingerprint, .. } => (*fingerprint).clone(),
            })
            .collect();
        let _failures = models.load_all();
        Preloaded {
            models,
            order: order.clone(),
            fingerprints,
        }
    }

    /// The models an instance serves, kept for its life, when what is mounted now is under `root` and chosen by
    /// `order`. Nothing mounted (no `root`): these models. The same model directories: these models, each served
    /// once its files are found to be the ones it was loaded from, and loaded from the mounted files otherwise,
    /// so that a fresh instance reads only the metadata of the models it is asked for. Other directories: a scan
    /// of what is mounted.
    pub fn serve(&'static self, root: &Path, order: &OnnxFileOrder) -> &'static EdgeModels {
        Box::leak(Box::new(match model_dirs(root) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return &self.models,
            Err(e) => EdgeModels::unusable(format!("{}: {e}", root.display())),
            Ok(dirs) => self.over(root, dirs, order),
        }))
    }

    fn over(
        &'static self,
        root: &Path,
        dirs: Vec<(String, PathBuf)>,
        order: &OnnxFileOrder,
    ) -> EdgeModels {
        let same_dirs = *order == self.order
            && dirs
                .iter()
                .map(|(name, _)| name.as_str())
                .eq(self.models.names())
            && self.models.skipped.iter().all(|name| {
                let dir = root.join(name);
                order.first_in(&dir, &Listing::of(&dir)).is_none()
            });
        if !same_dirs {
            eprintln!(
                "classify-edge: the directories under {} differ from the pre-initialized snapshot's; loading them at run time",
                root.display()
            );
            return EdgeModels::scan(root, order);
        }
        let models = self
            .models
            .models
            .iter()
            .zip(&self.fingerprints)
            .map(|(model, fingerprint)| EdgeModel {
                name: model.name.clone(),
                dir: root.join(&model.name),
                origin: Origin::Preloaded {
                    model,
                    fingerprint,
                    order: order.clone(),
                },
                loaded: OnceLock::new(),
            })
            .collect();
        EdgeModels {
            models,
            skipped: self.models.skipped.clone(),
            root_error: None,
        }
    }
}

impl EdgeModel {
    /// The loaded model, loading it on the first call; the error names the model, the file and the reason.
    pub fn load(&self) -> Result<&LoadedModel, &str> {
        self.loaded
            .get_or_init(|| self.load_now())
            .as_ref()
            .map(|loaded| match loaded {
                Loaded::Here(model) => model,
                Loaded::Preloaded(model) => *model,
            })
            .map_err(String::as_str)
    }

    fn load_now(&self) -> Result<Loaded, String> {
        let onnx = match &self.origin {
            Origin::File(onnx) => onnx.clone(),
            Origin::Preloaded {
                model,
                fingerprint,
                order,
            } => {
                let listing = Listing::of(&self.dir);
                let Some(onnx) = order.first_in(&self.dir, &listing) else {
                    return Err(format!(
                        "model `{}`: {} no longer holds an ONNX file",
                        self.name,
                        self.dir.display()
                    ));
                };
                if Fingerprint::read(&self.dir, &onnx, &listing) == **fingerprint {
                    return model.load().map(Loaded::Preloaded).map_err(str::to_owned);
                }
                eprintln!(
                    "classify-edge: the files of model `{}` differ from the pre-initialized snapshot's; loading them",
                    self.name
                );
                onnx
            }
        };
        load_model(&self.name, &self.dir, &onnx)
            .map(|model| Loaded::Here(Box::new(model)))
            .map_err(|e| format!("model `{}`: {e}", self.name))
    }
}

impl Fingerprint {
    /// Fingerprints a model directory that serves `onnx`.
    fn read(dir: &Path, onnx: &Path, listing: &Listing) -> Fingerprint {
        let external_data = onnx.with_extension("onnx.data");
        let files = MODEL_FILES
            .iter()
            .map(|f| dir.join(f))
            .chain([onnx.to_path_buf(), external_data])
            .filter(|path| listing.may_hold(path.strip_prefix(dir).unwrap_or(path)));
        let mut fingerprint = Vec::new();
        for path in files {
            if path.ends_with(file_names::CONFIG) {
                if let Ok(bytes) = std::fs::read(&path) {
                    fingerprint.push((path, bytes.len() as u64, Some(bytes)));
                }
            } else if let Ok(meta) = std::fs::metadata(&path) {
                fingerprint.push((path, meta.len(), None));
            }
        }
        Fingerprint(fingerprint)
    }
}

/// The names at the top of a directory, listed once: under a WASI host each file lookup is a call that costs
/// about as much as listing the directory, and most of the files a model may have are not there.
struct Listing(Option<HashSet<OsString>>);

impl Listing {
    fn of(dir: &Path) -> Listing {
        Listing(
            std::fs::read_dir(dir)
                .ok()
                .map(|entries| entries.filter_map(|e| Some(e.ok()?.file_name())).collect()),
        )
    }

    /// Whether `relative` may exist: its first component is listed, or the directory could not be listed.
    fn may_hold(&self, relative: &Path) -> bool {
        match (&self.0, relative.components().next()) {
            (Some(names), Some(Component::Normal(first))) => names.contains(first),
            _ => true,
        }
    }
}

/// The directories under `root` by name (UTF-8 names only), in order.
fn model_dirs(root: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(root)? {
        let Ok(entry) = entry else { continue };
        let path = entry.path();
        // The entry's type comes with the listing; only a link needs a lookup.
        let is_dir = match entry.file_type() {
            Ok(kind) if kind.is_symlink() => path.is_dir(),
            Ok(kind) => kind.is_dir(),
            Err(_) => path.is_dir(),
        };
        if let (true, Some(name)) = (is_dir, entry.file_name().to_str()) {
            dirs.push((name.to_owned(), path));
        }
    }
    dirs.sort();
    Ok(dirs)
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

    /// bert-3label's serving files, copied to `root/name`.
    fn copy_fixture(root: &Path, name: &str) {
        let fixture =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models/bert-3label");
        std::fs::create_dir_all(root.join(name)).expect("temp dir");
        for file in [
            "config.json",
            "tokenizer.json",
            "tokenizer_config.json",
            "model.onnx",
        ] {
            std::fs::copy(fixture.join(file), root.join(name).join(file)).expect("copy");
        }
    }

    fn loaded<'a>(models: &'a EdgeModels, name: &str) -> &'a LoadedModel {
        let (_, model) = models
            .find(name)
            .unwrap_or_else(|| panic!("no model {name}"));
        model.load().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_preloaded_model_serves_while_its_files_are_the_ones_it_was_loaded_from() {
        let root = std::env::temp_dir().join(format!("classify-preloaded-{}", std::process::id()));
        let order = OnnxFileOrder::default();
        copy_fixture(&root, "a");
        copy_fixture(&root, "b");
        let preloaded: &'static Preloaded = Box::leak(Box::new(Preloaded::load(&root, &order)));
        let (snapshot_a, snapshot_b) = (
            loaded(&preloaded.models, "a"),
            loaded(&preloaded.models, "b"),
        );

        let unchanged = preloaded.serve(&root, &order);
        let same_a = std::ptr::eq(loaded(unchanged, "a"), snapshot_a);

        let config = root.join("a/config.json");
        let text = std::fs::read_to_string(&config).expect("config");
        std::fs::write(&config, text.replace("\"negative\"", "\"NEGATIVE\"")).expect("write");
        let edited = preloaded.serve(&root, &order);
        let (edited_a, edited_b) = (loaded(edited, "a"), loaded(edited, "b"));

        let other_order = OnnxFileOrder::parse("model.onnx").expect("valid");
        let reordered = preloaded
            .serve(&root, &other_order)
            .find("b")
            .map(|(_, m)| &m.origin);
        copy_fixture(&root, "c");
        let more = preloaded.serve(&root, &order);
        let more_a = loaded(more, "a").served.labels.clone();
        let more_c = more.find("c").is_some();
        let nothing_mounted = preloaded.serve(&root.join("missing"), &order);
        let _ = std::fs::remove_dir_all(&root);

        assert!(same_a, "the same files serve the preloaded model");
        assert!(
            !std::ptr::eq(edited_a, snapshot_a),
            "an edited model loads from its files"
        );
        assert_eq!(edited_a.served.labels, ["NEGATIVE", "neutral", "positive"]);
        assert!(
            std::ptr::eq(edited_b, snapshot_b),
            "its neighbour is still the preloaded one"
        );
        assert!(
            matches!(reordered, Some(Origin::File(_))),
            "another order scans"
        );
        assert!(more_c, "another directory is served");
        assert_eq!(more_a, ["NEGATIVE", "neutral", "positive"]);
        assert!(std::ptr::eq(nothing_mounted, &preloaded.models));
    }

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
        let listing = Listing::of(&dir);
        let default = OnnxFileOrder::default().first_in(&dir, &listing);
        let quantized_last = OnnxFileOrder::parse("model.onnx,onnx/model_quantized.onnx")
            .expect("valid")
            .first_in(&dir, &listing);
        let missing = OnnxFileOrder::parse("onnx/model.onnx")
            .expect("valid")
            .first_in(&dir, &listing);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(default, Some(dir.join("onnx/model_quantized.onnx")));
        assert_eq!(quantized_last, Some(dir.join("model.onnx")));
        assert_eq!(missing, None);
    }
}
