//! A wasi:http host for the edge component, built on wasmtime + wasmtime-wasi-http: what `spin up` or
//! `wasmtime serve` would do, minus everything the component does not use. It serves the `wasi-http-p3` and
//! `wasi-http-p2` builds; an instance is reused for many (concurrent) requests, up to `max_instance_reuse`; the
//! component is compiled once through wasmtime's compilation cache, the models directory is mounted read-only at
//! `/models`, and `native_url` becomes `NATIVE_URL`.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use classify_protocol::body::read_limited_with;
use classify_protocol::server::{ConnectionLimits, IdleTimeoutBody, check_head};
use classify_protocol::{ApiError, ErrorKind, HandlerConfig, error_response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use wasmtime::component::{Component, GuestTaskId, Linker, ResourceTable};
use wasmtime::{
    Cache, CacheConfig, Config, Engine, Store, StoreContextMut, StoreLimits, StoreLimitsBuilder,
};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::handler::{
    HandlerState, Instance, ProxyHandler, ProxyPre, ShouldAccept, WorkerExpiration, WorkerState,
    WorkerStatus,
};
use wasmtime_wasi_http::p2::bindings::ProxyPre as ProxyPreP2;
use wasmtime_wasi_http::p3::bindings::ServicePre;
use wasmtime_wasi_http::{WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// A request that has not produced a response by then gets a 504-like error and the instance is replaced.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone)]
pub struct EdgeHostOptions {
    /// The component (.wasm) to serve.
    pub component: PathBuf,
    /// Mounted read-only at `/models` in the guest; `None` mounts nothing (a self-contained snapshot).
    pub models: Option<PathBuf>,
    /// Passed to the guest as `NATIVE_URL`.
    pub native_url: Option<String>,
    /// Where compiled components are cached; wasmtime's default cache directory when `None`.
    pub cache_dir: Option<PathBuf>,
    /// Requests one instance answers before a fresh one replaces it; `None` reuses it for ever. `Some(1)` gives
    /// every request a fresh instance, as Akamai Functions and wasi:http 0.2 hosts do.
    pub max_instance_reuse: Option<usize>,
    /// The most linear memory an instance may have, in bytes, as edge plans limit it (Akamai Functions: 128 MiB):
    /// an instance that starts with more fails to start, one that needs more fails its request.
    pub max_instance_memory: Option<usize>,
    /// Requests handed to the component at once; more wait their turn. wasmtime's handler starts another
    /// instance for a request that arrives while the others are busy, so this also bounds the instances (and
    /// their memory) a burst can create.
    pub max_concurrent_requests: usize,
    /// Tells a profiler about the component's compiled functions (`None`: nothing written).
    pub profiler: Option<GuestProfiler>,
}

/// How `perf` learns the names of the component's functions, for profiling the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GuestProfiler {
    /// `/tmp/perf-<pid>.map`: `perf record -p <pid>`, then `perf report` names guest functions.
    PerfMap,
    /// `./jit-<pid>.dump`: `perf record -k 1`, `perf inject --jit`, then `perf annotate` shows their
    /// instructions (perf inject writes one .so per function into the current directory).
    JitDump,
}

impl EdgeHostOptions {
    pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 64;
}

/// Per-instance store data.
pub struct GuestState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    limits: StoreLimits,
}

impl GuestState {
    /// Store data around `wasi`, for serving and for pre-initializing.
    pub(crate) fn new(wasi: WasiCtx) -> GuestState {
        GuestState {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            limits: StoreLimits::default(),
        }
    }
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for GuestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: Default::default(),
        }
    }
}

fn http_view(state: &mut GuestState) -> WasiHttpCtxView<'_> {
    state.http()
}

struct HostState {
    engine: Engine,
    pre: ProxyPre<GuestState>,
    models: Option<PathBuf>,
    native_url: Option<String>,
    max_instance_reuse: Option<usize>,
    max_instance_memory: Option<usize>,
    /// Instances alive now (see [`ExtraInstanceExpiry`]).
    live_instances: Arc<AtomicUsize>,
}

