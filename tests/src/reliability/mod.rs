//! The reliability suite's plumbing: a server of either deployment run as a child process (so that it can get a
//! lowered descriptor limit, be measured through /proc and be sent SIGTERM), a raw HTTP/1.1 exchange that tells
//! resets from timeouts, and the figures each case prints. The cases are in `cases.rs`; the `reliability` binary
//! runs them.

pub mod cases;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::bench::percentile_ms;
use crate::edge::{Build, component};
use crate::fixtures::models_dir;

/// The model every case serves.
pub const MODEL: &str = "bert-sentiment";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Deployment {
    Native,
    Edge,
}

/// How a case starts its server.
#[derive(Debug, Clone, Default)]
pub struct Launch {
    pub flags: Vec<String>,
    pub env: Vec<(String, String)>,
    /// `ulimit -n` for the server process.
    pub max_files: Option<u32>,
    /// The edge's `--native-url`.
    pub native_url: Option<String>,
}

/// A server process, killed on drop.
pub struct Server {
    pub address: SocketAddr,
    child: Child,
    log: PathBuf,
}

impl Server {
    pub fn start(deployment: Deployment, launch: &Launch) -> anyhow::Result<Server> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let address: SocketAddr = ([127, 0, 0, 1], port).into();
        let bin = binaries_dir()?;
        let mut argv: Vec<String> = match deployment {
            Deployment::Native => vec![
                bin.join("classify-native").display().to_string(),
                "--model".into(),
                models_dir().join(MODEL).display().to_string(),
                "--port".into(),
                port.to_string(),
            ],
            Deployment::Edge => {
                let mut argv = vec![
                    bin.join("edge-host").display().to_string(),
                    "serve".into(),
                    "--component".into(),
                    component(Build::P3)?.display().to_string(),
                    "--models".into(),
                    one_model_dir()?.display().to_string(),
                    "--listen".into(),
                    address.to_string(),
                ];
                if let Some(url) = &launch.native_url {
                    argv.extend(["--native-url".into(), url.clone()]);
                }
                argv
            }
        };
        argv.extend(launch.flags.iter().cloned());
        let log = std::env::temp_dir().join(format!("classify-reliability-{port}.log"));
        let quoted: Vec<String> = argv.iter().map(|a| format!("'{a}'")).collect();
        let limit = launch
            .max_files
            .map_or(String::new(), |n| format!("ulimit -n {n} && "));
        // The native server logs to stdout, edge-host to stderr: both go to the log.
        let output = std::fs::File::create(&log)?;
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!("{limit}exec {}", quoted.join(" ")))
            .envs(launch.env.iter().cloned())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(output.try_clone()?)
            .stderr(output)
            .spawn()?;
        let mut server = Server {
            address,
            child,
            log,
        };
        server.wait_healthy(Duration::from_secs(120))?;
        Ok(server)
    }

    fn wait_healthy(&mut self, within: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        while started.elapsed() < within {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!("the server exited ({status}): {}", self.log_text());
            }
            let answer = runtime.block_on(exchange(
                self.address,
                &get("/health"),
                Duration::from_secs(5),
            ));
            if answer.status() == Some(200) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        anyhow::bail!("no /health 200 within {within:?}: {}", self.log_text())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The server's memory and descriptors now.
    pub fn probe(&self) -> Probe {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let kib = |key: &str| {
            status
                .lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let fds = std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map_or(0, |entries| entries.count());
        Probe {
            rss_mib: kib("VmRSS:") as f64 / 1024.0,
            peak_rss_mib: kib("VmHWM:") as f64 / 1024.0,
            fds,
        }
    }

    /// Waits (up to `within`) until the server holds at most `fds` descriptors; the probe then and how long it
    /// took. Connections whose clients are gone may stay open while their queued requests finish.
    pub fn settle(&self, fds: usize, within: Duration) -> (Probe, Duration) {
        let started = Instant::now();
        loop {
            let probe = self.probe();
            if probe.fds <= fds || started.elapsed() >= within {
                return (probe, started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// CPU seconds the server has used (user + system).
    pub fn cpu_seconds(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        // Fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or("", |(_, rest)| rest)
            .split_whitespace()
            .collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        // utime and stime are fields 14 and 15 of the line, 11 and 12 after the name; 100 ticks a second.
        (ticks(11) + ticks(12)) / 100.0
    }

    /// Sends SIGTERM and waits (up to `within`) for the process to exit; the exit status and how long it took.
    pub fn terminate(&mut self, within: Duration) -> anyhow::Result<(bool, Duration)> {
        let started = Instant::now();
        Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()?;
        while started.elapsed() < within {
            if let Some(status) = self.child.try_wait()? {
                return Ok((status.success(), started.elapsed()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        anyhow::bail!("still running {within:?} after SIGTERM")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

static SERVERS_DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Serve with the `classify-native` and `edge-host` in `dir` (another build or version) instead of the suite's own.
pub fn use_servers_in(dir: PathBuf) {
    let _ = SERVERS_DIR.set(dir);
}

/// The server binaries: those of [`use_servers_in`], else next to the running suite (see [`build_servers`]).
fn binaries_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = SERVERS_DIR.get() {
        return Ok(dir.clone());
    }
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .ok_or_else(|| anyhow::anyhow!("no directory"))?;
    Ok(dir.to_path_buf())
}

/// Builds the server binaries in the suite's profile (a no-op when they are up to date).
pub fn build_servers() -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(cargo);
    command.args([
        "build",
        "-p",
        "classify-native",
        "-p",
        "classify-edge-host",
        "--bins",
    ]);
    if !cfg!(debug_assertions) {
        command.arg("--release");
    }
    let status = command.status()?;
    anyhow::ensure!(status.success(), "building the servers failed ({status})");
    Ok(())
}

/// A directory that holds only [`MODEL`], for the edge (which loads every mounted model).
fn one_model_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join("classify-reliability-models");
    let target = dir.join(MODEL);
    if !target.exists() {
        std::fs::create_dir_all(&target)?;
        copy_dir(&models_dir().join(MODEL), &target)?;
    }
    Ok(dir)
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let destination = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            std::fs::create_dir_all(&destination)?;
            copy_dir(&entry.path(), &destination)?;
        } else {
            std::fs::copy(entry.path(), destination)?;
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Probe {
    pub rss_mib: f64,
    pub peak_rss_mib: f64,
    pub fds: usize,
}

/// What one exchange came to.
#[derive(Debug)]
pub enum Answer {
    Response {
        status: u16,
        body: Vec<u8>,
        elapsed: Duration,
    },
    /// The server reset or refused the connection.
    Reset(Duration),
    /// Closed without an answer.
    Closed(Duration),
    TimedOut,
    Failed(String),
}

impl Answer {
    pub fn status(&self) -> Option<u16> {
        match self {
            Answer::Response { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The status, or what happened instead, for counting.
    pub fn outcome(&self) -> String {
        match self {
            Answer::Response { status, .. } => status.to_string(),
            Answer::Reset(_) => "reset".into(),
            Answer::Closed(_) => "closed".into(),
            Answer::TimedOut => "timeout".into(),
            Answer::Failed(e) => format!("error: {e}"),
        }
    }

    pub fn elapsed(&self) -> Option<Duration> {
        match self {
            Answer::Response { elapsed, .. } | Answer::Reset(elapsed) | Answer::Closed(elapsed) => {
                Some(*elapsed)
            }
            _ => None,
        }
    }

    pub fn json(&self) -> serde_json::Value {
        match self {
            Answer::Response { body, .. } => serde_json::from_slice(body).unwrap_or_default(),
            _ => serde_json::Value::Null,
        }
    }
}

/// Sends `request` on a new connection and reads the answer until the server closes it (every request the
/// suite sends says `Connection: close`).
pub async fn exchange(address: SocketAddr, request: &[u8], timeout: Duration) -> Answer {
    let started = Instant::now();
    let attempt = async {
        let mut stream = TcpStream::connect(address).await?;
        stream.write_all(request).await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    match tokio::time::timeout(timeout, attempt).await {
        Err(_) => Answer::TimedOut,
        Ok(Err(e)) if is_reset(&e) => Answer::Reset(started.elapsed()),
        Ok(Err(e)) => Answer::Failed(e.to_string()),
        Ok(Ok(bytes)) => parse_answer(&bytes, started.elapsed()),
    }
}

pub fn is_reset(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::BrokenPipe
    )
}

fn parse_answer(bytes: &[u8], elapsed: Duration) -> Answer {
    let Some(split) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Answer::Closed(elapsed);
    };
    let head = String::from_utf8_lossy(&bytes[..split]);
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let chunked = head.lines().any(|line| {
        line.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = &bytes[split + 4..];
    Answer::Response {
        status,
        body: if chunked {
            dechunk(body)
        } else {
            body.to_vec()
        },
        elapsed,
    }
}

/// The data of a chunked body (edge-host answers in chunks).
fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut data = Vec::new();
    while let Some(end) = body.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&body[..end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok());
        let Some(size) = size.filter(|&n| n > 0) else {
            break;
        };
        let start = end + 2;
        let Some(chunk) = body.get(start..start + size) else {
            break;
        };
        data.extend_from_slice(chunk);
        body = body.get(start + size + 2..).unwrap_or_default();
    }
    data
}

pub fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: classify\r\nConnection: close\r\n\r\n").into_bytes()
}

pub fn post(path: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: classify\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

/// Counts of outcomes and latencies of one batch of exchanges.
#[derive(Debug, Default)]
pub struct Tally {
    pub outcomes: BTreeMap<String, usize>,
    pub latencies: Vec<Duration>,
}

impl Tally {
    pub fn add(&mut self, answer: &Answer) {
        *self.outcomes.entry(answer.outcome()).or_default() += 1;
        if let Some(elapsed) = answer.elapsed() {
            self.latencies.push(elapsed);
        }
    }

    pub fn total(&self) -> usize {
        self.outcomes.values().sum()
    }

    pub fn count(&self, outcome: &str) -> usize {
        self.outcomes.get(outcome).copied().unwrap_or(0)
    }

    /// Answers with a 5xx status.
    pub fn server_errors(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|(k, _)| k.starts_with('5') && k.len() == 3)
            .map(|(_, n)| n)
            .sum()
    }

    /// Outcomes other than those listed.
    pub fn others(&self, allowed: &[&str]) -> usize {
        self.outcomes
            .iter()
            .filter(|(k, _)| !allowed.contains(&k.as_str()))
            .map(|(_, n)| n)
            .sum()
    }

    /// The `quantile` (0..=1) of the latencies, in ms.
    pub fn p(&mut self, quantile: f64) -> f64 {
        self.latencies.sort();
        percentile_ms(&self.latencies, quantile)
    }

    /// `n=…, {outcome: count}, p50/p99`.
    pub fn summary(&mut self) -> String {
        let counts: Vec<String> = self
            .outcomes
            .iter()
            .map(|(k, v)| format!("{k}×{v}"))
            .collect();
        format!(
            "n={} [{}] p50 {:.1} ms p99 {:.1} ms",
            self.total(),
            counts.join(" "),
            self.p(0.5),
            self.p(0.99)
        )
    }
}
