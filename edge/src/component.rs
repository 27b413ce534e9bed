//! The Spin / wasi:http entry point: HTTP glue around the protocol handler, with the mounted ONNX models as
//! the engine and the native server as the place for every other model.

use std::sync::OnceLock;

use bytes::Bytes;
use classify_protocol::body::read_limited;
use classify_protocol::{
    ApiError, Backend, ErrorKind, HandlerConfig, InferenceJob, ServedModel, error_response,
};
use http::{HeaderMap, Request, Response};
use http_body_util::Full;
use spin_sdk::http::body::IncomingBodyExt;
use spin_sdk::wasip3::http::types::ErrorCode;

use crate::registry::EdgeModels;

/// Where the models are mounted (spin.toml `files`, or edge-host `--models`).
const MODELS_ROOT: &str = "/models";

struct EdgeBackend {
    models: EdgeModels,
    /// The native server for models not mounted here (`NATIVE_URL`).
    native_url: Option<String>,
}

struct EdgeState {
    backend: EdgeBackend,
    config: HandlerConfig,
}

/// Loaded on the first request and kept for the life of the instance, so a reused instance never reloads.
fn state() -> &'static EdgeState {
    static STATE: OnceLock<EdgeState> = OnceLock::new();
    STATE.get_or_init(|| {
        let models = EdgeModels::load(std::path::Path::new(MODELS_ROOT));
        for failure in &models.failures {
            eprintln!("classify-edge: {failure}");
        }
        for name in &models.skipped {
            eprintln!("classify-edge: {MODELS_ROOT}/{name} has no model.onnx; requests for it are forwarded");
        }
        let defaults = HandlerConfig::default();
        let env_number = |name: &str, default: usize| {
            std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
        };
        EdgeState {
            backend: EdgeBackend {
                models,
                native_url: std::env::var("NATIVE_URL").ok().filter(|url| !url.is_empty()),
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

impl Backend for EdgeBackend {
    fn models(&self) -> &[ServedModel] {
        &self.models.served
    }

    fn health(&self) -> Result<(), ApiError> {
        if self.models.failures.is_empty() {
            return Ok(());
        }
        Err(ApiError::new(
            ErrorKind::Unavailable,
            self.models.failures.join("; "),
        ))
    }

    async fn classify(&self, model: usize, job: InferenceJob) -> Result<Vec<Vec<f32>>, ApiError> {
        let classifier = self
            .models
            .classifiers
            .get(model)
            .ok_or_else(|| ApiError::internal("no engine for this model"))?;
        classifier
            .run(&job.sequences)
            .map_err(|e| ApiError::internal(format!("inference failed: {e}")))
    }

    async fn forward(&self, request: &Request<Vec<u8>>) -> Option<Response<Vec<u8>>> {
        let base = self.native_url.as_deref()?;
        Some(
            forward(base, request)
                .await
                .unwrap_or_else(|e| error_response(&e)),
        )
    }

    async fn remote_models(&self) -> Vec<serde_json::Value> {
        let Some(base) = self.native_url.as_deref() else {
            return Vec::new();
        };
        let request = Request::get(format!("{}/v1/models", base.trim_end_matches('/')))
            .body(Vec::new())
            .ok();
        let Some(request) = request else {
            return Vec::new();
        };
        match forward(base, &request).await {
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

/// Sends `request` unchanged (method, path, query, headers, body) to the native server at `base`.
async fn forward(base: &str, request: &Request<Vec<u8>>) -> Result<Response<Vec<u8>>, ApiError> {
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let mut outgoing = Request::builder()
        .method(request.method().clone())
        .uri(&url)
        .body(Full::new(Bytes::from(request.body().clone())))
        .map_err(|e| upstream(ErrorKind::Upstream, &url, &e.to_string()))?;
    copy_end_to_end(request.headers(), outgoing.headers_mut());
    let response = spin_sdk::http::send(outgoing).await.map_err(|code| {
        let kind = match code {
            ErrorCode::ConnectionTimeout
            | ErrorCode::ConnectionReadTimeout
            | ErrorCode::HttpResponseTimeout => ErrorKind::UpstreamTimeout,
            _ => ErrorKind::Upstream,
        };
        upstream(kind, &url, &format!("{code:?}"))
    })?;
    let (parts, body) = response.into_parts();
    let bytes = body
        .bytes()
        .await
        .map_err(|code| upstream(ErrorKind::Upstream, &url, &format!("{code:?}")))?;
    let mut answer = Response::new(bytes.to_vec());
    *answer.status_mut() = parts.status;
    copy_end_to_end(&parts.headers, answer.headers_mut());
    Ok(answer)
}

fn upstream(kind: ErrorKind, url: &str, reason: &str) -> ApiError {
    ApiError::new(
        kind,
        format!("the native server at {url} did not answer: {reason}"),
    )
}

#[spin_sdk::http_service]
async fn serve(request: spin_sdk::http::Request) -> Response<Full<Bytes>> {
    let state = state();
    let (parts, body) = request.into_parts();
    let response = match read_limited(&parts.headers, body, state.config.max_body_bytes).await {
        Ok(bytes) => {
            let request = Request::from_parts(parts, bytes);
            classify_protocol::handle(&state.backend, &state.config, &request).await
        }
        Err(error) => error_response(&error),
    };
    response.map(|body| Full::new(Bytes::from(body)))
}
