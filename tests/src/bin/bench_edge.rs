//! Edge latency benchmark (run by tests/bench/edge.sh): the same ONNX model run natively with tract, then the
//! component in edge-host and under Spin, as built and pre-initialized (snapshot), on a reused instance (warm
//! latency, short and 128 tokens) and on a fresh instance per request. Loopback only, bounded.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Parser;
use classify_edge::registry::{EdgeModels, OnnxFileOrder};
use classify_edge_host::{EdgeHost, EdgeHostOptions, GuestProfiler};
use classify_protocol::Engine;
use classify_tests::bench::percentile_ms;
use classify_tests::client::Client;
use classify_tests::edge::EdgeServer;
use classify_tests::spin::{SpinServer, comment_filter_manifest, spin_binary};
use serde_json::json;

#[derive(Parser)]
struct Options {
    /// The wasi-http-p3 build (for edge-host).
    #[arg(long)]
    component: PathBuf,
    /// The wasi-http-p3-rc build (for Spin); Spin is skipped without it or without a Spin binary.
    #[arg(long)]
    spin_component: Option<PathBuf>,
    /// Directory of model directories, all mounted.
    #[arg(long)]
    models: PathBuf,
    /// The model timed (default: the first with an ONNX file).
    #[arg(long)]
    model: Option<String>,
    /// Timed runs per warm measurement.
    #[arg(long, default_value_t = 200)]
    iterations: usize,
    /// Timed requests per fresh-instance measurement.
    #[arg(long, default_value_t = 30)]
    fresh_iterations: usize,
    /// Only the component as built, on a reused instance (no snapshot, no fresh instances, no Spin): for models of
    /// hundreds of MB, whose snapshots take minutes.
    #[arg(long)]
    warm_only: bool,
    /// The route timed: `/v1/classify`, or `/v1/token-classify` for a token classifier.
    #[arg(long, default_value = "/v1/classify")]
    route: String,
    /// The example that calls the component in-process (edge/examples/comment-filter, rc build): under Spin, its
    /// typed call is timed next to the component's HTTP route.
    #[arg(long)]
    comment_filter: Option<PathBuf>,
    /// Profile the component in edge-host with `perf` (edge-host's `--profiler`).
    #[arg(long, value_enum)]
    profiler: Option<GuestProfiler>,
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
    let models = EdgeModels::scan(&options.models, &OnnxFileOrder::default());
    let failures = models.load_all();
    anyhow::ensure!(failures.is_empty(), "{failures:?}");
    let loaded = match &options.model {
        Some(name) => models.loaded().find(|m| m.served.name == *name),
        None => models.loaded().next(),
    };
    let Some(loaded) = loaded else {
        anyhow::bail!("no such ONNX model under {}", options.models.display());
    };
    let (served, engine) = (&loaded.served, &loaded.engine);
    println!(
        "native tract: load + optimize every mounted model {:.3} s",
        started.elapsed().as_secs_f64()
    );
    let long = long_text();
    // 128 tokens, or the model's whole window when it is shorter (the tiny fixtures take 64).
    let long_tokens = served.max_model_len.min(128);
    let inputs = [
        ("short", SHORT.to_owned(), None),
        ("long", long.clone(), Some(long_tokens)),
    ];
    for (name, text, limit) in &inputs {
        let ids = served
            .tokenizer
            .encode(text, true, *limit)
            .map_err(anyhow::Error::msg)?;
        let sequence = classify_protocol::TokenSequence::single(ids.clone());
        engine
            .forward(&[&sequence])
            .map_err(|e| anyhow::anyhow!("native tract: {e}"))?;
        let times = time(options.iterations, || {
            let _ = engine.forward(&[&sequence]);
        });
        report(&format!("native tract {name}"), ids.len(), times);
    }

