//! HTTP load generator for a running classify server (native or edge): N concurrent clients send text inputs
//! whose token counts are drawn from a range, and the run prints requests/s, tokens/s (from the answers' usage)
//! and latency percentiles. Bounded by a request count and a time limit.
//!
//! Lengths are exact: each input is a text of as many words as the length asked for (every word is at least one
//! token), cut to that length by `truncate_prompt_tokens`; tokenization stays in the measured path.
//!
//! bench-http --url http://127.0.0.1:8000 --model m --clients 128 --tokens 8-256 --requests 20000 --max-seconds 20

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use classify_tests::bench::percentile_ms;
use classify_tests::client::Client;
use serde_json::{Value, json};

#[derive(Parser)]
struct Options {
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    url: String,
    #[arg(long)]
    model: String,
    /// Concurrent clients, each with one request in flight.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Inputs per request.
    #[arg(long, default_value_t = 1)]
    inputs: usize,
    /// Tokens per input: N, or MIN-MAX for lengths spread uniformly in that range.
    #[arg(long, default_value = "128")]
    tokens: String,
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    #[arg(long, default_value_t = 30)]
    max_seconds: u64,
    /// A label for the printed row.
    #[arg(long, default_value = "run")]
    label: String,
}

/// `words` words of English, starting at `offset` in a fixed sequence.
fn text(words: usize, offset: usize) -> String {
    const WORDS: &[&str] = &[
        "the",
        "movie",
        "was",
        "great",
        "and",
        "terrible",
        "service",
        "arrived",
        "late",
        "today",
        "happy",
        "friends",
        "beach",
        "never",
        "again",
        "wonderful",
        "actors",
        "package",
        "promised",
        "family",
    ];
    (offset..offset + words)
        .map(|i| WORDS[(i * 7 + i / 3) % WORDS.len()])
        .collect::<Vec<_>>()
        .join(" ")
}

fn parse_range(tokens: &str) -> anyhow::Result<(usize, usize)> {
    let (low, high) = tokens.split_once('-').unwrap_or((tokens, tokens));
    let (low, high) = (low.trim().parse::<usize>()?, high.trim().parse::<usize>()?);
    anyhow::ensure!(
        low >= 1 && low <= high,
        "--tokens wants N or MIN-MAX with 1 <= MIN <= MAX"
    );
    Ok((low, high))
}

/// A small deterministic generator, so runs are repeatable without a dependency.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    let (low, high) = parse_range(&options.tokens)?;
    let warmup = Client::new(&options.url);
    warmup.classify(
        &json!({"model": options.model, "input": text(low, 0), "truncate_prompt_tokens": low}),
    );

    let issued = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(options.max_seconds);
    let started = Instant::now();
    let workers: Vec<_> = (0..options.clients)
        .map(|worker| {
            let issued = issued.clone();
            let (url, model) = (options.url.clone(), options.model.clone());
            let (total, inputs) = (options.requests, options.inputs);
            std::thread::spawn(move || -> anyhow::Result<(Vec<Duration>, u64)> {
                let client = Client::new(&url);
                let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ (worker as u64 + 1);
                let (mut latencies, mut tokens) = (Vec::new(), 0u64);
                loop {
                    let n = issued.fetch_add(1, Ordering::Relaxed);
                    if n >= total || Instant::now() > deadline {
                        return Ok((latencies, tokens));
                    }
                    // truncate_prompt_tokens applies to the whole request, so each request has one length.
                    let length = low + (next_random(&mut seed) % (high - low + 1) as u64) as usize;
                    let input: Vec<String> = (0..inputs).map(|i| text(length, n + i)).collect();
                    let body =
                        json!({"model": model, "input": input, "truncate_prompt_tokens": length});
                    let sent = Instant::now();
                    let reply = client.post("/v1/classify", &body);
                    latencies.push(sent.elapsed());
                    anyhow::ensure!(
                        reply.status == 200,
                        "status {}: {}",
                        reply.status,
                        reply.text
                    );
                    tokens += reply.json()["usage"]["prompt_tokens"].as_u64().unwrap_or(0);
                }
            })
        })
        .collect();
    let (mut latencies, mut tokens) = (Vec::new(), 0u64);
    for worker in workers {
        let (worker_latencies, worker_tokens) = worker
            .join()
            .map_err(|_| anyhow::anyhow!("a client thread panicked"))??;
        latencies.extend(worker_latencies);
        tokens += worker_tokens;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let row: Value = json!({
        "label": options.label,
        "clients": options.clients,
        "inputs_per_request": options.inputs,
        "tokens_per_input": options.tokens,
        "requests": latencies.len(),
        "seconds": elapsed,
        "requests_per_s": latencies.len() as f64 / elapsed,
        "inputs_per_s": (latencies.len() * options.inputs) as f64 / elapsed,
        "tokens_per_s": tokens as f64 / elapsed,
        "p50_ms": percentile_ms(&latencies, 0.50),
        "p99_ms": percentile_ms(&latencies, 0.99),
    });
    println!("{row}");
    Ok(())
}
