//! edge-host: serves the classify edge component over HTTP without Spin, and pre-initializes it.
//!
//! edge-host serve --component PATH.wasm [--models DIR] [--listen ADDR] [--native-url URL]
//! edge-host snapshot --component PATH.wasm --models DIR --output OUT.wasm

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use classify_edge_host::{EdgeHost, EdgeHostOptions, GuestProfiler};
use classify_protocol::server::{CONNECTION_DEFAULTS, ConnectionLimits, bind, shutdown_signal};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "edge-host",
    about = "Serve the classify edge component on a wasi:http host (wasmtime), or pre-initialize it"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the component (a wasi-http-p3 or wasi-http-p2 build, pre-initialized or not).
    Serve(ServeArgs),
    /// Write a copy of the component with every model under --models already loaded (wasmtime-wizer).
    Snapshot(SnapshotArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// The component to serve (target/wasm32-wasip2/release/classify_edge.wasm).
    #[arg(long, env = "EDGE_COMPONENT")]
    component: PathBuf,
    /// Directory of models, mounted read-only at /models. Without it nothing is mounted: a self-contained
    /// snapshot serves the models it was taken with.
    #[arg(long, env = "EDGE_MODELS")]
    models: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "EDGE_LISTEN", default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// The native server for models not mounted here (the component's NATIVE_URL).
    #[arg(long, env = "NATIVE_URL")]
    native_url: Option<String>,
    /// Compilation cache directory (default: wasmtime's).
    #[arg(long, env = "EDGE_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Requests an instance answers before a fresh one replaces it (default: reuse for ever; 1 gives every
    /// request a fresh instance, like Akamai Functions).
    #[arg(long, env = "EDGE_MAX_INSTANCE_REUSE", value_parser = clap::value_parser!(u64).range(1..))]
    max_instance_reuse: Option<u64>,
    /// The most linear memory an instance may have, in MiB, as an edge plan limits it (Akamai Functions: 128):
    /// an instance that starts with more fails, and so does a request that needs more (default: no limit).
    #[arg(long, env = "EDGE_MAX_INSTANCE_MEMORY_MIB", value_parser = clap::value_parser!(u64).range(1..=4096))]
    max_instance_memory_mib: Option<u64>,
    /// Requests the component handles at once (each busy one holds an instance); more wait their turn.
    #[arg(long, env = "EDGE_MAX_CONCURRENT_REQUESTS", default_value_t = EdgeHostOptions::DEFAULT_MAX_CONCURRENT_REQUESTS)]
    max_concurrent_requests: usize,
    /// Seconds a client may take to send a request's headers (also the keep-alive idle timeout).
    #[arg(long, env = "EDGE_HEADER_READ_TIMEOUT", default_value_t = CONNECTION_DEFAULTS.header_read_timeout.as_secs())]
    header_read_timeout: u64,
    /// Seconds a request body may stall before the request fails and its connection closes.
    #[arg(long, env = "EDGE_BODY_READ_TIMEOUT", default_value_t = CONNECTION_DEFAULTS.body_read_timeout.as_secs())]
    body_read_timeout: u64,
    /// Open connections at most; one past it is answered 503 and closed.
    #[arg(long, env = "EDGE_MAX_CONNECTIONS", default_value_t = CONNECTION_DEFAULTS.max_connections)]
    max_connections: usize,
    /// Connections the kernel queues before they are accepted (capped by net.core.somaxconn).
    #[arg(long, env = "EDGE_LISTEN_BACKLOG", default_value_t = CONNECTION_DEFAULTS.listen_backlog)]
    listen_backlog: u32,
    /// Profile the component with `perf`: write what it needs to name the guest's functions.
    #[arg(long, env = "EDGE_PROFILER", value_enum)]
    profiler: Option<GuestProfiler>,
}

#[derive(clap::Args)]
struct SnapshotArgs {
    /// The component to pre-initialize.
    #[arg(long)]
    component: PathBuf,
    /// The models to load into it: the directory that will be mounted at /models when it runs.
    #[arg(long)]
    models: PathBuf,
    /// Where to write the pre-initialized component.
    #[arg(long, short)]
    output: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve(args) => serve(args).await,
        Command::Snapshot(args) => {
            let report =
                classify_edge_host::snapshot(&args.component, &args.models, &args.output).await?;
            let mib = |bytes: u64| bytes as f64 / f64::from(1 << 20);
            eprintln!(
                "edge-host: wrote {} ({} bytes, from {} bytes) in {:.2}s; memory {:.1} MiB at start, \
                 {:.1} MiB of it data",
                args.output.display(),
                report.output_bytes,
                report.input_bytes,
                report.seconds,
                mib(report.memory.initial_memory_bytes),
                mib(report.memory.data_bytes),
            );
            Ok(())
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let options = EdgeHostOptions {
        component: args.component,
        models: args.models,
        native_url: args.native_url,
        cache_dir: args.cache_dir,
        max_instance_memory: args
            .max_instance_memory_mib
            .and_then(|mib| usize::try_from(mib << 20).ok()),
        max_instance_reuse: args
            .max_instance_reuse
            .and_then(|n| usize::try_from(n).ok()),
        max_concurrent_requests: args.max_concurrent_requests,
        profiler: args.profiler,
    };
    let started = std::time::Instant::now();
    let host = EdgeHost::new(&options)?;
    let limits = ConnectionLimits {
        header_read_timeout: Duration::from_secs(args.header_read_timeout),
        body_read_timeout: Duration::from_secs(args.body_read_timeout),
        max_connections: args.max_connections,
        listen_backlog: args.listen_backlog,
    };
    let listener = bind(
        &args.listen.ip().to_string(),
        args.listen.port(),
        limits.listen_backlog,
    )
    .await?;
    eprintln!(
        "edge-host: listening on http://{} (component ready in {:.2}s)",
        listener.local_addr()?,
        started.elapsed().as_secs_f64()
    );
    host.serve(listener, limits, shutdown_signal()).await;
    Ok(())
}
