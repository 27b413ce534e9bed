//! Models by Hugging Face Hub id: `org/name[@revision]` resolved in the cache layout the Python tools write
//! (`HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`), and, when not cached and the hub may be
//! used (`HF_HUB_OFFLINE` unset), downloaded with the `hf-hub` crate (`HF_ENDPOINT`, `HF_TOKEN`): only the files a
//! model needs.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use classify_protocol::cross_encoder;
use classify_protocol::model::file_names;
use hf_hub::api::Progress;
use hf_hub::api::sync::{ApiBuilder, ApiError, ApiRepo};
use hf_hub::{Cache, CacheRepo, Repo, RepoType};

/// The hub's default endpoint, as the Python client's.
const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Files a model needs besides its weights; the optional ones are fetched when the repository has them.
const REQUIRED_FILES: &[&str] = &[file_names::CONFIG, file_names::TOKENIZER];
const OPTIONAL_FILES: &[&str] = &[
    file_names::TOKENIZER_CONFIG,
    file_names::CHAT_TEMPLATE,
    file_names::MODERATION,
    file_names::RERANKER,
    cross_encoder::MODULES,
    cross_encoder::SETTINGS,
];

/// A Sentence-Transformers module folder's file the server reads (`2_Dense/config.json`,
/// `2_Dense/model.safetensors`): sentence-transformers names the folders `{index}_{Module}`.
fn is_module_file(path: &str) -> bool {
    let Some((folder, file)) = path.split_once('/') else {
        return false;
    };
    let numbered = folder
        .split_once('_')
        .is_some_and(|(index, _)| !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()));
    numbered && matches!(file, "config.json" | cross_encoder::MODULE_WEIGHTS)
}
const SINGLE_WEIGHTS: &str = file_names::SAFETENSORS;
const WEIGHTS_INDEX: &str = file_names::SAFETENSORS_INDEX;

/// A model repository on the hub at a revision (a branch, a tag or a commit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubModel {
    pub repo: String,
    pub revision: String,
}

