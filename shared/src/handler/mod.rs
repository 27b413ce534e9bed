//! The request handler both front ends call: routing, validation, tokenization, inference through a
//! [`Deployment`], post-processing, and every error in the contract's shape.

use std::future::Future;
use std::time::Instant;

use http::{HeaderMap, HeaderValue, Method, Request, Response, header};

use crate::classify;
use crate::deployment::Deployment;
use crate::engine::OutputKind;
use crate::error::{ApiError, ErrorKind};
use crate::model::ServedModel;
use crate::pairs;
use crate::request::Body;
use crate::response::{ModelList, error_response, json_response};
use crate::token_classify;

mod run;

pub use run::{Answer, model_card};
use run::{ModelJob, Task, run};

/// Limits and credentials of a deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerConfig {
    /// Larger bodies get 413. Front ends should also stop reading past this.
    pub max_body_bytes: usize,
    /// Most inputs in one classify request.
    pub max_inputs_per_request: usize,
    /// When set, every route but `/health` wants `Authorization: Bearer <key>`.
    pub api_key: Option<String>,
}

impl Default for HandlerConfig {
    /// The defaults of every deployment (the native server's and edge-host's flags take theirs from here).
    fn default() -> Self {
        HandlerConfig {
            max_body_bytes: 2 * 1024 * 1024,
            max_inputs_per_request: 256,
            api_key: None,
        }
    }
}

impl HandlerConfig {
    /// The settings from environment variables — `CLASSIFY_MAX_BODY_BYTES`, `CLASSIFY_MAX_INPUT_PER_REQUEST`,
    /// `CLASSIFY_API_KEY` (empty: none), the names of the native server's — as `lookup` reads them, the default
    /// for each that is unset. A value that is not a whole number is an error naming the variable.
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Result<HandlerConfig, String> {
        let defaults = HandlerConfig::default();
        Ok(HandlerConfig {
            max_body_bytes: env_number(
                &lookup,
                "CLASSIFY_MAX_BODY_BYTES",
                defaults.max_body_bytes,
            )?,
            max_inputs_per_request: env_number(
                &lookup,
                "CLASSIFY_MAX_INPUT_PER_REQUEST",
                defaults.max_inputs_per_request,
            )?,
            api_key: lookup("CLASSIFY_API_KEY").filter(|key| !key.is_empty()),
        })
    }
}

/// The whole number in the environment variable `name`, `default` when it is unset or empty.
pub fn env_number<T: std::str::FromStr>(
    lookup: impl Fn(&str) -> Option<String>,
    name: &str,
    default: T,
) -> Result<T, String> {
    match lookup(name) {
        None => Ok(default),
        Some(value) if value.trim().is_empty() => Ok(default),
        Some(value) => value
            .trim()
            .parse()
            .map_err(|_| format!("{name}: `{value}` is not a whole number")),
    }
}

/// The routes of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Classify,
    Rerank,
    /// Cohere's `/v2/rerank` as vLLM serves it: `/rerank` that always returns the documents.
    RerankV2,
    Score,
    ZeroShot,
    TokenClassify,
    Pooling,
    /// SageMaker's one route: the task told by the body ([`invoked_route`]).
    Invocations,
    /// OpenAI's moderation API over a classifier's labels.
    Moderations,
    Models,
    Health,
    Tokenize,
    OpenApi,
}

/// The OpenAPI 3.1 description of every route, field and error (`GET /openapi.json`); the tests validate every
/// conformance answer against it.
pub const OPENAPI: &str = include_str!("../../openapi.json");

/// Every path served, with its route; front ends derive their metric labels from it.
pub const ROUTES: &[(&str, Route)] = &[
    ("/v1/classify", Route::Classify),
    ("/classify", Route::Classify),
    ("/v1/rerank", Route::Rerank),
    ("/rerank", Route::Rerank),
    ("/v2/rerank", Route::RerankV2),
    ("/v1/score", Route::Score),
    ("/score", Route::Score),
    ("/v1/zero-shot", Route::ZeroShot),
    ("/v1/token-classify", Route::TokenClassify),
    ("/token-classify", Route::TokenClassify),
    ("/pooling", Route::Pooling),
    ("/v1/pooling", Route::Pooling),
    ("/invocations", Route::Invocations),
    ("/v1/moderations", Route::Moderations),
    ("/v1/models", Route::Models),
    ("/health", Route::Health),
    ("/tokenize", Route::Tokenize),
    ("/openapi.json", Route::OpenApi),
];

