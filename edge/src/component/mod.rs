//! The component's HTTP glue around the protocol handler, with the mounted ONNX models as the engine and the
//! native server as the place for every other model. `p3` and `p2` hold what differs between the wasi:http
//! versions: the entry point and sending a request.

use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use classify_protocol::{
    ApiError, Backend, ErrorKind, HandlerConfig, InferenceJob, ServedModel, error_response,
};
use http::{HeaderMap, Request, Response};

use crate::registry::{EdgeModels, OnnxFileOrder};

#[cfg(feature = "wasi-http-p2")]
mod p2;
#[cfg(feature = "wasi-http-p2")]
use p2 as transport;
#[cfg(any(feature = "wasi-http-p3-rc", feature = "wasi-http-p3"))]
mod p3;
#[cfg(any(feature = "wasi-http-p3-rc", feature = "wasi-http-p3"))]
use p3 as transport;

mod snapshot;

/// Where the models are mounted (spin.toml `files`, or edge-host `--models`).
const MODELS_ROOT: &str = "/models";

/// Limits on a forwarded request, well under hosts' own request limits (Spin, edge-host: 120 s), so that a hung
/// native server gives 504 `upstream_timeout` instead of the host's 500.
struct UpstreamTimeouts {
    /// To open the connection (`CLASSIFY_NATIVE_CONNECT_TIMEOUT_MS`, default 2 s).
    connect: Duration,
    /// From sending the request to the first byte of the answer (`CLASSIFY_NATIVE_FIRST_BYTE_TIMEOUT_MS`,
    /// default 30 s).
    first_byte: Duration,
}

impl UpstreamTimeouts {
    fn from_env() -> UpstreamTimeouts {
        let millis = |name: &str, default: u64| {
            let value = std::env::var(name).ok().and_then(|v| v.parse().ok());
            Duration::from_millis(value.unwrap_or(default))
        };
        UpstreamTimeouts {
            connect: millis("CLASSIFY_NATIVE_CONNECT_TIMEOUT_MS", 2_000),
            first_byte: millis("CLASSIFY_NATIVE_FIRST_BYTE_TIMEOUT_MS", 30_000),
        }
    }
}

/// Why sending a request to the native server failed.
enum SendFailure {
    Timeout(String),
    Other(String),
}

struct EdgeBackend {
    models: &'static EdgeModels,
    /// The native server for models not mounted here (`NATIVE_URL`).
    native: Option<NativeServer>,
}

struct NativeServer {
    url: String,
    timeouts: UpstreamTimeouts,
}

struct EdgeState {
    backend: EdgeBackend,
    config: HandlerConfig,
}

/// Read on the first request and kept for the life of the instance. The environment is read here, never in the
/// snapshot, so a pre-initialized component takes the host's settings.
fn state() -> &'static EdgeState {
    static STATE: OnceLock<EdgeState> = OnceLock::new();
    STATE.get_or_init(|| {
        let models = match std::env::var("CLASSIFY_ONNX_FILES") {
            Ok(list) => OnnxFileOrder::parse(&list)
                .map(|order| snapshot::mounted_models(Path::new(MODELS_ROOT), &order)),
            Err(_) => Ok(snapshot::mounted_models(
                Path::new(MODELS_ROOT),
                &OnnxFileOrder::default(),
            )),
        }
        .unwrap_or_else(|reason| Box::leak(Box::new(EdgeModels::unusable(reason))));
        for name in &models.skipped {
            eprintln!("classify-edge: {MODELS_ROOT}/{name} has no ONNX file; requests for it are forwarded");
        }
        let defaults = HandlerConfig::default();
        let env_number = |name: &str, default: usize| {
            std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
        };
        EdgeState {
            backend: EdgeBackend {
                models,
                native: std::env::var("NATIVE_URL")
                    .ok()
                    .filter(|url| !url.is_empty())
                    .map(|url| NativeServer {
                        url,
                        timeouts: UpstreamTimeouts::from_env(),
                    }),
            },
            config: HandlerConfig {
                max_body_bytes: env_number("CLASSIFY_MAX_BODY_BYTES", defaults.max_body_bytes),
                max_inputs_per_request: env_number(
                    "CLASSIFY_MAX_INPUT_PER_REQUEST",
                    defaults.max_inputs_per_request,
                ),
                api_key: std::env::var("CLASSIFY_API_KEY").ok().filter(|key| !key.is_empty()),
            },
        }
    })
}

/// A model that cannot serve: 503, and the reason on stderr once per instance.
fn report_failure(message: &str) -> ApiError {
    log_once(message);
    ApiError::new(ErrorKind::Unavailable, message)
}

/// Writes `message` to stderr the first time this instance sees it (an outage repeats the same lines).
fn log_once(message: &str) {
    static REPORTED: Mutex<Vec<String>> = Mutex::new(Vec::new());
    if let Ok(mut reported) = REPORTED.lock()
        && !reported.iter().any(|m| m == message)
    {
        eprintln!("classify-edge: {message}");
        reported.push(message.to_owned());
    }
}

