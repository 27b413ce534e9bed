//! Command-line flags; every flag can also come from a `CLASSIFY_*` environment variable.

use std::path::PathBuf;
use std::str::FromStr;

use clap::Parser;
use classify_protocol::HandlerConfig;
use classify_protocol::server::CONNECTION_DEFAULTS;

use crate::bundled;
use crate::device::{DTypeChoice, DeviceChoice};
use crate::hub::HubModel;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "classify-native",
    version,
    about = "Text-classification server with the /v1/classify API"
)]
pub struct Args {
    /// A model to serve, as [NAME=]PATH (a model directory) or [NAME=]org/name[@revision] (a Hugging Face Hub id,
    /// from the local cache or downloaded into it); repeat for several. NAME defaults to the directory name or the
    /// Hub id. A directory that exists wins over a Hub id of the same spelling.
    /// Without any, the bundled spam/ham classifier (`spam-bert`, embedded in the binary) is served.
    #[arg(long = "model", env = "CLASSIFY_MODEL", value_delimiter = ',')]
    pub models: Vec<ModelSpec>,
    /// Address to listen on.
    #[arg(long, env = "CLASSIFY_HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "CLASSIFY_PORT", default_value_t = 8000)]
    pub port: u16,
    /// Where models run: auto (CUDA when this binary has it and a GPU is present, else CPU), cpu, cuda, cuda:N.
    #[arg(long, env = "CLASSIFY_DEVICE", default_value = "auto")]
    pub device: DeviceChoice,
    /// Weights and activations dtype: auto (bf16 on GPUs that have it, else f16; f32 on the CPU), f32, f16, bf16.
    /// Heads and softmax always run in f32.
    #[arg(long, env = "CLASSIFY_DTYPE", default_value = "auto")]
    pub dtype: DTypeChoice,
    /// Most padded tokens (sequences × longest sequence) in one forward pass.
    #[arg(long, env = "CLASSIFY_MAX_BATCH_TOKENS", default_value_t = 16384)]
    pub max_batch_tokens: usize,
    /// Most requests merged into one batch; 1 disables cross-request batching.
    #[arg(long, env = "CLASSIFY_MAX_BATCH_REQUESTS", default_value_t = 64)]
    pub max_batch_requests: usize,
    /// Under load, the most milliseconds a batch waits for more requests after a forward pass (it starts
    /// earlier when full or when requests stop coming); a request that finds the model idle starts at once. 0
    /// turns it off.
    #[arg(long, env = "CLASSIFY_MAX_BATCH_DELAY_MS", default_value_t = 4)]
    pub max_batch_delay_ms: u64,
    /// Classify and tokenize requests admitted at once (from reading their body to the answer); more get 429 at
    /// once, before their body is read.
    #[arg(long, env = "CLASSIFY_MAX_CONCURRENT_REQUESTS", default_value_t = 512)]
    pub max_concurrent_requests: usize,
    /// Most inputs in one classify request.
    #[arg(long, env = "CLASSIFY_MAX_INPUT_PER_REQUEST", default_value_t = HandlerConfig::default().max_inputs_per_request)]
    pub max_input_per_request: usize,
    /// Largest request body in bytes; larger bodies get 413.
    #[arg(long, env = "CLASSIFY_MAX_BODY_BYTES", default_value_t = HandlerConfig::default().max_body_bytes)]
    pub max_body_bytes: usize,
    /// Seconds a client may take to send a request's headers (from connecting, or from the previous answer on a
    /// kept-alive connection, so this is also the keep-alive idle timeout); slower connections are closed.
    #[arg(long, env = "CLASSIFY_HEADER_READ_TIMEOUT", default_value_t = CONNECTION_DEFAULTS.header_read_timeout.as_secs())]
    pub header_read_timeout: u64,
    /// Seconds a request body may stall (nothing arriving) before the request gets 408.
    #[arg(long, env = "CLASSIFY_BODY_READ_TIMEOUT", default_value_t = CONNECTION_DEFAULTS.body_read_timeout.as_secs())]
    pub body_read_timeout: u64,
    /// Open connections at most; a connection past it is answered 503 and closed at once.
    #[arg(long, env = "CLASSIFY_MAX_CONNECTIONS", default_value_t = CONNECTION_DEFAULTS.max_connections)]
    pub max_connections: usize,
    /// Connections the kernel queues before they are accepted (bursts beyond it are reset; the kernel caps it at
    /// net.core.somaxconn).
    #[arg(long, env = "CLASSIFY_LISTEN_BACKLOG", default_value_t = CONNECTION_DEFAULTS.listen_backlog)]
    pub listen_backlog: u32,
    /// Threads that parse and tokenize requests, off the async workers (0: one per CPU core).
    #[arg(long, env = "CLASSIFY_TOKENIZER_THREADS", default_value_t = 0)]
    pub tokenizer_threads: usize,
    /// Require `Authorization: Bearer <KEY>` on every route but /health and /metrics.
    #[arg(long, env = "CLASSIFY_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
}