impl Route {
    /// The route of `path` and the path as a `'static` string (a bounded set of metric label values).
    pub fn from_path(path: &str) -> Option<(&'static str, Route)> {
        ROUTES.iter().find(|(known, _)| *known == path).copied()
    }

    pub fn method(self) -> Method {
        match self {
            Route::Classify
            | Route::Rerank
            | Route::RerankV2
            | Route::Score
            | Route::ZeroShot
            | Route::TokenClassify
            | Route::Pooling
            | Route::Invocations
            | Route::Moderations
            | Route::Tokenize => Method::POST,
            Route::Models | Route::Health | Route::OpenApi => Method::GET,
        }
    }

    /// Routes that parse, tokenize and run a model: what an admission limit counts.
    pub fn runs_a_model(self) -> bool {
        self.method() == Method::POST
    }
}

/// Where a request's CPU-bound part (parsing, validation, tokenization) runs.
pub trait CpuWork {
    fn run<R>(&self, work: impl FnOnce() -> R) -> impl Future<Output = R>;
}

/// Runs the CPU-bound part in place, on the task that handles the request.
pub struct InPlace;

impl CpuWork for InPlace {
    fn run<R>(&self, work: impl FnOnce() -> R) -> impl Future<Output = R> {
        std::future::ready(work())
    }
}

/// Answers one HTTP request, parsing and tokenizing in place. Never panics on any input; every non-200 answer
/// is a contract error body.
pub async fn handle<D: Deployment>(
    deployment: &D,
    config: &HandlerConfig,
    request: &Request<Vec<u8>>,
) -> Response<Vec<u8>> {
    handle_with(deployment, &InPlace, config, request).await
}

/// [`handle`], with the CPU-bound part of model routes run by `cpu` (the native server runs it on a bounded
/// set of threads off its async workers, so that huge inputs cannot starve `/health`).
pub async fn handle_with<D: Deployment, C: CpuWork>(
    deployment: &D,
    cpu: &C,
    config: &HandlerConfig,
    request: &Request<Vec<u8>>,
) -> Response<Vec<u8>> {
    let path = request.uri().path();
    let Some((_, route)) = Route::from_path(path) else {
        return error_response(&ApiError::new(
            ErrorKind::NotFound,
            format!("no route for {path}"),
        ));
    };
    if request.method() != route.method() {
        let error = ApiError::new(
            ErrorKind::MethodNotAllowed,
            format!(
                "{path} accepts {}, not {}",
                route.method(),
                request.method()
            ),
        );
        let mut response = error_response(&error);
        let allow = if route.method() == Method::POST {
            "POST"
        } else {
            "GET"
        };
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(allow));
        return response;
    }
    let result = match authorize(config, route, request.headers()) {
        Err(error) => Err(error),
        Ok(()) if request.body().len() > config.max_body_bytes => {
            Err(ApiError::payload_too_large(config.max_body_bytes))
        }
        Ok(()) => match route {
            Route::Classify
            | Route::Rerank
            | Route::RerankV2
            | Route::Score
            | Route::ZeroShot
            | Route::TokenClassify
            | Route::Pooling
            | Route::Invocations
            | Route::Moderations
            | Route::Tokenize => model_route(deployment, cpu, config, route, request).await,
            Route::Models => Ok(json_response(&model_list(deployment).await)),
            Route::Health => deployment
                .health()
                .map(|()| json_response(&serde_json::json!({"status": "ok"}))),
            Route::OpenApi => Ok(openapi_response()),
        },
    };
    result.unwrap_or_else(|error| error_response(&error))
}

