//! HTTP glue: hyper connections, body limits, `/metrics`, graceful shutdown. Everything else is the
//! protocol crate's handler.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use classify_protocol::accept::AcceptBackoff;
use classify_protocol::body::read_limited;
use classify_protocol::{ApiError, ErrorKind, HandlerConfig, error_response, handle};
use http::{Method, Request, Response, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;

use crate::backend::NativeBackend;
use crate::batcher::BatchLimits;
use crate::cli::Args;
use crate::device::Placement;
use crate::metrics as names;
use crate::models;

/// How long shutdown waits for in-flight requests before giving up on them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

pub struct App {
    backend: NativeBackend,
    handler: HandlerConfig,
    prometheus: PrometheusHandle,
    header_read_timeout: Duration,
}

impl App {
    /// Loads every model named by `args` and starts their batchers. Fails on the first model that cannot load.
    pub fn load(args: &Args) -> anyhow::Result<App> {
        let placement = Placement::choose(args.device, args.dtype)?;
        tracing::info!(%placement, "placement");
        let mut loaded = Vec::with_capacity(args.models.len());
        for spec in &args.models {
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
            let model = models::load(&spec.name, &spec.path, &placement)?;
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
        };
        let backend = NativeBackend::start(loaded, limits, args.max_concurrent_requests)?;
        Ok(App {
            backend,
            handler: HandlerConfig {
                max_body_bytes: args.max_body_bytes,
                max_inputs_per_request: args.max_input_per_request,
                api_key: args.api_key.clone(),
            },
            prometheus: names::prometheus(),
            header_read_timeout: Duration::from_secs(args.header_read_timeout),
        })
    }

    async fn respond(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let started = Instant::now();
        // A fixed set of label values, so unknown paths cannot blow up the metric's cardinality.
        let route = match request.uri().path() {
            "/v1/classify" => "/v1/classify",
            "/classify" => "/classify",
            "/v1/models" => "/v1/models",
            "/health" => "/health",
            "/tokenize" => "/tokenize",
            "/metrics" => "/metrics",
            _ => "other",
        };
        let response = if route == "/metrics" {
            self.metrics(request.method())
        } else {
            match self.read_body(request).await {
                Ok(request) => handle(&self.backend, &self.handler, &request).await,
                Err(error) => error_response(&error),
            }
        };
        let status = response.status().as_u16().to_string();
        metrics::counter!(names::REQUESTS, "route" => route, "status" => status).increment(1);
        metrics::histogram!(names::REQUEST_SECONDS, "route" => route)
            .record(started.elapsed().as_secs_f64());
        response.map(|body| Full::new(Bytes::from(body)))
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

    async fn read_body(&self, request: Request<Incoming>) -> Result<Request<Vec<u8>>, ApiError> {
        let (parts, body) = request.into_parts();
        let bytes = read_limited(&parts.headers, body, self.handler.max_body_bytes).await?;
        Ok(Request::from_parts(parts, bytes))
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting and lets in-flight requests
/// finish (up to 30 s).
pub async fn serve(listener: TcpListener, app: Arc<App>, shutdown: impl Future<Output = ()>) {
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut backoff = AcceptBackoff::default();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(connection) => {
                backoff.succeeded();
                connection
            }
            Err(e) => {
                let failure = backoff.failed(&e, Instant::now());
                if let Some(line) = failure.log {
                    tracing::warn!("{line}");
                }
                tokio::select! {
                    () = tokio::time::sleep(failure.wait) => continue,
                    () = &mut shutdown => break,
                }
            }
        };
        let header_read_timeout = app.header_read_timeout;
        let app = Arc::clone(&app);
        let service = service_fn(move |request| {
            let app = Arc::clone(&app);
            async move { Ok::<_, Infallible>(app.respond(request).await) }
        });
        // Without a timer hyper never times out a client that trickles or withholds its headers.
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: finishing in-flight requests");
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish within {SHUTDOWN_GRACE:?}");
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM");
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {},
            _ = terminate.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
