//! Load benchmark for the native server: N concurrent clients against an in-process server, once with dynamic
//! batching and once with cross-request batching disabled (`--max-batch-requests 1`), printing requests/s,
//! inputs/s and latency percentiles, for two loads: classify with one text per request, and rerank with one
//! query × 100 documents per request (a cross-encoder; documents/s). Bounded by a request count and a time
//! limit; only talks to 127.0.0.1. First it times the classify model's forward pass alone (no HTTP, no
//! tokenization, no queue) on padded batches of 16 of the same texts, as `tests/bench/encoders_cpu.py` times
//! PyTorch and onnxruntime.
//!
//! cargo run --release -p classify-tests --bin bench-native -- --clients 16 --requests 2000

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use classify_native::device::{DTypeChoice, DeviceChoice, Placement};
use classify_protocol::{ModelFiles, TokenSequence};
use classify_tests::bench::percentile_ms;
use classify_tests::client::Client;
use classify_tests::fixtures::models_dir;
use classify_tests::native::NativeServer;
use serde_json::json;

#[derive(Parser)]
struct Options {
    /// Model directory to serve for the one-text load.
    #[arg(long, default_value_os_t = models_dir().join("bert-sentiment"))]
    model: PathBuf,
    /// The one-text load's route: `classify`, or `token-classify` (entities, aggregation "simple") for a token
    /// classifier.
    #[arg(long, value_enum, default_value_t = Route::Classify)]
    route: Route,
    /// Cross-encoder (one label) to serve for the rerank load.
    #[arg(long, default_value_os_t = models_dir().join("bert-score"))]
    rerank_model: PathBuf,
    /// Documents per rerank request.
    #[arg(long, default_value_t = 100)]
    documents: usize,
    /// Rerank requests per run (0: no rerank load).
    #[arg(long, default_value_t = 200)]
    rerank_requests: usize,
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

#[derive(Clone, Copy, clap::ValueEnum)]
enum Route {
    Classify,
    TokenClassify,
}

impl Route {
    fn path(self) -> &'static str {
        match self {
            Route::Classify => "/v1/classify",
            Route::TokenClassify => "/v1/token-classify",
        }
    }
}

#[derive(Clone, Copy)]
enum Load {
    /// One text per request to this route.
    OneText(Route),
    /// One query against `documents` texts per rerank request.
    Rerank { documents: usize },
}

impl Load {
    fn body(self, name: &str, n: usize) -> (&'static str, serde_json::Value) {
        match self {
            Load::OneText(route) => (
                route.path(),
                json!({"model": name, "input": TEXTS[n % TEXTS.len()]}),
            ),
            Load::Rerank { documents } => {
                let documents: Vec<&str> = (0..documents)
                    .map(|i| TEXTS[(n + i) % TEXTS.len()])
                    .collect();
                (
                    "/v1/rerank",
                    json!({"model": name, "query": "Was the movie good?", "documents": documents}),
                )
            }
        }
    }

    fn inputs(self) -> usize {
        match self {
            Load::OneText(_) => 1,
            Load::Rerank { documents } => documents,
        }
    }
}

struct RunResult {
    completed: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    /// Sequences per forward pass, on average, from the server's `classify_batch_sequences` histogram.
    mean_batch: f64,
}