impl HubModel {
    /// `org/name` or `org/name@revision` (revision `main` when not given); `None` when `value` is not of that
    /// form.
    pub fn parse(value: &str) -> Option<HubModel> {
        let (repo, revision) = match value.split_once('@') {
            Some((repo, revision)) => (repo, revision),
            None => (value, "main"),
        };
        let (org, name) = repo.split_once('/')?;
        let valid = |part: &str| {
            !part.is_empty()
                && !part.starts_with('.')
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        let revision_ok = !revision.is_empty() && !revision.contains("..");
        (valid(org) && valid(name) && revision_ok).then(|| HubModel {
            repo: repo.to_owned(),
            revision: revision.to_owned(),
        })
    }

    /// The model directory: a complete snapshot in the cache, else one downloaded into it.
    pub fn resolve(&self) -> anyhow::Result<PathBuf> {
        let cache = cache_dir()?;
        if let Some(snapshot) = self.cached_snapshot(&cache) {
            return Ok(snapshot);
        }
        if offline() {
            bail!(
                "{self}: not in the Hugging Face cache at {} and HF_HUB_OFFLINE is set; download it first (or \
                 unset HF_HUB_OFFLINE)",
                cache.display()
            );
        }
        let downloaded = self.download(&cache);
        if downloaded.is_err() {
            remove_partial_downloads(&self.repo_dir(&cache));
        }
        downloaded
    }

    fn hf_repo(&self) -> Repo {
        Repo::with_revision(self.repo.clone(), RepoType::Model, self.revision.clone())
    }

    fn repo_dir(&self, cache: &Path) -> PathBuf {
        cache.join(format!("models--{}", self.repo.replace('/', "--")))
    }

    /// `snapshots/<commit>/` of the revision (`refs/<revision>` names the commit; a revision may be the commit
    /// itself), when it holds every file the model needs.
    fn cached_snapshot(&self, cache: &Path) -> Option<PathBuf> {
        let repo = self.repo_dir(cache);
        let commit = match std::fs::read_to_string(repo.join("refs").join(&self.revision)) {
            Ok(commit) => commit.trim().to_owned(),
            Err(_) => self.revision.clone(),
        };
        let snapshot = repo.join("snapshots").join(commit);
        complete(&snapshot).then_some(snapshot)
    }

    fn download(&self, cache: &Path) -> anyhow::Result<PathBuf> {
        let endpoint = std::env::var("HF_ENDPOINT").unwrap_or_else(|_| DEFAULT_ENDPOINT.to_owned());
        let endpoint = endpoint.trim_end_matches('/').to_owned();
        let hub_cache = Cache::new(cache.to_path_buf());
        let token = std::env::var("HF_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
            .or_else(|| hub_cache.token());
        let cached = hub_cache.repo(self.hf_repo());
        let api = ApiBuilder::from_cache(hub_cache)
            .with_endpoint(endpoint.clone())
            .with_token(token)
            .with_progress(false)
            .build()
            .with_context(|| format!("{self}: cannot set up the hub client"))?;
        let repo = api.repo(self.hf_repo());
        let info = repo
            .info()
            .map_err(|e| self.hub_error(e, &endpoint, "list its files"))?;
        let listed: Vec<&str> = info.siblings.iter().map(|s| s.rfilename.as_str()).collect();
        let mut files = self.needed_files(&listed)?;
        tracing::info!(model = %self, commit = %info.sha, files = files.len(), "downloading from {endpoint}");
        if files.iter().any(|f| f == WEIGHTS_INDEX) {
            let index = self.fetch(&repo, &cached, WEIGHTS_INDEX, &endpoint)?;
            files.extend(shards(&index)?);
        }
        for file in &files {
            self.fetch(&repo, &cached, file, &endpoint)?;
        }
        let snapshot = self.repo_dir(cache).join("snapshots").join(&info.sha);
        if !complete(&snapshot) {
            bail!(
                "{self}: downloaded, but {} lacks files the model needs",
                snapshot.display()
            );
        }
        Ok(snapshot)
    }

    /// What to download from the repository's file list: config, tokenizer files, the safetensors weights (one
    /// file, or the index whose shards follow), and a Sentence-Transformers cross-encoder's modules.
    fn needed_files(&self, listed: &[&str]) -> anyhow::Result<Vec<String>> {
        let has = |file: &str| listed.contains(&file);
        let weights = if has(SINGLE_WEIGHTS) {
            SINGLE_WEIGHTS
        } else if has(WEIGHTS_INDEX) {
            WEIGHTS_INDEX
        } else {
            let mut shown: Vec<&str> = listed.to_vec();
            shown.truncate(20);
            bail!(
                "{self}: the repository has no safetensors weights ({SINGLE_WEIGHTS} or {WEIGHTS_INDEX}); its files: \
                 {}{}",
                shown.join(", "),
                if listed.len() > shown.len() {
                    ", …"
                } else {
                    ""
                }
            );
        };
        if let Some(missing) = REQUIRED_FILES.iter().find(|f| !has(f)) {
            bail!("{self}: the repository has no {missing}");
        }
        let mut files: Vec<String> = REQUIRED_FILES.iter().map(|f| (*f).to_owned()).collect();
        files.extend(
            OPTIONAL_FILES
                .iter()
                .filter(|f| has(f))
                .map(|f| (*f).to_owned()),
        );
        files.extend(
            listed
                .iter()
                .filter(|f| is_module_file(f))
                .map(|f| (*f).to_owned()),
        );
        if weights == SINGLE_WEIGHTS {
            files.push(weights.to_owned());
        } else {
            files.insert(0, weights.to_owned());
        }
        Ok(files)
    }

    /// One file into the cache (kept when already there), with a progress bar on a terminal and progress lines in
    /// the log otherwise.
    fn fetch(
        &self,
        repo: &ApiRepo,
        cached: &CacheRepo,
        file: &str,
        endpoint: &str,
    ) -> anyhow::Result<PathBuf> {
        if let Some(path) = cached.get(file) {
            return Ok(path);
        }
        let what = format!("download {file}");
        let path = if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(0).with_message(file.to_owned());
            repo.download_with_progress(file, bar)
        } else {
            repo.download_with_progress(file, LoggedProgress::new(self.to_string()))
        };
        path.map_err(|e| self.hub_error(e, endpoint, &what))
    }

    /// A hub error said in the user's terms: not found, gated, unreachable.
    fn hub_error(&self, error: ApiError, endpoint: &str, doing: &str) -> anyhow::Error {
        let status = match &error {
            ApiError::RequestError(request) => match request.as_ref() {
                ureq::Error::Status(code, _) => Some(*code),
                ureq::Error::Transport(transport) => {
                    return anyhow::anyhow!(
                        "{self}: cannot reach the hub at {endpoint} to {doing}: {transport} (set HF_HUB_OFFLINE=1 to \
                         use only the local cache)"
                    );
                }
            },
            _ => None,
        };
        match status {
            Some(404) => anyhow::anyhow!(
                "{self}: not found on {endpoint} (no such repository or revision, or the file is missing) while \
                 trying to {doing}"
            ),
            Some(code @ (401 | 403)) => anyhow::anyhow!(
                "{self}: access refused ({code}): the repository is gated or private; accept its terms on the hub \
                 and set HF_TOKEN to a token with access"
            ),
            _ => anyhow::anyhow!("{self}: cannot {doing}: {error}"),
        }
    }
}

impl std::fmt::Display for HubModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.revision == "main" {
            write!(f, "{}", self.repo)
        } else {
            write!(f, "{}@{}", self.repo, self.revision)
        }
    }
}

