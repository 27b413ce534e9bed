//! The edge in front of a native server that accepts connections and never answers: a forwarded request ends in
//! 504 `upstream_timeout` after the first-byte timeout instead of hanging until the host's own limit, `/v1/models`
//! answers with the local models, and local models keep their latency meanwhile; in the p3 build (request options
//! through spin-sdk) and the p2 build (wasi:http 0.2's outgoing-handler called with its options).

use std::time::{Duration, Instant};

use classify_tests::client::Client;
use classify_tests::edge::{Build, EdgeServer, component};
use classify_tests::edge_checks::FORWARDED_MODEL;
use classify_tests::fixtures::models_dir;
use serde_json::json;

#[test]
fn a_hung_native_server_gives_504_and_local_models_keep_serving() {
    // SAFETY: this binary holds this one test, and no other thread reads the environment yet; edge-host passes
    // CLASSIFY_* variables on to the component.
    unsafe { std::env::set_var("CLASSIFY_NATIVE_FIRST_BYTE_TIMEOUT_MS", "1000") };
    let hung = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let hung_url = format!("http://{}", hung.local_addr().expect("address"));
    std::thread::spawn(move || {
        // Accept and hold every connection, never answering.
        let held: Vec<_> = hung.incoming().collect();
        drop(held);
    });
    for build in [Build::P3, Build::P2] {
        let component = component(build).unwrap_or_else(|e| panic!("{e:#}"));
        let edge =
            EdgeServer::start_component(&component, Some(&models_dir()), Some(&hung_url), None)
                .unwrap_or_else(|e| panic!("edge: {e:#}"));
        answers_504_and_keeps_serving(&edge, &hung_url, build);
    }
}

fn answers_504_and_keeps_serving(edge: &EdgeServer, hung_url: &str, build: Build) {
    let base = edge.base_url.clone();
    let forwarded = std::thread::spawn(move || {
        let started = Instant::now();
        let reply = Client::new(&base).post(
            "/v1/classify",
            &json!({"model": FORWARDED_MODEL, "input": "hello"}),
        );
        (reply, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(200));
    let client = Client::new(&edge.base_url);
    let started = Instant::now();
    let local = client.classify(&json!({"model": "bert-sentiment", "input": "still here"}));
    let local_took = started.elapsed();
    assert_eq!(local["data"].as_array().map(Vec::len), Some(1));

    let (reply, took) = forwarded.join().expect("forwarded request");
    let message = reply.expect_error(504, "upstream_timeout");
    assert!(
        message.contains("the native server") && !message.contains(hung_url),
        "{build:?}: {message}"
    );
    assert!(
        took < Duration::from_secs(10),
        "{build:?}: 504 after {took:?}"
    );
    assert!(
        local_took < took,
        "{build:?}: local {local_took:?}, forwarded {took:?}"
    );

    let started = Instant::now();
    let models = client.get("/v1/models").json();
    assert!(started.elapsed() < Duration::from_secs(10));
    let ids: Vec<&str> = models["data"]
        .as_array()
        .map(|d| d.iter().filter_map(|m| m["id"].as_str()).collect())
        .unwrap_or_default();
    assert!(ids.contains(&"bert-sentiment"), "{build:?}: {ids:?}");
}