/// Model routes: a model served here answers; any other goes to [`Deployment::forward`]. Parsing and
/// tokenization run through `cpu`.
async fn model_route<D: Deployment, C: CpuWork>(
    deployment: &D,
    cpu: &C,
    config: &HandlerConfig,
    route: Route,
    request: &Request<Vec<u8>>,
) -> Result<Response<Vec<u8>>, ApiError> {
    let prepared = cpu
        .run(|| {
            Body::parse(request.body()).and_then(|body| prepare(deployment, config, route, body))
        })
        .await?;
    match prepared {
        Prepared::Elsewhere(not_found) => deployment.forward(request).await.ok_or(not_found),
        Prepared::Answered(answer) => Ok(answer.into_response()),
        Prepared::Run(job) => run(deployment, request.headers(), job)
            .await
            .map(Answer::into_response),
    }
}

/// What is left of a model route after its CPU-bound part. It owns its data (no borrow of the deployment),
/// which keeps the future `Send` for hyper.
enum Prepared {
    /// The model is not served here; the error is the answer when nobody else serves it either.
    Elsewhere(ApiError),
    /// Answered already (tokenize).
    Answered(Answer),
    Run(ModelJob),
}

fn prepare<D: Deployment>(
    deployment: &D,
    config: &HandlerConfig,
    route: Route,
    body: Body,
) -> Result<Prepared, ApiError> {
    let name = match body.model()? {
        Some(name) => name.to_owned(),
        None => match deployment.models().as_slice() {
            [only] => only.name.clone(),
            // With no model here, the server requests are forwarded to may serve exactly one.
            [] => return Ok(Prepared::Elsewhere(model_required(deployment))),
            // Several here: the choice is ambiguous wherever the request would go.
            _ => return Err(model_required(deployment)),
        },
    };
    let Some(local) = deployment.model(&name) else {
        return Ok(Prepared::Elsewhere(ApiError::model_not_found(&name)));
    };
    let (_, model) = local?;
    let max_inputs = config.max_inputs_per_request;
    let started = Instant::now();
    let route = match route {
        Route::Invocations => invoked_route(&body, model)?,
        route => route,
    };
    if !matches!(route, Route::Tokenize | Route::Pooling) {
        check_task(route, model)?;
    }
    let pairs = match route {
        Route::Tokenize => {
            return classify::tokenize(model, body)
                .map(|r| Prepared::Answered(Answer::Tokenize(r)));
        }
        Route::TokenClassify => {
            let job = token_classify::prepare(body, model, max_inputs)?;
            return Ok(Prepared::Run(ModelJob {
                model: name,
                sequences: job.sequences,
                priority: job.priority,
                rid: job.rid,
                user: job.user,
                task: Task::Tokens(job.task),
                tokenization: started.elapsed(),
            }));
        }
        Route::Pooling => {
            let (job, task) = classify::prepare_pooling(body, model, max_inputs)?;
            return Ok(Prepared::Run(ModelJob {
                model: name,
                sequences: job.sequences,
                priority: job.priority,
                rid: job.rid,
                user: job.user,
                task: Task::Pooling(task),
                tokenization: started.elapsed(),
            }));
        }
        Route::Classify | Route::Moderations => None,
        Route::Rerank => Some(pairs::rerank(&body, model, max_inputs, false)?),
        Route::RerankV2 => Some(pairs::rerank(&body, model, max_inputs, true)?),
        Route::Score => Some(pairs::score(&body, model, max_inputs)?),
        Route::ZeroShot => Some(pairs::zero_shot(&body, model, max_inputs)?),
        Route::Invocations | Route::Models | Route::Health | Route::OpenApi => {
            return Err(ApiError::internal("not a model route"));
        }
    };
    let job = match pairs {
        Some(pairs) => ModelJob {
            model: name,
            sequences: pairs.sequences,
            priority: pairs.priority,
            rid: pairs.rid,
            user: pairs.user,
            task: Task::Pairs(pairs.task),
            tokenization: started.elapsed(),
        },
        None => {
            let job = classify::prepare(body, model, max_inputs)?;
            ModelJob {
                model: name,
                sequences: job.sequences,
                priority: job.priority,
                rid: job.rid,
                user: job.user,
                task: match route {
                    Route::Moderations => Task::Moderate,
                    _ => Task::Classify {
                        use_activation: job.use_activation,
                    },
                },
                tokenization: started.elapsed(),
            }
        }
    };
    Ok(Prepared::Run(job))
}