impl HostState {
    fn new_store(&self) -> wasmtime::Result<Store<GuestState>> {
        let mut wasi = WasiCtxBuilder::new();
        // File calls run on the thread that runs the guest (which it holds while it computes anyway) instead of a
        // hop to tokio's blocking pool and back: about 0.1 ms per call, and a fresh instance makes a dozen.
        wasi.allow_blocking_current_thread(true);
        wasi.inherit_stdout().inherit_stderr();
        if let Some(models) = &self.models {
            wasi.preopened_dir(models, "/models", FsPerms::ReadOnly)?;
        }
        if let Some(url) = &self.native_url {
            wasi.env("NATIVE_URL", url);
        }
        // The component's settings (CLASSIFY_API_KEY, CLASSIFY_ONNX_FILES, …) pass through from the host.
        for (name, value) in std::env::vars().filter(|(name, _)| name.starts_with("CLASSIFY_")) {
            wasi.env(name, value);
        }
        let mut state = GuestState::new(wasi.build());
        if let Some(bytes) = self.max_instance_memory {
            state.limits = StoreLimitsBuilder::new().memory_size(bytes).build();
        }
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limits);
        Ok(store)
    }
}

impl HandlerState for HostState {
    type StoreData = GuestState;
    type WorkerExpiration = ExtraInstanceExpiry;
    type WorkerState = ReuseInstance;

    async fn instantiate(
        &self,
    ) -> wasmtime::Result<Instance<GuestState, ExtraInstanceExpiry, ReuseInstance>> {
        let mut store = self.new_store()?;
        let proxy = self.pre.instantiate_async(&mut store).await?;
        self.live_instances.fetch_add(1, Ordering::SeqCst);
        let counted_out = Arc::new(AtomicBool::new(false));
        Ok(Instance {
            store,
            proxy,
            view: http_view,
            expiration: ExtraInstanceExpiry {
                live_instances: Arc::clone(&self.live_instances),
                counted_out: Arc::clone(&counted_out),
                timer: None,
            },
            state: ReuseInstance {
                max_requests: self.max_instance_reuse,
                live_instances: Arc::clone(&self.live_instances),
                counted_out,
            },
        })
    }
}

/// How long an instance beyond the first may sit idle before it is dropped.
const EXTRA_INSTANCE_IDLE: Duration = Duration::from_secs(5);

/// Requests that arrive while the instance is busy start more instances (wasmtime's handler does that); each
/// holds the models and a descriptor of the mount, so those beyond the first are dropped after
/// [`EXTRA_INSTANCE_IDLE`] without a request. The last one stays, so an idle host answers at once.
pub struct ExtraInstanceExpiry {
    live_instances: Arc<AtomicUsize>,
    /// Set when this instance took itself out of `live_instances`.
    counted_out: Arc<AtomicBool>,
    timer: Option<(Instant, Pin<Box<tokio::time::Sleep>>)>,
}

impl WorkerExpiration for ExtraInstanceExpiry {
    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        status: WorkerStatus,
        start: Instant,
    ) -> Poll<()> {
        if !matches!(status, WorkerStatus::Idle) {
            self.timer = None;
            return Poll::Pending;
        }
        let deadline = start + EXTRA_INSTANCE_IDLE;
        let timer = self.timer.get_or_insert_with(|| {
            let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline));
            (deadline, Box::pin(sleep))
        });
        if timer.0 != deadline {
            *timer = (
                deadline,
                Box::pin(tokio::time::sleep_until(tokio::time::Instant::from_std(
                    deadline,
                ))),
            );
        }
        if timer.1.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        // Only an instance that is not the last one goes.
        let left = self
            .live_instances
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n > 1).then(|| n - 1)
            });
        if left.is_ok() {
            self.counted_out.store(true, Ordering::SeqCst);
            return Poll::Ready(());
        }
        self.timer = None;
        // Look again after another idle period (the waker is registered by the new timer).
        let later = tokio::time::Instant::now() + EXTRA_INSTANCE_IDLE;
        let mut sleep = Box::pin(tokio::time::sleep_until(later));
        let _ = sleep.as_mut().poll(cx);
        self.timer = Some((deadline, sleep));
        Poll::Pending
    }
}

/// What wasmtime-wasi-http's handler passes to [`WorkerState::drop`] when an instance's worker task is dropped
/// unfinished (its `Dropper`, wasmtime-wasi-http 48).
const WORKER_DROPPED: &str = "worker panicked";