/// The sum and count of the `classify_batch_sequences` histogram on `/metrics`, over every model. The recorder
/// is process-wide, so servers started one after another in this process add to the same histogram.
fn batch_sequences(client: &Client) -> (f64, f64) {
    let text = client.get("/metrics").text;
    let total = |suffix: &str| {
        text.lines()
            .filter(|line| line.starts_with(&format!("classify_batch_sequences_{suffix}")))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    (total("sum"), total("count"))
}

fn run(
    options: &Options,
    model: &std::path::Path,
    load: Load,
    total: usize,
    flags: &[&str],
) -> anyhow::Result<RunResult> {
    let server = NativeServer::start(&[model], flags)?;
    let name = model
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_owned();
    let warmup = Client::new(&server.base_url);
    for n in 0..TEXTS.len() {
        let (path, body) = load.body(&name, n);
        let reply = warmup.post(path, &body);
        anyhow::ensure!(reply.status == 200, "{path}: {}", reply.text);
    }
    let batches_before = batch_sequences(&warmup);
    let issued = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(options.max_seconds);
    let started = Instant::now();
    let workers: Vec<_> = (0..options.clients)
        .map(|_| {
            let (issued, base, name) = (issued.clone(), server.base_url.clone(), name.clone());
            std::thread::spawn(move || {
                let client = Client::new(&base);
                let mut latencies = Vec::new();
                loop {
                    let n = issued.fetch_add(1, Ordering::Relaxed);
                    if n >= total || Instant::now() > deadline {
                        return latencies;
                    }
                    let (path, body) = load.body(&name, n);
                    let sent = Instant::now();
                    let reply = client.post(path, &body);
                    if reply.status != 200 {
                        eprintln!("{path}: {}", reply.text);
                        return latencies;
                    }
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
    let batches_after = batch_sequences(&warmup);
    latencies.sort_unstable();
    Ok(RunResult {
        completed: latencies.len(),
        elapsed,
        latencies,
        mean_batch: (batches_after.0 - batches_before.0)
            / (batches_after.1 - batches_before.1).max(1.0),
    })
}

/// Sequences per forward pass in [`forward_throughput`], as in `tests/bench/encoders_cpu.py`.
const FORWARD_BATCH: usize = 16;
const FORWARD_SECONDS: f64 = 10.0;

/// Sequences/s of the model's forward pass on the CPU over padded batches of the texts.
fn forward_throughput(model: &std::path::Path) -> anyhow::Result<f64> {
    let placement = Placement::choose(DeviceChoice::Cpu, DTypeChoice::Auto)?;
    let loaded = classify_native::models::load("bench", model, &placement)?;
    let files = ModelFiles::read(model).map_err(anyhow::Error::msg)?;
    let batch = (0..FORWARD_BATCH)
        .map(|i| {
            let ids = files.tokenizer.encode(TEXTS[i % TEXTS.len()], true, None);
            ids.map(TokenSequence::single).map_err(anyhow::Error::msg)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let batch = batch.iter().collect::<Vec<_>>();
    loaded.engine.forward(&batch)?;
    let (started, mut done) = (Instant::now(), 0);
    while started.elapsed().as_secs_f64() < FORWARD_SECONDS {
        loaded.engine.forward(&batch)?;
        done += batch.len();
    }
    Ok(done as f64 / started.elapsed().as_secs_f64())
}

fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    println!(
        "forward pass alone, CPU, padded batches of {FORWARD_BATCH}: {:.1} sequences/s",
        forward_throughput(&options.model)?
    );
    println!("{} clients", options.clients);
    println!(
        "{:<46} {:>9} {:>10} {:>11} {:>10} {:>10} {:>11}",
        "load / mode", "requests", "req/s", "inputs/s", "p50 ms", "p99 ms", "mean batch"
    );
    let loads = [
        (
            options.route.path().trim_start_matches("/v1/"),
            &options.model,
            Load::OneText(options.route),
            options.requests,
        ),
        (
            "rerank, 1 query x documents",
            &options.rerank_model,
            Load::Rerank {
                documents: options.documents,
            },
            options.rerank_requests,
        ),
    ];
    for (label, model, load, total) in loads {
        if total == 0 {
            continue;
        }
        for (mode, flags) in [
            ("batching", &[][..]),
            ("no batching", &["--max-batch-requests", "1"][..]),
        ] {
            let result = run(&options, model, load, total, flags)?;
            let per_second = result.completed as f64 / result.elapsed.as_secs_f64();
            println!(
                "{:<46} {:>9} {:>10.1} {:>11.1} {:>10.2} {:>10.2} {:>11.1}",
                format!("{label}, {} input(s) / {mode}", load.inputs()),
                result.completed,
                per_second,
                per_second * load.inputs() as f64,
                percentile_ms(&result.latencies, 0.50),
                percentile_ms(&result.latencies, 0.99),
                result.mean_batch
            );
        }
    }
    println!(
        "models: classify {}, rerank {}",
        options.model.display(),
        options.rerank_model.display()
    );
    Ok(())
}
