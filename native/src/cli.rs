//! Command-line flags; every flag can also come from a `CLASSIFY_*` environment variable.

use std::path::PathBuf;
use std::str::FromStr;

use clap::Parser;

use crate::device::{DTypeChoice, DeviceChoice};

/// The tiny checkpoint that ships with the repository, served when no `--model` is given.
pub const BUNDLED_MODEL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/models/bert-sentiment"
);

#[derive(Debug, Clone, Parser)]
#[command(
    name = "classify-native",
    version,
    about = "Text-classification server with the /v1/classify API"
)]
pub struct Args {
    /// A model directory to serve, as [NAME=]PATH; repeat for several. NAME defaults to the directory name.
    #[arg(long = "model", env = "CLASSIFY_MODEL", value_delimiter = ',', default_value = BUNDLED_MODEL)]
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
    /// Classify and tokenize requests admitted at once (from reading their body to the answer); more get 429 at
    /// once, before their body is read.
    #[arg(long, env = "CLASSIFY_MAX_CONCURRENT_REQUESTS", default_value_t = 512)]
    pub max_concurrent_requests: usize,
    /// Most inputs in one classify request.
    #[arg(long, env = "CLASSIFY_MAX_INPUT_PER_REQUEST", default_value_t = 256)]
    pub max_input_per_request: usize,
    /// Largest request body in bytes; larger bodies get 413.
    #[arg(long, env = "CLASSIFY_MAX_BODY_BYTES", default_value_t = 2 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Seconds a client may take to send a request's headers (from connecting, or from the previous answer on a
    /// kept-alive connection, so this is also the keep-alive idle timeout); slower connections are closed.
    #[arg(long, env = "CLASSIFY_HEADER_READ_TIMEOUT", default_value_t = 10)]
    pub header_read_timeout: u64,
    /// Seconds a request body may stall (nothing arriving) before the request gets 408.
    #[arg(long, env = "CLASSIFY_BODY_READ_TIMEOUT", default_value_t = 30)]
    pub body_read_timeout: u64,
    /// Open connections at most; a connection past it is answered 503 and closed at once.
    #[arg(long, env = "CLASSIFY_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
    /// Connections the kernel queues before they are accepted (bursts beyond it are reset; the kernel caps it at
    /// net.core.somaxconn).
    #[arg(long, env = "CLASSIFY_LISTEN_BACKLOG", default_value_t = 4096)]
    pub listen_backlog: u32,
    /// Threads that parse and tokenize requests, off the async workers (0: one per CPU core).
    #[arg(long, env = "CLASSIFY_TOKENIZER_THREADS", default_value_t = 0)]
    pub tokenizer_threads: usize,
    /// Require `Authorization: Bearer <KEY>` on every route but /health and /metrics.
    #[arg(long, env = "CLASSIFY_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
}

/// `--model [NAME=]PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    pub name: String,
    pub path: PathBuf,
}

impl FromStr for ModelSpec {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let (name, path) = match value.split_once('=') {
            Some((name, path)) => (name.to_owned(), PathBuf::from(path)),
            None => {
                let path = PathBuf::from(value);
                let name = path
                    .canonicalize()
                    .unwrap_or_else(|_| path.clone())
                    .file_name()
                    .and_then(|n| n.to_str())
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        format!("cannot take a model name from `{value}`; use NAME=PATH")
                    })?;
                (name, path)
            }
        };
        if name.is_empty() || path.as_os_str().is_empty() {
            return Err(format!("`{value}` is not [NAME=]PATH"));
        }
        Ok(ModelSpec { name, path })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_spec_forms() {
        let named: ModelSpec = "sst=/models/x".parse().unwrap();
        assert_eq!(
            (named.name.as_str(), named.path.to_str()),
            ("sst", Some("/models/x"))
        );
        let bare: ModelSpec = "/models/my-model/".parse().unwrap();
        assert_eq!(bare.name, "my-model");
        assert!("=/x".parse::<ModelSpec>().is_err());
        assert!("name=".parse::<ModelSpec>().is_err());
    }

    #[test]
    fn defaults_serve_the_bundled_model() {
        let args = Args::try_parse_from(["classify-native"]).unwrap();
        assert_eq!(args.models.len(), 1);
        assert_eq!(args.models[0].name, "bert-sentiment");
        assert_eq!((args.host.as_str(), args.port), ("127.0.0.1", 8000));
        assert_eq!(
            (args.max_input_per_request, args.max_body_bytes),
            (256, 2 * 1024 * 1024)
        );
    }
}