/// Requests go to the live instance, concurrently, like Spin and `wasmtime serve` with reuse, until it has
/// taken `max_requests`.
pub struct ReuseInstance {
    max_requests: Option<usize>,
    live_instances: Arc<AtomicUsize>,
    counted_out: Arc<AtomicBool>,
}

impl WorkerState for ReuseInstance {
    type StoreData = GuestState;
    type RequestData = ();

    fn should_accept_request(&self, _concurrent: usize, total: usize) -> ShouldAccept {
        match self.max_requests {
            Some(max) if total >= max => ShouldAccept::Never,
            _ => ShouldAccept::Yes,
        }
    }

    fn on_request_start(
        &self,
        _store: StoreContextMut<'_, GuestState>,
        _data: (),
        _task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        Box::pin(tokio::time::sleep(REQUEST_TIMEOUT))
    }

    fn drop(&self, _store: Store<GuestState>, result: wasmtime::Result<()>) {
        if !self.counted_out.swap(true, Ordering::SeqCst) {
            self.live_instances.fetch_sub(1, Ordering::SeqCst);
        }
        match result {
            Ok(()) => {}
            // wasmtime-wasi-http reports an instance whose worker task was dropped before it finished as "worker
            // panicked", panic or not. Without a panic on this thread the task was dropped, which is what the
            // host's shutdown does to every instance: nothing went wrong.
            Err(e) if e.to_string() == WORKER_DROPPED && !std::thread::panicking() => {}
            Err(e) => eprintln!("edge-host: instance stopped: {e:#}"),
        }
    }
}

/// The compiled component and two pools of its instances: GET requests (`/health`, `/v1/models`) go to
/// `probes`, whose instances run on the serving threads, and the rest to `requests`, whose instances run on the
/// guest runtime's threads; so a burst of heavy requests (2 MiB bodies to parse) cannot hold readiness probes
/// behind its CPU work. Each pool keeps one instance warm.
#[derive(Clone)]
pub struct EdgeHost {
    probes: ProxyHandler<HostState>,
    requests: ProxyHandler<HostState>,
    guest_runtime: Arc<GuestRuntime>,
    in_flight: Arc<Semaphore>,
    /// The component's body limit (its `CLASSIFY_MAX_BODY_BYTES`, which it gets from this environment).
    max_body_bytes: usize,
}

