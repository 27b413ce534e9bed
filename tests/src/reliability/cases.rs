//! The cases of the reliability suite, one function each: it starts its own server, attacks it within the
//! profile's bounds, and reports figures and the acceptance points that failed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;

use super::{Answer, Deployment, Launch, MODEL, Server, Tally, exchange, get, post};
use crate::fixtures::Fixture;

/// How hard each case pushes.
#[derive(Debug, Clone, Copy)]
pub struct Profile {
    pub load_requests: usize,
    pub huge_seconds: u64,
    pub slow_connections: usize,
    pub storm_connections: usize,
    pub burst_connections: usize,
    pub fuzz_bodies: usize,
    pub seed: u64,
}

impl Profile {
    /// For CI: every case, a few seconds each.
    pub const SHORT: Profile = Profile {
        load_requests: 400,
        huge_seconds: 4,
        slow_connections: 300,
        storm_connections: 500,
        burst_connections: 1024,
        fuzz_bodies: 5000,
        seed: 13,
    };
    pub const FULL: Profile = Profile {
        load_requests: 5000,
        huge_seconds: 20,
        slow_connections: 3000,
        storm_connections: 5000,
        burst_connections: 1024,
        fuzz_bodies: 6000,
        seed: 13,
    };
}

/// What a case found.
pub struct Report {
    pub case: &'static str,
    pub figures: String,
    pub failures: Vec<String>,
}

impl Report {
    fn new(case: &'static str) -> Report {
        Report {
            case,
            figures: String::new(),
            failures: Vec::new(),
        }
    }

    fn figure(&mut self, text: impl AsRef<str>) {
        if !self.figures.is_empty() {
            self.figures.push_str("; ");
        }
        self.figures.push_str(text.as_ref());
    }

    fn check(&mut self, holds: bool, failure: impl FnOnce() -> String) {
        if !holds {
            self.failures.push(failure());
        }
    }

    fn skipped(case: &'static str, why: &str) -> Report {
        let mut report = Report::new(case);
        report.figure(format!("skipped: {why}"));
        report
    }
}

/// A case of the suite.
pub type Case = fn(&Runtime, Deployment, &Profile) -> anyhow::Result<Report>;

/// Every case, in the order they run.
pub const CASES: &[(&str, Case)] = &[
    ("load", load),
    ("overload", overload),
    ("huge-inputs", huge_inputs),
    ("slow-clients", slow_clients),
    ("disconnect-storm", disconnect_storm),
    ("burst", burst),
    ("fd-exhaustion", fd_exhaustion),
    ("hung-upstream", hung_upstream),
    ("fuzz", fuzz),
    ("sigterm", sigterm),
];

const TIMEOUT: Duration = Duration::from_secs(30);

fn classify_body(input: &Value) -> Vec<u8> {
    json!({"model": MODEL, "input": input})
        .to_string()
        .into_bytes()
}

/// A classify body whose inputs are cut to the model's max length, so that any length gets 200.
fn classify_cut_body(input: &Value) -> Vec<u8> {
    json!({"model": MODEL, "input": input, "truncate_prompt_tokens": -1})
        .to_string()
        .into_bytes()
}

