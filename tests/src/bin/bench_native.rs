//! Load benchmark for the native server: N concurrent clients against an in-process server, once with dynamic
//! batching and once with cross-request batching disabled (`--max-batch-requests 1`), printing requests/s and
//! latency percentiles. Bounded by a request count and a time limit; only talks to 127.0.0.1.
//!
//! cargo run --release -p classify-tests --bin bench-native -- --clients 16 --requests 2000

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use classify_tests::bench::percentile_ms;
use classify_tests::client::Client;
use classify_tests::fixtures::models_dir;
use classify_tests::native::NativeServer;
use serde_json::json;

#[derive(Parser)]
struct Options {
    /// Model directory to serve.
    #[arg(long, default_value_os_t = models_dir().join("bert-sentiment"))]
    model: PathBuf,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Requests per run.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Stop a run after this many seconds even if requests remain.
    #[arg(long, default_value_t = 60)]
    max_seconds: u64,
}

const TEXTS: &[&str] = &[
    "I loved this movie, it was wonderful and the actors were great!",
    "Terrible service. I will never come back to this place again.",
    "ok",
    "The package arrived on Tuesday, a day later than promised.",
    "What a fantastic day at the beach with friends and family.",
];

struct RunResult {
    completed: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

fn run(options: &Options, flags: &[&str]) -> anyhow::Result<RunResult> {
    let server = NativeServer::start(&[options.model.as_path()], flags)?;
    let name = options
        .model
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_owned();
    let warmup = Client::new(&server.base_url);
    for text in TEXTS {
        warmup.classify(&json!({"model": name, "input": text}));
    }
    let issued = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(options.max_seconds);
    let started = Instant::now();
    let workers: Vec<_> = (0..options.clients)
        .map(|_| {
            let (issued, base, name) = (issued.clone(), server.base_url.clone(), name.clone());
            let total = options.requests;
            std::thread::spawn(move || {
                let client = Client::new(&base);
                let mut latencies = Vec::new();
                loop {
                    let n = issued.fetch_add(1, Ordering::Relaxed);
                    if n >= total || Instant::now() > deadline {
                        return latencies;
                    }
                    let sent = Instant::now();
                    client.classify(&json!({"model": name, "input": TEXTS[n % TEXTS.len()]}));
                    latencies.push(sent.elapsed());
                }
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(
            worker
                .join()
                .map_err(|_| anyhow::anyhow!("a client thread panicked"))?,
        );
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    Ok(RunResult {
        completed: latencies.len(),
        elapsed,
        latencies,
    })
}

fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    println!(
        "model {} | {} clients | {} requests per run | one input per request",
        options.model.display(),
        options.clients,
        options.requests
    );
    println!(
        "{:<22} {:>9} {:>10} {:>10} {:>10}",
        "mode", "requests", "req/s", "p50 ms", "p99 ms"
    );
    for (mode, flags) in [
        ("dynamic batching", &[][..]),
        ("no batching", &["--max-batch-requests", "1"][..]),
    ] {
        let result = run(&options, flags)?;
        println!(
            "{:<22} {:>9} {:>10.1} {:>10.2} {:>10.2}",
            mode,
            result.completed,
            result.completed as f64 / result.elapsed.as_secs_f64(),
            percentile_ms(&result.latencies, 0.50),
            percentile_ms(&result.latencies, 0.99)
        );
    }
    Ok(())
}