impl EdgeHost {
    /// Compiles (or loads from the cache) the component and links wasi + wasi:http 0.3.
    pub fn new(options: &EdgeHostOptions) -> anyhow::Result<EdgeHost> {
        let mut config = Config::new();
        config.wasm_component_model_async(true);
        match options.profiler {
            Some(GuestProfiler::PerfMap) => config.profiler(wasmtime::ProfilingStrategy::PerfMap),
            Some(GuestProfiler::JitDump) => config.profiler(wasmtime::ProfilingStrategy::JitDump),
            None => &mut config,
        };
        let mut cache = CacheConfig::new();
        if let Some(dir) = &options.cache_dir {
            cache.with_directory(dir);
        }
        config.cache(Some(Cache::new(cache)?));
        let engine = Engine::new(&config)?;
        let component = Component::from_file(&engine, &options.component)
            .map_err(|e| anyhow::anyhow!("{}: {e:#}", options.component.display()))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi::p3::add_to_linker(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p3::add_to_linker(&mut linker)?;
        let instance_pre = linker.instantiate_pre(&component).map_err(|e| {
            let error = format!("{e:#}");
            let hint = if error.contains("@0.3.0-rc") {
                " (this is the wasi-http-p3-rc build, for Spin; edge-host serves the wasi-http-p3 and wasi-http-p2 builds)"
            } else {
                ""
            };
            anyhow::anyhow!("{}: {error}{hint}", options.component.display())
        })?;
        let models = options
            .models
            .as_ref()
            .map(|models| {
                models
                    .canonicalize()
                    .map_err(|e| anyhow::anyhow!("{}: {e}", models.display()))
            })
            .transpose()?;
        let pool = || -> anyhow::Result<ProxyHandler<HostState>> {
            let pre = match ServicePre::new(instance_pre.clone()) {
                Ok(p3) => ProxyPre::P3(p3),
                Err(p3_error) => ProxyPre::P2(ProxyPreP2::new(instance_pre.clone()).map_err(|_| {
                    anyhow::anyhow!(
                        "{}: exports neither wasi:http/handler@0.3.0 nor wasi:http/incoming-handler@0.2 ({p3_error:#})",
                        options.component.display()
                    )
                })?),
            };
            Ok(ProxyHandler::new(HostState {
                engine: engine.clone(),
                pre,
                models: models.clone(),
                native_url: options.native_url.clone(),
                max_instance_reuse: options.max_instance_reuse,
                max_instance_memory: options.max_instance_memory,
                live_instances: Arc::new(AtomicUsize::new(0)),
            }))
        };
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let guest_runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("edge-host-guest")
            .enable_all()
            .build()?;
        Ok(EdgeHost {
            probes: pool()?,
            requests: pool()?,
            guest_runtime: Arc::new(GuestRuntime(Some(guest_runtime))),
            in_flight: Arc::new(Semaphore::new(options.max_concurrent_requests.max(1))),
            max_body_bytes: std::env::var("CLASSIFY_MAX_BODY_BYTES")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(HandlerConfig::default().max_body_bytes),
        })
    }

    async fn respond(
        &self,
        request: hyper::Request<Incoming>,
        body_read_timeout: Duration,
    ) -> hyper::Response<WasiBody> {
        let (parts, body) = request.into_parts();
        if let Err(error) = check_head(&parts) {
            return wasi_error_response(&error);
        }
        // The body is read whole (under the component's limit and the idle timeout) before the request takes a
        // turn at the component, so that slow uploads never hold one; a stalled body gets 408 from here.
        let body = IdleTimeoutBody::new(body, body_read_timeout);
        let read = read_limited_with(&parts.headers, body, self.max_body_bytes, |e| {
            e.to_api_error()
        });
        let bytes = match read.await {
            Ok(bytes) => bytes,
            Err(error) => return wasi_error_response(&error),
        };
        let body = Full::new(Bytes::from(bytes))
            .map_err(|never| match never {})
            .boxed_unsync();
        let request = hyper::Request::from_parts(parts, body);
        // Never closed, so acquiring only waits.
        let _turn = self.in_flight.acquire().await.ok();
        let answer = if request.method() == hyper::Method::GET {
            self.probes.handle((), request).await
        } else {
            // Started from the guest runtime, the instances it needs are spawned there too.
            let requests = self.requests.clone();
            let running = self
                .guest_runtime
                .handle()
                .spawn(async move { requests.handle((), request).await });
            running
                .await
                .unwrap_or_else(|e| Err(wasmtime::format_err!("the request task failed: {e}")))
        };
        match answer {
            Ok(response) => response,
            Err(e) => {
                eprintln!("edge-host: request failed: {e:#}");
                let error = ApiError::new(ErrorKind::Internal, "the component failed to answer");
                wasi_error_response(&error)
            }
        }
    }

    /// Serves on `listener` until `shutdown` resolves, then stops accepting and lets in-flight requests finish
    /// (up to [`classify_protocol::server::SHUTDOWN_GRACE`]), like the native server.
    pub async fn serve(
        self,
        listener: TcpListener,
        limits: ConnectionLimits,
        shutdown: impl Future<Output = ()>,
    ) {
        let host = Arc::new(self);
        let service = service_fn(move |request| {
            let host = Arc::clone(&host);
            async move {
                let response = host.respond(request, limits.body_read_timeout).await;
                Ok::<_, std::convert::Infallible>(response)
            }
        });
        classify_protocol::server::serve(listener, limits, service, shutdown).await;
    }
}

fn wasi_error_response(error: &ApiError) -> hyper::Response<WasiBody> {
    error_response(error).map(|body| {
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed_unsync()
    })
}

/// The runtime the request pool's instances run on; shut down without blocking when the host goes (it may be
/// dropped on an async thread).
struct GuestRuntime(Option<tokio::runtime::Runtime>);

impl GuestRuntime {
    fn handle(&self) -> tokio::runtime::Handle {
        match &self.0 {
            Some(runtime) => runtime.handle().clone(),
            None => tokio::runtime::Handle::current(),
        }
    }
}

impl Drop for GuestRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}
