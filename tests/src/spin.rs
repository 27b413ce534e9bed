//! The edge component under a real Spin (`spin up`), for the tests that must see what users run. The binary
//! comes from `SPIN`, else `../shared/tools/spin` next to the checkout; without one, [`spin_binary`] says why
//! and the tests that need it return early (they never fail for a missing Spin).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A fresh Spin compiles the ~20 MB component before it listens (1-2 minutes on 2 cores, cached afterwards).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(600);

/// The Spin CLI to test under, or the reason there is none.
pub fn spin_binary() -> Result<PathBuf, String> {
    spin_from("SPIN", "spin")
}

/// Spin 4.1 (accepts wasi:http 0.3.0 final as well as the release candidate): `SPIN_4_1`, else
/// `../shared/tools/spin-4.1`.
pub fn spin_4_1_binary() -> Result<PathBuf, String> {
    spin_from("SPIN_4_1", "spin-4.1")
}

fn spin_from(variable: &str, tool: &str) -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(variable) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("{variable}={} is not a file", path.display()))
        };
    }
    let default = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/tools")
        .join(tool);
    if default.is_file() {
        Ok(default)
    } else {
        Err(format!(
            "no Spin binary: set {variable} or provide {}",
            default.display()
        ))
    }
}

/// Prints why a Spin test is skipped, once per reason and process.
pub fn skip(reason: &str) {
    eprintln!("skipping the test under Spin: {reason}");
}

/// `spin up` on a copy of the repo's spin.toml with `component` as the source, `models` mounted at `/models`
/// and, when given, `native_url` as NATIVE_URL (and allowed outbound). Stopped on drop, and when the test
/// process exits (a watchdog shell kills it when its parent is gone).
pub struct SpinServer {
    pub base_url: String,
    child: Child,
    _dir: TempDir,
}

impl SpinServer {
    pub fn start(
        spin: &Path,
        component: &Path,
        models: &Path,
        native_url: Option<&str>,
        extra_args: &[&str],
    ) -> anyhow::Result<SpinServer> {
        SpinServer::start_app(
            spin,
            &manifest_for(component, native_url, true)?,
            Some(models),
            extra_args,
        )
    }

    /// `spin up` of `component`, a self-contained snapshot, in the repo's spin.toml without its `files`.
    pub fn start_self_contained(
        spin: &Path,
        component: &Path,
        extra_args: &[&str],
    ) -> anyhow::Result<SpinServer> {
        let manifest = manifest_for(component, None, false)?;
        SpinServer::start_app(spin, &manifest, None, extra_args)
    }

    /// `spin up` of `manifest` (its text), with `models` (if any) linked as `models` beside it.
    pub fn start_app(
        spin: &Path,
        manifest: &str,
        models: Option<&Path>,
        extra_args: &[&str],
    ) -> anyhow::Result<SpinServer> {
        let dir = TempDir::new("classify-spin")?;
        // Spin mounts only files inside the application's directory: the models get there through a link.
        if let Some(models) = models {
            std::os::unix::fs::symlink(models.canonicalize()?, dir.0.join("models"))?;
        }
        let manifest_path = dir.0.join("spin.toml");
        std::fs::write(&manifest_path, manifest)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let listen = format!("127.0.0.1:{port}");
        let script = r#"parent=$1; shift; "$@" & spin=$!
            trap 'kill $spin 2>/dev/null' TERM INT
            while kill -0 "$parent" 2>/dev/null && kill -0 "$spin" 2>/dev/null; do sleep 0.5; done
            kill $spin 2>/dev/null; wait $spin"#;
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(std::process::id().to_string())
            .arg(spin)
            .args(["up", "--from"])
            .arg(&manifest_path)
            .args(["--listen", &listen])
            .args(extra_args)
            .current_dir(&dir.0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.0.join("spin.stderr"))?);
        let child = command.spawn()?;
        let mut server = SpinServer {
            base_url: format!("http://{listen}"),
            child,
            _dir: dir,
        };
        server.wait_until_listening()?;
        Ok(server)
    }

    fn wait_until_listening(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(30))
            .build();
        while started.elapsed() < STARTUP_TIMEOUT {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!(
                    "spin up exited ({status}) before serving; see {}",
                    self.logs()
                );
            }
            match agent.get(&format!("{}/health", self.base_url)).call() {
                Ok(_) | Err(ureq::Error::Status(..)) => return Ok(()),
                Err(_) => std::thread::sleep(Duration::from_millis(250)),
            }
        }
        anyhow::bail!(
            "spin up did not listen within {STARTUP_TIMEOUT:?}; see {}",
            self.logs()
        )
    }

    fn logs(&self) -> String {
        self._dir.0.join(".spin/logs").display().to_string()
    }
}