impl Backend for EdgeBackend {
    fn models(&self) -> Vec<&ServedModel> {
        self.models.loaded().map(|m| &m.served).collect()
    }

    fn model(&self, name: &str) -> Option<Result<(usize, &ServedModel), ApiError>> {
        let (index, model) = self.models.find(name)?;
        Some(
            model
                .load()
                .map(|loaded| (index, &loaded.served))
                .map_err(report_failure),
        )
    }

    fn health(&self) -> Result<(), ApiError> {
        let failures = self.models.load_all();
        if failures.is_empty() {
            return Ok(());
        }
        Err(report_failure(&failures.join("; ")))
    }

    async fn classify(&self, model: usize, job: InferenceJob) -> Result<Vec<Vec<f32>>, ApiError> {
        let loaded = self
            .models
            .get(model)
            .and_then(|m| m.load().ok())
            .ok_or_else(|| ApiError::internal("no engine for this model"))?;
        loaded
            .classifier
            .run(&job.sequences)
            .map_err(|e| ApiError::internal(format!("inference failed: {e}")))
    }

    async fn forward(&self, request: &Request<Vec<u8>>) -> Option<Response<Vec<u8>>> {
        let native = self.native.as_ref()?;
        Some(
            forward(native, request)
                .await
                .unwrap_or_else(|e| error_response(&e)),
        )
    }

    async fn remote_models(&self) -> Vec<serde_json::Value> {
        let Some(native) = self.native.as_ref() else {
            return Vec::new();
        };
        let Ok(request) = Request::get("/v1/models").body(Vec::new()) else {
            return Vec::new();
        };
        match forward(native, &request).await {
            Ok(response) if response.status().is_success() => {
                serde_json::from_slice::<serde_json::Value>(response.body())
                    .ok()
                    .and_then(|list| list.get("data").and_then(|d| d.as_array()).cloned())
                    .unwrap_or_default()
            }
            _ => Vec::new(),
        }
    }
}

/// Headers that describe one hop, not the message, and that wasi:http hosts refuse to pass on.
fn copy_end_to_end(from: &HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        let hop_by_hop = matches!(
            name.as_str(),
            "host"
                | "connection"
                | "keep-alive"
                | "proxy-connection"
                | "transfer-encoding"
                | "te"
                | "upgrade"
                | "proxy-authenticate"
                | "proxy-authorization"
                | "http2-settings"
                | "content-length"
        );
        if !hop_by_hop {
            to.append(name.clone(), value.clone());
        }
    }
}

/// Sends `request` unchanged (method, path, query, headers, body) to the native server.
async fn forward(
    native: &NativeServer,
    request: &Request<Vec<u8>>,
) -> Result<Response<Vec<u8>>, ApiError> {
    let base = native.url.as_str();
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let mut outgoing = Request::builder()
        .method(request.method().clone())
        .uri(&url)
        .body(request.body().clone())
        .map_err(|e| upstream(ErrorKind::Upstream, base, &e.to_string()))?;
    copy_end_to_end(request.headers(), outgoing.headers_mut());
    // The body is whole: say its length, or Spin 4.0 sends it chunked without saying so and the server reads
    // an empty body followed by garbage.
    outgoing
        .headers_mut()
        .insert(http::header::CONTENT_LENGTH, request.body().len().into());
    let response = transport::send(outgoing, &native.timeouts)
        .await
        .map_err(|failure| match failure {
            SendFailure::Timeout(reason) => upstream(ErrorKind::UpstreamTimeout, base, &reason),
            SendFailure::Other(reason) => upstream(ErrorKind::Upstream, base, &reason),
        })?;
    let (parts, body) = response.into_parts();
    let mut answer = Response::new(body);
    *answer.status_mut() = parts.status;
    copy_end_to_end(&parts.headers, answer.headers_mut());
    Ok(answer)
}

/// The client learns that the native server failed, not where it is: its URL and the transport's reason go to
/// the component's log.
fn upstream(kind: ErrorKind, base: &str, reason: &str) -> ApiError {
    log_once(&format!(
        "the native server at {base} did not answer: {reason}"
    ));
    let message = match kind {
        ErrorKind::UpstreamTimeout => "the native server did not answer in time",
        _ => "the native server did not answer",
    };
    ApiError::new(kind, message)
}

/// The whole request, read under the body limit, through the protocol handler.
async fn respond(parts: http::request::Parts, body: impl http_body::Body) -> Response<Vec<u8>> {
    let state = state();
    match classify_protocol::body::read_limited(&parts.headers, body, state.config.max_body_bytes)
        .await
    {
        Ok(bytes) => {
            let request = Request::from_parts(parts, bytes);
            classify_protocol::handle(&state.backend, &state.config, &request).await
        }
        Err(error) => error_response(&error),
    }
}