fn probs(answer: &Answer, i: usize) -> Vec<f64> {
    answer.json()["data"][i]["probs"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default()
}

/// `words` words of text.
fn text_of(words: usize) -> String {
    ["alpha", "beta", "gamma", "delta", "movie", "great"]
        .iter()
        .cycle()
        .take(words)
        .copied()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Many clients; every answer is checked against the same text's answer alone.
fn load(runtime: &Runtime, deployment: Deployment, profile: &Profile) -> anyhow::Result<Report> {
    let mut report = Report::new("load");
    let server = Server::start(deployment, &Launch::default())?;
    let fixture = Fixture::load(MODEL);
    let texts: Vec<String> = fixture.texts().iter().map(|t| t.to_string()).collect();
    let address = server.address;
    let alone: Vec<Vec<f64>> = runtime.block_on(async {
        let mut alone = Vec::new();
        for text in &texts {
            let answer = exchange(
                address,
                &post("/v1/classify", &classify_body(&json!(text))),
                TIMEOUT,
            )
            .await;
            alone.push(probs(&answer, 0));
        }
        alone
    });
    let (clients, per_client) = (16, profile.load_requests.div_ceil(16));
    let texts = Arc::new(texts);
    let alone = Arc::new(alone);
    let (mut tally, mismatches) = runtime.block_on(async {
        let tasks: Vec<_> = (0..clients)
            .map(|c| {
                let (texts, alone) = (Arc::clone(&texts), Arc::clone(&alone));
                tokio::spawn(async move {
                    let mut results = Vec::new();
                    for k in 0..per_client {
                        let i = (c * 7 + k) % texts.len();
                        let request = post("/v1/classify", &classify_body(&json!(texts[i])));
                        let answer = exchange(address, &request, TIMEOUT).await;
                        let got = probs(&answer, 0);
                        let matches = !got.is_empty()
                            && got.len() == alone[i].len()
                            && got
                                .iter()
                                .zip(&alone[i])
                                .all(|(a, b)| (a - b).abs() <= 1e-5);
                        results.push((answer, matches));
                    }
                    results
                })
            })
            .collect();
        let mut tally = Tally::default();
        let mut mismatches = 0;
        for task in tasks {
            for (answer, matches) in task.await.unwrap_or_default() {
                tally.add(&answer);
                mismatches += usize::from(answer.status() == Some(200) && !matches);
            }
        }
        (tally, mismatches)
    });
    report.figure(tally.summary());
    report.figure(format!(
        "{mismatches} answers differ from the input alone (> 1e-5)"
    ));
    report.check(tally.others(&["200"]) == 0, || {
        format!("answers other than 200: {:?}", tally.outcomes)
    });
    report.check(mismatches == 0, || format!("{mismatches} mixed-up answers"));
    Ok(report)
}

/// More clients than admission slots: the rest get 429 at once.
fn overload(
    runtime: &Runtime,
    deployment: Deployment,
    profile: &Profile,
) -> anyhow::Result<Report> {
    if deployment == Deployment::Edge {
        return Ok(Report::skipped(
            "overload",
            "the edge has no admission limit (its host queues)",
        ));
    }
    let mut report = Report::new("overload");
    let launch = Launch {
        flags: vec!["--max-concurrent-requests".into(), "4".into()],
        ..Launch::default()
    };
    let server = Server::start(deployment, &launch)?;
    let address = server.address;
    let batch: Vec<String> = (0..32).map(|i| text_of(30 + i % 20)).collect();
    let request = Arc::new(post("/v1/classify", &classify_cut_body(&json!(batch))));
    let per_client = (profile.load_requests / 64).max(2);
    let (mut accepted, mut refused, mut all) = runtime.block_on(async {
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let request = Arc::clone(&request);
                tokio::spawn(async move {
                    let mut answers = Vec::new();
                    for _ in 0..per_client {
                        answers.push(exchange(address, &request, TIMEOUT).await);
                    }
                    answers
                })
            })
            .collect();
        let (mut accepted, mut refused, mut all) =
            (Tally::default(), Tally::default(), Tally::default());
        for task in tasks {
            for answer in task.await.unwrap_or_default() {
                all.add(&answer);
                match answer.status() {
                    Some(200) => accepted.add(&answer),
                    Some(429) => refused.add(&answer),
                    _ => {}
                }
            }
        }
        (accepted, refused, all)
    });
    report.figure(all.summary());
    report.figure(format!(
        "200 p99 {:.1} ms, 429 p99 {:.1} ms",
        accepted.p(0.99),
        refused.p(0.99)
    ));
    report.check(all.others(&["200", "429"]) == 0, || {
        format!("unexpected answers: {:?}", all.outcomes)
    });
    report.check(refused.total() > 0 && accepted.total() > 0, || {
        "no mix of 200 and 429".into()
    });
    report.check(refused.p(0.99) < 50.0, || {
        format!("429 p99 {:.1} ms", refused.p(0.99))
    });
    Ok(report)
}

