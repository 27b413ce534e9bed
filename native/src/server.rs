//! HTTP glue: hyper connections, body limits, `/metrics`, graceful shutdown. Everything else is the
//! protocol crate's handler.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use classify_protocol::body::read_limited_with;
use classify_protocol::handler::Route;
use classify_protocol::server::{ConnectionLimits, IdleTimeoutBody, check_head};
use classify_protocol::{ApiError, ErrorKind, HandlerConfig, error_response, handle_with};
use http::{HeaderValue, Method, Request, Response, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::batcher::BatchLimits;
use crate::cli::Args;
use crate::deployment::{NativeDeployment, TokenizerThreads};
use crate::device::Placement;
use crate::metrics as names;
use crate::models;

pub struct App {
    deployment: NativeDeployment,
    tokenizers: TokenizerThreads,
    handler: HandlerConfig,
    prometheus: PrometheusHandle,
    connections: ConnectionLimits,
    /// Requests on model routes at once, from reading the body to the answer.
    admission: Arc<Semaphore>,
    max_concurrent_requests: usize,
}

impl App {
    /// Loads every model named by `args` and starts their batchers. Fails on the first model that cannot load.
    pub fn load(args: &Args) -> anyhow::Result<App> {
        let placement = Placement::choose(args.device, args.dtype)?;
        tracing::info!(%placement, "placement");
        let specs = args.model_specs();
        let mut loaded = Vec::with_capacity(specs.len());
        for spec in &specs {
            if loaded
                .iter()
                .any(|m: &models::LoadedModel| m.served.name == spec.name)
            {
                anyhow::bail!(
                    "two models are named `{}`; use NAME=PATH to tell them apart",
                    spec.name
                );
            }
            let started = Instant::now();
            let dir = spec.source.dir()?;
            let model = models::load(&spec.name, &dir, &placement)?;
            tracing::info!(
                model = %spec.name,
                architecture = model.served.architecture(),
                labels = ?model.served.labels,
                max_model_len = model.served.max_model_len,
                seconds = started.elapsed().as_secs_f64(),
                "loaded"
            );
            loaded.push(model);
        }
        let limits = BatchLimits {
            max_batch_tokens: args.max_batch_tokens,
            max_batch_requests: args.max_batch_requests,
            max_delay: Duration::from_millis(args.max_batch_delay_ms),
        };
        let tokenizer_threads = match args.tokenizer_threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        Ok(App {
            deployment: NativeDeployment::start(loaded, limits)?,
            tokenizers: TokenizerThreads::new(tokenizer_threads),
            handler: HandlerConfig {
                max_body_bytes: args.max_body_bytes,
                max_inputs_per_request: args.max_input_per_request,
                api_key: args.api_key.clone(),
            },
            prometheus: names::prometheus(),
            connections: ConnectionLimits {
                header_read_timeout: Duration::from_secs(args.header_read_timeout),
                body_read_timeout: Duration::from_secs(args.body_read_timeout),
                max_connections: args.max_connections,
                listen_backlog: args.listen_backlog,
            },
            admission: Arc::new(Semaphore::new(args.max_concurrent_requests)),
            max_concurrent_requests: args.max_concurrent_requests,
        })
    }

    pub fn connection_limits(&self) -> ConnectionLimits {
        self.connections
    }

    async fn respond(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let started = Instant::now();
        let path = request.uri().path();
        // Labels from the route table only, so unknown paths cannot blow up the metric's cardinality.
        let (label, route) = match Route::from_path(path) {
            Some((label, route)) => (label, Some(route)),
            None if path == "/metrics" => ("/metrics", None),
            None => ("other", None),
        };
        let (parts, body) = request.into_parts();
        let response = if let Err(error) = check_head(&parts) {
            error_response(&error)
        } else if label == "/metrics" {
            self.metrics(&parts.method)
        } else if route.is_some_and(Route::runs_a_model) && parts.method == Method::POST {
            self.admit(parts, body).await
        } else {
            self.answer(parts, body).await
        };
        let status = response.status().as_u16().to_string();
        metrics::counter!(names::REQUESTS, "route" => label, "status" => status).increment(1);
        metrics::histogram!(names::REQUEST_SECONDS, "route" => label)
            .record(started.elapsed().as_secs_f64());
        response.map(|body| Full::new(Bytes::from(body)))
    }

    /// A request on a model route holds an admission permit from before its body is read to its answer; without
    /// one it gets 429 at once and its connection is closed (its body is never read).
    async fn admit(&self, parts: http::request::Parts, body: Incoming) -> Response<Vec<u8>> {
        let Ok(_permit) = Arc::clone(&self.admission).try_acquire_owned() else {
            let mut response = error_response(&ApiError::overloaded(self.max_concurrent_requests));
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return response;
        };
        self.answer(parts, body).await
    }

    async fn answer(&self, parts: http::request::Parts, body: Incoming) -> Response<Vec<u8>> {
        let body = IdleTimeoutBody::new(body, self.connections.body_read_timeout);
        let read = read_limited_with(&parts.headers, body, self.handler.max_body_bytes, |e| {
            e.to_api_error()
        });
        match read.await {
            Ok(bytes) => {
                handle_with(
                    &self.deployment,
                    &self.tokenizers,
                    &self.handler,
                    &Request::from_parts(parts, bytes),
                )
                .await
            }
            Err(error) => error_response(&error),
        }
    }

    fn metrics(&self, method: &Method) -> Response<Vec<u8>> {
        if method != Method::GET {
            let mut response = error_response(&ApiError::new(
                ErrorKind::MethodNotAllowed,
                format!("/metrics accepts GET, not {method}"),
            ));
            response
                .headers_mut()
                .insert(header::ALLOW, http::HeaderValue::from_static("GET"));
            return response;
        }
        self.prometheus.run_upkeep();
        let mut response = Response::new(self.prometheus.render().into_bytes());
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        response
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting and lets in-flight requests
/// finish (up to 30 s).
pub async fn serve(listener: TcpListener, app: Arc<App>, shutdown: impl Future<Output = ()>) {
    let limits = app.connections;
    let service = service_fn(move |request| {
        let app = Arc::clone(&app);
        async move { Ok::<_, Infallible>(app.respond(request).await) }
    });
    classify_protocol::server::serve(listener, limits, service, shutdown).await;
}