    let cache = tempdir()?;
    let host_options = EdgeHostOptions {
        component: options.component.clone(),
        models: Some(options.models.clone()),
        native_url: None,
        cache_dir: Some(cache.clone()),
        max_instance_reuse: None,
        max_instance_memory: None,
        max_concurrent_requests: EdgeHostOptions::DEFAULT_MAX_CONCURRENT_REQUESTS,
        profiler: options.profiler,
    };
    let started = Instant::now();
    EdgeHost::new(&host_options)?;
    println!(
        "edge-host: compile component, cold cache {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let snapshot = |component: &Path| -> anyhow::Result<PathBuf> {
        let output = cache.join(format!(
            "{}-snapshot.wasm",
            component
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("component")
        ));
        let runtime = tokio::runtime::Runtime::new()?;
        let report = runtime.block_on(classify_edge_host::snapshot(
            component,
            &options.models,
            &output,
        ))?;
        println!(
            "snapshot of {}: {:.1} MiB -> {:.1} MiB ({:.1} MiB of loaded models and heap) in {:.1} s",
            component.display(),
            mib(report.input_bytes),
            mib(report.output_bytes),
            mib(report.output_bytes.saturating_sub(report.input_bytes)),
            report.seconds
        );
        Ok(output)
    };
    let model = served.name.clone();
    if options.warm_only {
        let server = EdgeServer::serve(EdgeHost::new(&host_options)?)?;
        measure(
            &options,
            "edge-host",
            &server.base_url,
            &model,
            &inputs,
            None,
        );
        let _ = std::fs::remove_dir_all(cache);
        return Ok(());
    }
    let p3_snapshot = snapshot(&options.component)?;
    for (label, component) in [("", &options.component), (" snapshot", &p3_snapshot)] {
        for reuse in [None, Some(1)] {
            let host = EdgeHost::new(&EdgeHostOptions {
                component: component.clone(),
                max_instance_reuse: reuse,
                max_concurrent_requests: EdgeHostOptions::DEFAULT_MAX_CONCURRENT_REQUESTS,
                ..host_options.clone()
            })?;
            let server = EdgeServer::serve(host)?;
            let what = format!("edge-host{label}");
            measure(&options, &what, &server.base_url, &model, &inputs, reuse);
        }
    }
    // The snapshot alone, nothing mounted: what a fresh instance costs without reading any file.
    let host = EdgeHost::new(&EdgeHostOptions {
        component: p3_snapshot.clone(),
        models: None,
        max_instance_reuse: Some(1),
        ..host_options.clone()
    })?;
    let server = EdgeServer::serve(host)?;
    let what = "edge-host snapshot self-contained";
    measure(&options, what, &server.base_url, &model, &inputs, Some(1));
    match (&options.spin_component, spin_binary()) {
        (Some(component), Ok(spin)) => {
            let rc_snapshot = snapshot(component)?;
            for (label, component) in [("", component), (" snapshot", &rc_snapshot)] {
                for reuse in [None, Some(1)] {
                    let count = reuse.map(|n: usize| n.to_string());
                    let extra: Vec<&str> = match &count {
                        Some(n) => vec!["--max-instance-reuse-count", n],
                        None => vec![],
                    };
                    let server =
                        SpinServer::start(&spin, component, &options.models, None, &extra)?;
                    let what = format!("spin {}{label}", spin_version(&spin));
                    measure(&options, &what, &server.base_url, &model, &inputs, reuse);
                }
            }
            let server = SpinServer::start_self_contained(
                &spin,
                &rc_snapshot,
                &["--max-instance-reuse-count", "1"],
            )?;
            let what = format!("spin {} snapshot self-contained", spin_version(&spin));
            measure(&options, &what, &server.base_url, &model, &inputs, Some(1));
            if let Some(filter) = &options.comment_filter {
                typed_call(&options, &spin, filter, &rc_snapshot, &model)?;
            }
        }
        (None, _) => println!("spin: skipped (no --spin-component)"),
        (_, Err(reason)) => println!("spin: skipped ({reason})"),
    }
    let _ = std::fs::remove_dir_all(cache);
    Ok(())
}

/// Warm latency at both lengths when instances are reused; the first request and per-request latency on fresh
/// instances otherwise.
fn measure(
    options: &Options,
    what: &str,
    base_url: &str,
    model: &str,
    inputs: &[(&str, String, Option<usize>)],
    reuse: Option<usize>,
) {
    let client = Client::new(base_url);
    let started = Instant::now();
    client.post_ok(&options.route, &json!({"model": model, "input": SHORT}));
    let first = started.elapsed().as_secs_f64() * 1e3;
    let Some(reuse) = reuse else {
        println!("{what}, reused instance: first request {first:.1} ms");
        for (name, text, limit) in inputs {
            let body = json!({"model": model, "input": text, "truncate_prompt_tokens": limit});
            let tokens = client.post_ok(&options.route, &body)["usage"]["prompt_tokens"]
                .as_u64()
                .unwrap_or(0) as usize;
            let times = time(options.iterations, || {
                client.post_ok(&options.route, &body);
            });
            report(&format!("{what} warm {name}"), tokens, times);
        }
        return;
    };
    let body = json!({"model": model, "input": SHORT});
    let times = time(options.fresh_iterations, || {
        client.post_ok(&options.route, &body);
    });
    report(
        &format!("{what} fresh instance (reuse {reuse}) short"),
        3,
        times,
    );
}

/// spin-comment-filter.toml under Spin, warm, short input: the component's HTTP route, the example's route that
/// calls the component in-process, and that typed call alone (the example's `Server-Timing`).
fn typed_call(
    options: &Options,
    spin: &Path,
    filter: &Path,
    classify: &Path,
    model: &str,
) -> anyhow::Result<()> {
    let manifest = comment_filter_manifest(filter, classify)?;
    let app = SpinServer::start_app(spin, &manifest, Some(&options.models), &[])?;
    let client = Client::new(&app.base_url);
    let route = json!({"model": model, "input": [SHORT], "truncate_prompt_tokens": -1});
    report(
        "spin: HTTP route /v1/classify",
        3,
        time(options.iterations, || {
            client.post_ok("/v1/classify", &route);
        }),
    );
    let comment = json!({"comment": SHORT, "model": model}).to_string();
    let url = format!("{}/comments", app.base_url);
    let mut calls = Vec::new();
    let requests = time(options.iterations, || {
        let timing = ureq::post(&url)
            .send_string(&comment)
            .ok()
            .and_then(|r| r.header("server-timing").map(str::to_owned));
        let millis = timing
            .as_deref()
            .and_then(|t| t.split_once("dur="))
            .and_then(|(_, ms)| ms.parse::<f64>().ok());
        calls.extend(millis.map(|ms| Duration::from_secs_f64(ms / 1e3)));
    });
    report("spin: /comments (HTTP + typed call)", 3, requests);
    report("spin: the typed call alone", 3, calls);
    Ok(())
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn spin_version(spin: &Path) -> String {
    std::process::Command::new(spin)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|v| v.split_whitespace().nth(1).map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

fn tempdir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("classify-bench-cache-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
