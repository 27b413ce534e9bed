//! Serves the edge component over HTTP without Spin:
//!
//! cargo run --release -p classify-tests --bin edge-host -- --component PATH.wasm --models DIR \
//!     --listen 127.0.0.1:PORT [--native-url URL]

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use classify_tests::edge_host::{EdgeHost, EdgeHostOptions};

#[derive(Parser)]
#[command(
    name = "edge-host",
    about = "Serve the classify edge component on a wasi:http host (wasmtime)"
)]
struct Args {
    /// The component to serve (target/wasm32-wasip2/release/classify_edge.wasm).
    #[arg(long, env = "EDGE_COMPONENT")]
    component: PathBuf,
    /// Directory of models, mounted read-only at /models.
    #[arg(long, env = "EDGE_MODELS")]
    models: PathBuf,
    /// Address to listen on.
    #[arg(long, env = "EDGE_LISTEN", default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// The native server for models not mounted here (the component's NATIVE_URL).
    #[arg(long, env = "NATIVE_URL")]
    native_url: Option<String>,
    /// Compilation cache directory (default: wasmtime's).
    #[arg(long, env = "EDGE_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let options = EdgeHostOptions {
        component: args.component,
        models: args.models,
        native_url: args.native_url,
        cache_dir: args.cache_dir,
    };
    let started = std::time::Instant::now();
    let host = EdgeHost::new(&options)?;
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    eprintln!(
        "edge-host: listening on http://{} (component ready in {:.2}s)",
        listener.local_addr()?,
        started.elapsed().as_secs_f64()
    );
    host.serve(listener, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await;
    Ok(())
}
