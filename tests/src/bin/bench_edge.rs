//! Edge latency benchmark (run by tests/bench/edge.sh): the component in edge-host — compile, first request on a
//! new instance, warm requests — next to the same ONNX model run natively with tract. Loopback only, bounded.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use classify_edge::registry::EdgeModels;
use classify_edge_host::{EdgeHost, EdgeHostOptions};
use classify_tests::bench::percentile_ms;
use classify_tests::client::Client;
use classify_tests::edge::EdgeServer;
use serde_json::json;

#[derive(Parser)]
struct Options {
    /// The component (.wasm).
    #[arg(long)]
    component: PathBuf,
    /// Directory holding one ONNX model directory.
    #[arg(long)]
    models: PathBuf,
    /// Timed runs per measurement.
    #[arg(long, default_value_t = 200)]
    iterations: usize,
}

const SHORT: &str = "ok";

fn long_text() -> String {
    "I loved this movie, it was wonderful and the actors were great! "
        .repeat(40)
        .trim()
        .to_owned()
}

fn report(what: &str, tokens: usize, mut times: Vec<Duration>) {
    times.sort_unstable();
    println!(
        "{what:<34} ({tokens:>3} tokens): p50 {:7.2} ms  p99 {:7.2} ms",
        percentile_ms(&times, 0.50),
        percentile_ms(&times, 0.99)
    );
}

fn time(iterations: usize, mut f: impl FnMut()) -> Vec<Duration> {
    f();
    (0..iterations)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed()
        })
        .collect()
}

fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    let wasm_size = std::fs::metadata(&options.component)?.len();
    println!(
        "component {} ({:.1} MiB)",
        options.component.display(),
        wasm_size as f64 / (1024.0 * 1024.0)
    );

    let started = Instant::now();
    let models = EdgeModels::scan(&options.models);
    let failures = models.load_all();
    anyhow::ensure!(failures.is_empty(), "{failures:?}");
    let Some(loaded) = models.loaded().next() else {
        anyhow::bail!("no ONNX model under {}", options.models.display());
    };
    let (served, classifier) = (&loaded.served, &loaded.classifier);
    println!(
        "native tract: load + optimize {:.3} s",
        started.elapsed().as_secs_f64()
    );
    let long = long_text();
    let inputs = [
        ("short", SHORT.to_owned(), None),
        ("128 tokens", long.clone(), Some(128)),
    ];
    for (name, text, limit) in &inputs {
        let ids = served
            .tokenizer
            .encode(text, true, *limit)
            .map_err(anyhow::Error::msg)?;
        let batch = vec![ids.clone()];
        let times = time(options.iterations, || {
            let _ = classifier.run(&batch);
        });
        report(&format!("native tract {name}"), ids.len(), times);
    }

    let cache = tempdir()?;
    let host_options = EdgeHostOptions {
        component: options.component.clone(),
        models: options.models.clone(),
        native_url: None,
        cache_dir: Some(cache.clone()),
        max_instance_reuse: None,
    };
    let started = Instant::now();
    EdgeHost::new(&host_options)?;
    println!(
        "edge-host: compile component, cold cache {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let host = EdgeHost::new(&host_options)?;
    println!(
        "edge-host: load component, warm cache {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let server = EdgeServer::serve(host)?;
    let client = Client::new(&server.base_url);
    let model = served.name.clone();
    let started = Instant::now();
    client.classify(&json!({"model": model, "input": SHORT}));
    println!(
        "edge-host: first request on a new instance (instantiate, load, optimize, run) {:.3} s",
        started.elapsed().as_secs_f64()
    );
    for (name, text, limit) in &inputs {
        let body = json!({"model": model, "input": text, "truncate_prompt_tokens": limit});
        let tokens = client.classify(&body)["usage"]["prompt_tokens"]
            .as_u64()
            .unwrap_or(0) as usize;
        let times = time(options.iterations, || {
            client.classify(&body);
        });
        report(&format!("edge component over HTTP {name}"), tokens, times);
    }
    let _ = std::fs::remove_dir_all(cache);
    Ok(())
}

fn tempdir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("classify-bench-cache-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