impl Drop for SpinServer {
    fn drop(&mut self) {
        // SIGTERM to the watchdog shell, which stops Spin.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// The repo's spin.toml with the test's component, the `models` link beside it mounted (or nothing mounted) and
/// the native server.
fn manifest_for(
    component: &Path,
    native_url: Option<&str>,
    mount_models: bool,
) -> anyhow::Result<String> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../spin.toml");
    let mut manifest: toml::Table = std::fs::read_to_string(&repo)?.parse()?;
    let component_table = manifest
        .get_mut("component")
        .and_then(|c| c.get_mut("classify-edge"))
        .and_then(toml::Value::as_table_mut)
        .ok_or_else(|| anyhow::anyhow!("spin.toml has no [component.classify-edge]"))?;
    let source = component.canonicalize()?.display().to_string();
    component_table.insert("source".into(), source.into());
    component_table.remove("files");
    if mount_models {
        let mut mount = toml::Table::new();
        mount.insert("source".into(), "models".into());
        mount.insert("destination".into(), "/models".into());
        component_table.insert("files".into(), toml::Value::Array(vec![mount.into()]));
    }
    let mut environment = toml::Table::new();
    let mut outbound = Vec::new();
    if let Some(url) = native_url {
        environment.insert("NATIVE_URL".into(), url.into());
        outbound.push(toml::Value::String(url.to_owned()));
    }
    component_table.insert("environment".into(), environment.into());
    component_table.insert("allowed_outbound_hosts".into(), outbound.into());
    component_table.remove("build");
    Ok(toml::to_string(&manifest)?)
}

/// The repo's spin-comment-filter.toml with the test's builds of the example (`filter`) and of the classify
/// component (`classify`, as the HTTP component and as the example's dependency).
pub fn comment_filter_manifest(filter: &Path, classify: &Path) -> anyhow::Result<String> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../spin-comment-filter.toml");
    let mut manifest: toml::Table = std::fs::read_to_string(&repo)?.parse()?;
    let classify = classify.canonicalize()?.display().to_string();
    let components = manifest
        .get_mut("component")
        .and_then(toml::Value::as_table_mut)
        .ok_or_else(|| anyhow::anyhow!("spin-comment-filter.toml has no components"))?;
    for (name, source) in [
        ("classify-edge", classify.clone()),
        (
            "comment-filter",
            filter.canonicalize()?.display().to_string(),
        ),
    ] {
        let component = components
            .get_mut(name)
            .and_then(toml::Value::as_table_mut)
            .ok_or_else(|| anyhow::anyhow!("spin-comment-filter.toml has no [component.{name}]"))?;
        component.insert("source".into(), source.into());
        component.remove("build");
        if let Some(dependencies) = component
            .get_mut("dependencies")
            .and_then(toml::Value::as_table_mut)
        {
            for (_, dependency) in dependencies.iter_mut() {
                if let Some(dependency) = dependency.as_table_mut() {
                    dependency.insert("path".into(), classify.clone().into());
                }
            }
        }
    }
    Ok(toml::to_string(&manifest)?)
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(prefix: &str) -> std::io::Result<TempDir> {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("{prefix}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