/// The hub cache directory: `HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`.
pub fn cache_dir() -> anyhow::Result<PathBuf> {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = var("HF_HUB_CACHE") {
        return Ok(dir);
    }
    if let Some(home) = var("HF_HOME") {
        return Ok(home.join("hub"));
    }
    match var("HOME") {
        Some(home) => Ok(home.join(".cache").join("huggingface").join("hub")),
        None => bail!("cannot find the Hugging Face cache: set HF_HUB_CACHE or HF_HOME"),
    }
}

/// `HF_HUB_OFFLINE` as the Python client reads it: 1, true, yes or on.
fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )
    })
}

/// Whether `dir` holds config, tokenizer and every weights file (each shard of an index).
fn complete(dir: &Path) -> bool {
    if !REQUIRED_FILES.iter().all(|f| dir.join(f).is_file()) {
        return false;
    }
    if dir.join(SINGLE_WEIGHTS).is_file() {
        return true;
    }
    let Ok(index) = std::fs::read(dir.join(WEIGHTS_INDEX)) else {
        return false;
    };
    match shards_of(&index) {
        Ok(shards) => shards.iter().all(|s| dir.join(s).is_file()),
        Err(_) => false,
    }
}

fn shards(index: &Path) -> anyhow::Result<Vec<String>> {
    let bytes = std::fs::read(index).with_context(|| index.display().to_string())?;
    shards_of(&bytes).with_context(|| index.display().to_string())
}

/// The distinct shard files of a safetensors index, in first-use order; names that leave the directory are
/// refused.
fn shards_of(index: &[u8]) -> anyhow::Result<Vec<String>> {
    let json: serde_json::Value = serde_json::from_slice(index).context("not valid JSON")?;
    let map = json["weight_map"]
        .as_object()
        .context("no `weight_map` object")?;
    let mut shards: Vec<String> = Vec::new();
    for file in map.values() {
        let file = file
            .as_str()
            .context("a `weight_map` value is not a file name")?;
        if file.contains('/') || file.contains('\\') || file.starts_with('.') {
            bail!("the shard name `{file}` is not a file in the repository's root");
        }
        if !shards.iter().any(|s| s == file) {
            shards.push(file.to_owned());
        }
    }
    Ok(shards)
}

/// Removes the `.part` files an interrupted download left in the repository's blobs, so that the cache holds no
/// half-written file.
fn remove_partial_downloads(repo_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(repo_dir.join("blobs")) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "part")
            && let Err(e) = std::fs::remove_file(&path)
        {
            tracing::warn!(file = %path.display(), "cannot remove a partial download: {e}");
        }
    }
}

/// Download progress as log lines: at the start, every quarter, and at the end of each file.
struct LoggedProgress {
    model: String,
    file: String,
    total: usize,
    done: usize,
    next_quarter: usize,
}

impl LoggedProgress {
    fn new(model: String) -> LoggedProgress {
        LoggedProgress {
            model,
            file: String::new(),
            total: 0,
            done: 0,
            next_quarter: 1,
        }
    }
}