/// `--model [NAME=]PATH` or `[NAME=]org/name[@revision]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    pub name: String,
    pub source: ModelSource,
}

impl Args {
    /// The models to serve: those given, else the bundled one.
    pub fn model_specs(&self) -> Vec<ModelSpec> {
        if self.models.is_empty() {
            return vec![ModelSpec {
                name: bundled::NAME.to_owned(),
                source: ModelSource::Bundled,
            }];
        }
        self.models.clone()
    }
}

/// Where a model's files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// The spam/ham classifier embedded in the binary.
    Bundled,
    Dir(PathBuf),
    /// A Hugging Face Hub repository, from the local cache or downloaded into it.
    Hub(HubModel),
}

impl ModelSource {
    /// The model directory, downloading a Hub model that is not cached.
    pub fn dir(&self) -> anyhow::Result<PathBuf> {
        match self {
            ModelSource::Bundled => bundled::dir(),
            ModelSource::Dir(dir) => Ok(dir.clone()),
            ModelSource::Hub(model) => model.resolve().map_err(|e| {
                e.context(format!(
                    "`{model}` is not a directory here, so it was looked up as a Hugging Face Hub id"
                ))
            }),
        }
    }
}

impl FromStr for ModelSpec {
    type Err = String;

    /// A directory that exists wins over a Hub id of the same spelling; the served name defaults to the
    /// directory's name or the Hub id.
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let (name, location) = match value.split_once('=') {
            Some((name, location)) => (Some(name.to_owned()), location),
            None => (None, value),
        };
        if location.is_empty() || name.as_deref() == Some("") {
            return Err(format!(
                "`{value}` is not [NAME=]PATH or [NAME=]org/name[@revision]"
            ));
        }
        let path = PathBuf::from(location);
        let (source, default_name) = match HubModel::parse(location) {
            Some(model) if !path.exists() => {
                let name = model.repo.clone();
                (ModelSource::Hub(model), Some(name))
            }
            _ => {
                let name = path
                    .canonicalize()
                    .unwrap_or_else(|_| path.clone())
                    .file_name()
                    .and_then(|n| n.to_str())
                    .map(str::to_owned);
                (ModelSource::Dir(path), name)
            }
        };
        let name = name
            .or(default_name)
            .ok_or_else(|| format!("cannot take a model name from `{value}`; use NAME=PATH"))?;
        Ok(ModelSpec { name, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_spec_forms() {
        let named: ModelSpec = "sst=/models/x".parse().unwrap();
        assert_eq!(named.name, "sst");
        assert_eq!(named.source, ModelSource::Dir("/models/x".into()));
        let bare: ModelSpec = "/models/my-model/".parse().unwrap();
        assert_eq!(bare.name, "my-model");
        assert!("=/x".parse::<ModelSpec>().is_err());
        assert!("name=".parse::<ModelSpec>().is_err());
        let hub: ModelSpec = "jason9693/Qwen2.5-1.5B-apeach".parse().unwrap();
        assert_eq!(hub.name, "jason9693/Qwen2.5-1.5B-apeach");
        assert!(matches!(hub.source, ModelSource::Hub(ref m) if m.revision == "main"));
        let pinned: ModelSpec = "apeach=org/name@v2".parse().unwrap();
        assert_eq!(pinned.name, "apeach");
        assert!(matches!(pinned.source, ModelSource::Hub(ref m) if m.revision == "v2"));
        // A directory that exists wins over the Hub id it also spells.
        let here: ModelSpec = concat!(env!("CARGO_MANIFEST_DIR"), "/src").parse().unwrap();
        assert!(matches!(here.source, ModelSource::Dir(_)));
        let relative: ModelSpec = "../tests".parse().unwrap();
        assert!(matches!(relative.source, ModelSource::Dir(_)));
    }

    #[test]
    fn defaults_serve_the_bundled_model() {
        let args = Args::try_parse_from(["classify-native"]).unwrap();
        let specs = args.model_specs();
        assert_eq!(specs.len(), 1);
        assert_eq!(
            (specs[0].name.as_str(), &specs[0].source),
            ("spam-bert", &ModelSource::Bundled)
        );
        assert_eq!((args.host.as_str(), args.port), ("127.0.0.1", 8000));
        assert_eq!(
            (args.max_input_per_request, args.max_body_bytes),
            (256, 2 * 1024 * 1024)
        );
    }
}