/// A model route called in-process rather than over HTTP: `body` is what the route's JSON body would hold, and
/// the answer, or the error, is what the route answers for it — the same parsing, validation, tokenization and
/// activation. There are no headers (no API key to check, no `X-Request-Id`), no body-size limit (the input
/// count limit holds) and nothing is forwarded: a model not served here is `model_not_found`.
pub async fn call<D: Deployment>(
    deployment: &D,
    config: &HandlerConfig,
    route: Route,
    body: Body,
) -> Result<Answer, ApiError> {
    if !route.runs_a_model() {
        return Err(ApiError::internal(format!(
            "{route:?} is not a model route"
        )));
    }
    match prepare(deployment, config, route, body)? {
        Prepared::Elsewhere(not_found) => Err(not_found),
        Prepared::Answered(answer) => Ok(answer),
        Prepared::Run(job) => run(deployment, &HeaderMap::new(), job).await,
    }
}

/// The route `/invocations` runs, told by the body as vLLM tells it (the first request shape that fits, in vLLM's
/// order): `input` or `messages` classify (a token classifier's `input` goes to `/pooling`, as in vLLM), then
/// `query` reranks, then any of `/score`'s spellings scores.
fn invoked_route(body: &Body, model: &ServedModel) -> Result<Route, ApiError> {
    let has = |field: &str| body.optional(field).is_some();
    if has("input") || has("messages") {
        return Ok(match model.output {
            OutputKind::Sequence => Route::Classify,
            OutputKind::Token => Route::Pooling,
        });
    }
    if has("query") {
        return Ok(Route::Rerank);
    }
    if pairs::SCORE_SIDES.iter().any(|(first, _)| has(first)) {
        return Ok(Route::Score);
    }
    Err(ApiError::invalid(
        "input",
        "cannot tell the task of this /invocations request: send `input` (or `messages`) to classify, `query` and \
         `documents` to rerank, or `text_1` and `text_2` to score",
    ))
}

/// A token classifier answers `/v1/token-classify` only, and that route only it: a 400 names the route to use.
fn check_task(route: Route, model: &ServedModel) -> Result<(), ApiError> {
    let per_token = model.output == OutputKind::Token;
    if per_token == (route == Route::TokenClassify) {
        return Ok(());
    }
    let (kind, instead) = if per_token {
        (
            "a token classification model (one answer per token)",
            "/v1/token-classify",
        )
    } else {
        (
            "a sequence classification model (one answer per input)",
            "/v1/classify",
        )
    };
    Err(ApiError::invalid(
        "model",
        format!("`{}` is {kind}: send it to {instead}", model.name),
    ))
}

fn model_required<D: Deployment>(deployment: &D) -> ApiError {
    let names: Vec<&str> = deployment
        .models()
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    ApiError::invalid(
        "model",
        format!(
            "`model` is required: this server serves {} models ({})",
            names.len(),
            names.join(", ")
        ),
    )
}

fn openapi_response() -> Response<Vec<u8>> {
    let mut response = Response::new(OPENAPI.as_bytes().to_vec());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn authorize(config: &HandlerConfig, route: Route, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(key) = &config.api_key else {
        return Ok(());
    };
    if matches!(route, Route::Health | Route::OpenApi) {
        return Ok(());
    }
    // The scheme is case-insensitive (RFC 9110 §11.1): `bearer`, `BEARER` work too.
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim_start().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token);
    match presented {
        Some(token) if constant_time_eq(token.trim().as_bytes(), key.as_bytes()) => Ok(()),
        Some(_) => Err(ApiError::new(ErrorKind::Authentication, "invalid API key")),
        None => Err(ApiError::new(
            ErrorKind::Authentication,
            "missing API key: send `Authorization: Bearer <key>`",
        )),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Local models first, then the deployment's remote ones whose names are not served here.
async fn model_list<D: Deployment>(deployment: &D) -> ModelList {
    let local = deployment.models();
    let mut data: Vec<serde_json::Value> = local
        .iter()
        .map(|model| model_card(model))
        .filter_map(|card| serde_json::to_value(card).ok())
        .collect();
    for remote in deployment.remote_models().await {
        let id = remote.get("id").and_then(serde_json::Value::as_str);
        if id.is_some_and(|id| local.iter().all(|m| m.name != id)) {
            data.push(remote);
        }
    }
    ModelList {
        object: "list",
        data,
    }
}

#[cfg(test)]
mod tests;
