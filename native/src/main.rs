use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use classify_native::{App, Args, serve};
use classify_protocol::server::{bind, shutdown_signal};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let app = Arc::new(tokio::task::block_in_place(|| App::load(&args))?);
    let backlog = app.connection_limits().listen_backlog;
    let listener = bind(&args.host, args.port, backlog).await?;
    let address: SocketAddr = listener.local_addr()?;
    tracing::info!(%address, "listening");
    serve(listener, app, shutdown_signal()).await;
    Ok(())
}