/// 16 clients send ~2 MiB texts (half cut to 16 tokens, half refused as too long) while /health is timed.
fn huge_inputs(
    runtime: &Runtime,
    deployment: Deployment,
    profile: &Profile,
) -> anyhow::Result<Report> {
    let mut report = Report::new("huge-inputs");
    let server = Server::start(deployment, &Launch::default())?;
    let address = server.address;
    let before = server.probe();
    let text = text_of(2 * 1024 * 1024 / 6 - 200);
    let cut = Arc::new(post(
        "/v1/classify",
        json!({"model": MODEL, "input": text, "truncate_prompt_tokens": 16})
            .to_string()
            .as_bytes(),
    ));
    let whole = Arc::new(post("/v1/classify", &classify_body(&json!(text))));
    let one = runtime.block_on(exchange(address, &cut, TIMEOUT));
    let alone = server.probe();
    let deadline = Instant::now() + Duration::from_secs(profile.huge_seconds);
    let (mut senders, mut health, cut_tokens) = runtime.block_on(async {
        let tasks: Vec<_> = (0..16)
            .map(|c| {
                let request = Arc::clone(if c % 2 == 0 { &cut } else { &whole });
                tokio::spawn(async move {
                    let mut answers = Vec::new();
                    while Instant::now() < deadline {
                        answers.push(exchange(address, &request, TIMEOUT).await);
                    }
                    answers
                })
            })
            .collect();
        let mut health = Tally::default();
        // Let the senders get going before timing /health (and /metrics, on the native server).
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut k = 0;
        while Instant::now() < deadline {
            let path = if deployment == Deployment::Native && k % 2 == 1 {
                "/metrics"
            } else {
                "/health"
            };
            health.add(&exchange(address, &get(path), TIMEOUT).await);
            k += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut senders = Tally::default();
        let mut cut_tokens = None;
        for task in tasks {
            for answer in task.await.unwrap_or_default() {
                if answer.status() == Some(200) {
                    cut_tokens = answer.json()["usage"]["prompt_tokens"].as_u64();
                }
                senders.add(&answer);
            }
        }
        (senders, health, cut_tokens)
    });
    let after = server.probe();
    report.figure(format!("2 MiB requests {}", senders.summary()));
    let probes = match deployment {
        Deployment::Native => "/health and /metrics",
        Deployment::Edge => "/health",
    };
    report.figure(format!(
        "{probes} {} max {:.1} ms",
        health.summary(),
        health.p(1.0)
    ));
    report.figure(format!(
        "peak RSS {:.0} MiB idle, {:.0} after one 2 MiB request ({}), {:.0} after 16 clients; RSS after {:.0} MiB",
        before.peak_rss_mib,
        alone.peak_rss_mib,
        one.outcome(),
        after.peak_rss_mib,
        after.rss_mib
    ));
    report.check(health.p(0.99) < 50.0, || {
        format!("/health p99 {:.1} ms", health.p(0.99))
    });
    report.check(health.others(&["200"]) == 0, || {
        format!("/health answers {:?}", health.outcomes)
    });
    report.check(senders.others(&["200", "400"]) == 0, || {
        format!("answers {:?}", senders.outcomes)
    });
    report.check(cut_tokens == Some(16), || {
        format!("a cut text ran {cut_tokens:?} tokens, not 16")
    });
    Ok(report)
}

/// Idle, trickling and stalled-body connections are closed by the timeouts (set to 2 s here).
fn slow_clients(
    runtime: &Runtime,
    deployment: Deployment,
    profile: &Profile,
) -> anyhow::Result<Report> {
    let mut report = Report::new("slow-clients");
    let timeout = 2;
    let launch = Launch {
        flags: vec![
            "--header-read-timeout".into(),
            timeout.to_string(),
            "--body-read-timeout".into(),
            timeout.to_string(),
        ],
        ..Launch::default()
    };
    let server = Server::start(deployment, &launch)?;
    let address = server.address;
    let before = server.probe();
    let count = profile.slow_connections;
    let (mut closed, open, stalled_answers, during) = runtime.block_on(async {
        let tasks: Vec<_> = (0..count)
            .map(|i| tokio::spawn(slow_client(address, i % 3)))
            .collect();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let during = server.probe();
        let mut closed = Tally::default();
        let (mut open, mut stalled_answers) = (0, Tally::default());
        for task in tasks {
            match task.await {
                Ok(Some((elapsed, answer))) => {
                    closed.latencies.push(elapsed);
                    *closed.outcomes.entry("closed".into()).or_default() += 1;
                    if let Some(answer) = answer {
                        *stalled_answers.outcomes.entry(answer).or_default() += 1;
                    }
                }
                _ => open += 1,
            }
        }
        (closed, open, stalled_answers, during)
    });
    let (after, settled) = server.settle(before.fds + 8, Duration::from_secs(10));
    report.figure(format!(
        "{count} connections (idle, trickling headers, stalled body): {} closed, time to close p50 {:.0} ms p99 {:.0} ms, {open} still open after 12 s",
        closed.total(),
        closed.p(0.5),
        closed.p(0.99)
    ));
    report.figure(format!(
        "stalled bodies answered {:?}",
        stalled_answers.outcomes
    ));
    report.figure(format!(
        "fds {} → {} during → {} {} ms after the last close",
        before.fds,
        during.fds,
        after.fds,
        settled.as_millis()
    ));
    report.check(open == 0, || {
        format!("{open} slow connections were never closed")
    });
    report.check(closed.p(1.0) < (timeout as f64 + 2.0) * 1000.0, || {
        format!("a connection took {:.0} ms to close", closed.p(1.0))
    });
    report.check(after.fds <= before.fds + 8, || {
        format!("fds {} after, {} before", after.fds, before.fds)
    });
    Ok(report)
}

/// One slow connection of `kind` (0 idle, 1 trickling headers, 2 stalled body): how long until the server
/// closed it, and the status it answered first, if any; `None` when it was still open after 12 s.
async fn slow_client(address: SocketAddr, kind: usize) -> Option<(Duration, Option<String>)> {
    let mut stream = TcpStream::connect(address).await.ok()?;
    let started = Instant::now();
    let head = b"POST /v1/classify HTTP/1.1\r\nHost: classify\r\nContent-Length: 1000\r\n\r\n";
    match kind {
        1 => {
            let writing = async {
                for byte in head.iter().take(30) {
                    stream.write_all(&[*byte]).await?;
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                Ok::<_, std::io::Error>(())
            };
            let _ = tokio::time::timeout(Duration::from_secs(12), writing).await;
        }
        2 => {
            stream.write_all(head).await.ok()?;
            stream.write_all(b"{\"model\":").await.ok()?;
        }
        _ => {}
    }
    let mut answer = Vec::new();
    let rest = Duration::from_secs(12).saturating_sub(started.elapsed());
    match tokio::time::timeout(rest, stream.read_to_end(&mut answer)).await {
        Err(_) => None,
        Ok(_) => {
            let status = (!answer.is_empty()).then(|| {
                String::from_utf8_lossy(&answer)
                    .split(' ')
                    .nth(1)
                    .unwrap_or("?")
                    .to_owned()
            });
            Some((started.elapsed(), status))
        }
    }
}

/// Clients that send (part of) a request and vanish; the server keeps no descriptor and answers the next one.
fn disconnect_storm(
    runtime: &Runtime,
    deployment: Deployment,
    profile: &Profile,
) -> anyhow::Result<Report> {
    let mut report = Report::new("disconnect-storm");
    let server = Server::start(deployment, &Launch::default())?;
    let address = server.address;
    let before = server.probe();
    let body = classify_cut_body(&json!([text_of(50), text_of(20)]));
    let request = Arc::new(post("/v1/classify", &body));
    let count = profile.storm_connections;
    let connected = runtime.block_on(async {
        let tasks: Vec<_> = (0..count)
            .map(|i| {
                let request = Arc::clone(&request);
                tokio::spawn(async move {
                    let mut stream = TcpStream::connect(address).await.ok()?;
                    // Every third sends it all, the others stop half way; none reads the answer.
                    let end = if i % 3 == 0 {
                        request.len()
                    } else {
                        request.len() / 2
                    };
                    stream.write_all(&request[..end]).await.ok()?;
                    if i % 2 == 0 {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Some(())
                })
            })
            .collect();
        let mut connected = 0;
        for task in tasks {
            connected += usize::from(matches!(task.await, Ok(Some(()))));
        }
        connected
    });
    let (after, settled) = server.settle(before.fds + 8, Duration::from_secs(20));
    let health = runtime.block_on(exchange(address, &get("/health"), TIMEOUT));
    let answer = runtime.block_on(exchange(address, &request, TIMEOUT));
    report.figure(format!(
        "{connected} of {count} clients connected and vanished"
    ));
    report.figure(format!(
        "fds {} → {} ({} ms after the storm); RSS {:.0} → {:.0} MiB; then /health {} and classify {}",
        before.fds,
        after.fds,
        settled.as_millis(),
        before.rss_mib,
        after.rss_mib,
        health.outcome(),
        answer.outcome()
    ));
    report.check(after.fds <= before.fds + 8, || {
        format!("fds {} after, {} before", after.fds, before.fds)
    });
    report.check(
        health.status() == Some(200) && answer.status() == Some(200),
        || "the server did not answer after the storm".into(),
    );
    Ok(report)
}

/// Connections arriving all at once: none is reset.
fn burst(runtime: &Runtime, deployment: Deployment, profile: &Profile) -> anyhow::Result<Report> {
    let mut report = Report::new("burst");
    let server = Server::start(deployment, &Launch::default())?;
    let address = server.address;
    let count = profile.burst_connections;
    let mut tally = runtime.block_on(async {
        let gate = Arc::new(tokio::sync::Barrier::new(count));
        let tasks: Vec<_> = (0..count)
            .map(|_| {
                let gate = Arc::clone(&gate);
                tokio::spawn(async move {
                    gate.wait().await;
                    exchange(address, &get("/health"), TIMEOUT).await
                })
            })
            .collect();
        let mut tally = Tally::default();
        for task in tasks {
            if let Ok(answer) = task.await {
                tally.add(&answer);
            }
        }
        tally
    });
    report.figure(format!(
        "{count} simultaneous connects: {}",
        tally.summary()
    ));
    report.check(tally.others(&["200"]) == 0, || {
        format!("outcomes {:?}", tally.outcomes)
    });
    Ok(report)
}

/// The server under `ulimit -n 128` with 200 idle connections: bounded log, little CPU, answers once they go.
fn fd_exhaustion(runtime: &Runtime, deployment: Deployment, _: &Profile) -> anyhow::Result<Report> {
    let mut report = Report::new("fd-exhaustion");
    let launch = Launch {
        max_files: Some(128),
        ..Launch::default()
    };
    let server = Server::start(deployment, &launch)?;
    let address = server.address;
    let idle = runtime.block_on(async {
        let mut idle = Vec::new();
        for _ in 0..200 {
            if let Ok(Ok(stream)) =
                tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(address)).await
            {
                idle.push(stream);
            }
        }
        idle
    });
    let probe = server.probe();
    let cpu_before = server.cpu_seconds();
    let window = Duration::from_secs(5);
    std::thread::sleep(window);
    let cpu = server.cpu_seconds() - cpu_before;
    let lines = server
        .log_text()
        .lines()
        .filter(|l| l.contains("accept failed"))
        .count();
    let freed = Instant::now();
    drop(idle);
    let recovered = runtime.block_on(async {
        while freed.elapsed() < Duration::from_secs(10) {
            let answer = exchange(address, &get("/health"), Duration::from_secs(3)).await;
            if answer.status() == Some(200) {
                return Some(freed.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    });
    report.figure(format!(
        "200 idle connections at 128 fds (server holds {}): {lines} log lines and {:.2} CPU s in {} s; answers again {} after they close",
        probe.fds,
        cpu,
        window.as_secs(),
        recovered.map_or("never".into(), |d| format!("{} ms", d.as_millis()))
    ));
    report.check(lines <= 3, || {
        format!("{lines} accept-failure log lines in 5 s")
    });
    report.check(lines >= 1, || "descriptors never ran out".into());
    report.check(cpu < 0.5, || format!("{cpu:.2} CPU s while exhausted"));
    report.check(
        recovered.is_some_and(|d| d < Duration::from_millis(2500)),
        || format!("recovered after {recovered:?}"),
    );
    Ok(report)
}

/// The edge forwarding to a native server that accepts and never answers: 504 within the timeout, local
/// models as fast as before.
fn hung_upstream(runtime: &Runtime, deployment: Deployment, _: &Profile) -> anyhow::Result<Report> {
    if deployment == Deployment::Native {
        return Ok(Report::skipped(
            "hung-upstream",
            "the native server forwards nothing",
        ));
    }
    let mut report = Report::new("hung-upstream");
    let hung = std::net::TcpListener::bind("127.0.0.1:0")?;
    let hung_url = format!("http://{}", hung.local_addr()?);
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in hung.incoming().flatten() {
            held.push(stream);
        }
    });
    let first_byte_ms = 2000;
    let launch = Launch {
        native_url: Some(hung_url),
        env: vec![(
            "CLASSIFY_NATIVE_FIRST_BYTE_TIMEOUT_MS".into(),
            first_byte_ms.to_string(),
        )],
        ..Launch::default()
    };
    let server = Server::start(deployment, &launch)?;
    let address = server.address;
    let local = post(
        "/v1/classify",
        &classify_body(&json!("a short local request")),
    );
    let (mut alone, mut during, mut forwarded) = runtime.block_on(async {
        let mut alone = Tally::default();
        for _ in 0..20 {
            alone.add(&exchange(address, &local, TIMEOUT).await);
        }
        let remote = Arc::new(post(
            "/v1/classify",
            json!({"model": "served-elsewhere", "input": "x"})
                .to_string()
                .as_bytes(),
        ));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let remote = Arc::clone(&remote);
                tokio::spawn(async move { exchange(address, &remote, TIMEOUT).await })
            })
            .collect();
        let mut during = Tally::default();
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(first_byte_ms) {
            during.add(&exchange(address, &local, TIMEOUT).await);
        }
        let mut forwarded = Tally::default();
        for task in tasks {
            if let Ok(answer) = task.await {
                forwarded.add(&answer);
            }
        }
        (alone, during, forwarded)
    });
    report.figure(format!("forwarded {}", forwarded.summary()));
    report.figure(format!(
        "local p50 {:.1} ms alone, {:.1} ms while forwards hang ({} requests)",
        alone.p(0.5),
        during.p(0.5),
        during.total()
    ));
    report.check(forwarded.others(&["504"]) == 0, || {
        format!("forwarded {:?}", forwarded.outcomes)
    });
    report.check(forwarded.p(1.0) < first_byte_ms as f64 + 1500.0, || {
        format!("a forward took {:.0} ms", forwarded.p(1.0))
    });
    report.check(during.others(&["200"]) == 0, || {
        format!("local {:?}", during.outcomes)
    });
    report.check(during.p(0.5) < 2.0 * alone.p(0.5) + 5.0, || {
        format!(
            "local p50 {:.1} ms during vs {:.1} ms alone",
            during.p(0.5),
            alone.p(0.5)
        )
    });
    Ok(report)
}

/// Seeded random bodies on every route: never a 5xx, never a panic, never a dropped connection.
fn fuzz(runtime: &Runtime, deployment: Deployment, profile: &Profile) -> anyhow::Result<Report> {
    let mut report = Report::new("fuzz");
    let server = Server::start(deployment, &Launch::default())?;
    let address = server.address;
    let mut rng = Rng(profile.seed.max(1));
    let requests: Vec<Vec<u8>> = (0..profile.fuzz_bodies)
        .map(|_| fuzzed_request(&mut rng))
        .collect();
    let requests = Arc::new(requests);
    let mut tally = runtime.block_on(async {
        let clients = 8;
        let tasks: Vec<_> = (0..clients)
            .map(|c| {
                let requests = Arc::clone(&requests);
                tokio::spawn(async move {
                    let mut answers = Vec::new();
                    for request in requests.iter().skip(c).step_by(clients) {
                        answers.push(exchange(address, request, TIMEOUT).await);
                    }
                    answers
                })
            })
            .collect();
        let mut tally = Tally::default();
        for task in tasks {
            for answer in task.await.unwrap_or_default() {
                tally.add(&answer);
            }
        }
        tally
    });
    let health = runtime.block_on(exchange(address, &get("/health"), TIMEOUT));
    let panics = server.log_text().matches("panicked").count();
    report.figure(format!("seed {}: {}", profile.seed, tally.summary()));
    report.figure(format!(
        "{panics} panics; /health after: {}",
        health.outcome()
    ));
    report.check(tally.server_errors() == 0, || {
        format!("5xx answers: {:?}", tally.outcomes)
    });
    let dropped: usize = ["reset", "closed", "timeout"]
        .iter()
        .map(|k| tally.count(k))
        .sum();
    report.check(dropped == 0, || {
        format!("{dropped} exchanges without an answer")
    });
    report.check(panics == 0 && health.status() == Some(200), || {
        "the server panicked or died".into()
    });
    Ok(report)
}

/// SIGTERM with requests in flight: every one is answered, then the process exits 0 without reporting a failure
/// (edge-host used to say "instance stopped: worker panicked" for each instance it dropped at shutdown).
fn sigterm(runtime: &Runtime, deployment: Deployment, _: &Profile) -> anyhow::Result<Report> {
    let mut report = Report::new("sigterm");
    let mut server = Server::start(deployment, &Launch::default())?;
    let address = server.address;
    let batch: Vec<String> = (0..32).map(|i| text_of(30 + i % 20)).collect();
    let request = Arc::new(post("/v1/classify", &classify_cut_body(&json!(batch))));
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let request = Arc::clone(&request);
            runtime.spawn(async move { exchange(address, &request, TIMEOUT).await })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(150));
    let (clean, took) = server.terminate(Duration::from_secs(40))?;
    let mut tally = Tally::default();
    runtime.block_on(async {
        for task in tasks {
            if let Ok(answer) = task.await {
                tally.add(&answer);
            }
        }
    });
    report.figure(format!(
        "32 requests in flight at SIGTERM: {}",
        tally.summary()
    ));
    report.figure(format!(
        "exited {} after {} ms",
        if clean { "0" } else { "non-zero" },
        took.as_millis()
    ));
    report.check(tally.others(&["200"]) == 0, || {
        format!("in-flight answers {:?}", tally.outcomes)
    });
    report.check(clean, || "the server did not exit cleanly".into());
    let log = server.log_text();
    let alarming: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("panicked") || line.contains("instance stopped"))
        .collect();
    report.check(alarming.is_empty(), || {
        format!("the shutdown logged failures: {alarming:?}")
    });
    Ok(report)
}

