//! The native server started in-process on a free port, for tests and benchmarks.

use std::path::Path;
use std::sync::Arc;

use clap::Parser;
use classify_native::{App, Args, serve};

use crate::server_thread::ServerThread;

pub struct NativeServer {
    pub base_url: String,
    _server: ServerThread,
}

impl NativeServer {
    /// Serves `models` (served under their directory names) with extra command-line flags.
    pub fn start(models: &[&Path], flags: &[&str]) -> anyhow::Result<NativeServer> {
        let mut argv: Vec<String> = vec!["classify-native".into()];
        for model in models {
            argv.push("--model".into());
            argv.push(model.display().to_string());
        }
        argv.extend(flags.iter().map(|f| f.to_string()));
        let args = Args::try_parse_from(argv)?;
        let app = Arc::new(App::load(&args)?);
        let server = ServerThread::spawn(move |listener, stopped| async move {
            serve(listener, app, async {
                let _ = stopped.await;
            })
            .await
        })?;
        Ok(NativeServer {
            base_url: server.base_url.clone(),
            _server: server,
        })
    }
}
