//! The edge component, built in each of its wasi:http flavours, and served in-process by edge-host.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use classify_edge_host::{EdgeHost, EdgeHostOptions};

use crate::server_thread::ServerThread;

/// The component builds, one per wasi:http version (edge/Cargo.toml's features).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Build {
    /// `wasi:http@0.3.0-rc-2026-03-15`: what spin.toml builds (the README's build command).
    P3Rc,
    /// `wasi:http@0.3.0`: edge-host, Spin >= 4.1.
    P3,
    /// `wasi:http@0.2`: every Spin, wasmtime serve, edge-host.
    P2,
}

impl Build {
    pub const ALL: [Build; 3] = [Build::P3Rc, Build::P3, Build::P2];

    pub fn feature(self) -> &'static str {
        match self {
            Build::P3Rc => "wasi-http-p3-rc",
            Build::P3 => "wasi-http-p3",
            Build::P2 => "wasi-http-p2",
        }
    }

    fn cargo_args(self, package: &'static str) -> Vec<&'static str> {
        let mut args = vec![
            "build",
            "--release",
            "-p",
            package,
            "--target",
            "wasm32-wasip2",
        ];
        if self != Build::P3Rc {
            args.extend(["--no-default-features", "--features", self.feature()]);
        }
        args
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
}

/// Builds `build` for wasm32-wasip2 (release, SIMD) once per process and returns a copy of the .wasm that later
/// builds of other flavours do not overwrite. The default build is the README's command, so after `.ci/run` has
/// run it that one is a no-op. A file lock keeps test processes from copying each other's artifact.
pub fn component(build: Build) -> anyhow::Result<PathBuf> {
    built("classify-edge", build)
}

/// The example that calls the component in-process (edge/examples/comment-filter), as [`component`] builds it;
/// it has the `P3Rc` and `P3` builds.
pub fn comment_filter(build: Build) -> anyhow::Result<PathBuf> {
    built("classify-comment-filter", build)
}

fn built(package: &'static str, build: Build) -> anyhow::Result<PathBuf> {
    static BUILT: Mutex<Vec<(&str, Build, PathBuf)>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    if let Some((_, _, path)) = built.iter().find(|(p, b, _)| *p == package && *b == build) {
        return Ok(path.clone());
    }
    let target = target_dir();
    let copies = target.join("edge-components");
    std::fs::create_dir_all(&copies)?;
    let lock = std::fs::File::create(copies.join(".lock"))?;
    lock.lock()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = std::process::Command::new(cargo)
        .current_dir(workspace())
        .args(build.cargo_args(package))
        .arg("--target-dir")
        .arg(&target)
        .status()
        .map_err(|e| anyhow::anyhow!("cannot run cargo: {e}"))?;
    anyhow::ensure!(
        status.success(),
        "building {package} ({}) failed ({status})",
        build.feature()
    );
    let file = package.replace('-', "_");
    let artifact = target.join(format!("wasm32-wasip2/release/{file}.wasm"));
    let copy = copies.join(format!("{file}-{}.wasm", build.feature()));
    std::fs::copy(&artifact, &copy)?;
    lock.unlock()?;
    built.push((package, build, copy.clone()));
    Ok(copy)
}

/// `build` pre-initialized with the models under `models` (edge-host snapshot), once per process.
pub fn snapshot(build: Build, models: &Path) -> anyhow::Result<PathBuf> {
    static TAKEN: OnceLock<Mutex<Vec<(Build, PathBuf, PathBuf)>>> = OnceLock::new();
    let mut taken = TAKEN
        .get_or_init(Mutex::default)
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?;
    if let Some((_, _, path)) = taken.iter().find(|(b, m, _)| *b == build && m == models) {
        return Ok(path.clone());
    }
    let component = component(build)?;
    let models_id = {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        models.hash(&mut hasher);
        hasher.finish()
    };
    let output = component.with_file_name(format!(
        "classify_edge-{}-snapshot-{models_id:016x}.wasm",
        build.feature()
    ));
    // Written aside and renamed, so a process reading `output` never sees half of it.
    let partial = output.with_extension(format!("wasm.{}", std::process::id()));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(classify_edge_host::snapshot(&component, models, &partial))?;
    std::fs::rename(&partial, &output)?;
    taken.push((build, models.to_path_buf(), output.clone()));
    Ok(output)
}

/// edge-host's defaults for `component` with `models` mounted (none: nothing), compiled through the tests' cache.
pub fn host_options(component: &Path, models: Option<&Path>) -> EdgeHostOptions {
    EdgeHostOptions {
        component: component.to_path_buf(),
        models: models.map(Path::to_path_buf),
        native_url: None,
        cache_dir: Some(target_dir().join("edge-host-cache")),
        max_instance_reuse: None,
        max_instance_memory: None,
        max_concurrent_requests: EdgeHostOptions::DEFAULT_MAX_CONCURRENT_REQUESTS,
        profiler: None,
    }
}

pub struct EdgeServer {
    pub base_url: String,
    _server: ServerThread,
}

impl EdgeServer {
    /// Serves the `wasi-http-p3` build with `models` mounted at /models and, optionally, a native server to
    /// forward to.
    pub fn start(models: &Path, native_url: Option<&str>) -> anyhow::Result<EdgeServer> {
        EdgeServer::start_component(&component(Build::P3)?, Some(models), native_url, None)
    }

    /// Serves `component` with `models` mounted at /models (none: a self-contained snapshot); `max_instance_reuse`
    /// as edge-host's flag.
    pub fn start_component(
        component: &Path,
        models: Option<&Path>,
        native_url: Option<&str>,
        max_instance_reuse: Option<usize>,
    ) -> anyhow::Result<EdgeServer> {
        let options = EdgeHostOptions {
            native_url: native_url.map(str::to_owned),
            max_instance_reuse,
            ..host_options(component, models)
        };
        EdgeServer::serve(EdgeHost::new(&options)?)
    }

    /// Serves an already compiled host on a free loopback port.
    pub fn serve(host: EdgeHost) -> anyhow::Result<EdgeServer> {
        let server = ServerThread::spawn(move |listener, stopped| async move {
            let limits = classify_protocol::server::ConnectionLimits::default();
            host.serve(listener, limits, async {
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

/// `wac plug` (crates.io `wac-cli`) of `plug` into `socket`'s imports: the composed component, or why there is
/// none (no `wac` on the PATH or in `WAC`). Panics when `wac` fails.
pub fn wac_plug(socket: &Path, plug: &Path) -> Result<PathBuf, String> {
    let wac = std::env::var_os("WAC").unwrap_or_else(|| "wac".into());
    let composed = socket.with_extension("composed.wasm");
    let output = std::process::Command::new(&wac)
        .arg("plug")
        .arg(socket)
        .arg("--plug")
        .arg(plug)
        .arg("-o")
        .arg(&composed)
        .output()
        .map_err(|e| {
            format!(
                "no wac ({e}): `cargo install wac-cli --locked --no-default-features` (or set WAC)"
            )
        })?;
    if !output.status.success() {
        panic!(
            "wac plug failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(composed)
}