impl Progress for LoggedProgress {
    fn init(&mut self, size: usize, filename: &str) {
        // hf-hub calls init again when it resumes; log the file once.
        if self.file != filename {
            tracing::info!(model = %self.model, file = filename, bytes = size, "downloading");
        }
        self.file = filename.to_owned();
        self.total = size;
        self.done = 0;
    }

    fn update(&mut self, size: usize) {
        self.done += size;
        while self.next_quarter < 4
            && self.total > 0
            && self.done * 4 >= self.total * self.next_quarter
        {
            tracing::info!(
                model = %self.model,
                file = %self.file,
                percent = self.next_quarter * 25,
                "downloading"
            );
            self.next_quarter += 1;
        }
    }

    fn finish(&mut self) {
        tracing::info!(model = %self.model, file = %self.file, bytes = self.total, "downloaded");
        self.next_quarter = 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_ids_and_revisions() {
        let model = HubModel::parse("org/name").unwrap();
        assert_eq!(
            (model.repo.as_str(), model.revision.as_str()),
            ("org/name", "main")
        );
        let pinned = HubModel::parse("Org-1/na.me_2@v1.0").unwrap();
        assert_eq!(
            (pinned.repo.as_str(), pinned.revision.as_str()),
            ("Org-1/na.me_2", "v1.0")
        );
        assert_eq!(pinned.to_string(), "Org-1/na.me_2@v1.0");
        for not_an_id in [
            "name",
            "./org/name",
            "/models/x",
            "org/",
            "/name",
            "a/b/c",
            "org/name@",
            "../x",
            "org/.x",
            "o/n@../x",
        ] {
            assert_eq!(HubModel::parse(not_an_id), None, "{not_an_id}");
        }
    }

    #[test]
    fn needed_files_follow_the_listing() {
        let model = HubModel::parse("o/n").unwrap();
        let files = model
            .needed_files(&[
                "README.md",
                "config.json",
                "tokenizer.json",
                "model.safetensors",
                "pytorch_model.bin",
            ])
            .unwrap();
        assert_eq!(
            files,
            ["config.json", "tokenizer.json", "model.safetensors"]
        );
        let files = model
            .needed_files(&[
                "config.json",
                "tokenizer.json",
                "tokenizer_config.json",
                "model.safetensors.index.json",
            ])
            .unwrap();
        assert_eq!(
            files,
            [
                "model.safetensors.index.json",
                "config.json",
                "tokenizer.json",
                "tokenizer_config.json"
            ]
        );
        // An Ettin-style cross-encoder: its modules, not the README or the ONNX copy.
        let files = model
            .needed_files(&[
                "config.json",
                "tokenizer.json",
                "model.safetensors",
                "modules.json",
                "config_sentence_transformers.json",
                "1_Pooling/config.json",
                "2_Dense/config.json",
                "2_Dense/model.safetensors",
                "onnx/model.onnx",
                "x_Dense/config.json",
                "README.md",
            ])
            .unwrap();
        assert_eq!(
            files,
            [
                "config.json",
                "tokenizer.json",
                "modules.json",
                "config_sentence_transformers.json",
                "1_Pooling/config.json",
                "2_Dense/config.json",
                "2_Dense/model.safetensors",
                "model.safetensors"
            ]
        );
        let error = model
            .needed_files(&["config.json", "tokenizer.json", "pytorch_model.bin"])
            .unwrap_err();
        assert!(
            error.to_string().contains("no safetensors")
                && error.to_string().contains("pytorch_model.bin"),
            "{error}"
        );
        let error = model
            .needed_files(&["config.json", "model.safetensors"])
            .unwrap_err();
        assert!(error.to_string().contains("tokenizer.json"), "{error}");
    }

    #[test]
    fn shard_names_stay_in_the_repository() {
        let index = br#"{"weight_map": {"a": "model-1.safetensors", "b": "model-2.safetensors", "c": "model-1.safetensors"}}"#;
        assert_eq!(
            shards_of(index).unwrap(),
            ["model-1.safetensors", "model-2.safetensors"]
        );
        assert!(shards_of(br#"{"weight_map": {"a": "../x.safetensors"}}"#).is_err());
        assert!(shards_of(br#"{}"#).is_err());
    }
}
