//! The component as a `Deployment` of the protocol handler: the mounted ONNX models as the engine and the
//! native server for every other model, with the settings read from the host's environment.

use std::future::Future;
use std::path::Path;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};

use classify_protocol::handler::{Answer, Route, model_card};
use classify_protocol::request::Body;
use classify_protocol::response::ModelCard;
use classify_protocol::{
    ApiError, Deployment, Engine, ErrorKind, HandlerConfig, InferenceJob, Logits, ServedModel,
    error_response,
};
use http::{Request, Response};

use super::log::log_once;
use super::outgoing::UpstreamTimeouts;
use super::snapshot::{MODELS_ROOT, mounted_models};
use super::upstream::{NativeServer, forward};
use crate::registry::{EdgeModels, OnnxFileOrder};

struct EdgeDeployment {
    models: &'static EdgeModels,
    /// The native server for models not mounted here (`NATIVE_URL`).
    native: Option<NativeServer>,
}

struct EdgeState {
    deployment: EdgeDeployment,
    config: HandlerConfig,
    /// Why a setting in the environment is invalid: every request, `/health` included, gets 503 naming it.
    settings_error: Option<String>,
}

/// Read on the first request and kept for the life of the instance. The environment is read here, never in the
/// snapshot, so a pre-initialized component takes the host's settings.
fn state() -> &'static EdgeState {
    static STATE: OnceLock<EdgeState> = OnceLock::new();
    STATE.get_or_init(|| {
        let models = match std::env::var("CLASSIFY_ONNX_FILES") {
            Ok(list) => OnnxFileOrder::parse(&list)
                .map(|order| mounted_models(Path::new(MODELS_ROOT), &order)),
            Err(_) => Ok(mounted_models(
                Path::new(MODELS_ROOT),
                &OnnxFileOrder::default(),
            )),
        }
        .unwrap_or_else(|reason| Box::leak(Box::new(EdgeModels::unusable(reason))));
        for name in &models.skipped {
            eprintln!("classify-edge: {MODELS_ROOT}/{name} has no ONNX file; requests for it are forwarded");
        }
        let config = HandlerConfig::from_env(|name| std::env::var(name).ok());
        let timeouts = UpstreamTimeouts::from_env();
        let settings_error = [config.as_ref().err(), timeouts.as_ref().err()]
            .into_iter()
            .flatten()
            .cloned()
            .reduce(|a, b| format!("{a}; {b}"));
        EdgeState {
            deployment: EdgeDeployment {
                models,
                native: std::env::var("NATIVE_URL")
                    .ok()
                    .filter(|url| !url.is_empty())
                    .zip(timeouts.ok())
                    .map(|(url, timeouts)| NativeServer { url, timeouts }),
            },
            config: config.unwrap_or_default(),
            settings_error,
        }
    })
}

/// A model that cannot serve: 503, and the reason on stderr once per instance.
fn report_failure(message: &str) -> ApiError {
    log_once(message);
    ApiError::new(ErrorKind::Unavailable, message)
}

impl Deployment for EdgeDeployment {
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

    async fn run(&self, model: usize, job: InferenceJob) -> Result<Logits, ApiError> {
        let loaded = self
            .models
            .get(model)
            .and_then(|m| m.load().ok())
            .ok_or_else(|| ApiError::internal("no engine for this model"))?;
        let batch: Vec<_> = job.sequences.iter().collect();
        loaded
            .engine
            .forward(&batch)
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

/// The 503 every request gets while a setting in the environment is invalid.
fn settings_failure(state: &EdgeState) -> Option<ApiError> {
    let error = state.settings_error.as_ref()?;
    Some(report_failure(&format!(
        "invalid setting in the environment: {error}"
    )))
}

/// The whole request, read under the body limit, through the protocol handler.
pub(super) async fn respond(
    parts: http::request::Parts,
    body: impl http_body::Body,
) -> Response<Vec<u8>> {
    let state = state();
    if let Some(error) = settings_failure(state) {
        return error_response(&error);
    }
    match classify_protocol::body::read_limited(&parts.headers, body, state.config.max_body_bytes)
        .await
    {
        Ok(bytes) => {
            let request = Request::from_parts(parts, bytes);
            classify_protocol::handle(&state.deployment, &state.config, &request).await
        }
        Err(error) => error_response(&error),
    }
}

/// A model route called through the typed export, answered by the protocol handler as the HTTP route would be.
pub(super) fn call(route: Route, body: Body) -> Result<Answer, ApiError> {
    let state = state();
    if let Some(error) = settings_failure(state) {
        return Err(error);
    }
    let answer = std::pin::pin!(classify_protocol::handler::call(
        &state.deployment,
        &state.config,
        route,
        body,
    ));
    // Local inference never waits: nothing is forwarded from here, so the first poll finishes the call.
    match answer.poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(answer) => answer,
        Poll::Pending => Err(ApiError::internal("the call waited on I/O")),
    }
}

/// `/v1/models`' entries for the models served here (the native server's are not listed: calls are not
/// forwarded).
pub(super) fn served_models() -> Vec<ModelCard> {
    state()
        .deployment
        .models()
        .into_iter()
        .map(model_card)
        .collect()
}
