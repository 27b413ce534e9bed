//! The native server started in-process on a free port, for tests and benchmarks.

use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use clap::Parser;
use classify_native::{App, Args, serve};
use tokio::sync::oneshot;

pub struct NativeServer {
    pub base_url: String,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
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
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let base_url = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let thread = std::thread::spawn(move || {
            runtime.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => {
                        serve(listener, app, async {
                            let _ = stopped.await;
                        })
                        .await
                    }
                    Err(e) => eprintln!("cannot register the listener: {e}"),
                }
            });
        });
        Ok(NativeServer {
            base_url,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for NativeServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
