//! The edge component served in-process by [`EdgeHost`], for tests and benchmarks.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::edge_host::{EdgeHost, EdgeHostOptions};
use crate::server_thread::ServerThread;

/// Builds the edge component for wasm32-wasip2 (release, SIMD) once per process — the README's build command, so
/// after `.ci/run` has run it this is a no-op — and returns the .wasm path.
pub fn component() -> anyhow::Result<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            let target_dir = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| workspace.join("target"));
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
            let status = std::process::Command::new(cargo)
                .current_dir(&workspace)
                .args([
                    "build",
                    "--release",
                    "-p",
                    "classify-edge",
                    "--target",
                    "wasm32-wasip2",
                ])
                .arg("--target-dir")
                .arg(&target_dir)
                .status()
                .map_err(|e| format!("cannot run cargo: {e}"))?;
            if !status.success() {
                return Err(format!("building the edge component failed ({status})"));
            }
            Ok(target_dir
                .join("wasm32-wasip2")
                .join("release")
                .join("classify_edge.wasm"))
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

pub struct EdgeServer {
    pub base_url: String,
    _server: ServerThread,
}

impl EdgeServer {
    /// Serves the component with `models` mounted at /models and, optionally, a native server to forward to.
    pub fn start(models: &Path, native_url: Option<&str>) -> anyhow::Result<EdgeServer> {
        let options = EdgeHostOptions {
            component: component()?,
            models: models.to_path_buf(),
            native_url: native_url.map(str::to_owned),
            cache_dir: Some(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/edge-host-cache"),
            ),
        };
        EdgeServer::serve(EdgeHost::new(&options)?)
    }

    /// Serves an already compiled host on a free loopback port.
    pub fn serve(host: EdgeHost) -> anyhow::Result<EdgeServer> {
        let server = ServerThread::spawn(move |listener, stopped| async move {
            host.serve(listener, async {
                let _ = stopped.await;
            })
            .await
        })?;
        Ok(EdgeServer {
            base_url: server.base_url.clone(),
            _server: server,
        })
    }
}