/// xorshift64*: a small seeded generator, so that a run can be repeated exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A valid request bent one to three ways: values swapped for odd JSON, bytes flipped, cut short, grown.
fn fuzzed_request(rng: &mut Rng) -> Vec<u8> {
    let routes = ["/v1/classify", "/classify", "/tokenize"];
    let route = routes[rng.below(routes.len())];
    let odd = [
        json!(null),
        json!(-1),
        json!(1e308),
        json!(18446744073709551615u64),
        json!(-9223372036854775808i64),
        json!(""),
        json!("\u{0}\u{FFFF}\u{1F600}"),
        json!([]),
        json!([[]]),
        json!([1, "a"]),
        json!([[1, 2], [3]]),
        json!({}),
        json!(true),
        json!("a".repeat(5000)),
        json!(vec![7; 600]),
        json!((0..300).map(|i| format!("t{i}")).collect::<Vec<_>>()),
        json!([[[[[[[[[[1]]]]]]]]]]),
    ];
    let mut body = json!({
        "model": MODEL,
        "input": "a fine day",
        "prompt": "a fine day",
        "truncate_prompt_tokens": 8,
        "use_activation": true,
        "add_special_tokens": true,
        "priority": 0,
    });
    let fields = [
        "model",
        "input",
        "prompt",
        "truncate_prompt_tokens",
        "use_activation",
        "add_special_tokens",
        "priority",
        "rid",
    ];
    for _ in 0..=rng.below(3) {
        let field = fields[rng.below(fields.len())];
        body[field] = odd[rng.below(odd.len())].clone();
    }
    let mut bytes = body.to_string().into_bytes();
    match rng.below(6) {
        0 => {
            for _ in 0..=rng.below(8) {
                let i = rng.below(bytes.len());
                bytes[i] = (rng.next() & 0xff) as u8;
            }
        }
        1 => bytes.truncate(rng.below(bytes.len())),
        2 => {
            let depth = 1 + rng.below(5000);
            bytes = format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes();
        }
        _ => {}
    }
    post(route, &bytes)
}
