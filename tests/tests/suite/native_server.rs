//! The native server beyond the conformance cases: batching under concurrency, authentication, admission,
//! hostile bodies, and startup errors.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};
use classify_tests::client::Client;
use classify_tests::conformance::{assert_close, floats};
use classify_tests::fixtures::{Fixture, models_dir, sharded_copy};
use classify_tests::native::NativeServer;
use serde_json::json;

fn serve(model: &str, flags: &[&str]) -> NativeServer {
    let dir = models_dir().join(model);
    NativeServer::start(&[dir.as_path()], flags).unwrap_or_else(|e| panic!("{e:#}"))
}

/// The quick start: no `--model` serves the bundled spam/ham model, embedded in the binary.
#[test]
fn without_a_model_flag_the_bundled_model_is_served() {
    let server = NativeServer::start(&[], &[]).unwrap_or_else(|e| panic!("{e:#}"));
    classify_tests::edge_checks::bundled_model_answers_like_transformers(&Client::new(
        &server.base_url,
    ));
}

#[test]
fn model_may_be_left_out_when_one_model_is_served() {
    let server = serve("bert-score", &[]);
    let client = Client::new(&server.base_url);
    let fixture = Fixture::load("bert-score");
    let named = client.classify(&json!({"model": "bert-score", "input": "ok"}));
    let unnamed = client.classify(&json!({"input": "ok"}));
    assert_eq!(unnamed["model"], "bert-score");
    assert_eq!(unnamed["data"], named["data"]);
    let rerank = client.post(
        "/v1/rerank",
        &json!({"query": "a", "documents": ["b", "c"]}),
    );
    assert_eq!(rerank.status, 200, "{}", rerank.text);
    let tokens = client.post(
        "/tokenize",
        &json!({"prompt": fixture.reference.inputs[0].text}),
    );
    assert_eq!(
        tokens.json()["tokens"],
        json!(fixture.reference.inputs[0].ids)
    );
    // A name that is not served is still a 404.
    let reply = client.post("/v1/classify", &json!({"model": "other", "input": "ok"}));
    reply.expect_error(404, "model_not_found");
}

/// Pairs (with token types) and single texts (without) from concurrent clients share forward passes; each
/// answer is what it is alone.
#[test]
fn pairs_batched_with_plain_inputs_keep_their_scores() {
    let server = serve("bert-score", &[]);
    let client = Arc::new(Client::new(&server.base_url));
    let documents: Vec<String> = (0..40).map(|i| format!("document {i} is ok")).collect();
    let scores = |answer: &serde_json::Value| -> Vec<f32> {
        let data = answer["data"].as_array().cloned().unwrap_or_default();
        data.iter()
            .map(|d| d["score"].as_f64().unwrap_or(f64::NAN) as f32)
            .collect()
    };
    let alone = scores(
        &client
            .post("/score", &json!({"text_1": "query", "text_2": documents}))
            .json(),
    );
    let plain_alone = floats(&client.classify(&json!({"input": "plain text"}))["data"][0]["probs"]);
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let (client, documents) = (client.clone(), documents.clone());
            std::thread::spawn(move || {
                if i % 2 == 0 {
                    client
                        .post("/score", &json!({"text_1": "query", "text_2": documents}))
                        .json()
                } else {
                    client.classify(&json!({"input": ["plain text", "ok"]}))
                }
            })
        })
        .collect();
    for (i, thread) in threads.into_iter().enumerate() {
        let answer = thread.join().expect("client thread");
        if i % 2 == 0 {
            assert_close(&scores(&answer), &alone, 1e-5, "batched pairs");
        } else {
            assert_close(
                &floats(&answer["data"][0]["probs"]),
                &plain_alone,
                1e-5,
                "batched text",
            );
        }
    }
}

/// Sum of a metric's samples for one model in the Prometheus text.
fn metric(client: &Client, name: &str, model: &str) -> f64 {
    let text = client.get("/metrics").text;
    text.lines()
        .filter(|line| line.starts_with(name) && line.contains(&format!("model=\"{model}\"")))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn concurrent_requests_are_batched_and_match_sequential_answers() {
    let fixture = Fixture::load("bert-3label");
    let server = serve(&fixture.name, &[]);
    let client = Client::new(&server.base_url);
    let texts: Vec<String> = fixture
        .reference
        .inputs
        .iter()
        .map(|i| i.text.clone())
        .collect();
    let sequential: Vec<Vec<f32>> = texts
        .iter()
        .map(|t| {
            floats(
                &client.classify(&json!({"model": fixture.name, "input": t}))["data"][0]["probs"],
            )
        })
        .collect();
    let forwards_before = metric(&client, "classify_batch_sequences_count", &fixture.name);
    let (threads, per_thread) = (12, 10);
    let texts = Arc::new(texts);
    let sequential = Arc::new(sequential);
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (base, texts, sequential) = (server.base_url.clone(), texts.clone(), sequential.clone());
            let name = fixture.name.clone();
            std::thread::spawn(move || {
                let client = Client::new(&base);
                for r in 0..per_thread {
                    // Requests of one and of two inputs, of different lengths, in a different order per thread.
                    let a = (t * 7 + r) % texts.len();
                    let b = (t + r * 3) % texts.len();
                    let inputs = if r % 2 == 0 { vec![a] } else { vec![a, b] };
                    let body = json!({"model": name, "input": inputs.iter().map(|&i| &texts[i]).collect::<Vec<_>>(),
                                      "priority": r % 3});
                    let response = client.classify(&body);
                    for (k, &i) in inputs.iter().enumerate() {
                        let probs = floats(&response["data"][k]["probs"]);
                        assert_close(&probs, &sequential[i], 1e-5, "batched vs sequential");
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("client thread failed");
    }
    let forwards =
        metric(&client, "classify_batch_sequences_count", &fixture.name) - forwards_before;
    let requests = (threads * per_thread) as f64;
    assert!(
        forwards < requests,
        "{forwards} forward passes for {requests} requests: nothing was batched"
    );
}

#[test]
fn api_key_guards_every_route_but_health() {
    let server = serve("bert-sentiment", &["--api-key", "s3cret"]);
    let client = Client::new(&server.base_url);
    let body = json!({"model": "bert-sentiment", "input": "hello"}).to_string();
    let json = ("content-type", "application/json");
    let missing = client.request("POST", "/v1/classify", &[json], Some(body.as_bytes()));
    missing.expect_error(401, "authentication_error");
    let wrong = client.request(
        "POST",
        "/v1/classify",
        &[json, ("authorization", "Bearer nope")],
        Some(body.as_bytes()),
    );
    wrong.expect_error(401, "authentication_error");
    client
        .get("/v1/models")
        .expect_error(401, "authentication_error");
    let right = client.request(
        "POST",
        "/v1/classify",
        &[json, ("authorization", "Bearer s3cret")],
        Some(body.as_bytes()),
    );
    assert_eq!(right.status, 200, "{}", right.text);
    // The scheme is case-insensitive (RFC 9110); another scheme or a wrong key is refused.
    for (value, status) in [
        ("bearer s3cret", 200),
        ("BEARER  s3cret", 200),
        ("Basic s3cret", 401),
        ("Bearers3cret", 401),
        ("bearer s3cre", 401),
    ] {
        let reply = client.request(
            "POST",
            "/v1/classify",
            &[json, ("authorization", value)],
            Some(body.as_bytes()),
        );
        assert_eq!(reply.status, status, "{value}: {}", reply.text);
    }
    assert_eq!(client.get("/health").status, 200);
}

#[test]
fn admission_limit_answers_429_at_once() {
    let server = serve("bert-score", &["--max-concurrent-requests", "0"]);
    let client = Client::new(&server.base_url);
    let reply = client.post(
        "/v1/classify",
        &json!({"model": "bert-score", "input": "hello"}),
    );
    reply.expect_error(429, "overloaded");
    assert_eq!(client.get("/v1/models").status, 200);
}

#[test]
fn input_count_and_body_limits_are_configurable() {
    let server = serve(
        "bert-multilabel",
        &["--max-input-per-request", "2", "--max-body-bytes", "200"],
    );
    let client = Client::new(&server.base_url);
    let reply = client.post(
        "/v1/classify",
        &json!({"model": "bert-multilabel", "input": ["a", "b", "c"]}),
    );
    assert!(
        reply
            .expect_error(400, "invalid_request_error")
            .contains("at most 2")
    );
    let reply = client.post(
        "/v1/classify",
        &json!({"model": "bert-multilabel", "input": "x".repeat(300)}),
    );
    reply.expect_error(413, "payload_too_large");
    let ok = client.post(
        "/v1/classify",
        &json!({"model": "bert-multilabel", "input": ["a", "b"]}),
    );
    assert_eq!(ok.status, 200, "{}", ok.text);
}

#[test]
fn hostile_bodies_get_json_errors_and_the_server_survives() {
    let server = serve("bert-sentiment", &[]);
    let client = Client::new(&server.base_url);
    let mut bodies: Vec<Vec<u8>> = vec![
        "[".repeat(200_000).into_bytes(),
        format!(
            "{{\"model\":\"bert-sentiment\",\"input\":{}}}",
            "[".repeat(5000)
        )
        .into_bytes(),
        br#"{"model":"bert-sentiment","input":[1e400]}"#.to_vec(),
        br#"{"model":"bert-sentiment","input":[123456789012345678901234567890]}"#.to_vec(),
        br#"{"model":"bert-sentiment","input":"ok","priority":1e400}"#.to_vec(),
        br#"{"model":"bert-sentiment","input":"ok","truncate_prompt_tokens":18446744073709551616}"#
            .to_vec(),
        b"{\"model\":\"bert-sentiment\",\"input\":\"\xff\xfe\"}".to_vec(),
        br#"{"model":"bert-sentiment","input":"\ud800"}"#.to_vec(),
        b"\x00\x01\x02".to_vec(),
        br#"{"model":"bert-sentiment","input":[4294967296]}"#.to_vec(),
    ];
    // Deterministic pseudo-random mutations of a valid body.
    let valid = br#"{"model":"bert-sentiment","input":["a b",[1,2]],"truncate_prompt_tokens":3}"#;
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..200 {
        let mut body = valid.to_vec();
        for _ in 0..3 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let at = (state % body.len() as u64) as usize;
            body[at] = (state >> 32) as u8;
        }
        bodies.push(body);
    }
    for body in &bodies {
        let reply = client.request(
            "POST",
            "/v1/classify",
            &[("content-type", "application/json")],
            Some(body),
        );
        if reply.status != 200 {
            assert!(
                (400..500).contains(&reply.status),
                "{} for {:?}",
                reply.status,
                String::from_utf8_lossy(body)
            );
            let error = reply.json();
            assert!(
                error["error"].is_string() && error["type"].is_string(),
                "{error}"
            );
        }
    }
    let unicode = client.post(
        "/v1/classify",
        &json!({"model": "bert-sentiment", "input": "😀 naïve 中文"}),
    );
    assert_eq!(unicode.status, 200, "{}", unicode.text);
    assert_eq!(client.get("/health").status, 200);
}

/// A copy of a fixture with its config and weights edited, in a fresh temporary directory.
fn edited_copy(
    model: &str,
    tag: &str,
    edit: impl FnOnce(&mut serde_json::Value, &mut HashMap<String, Tensor>),
) -> PathBuf {
    let source = models_dir().join(model);
    let dir = std::env::temp_dir().join(format!("classify-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    for file in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(source.join(file), dir.join(file)).expect("copy");
    }
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(source.join("config.json")).expect("config"))
            .expect("json");
    let mut tensors =
        candle_core::safetensors::load(source.join("model.safetensors"), &Device::Cpu)
            .expect("weights");
    edit(&mut config, &mut tensors);
    std::fs::write(dir.join("config.json"), config.to_string()).expect("write config");
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors")).expect("write weights");
    dir
}

fn load_error(dir: &Path) -> String {
    match NativeServer::start(&[dir], &[]) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn startup_errors_name_the_problem() {
    let unsupported = edited_copy("bert-sentiment", "arch", |config, _| {
        config["architectures"] = json!(["FooForSequenceClassification"]);
    });
    let error = load_error(&unsupported);
    assert!(
        error.contains("FooForSequenceClassification")
            && error.contains("BertForSequenceClassification")
            && error.contains("ModernBertForSequenceClassification"),
        "{error}"
    );
    let deberta_conv = edited_copy("deberta-v2-2label", "conv", |config, _| {
        config["conv_groups"] = json!(5);
    });
    let error = load_error(&deberta_conv);
    assert!(
        error.contains("conv_groups 5 does not divide the hidden size 32"),
        "{error}"
    );
    let modernbert_pooling = edited_copy("modernbert-2label", "pooling", |config, _| {
        config["classifier_pooling"] = json!("max");
    });
    let error = load_error(&modernbert_pooling);
    assert!(error.contains("classifier_pooling `max`"), "{error}");

    let missing = edited_copy("bert-sentiment", "missing", |_, tensors| {
        tensors.remove("bert.pooler.dense.weight");
    });
    let error = load_error(&missing);
    assert!(error.contains("bert.pooler.dense.weight"), "{error}");

    let wrong_shape = edited_copy("bert-sentiment", "shape", |_, tensors| {
        tensors.insert(
            "bert.pooler.dense.weight".into(),
            Tensor::zeros((3, 3), candle_core::DType::F32, &Device::Cpu).expect("zeros"),
        );
    });
    let error = load_error(&wrong_shape);
    assert!(
        error.contains("bert.pooler.dense.weight") && error.contains("32"),
        "{error}"
    );

    let label_mismatch = edited_copy("bert-sentiment", "labels", |config, _| {
        config["id2label"] = json!({"0": "a", "1": "b", "2": "c"});
    });
    let error = load_error(&label_mismatch);
    assert!(
        error.contains("3 labels") && error.contains("2 outputs"),
        "{error}"
    );
    let fused_wrong = edited_copy("internlm2-reward", "wqkv", |_, tensors| {
        tensors.insert(
            "model.layers.1.attention.wqkv.weight".into(),
            Tensor::zeros((30, 32), candle_core::DType::F32, &Device::Cpu).expect("zeros"),
        );
    });
    let error = load_error(&fused_wrong);
    assert!(
        error.contains("model.layers.1.attention.wqkv.weight")
            && error.contains("[64, 32]")
            && error.contains("model.safetensors"),
        "{error}"
    );
    let fused_missing = edited_copy("internlm2-reward", "no-wqkv", |_, tensors| {
        tensors.remove("model.layers.0.attention.wqkv.weight");
    });
    let error = load_error(&fused_missing);
    assert!(
        error.contains("model.layers.0.attention.wqkv.weight"),
        "{error}"
    );

    // LLM rerankers: answer tokens the tokenizer lacks (qwen2-reranker's are in its reranker.json, left out here),
    // an untied head without its rows, a prompt template without the document.
    let default_tokens = edited_copy("qwen2-reranker", "no-reranker-json", |_, _| {});
    let error = load_error(&default_tokens);
    assert!(
        error.contains("no token `yes`") && error.contains("reranker.json"),
        "{error}"
    );
    let no_lm_head = edited_copy("qwen2-reranker", "no-lm-head", |_, tensors| {
        tensors.remove("lm_head.weight");
    });
    std::fs::copy(
        models_dir().join("qwen2-reranker/reranker.json"),
        no_lm_head.join("reranker.json"),
    )
    .expect("copy");
    let error = load_error(&no_lm_head);
    assert!(error.contains("lm_head.weight"), "{error}");
    let bad_template = edited_copy("qwen3-reranker", "template", |_, _| {});
    std::fs::write(
        bad_template.join("reranker.json"),
        r#"{"template": "{query}"}"#,
    )
    .expect("write");
    let error = load_error(&bad_template);
    assert!(
        error.contains("reranker.json") && error.contains("`{document}` is missing"),
        "{error}"
    );

    // A bare backbone without the cross-encoder modules that make it a model.
    let bare = edited_copy("bert-st-reranker", "bare", |_, _| {});
    let error = load_error(&bare);
    assert!(
        error.contains("BertModel is a bare encoder") && error.contains("modules.json"),
        "{error}"
    );

    for dir in [
        bare,
        default_tokens,
        no_lm_head,
        bad_template,
        unsupported,
        deberta_conv,
        modernbert_pooling,
        missing,
        wrong_shape,
        label_mismatch,
        fused_wrong,
        fused_missing,
    ] {
        let _ = std::fs::remove_dir_all(dir);
    }
    let absent = load_error(Path::new("/nonexistent/model"));
    assert!(absent.contains("config.json"), "{absent}");
}

#[test]
fn sharded_checkpoints_load_like_single_files() {
    let dir = std::env::temp_dir().join(format!("classify-sharded-{}", std::process::id()));
    let sharded = sharded_copy("qwen3-2label", &dir);
    let fixture = Fixture::load("qwen3-2label");
    let server = NativeServer::start(&[sharded.as_path()], &[]).unwrap_or_else(|e| panic!("{e:#}"));
    let client = Client::new(&server.base_url);
    let texts = fixture.texts();
    let response = client.classify(&json!({"model": "qwen3-2label", "input": texts}));
    for (result, reference) in response["data"]
        .as_array()
        .into_iter()
        .flatten()
        .zip(&fixture.reference.inputs)
    {
        assert_close(&floats(&result["probs"]), &reference.probs, 1e-4, "sharded");
    }
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_client_that_withholds_its_headers_is_cut_off() {
    let server = serve("bert-sentiment", &["--header-read-timeout", "1"]);
    let address = server.base_url.trim_start_matches("http://");
    let mut slow = TcpStream::connect(address).expect("connect");
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    slow.write_all(b"POST /v1/classify HTTP/1.1\r\nHost: x\r\n")
        .expect("write");
    let started = Instant::now();
    let mut rest = Vec::new();
    // Returns when the server closes the connection (or after 10 s, which fails the test).
    let _ = slow.read_to_end(&mut rest);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(5),
        "closed after {took:?}"
    );
    assert_eq!(Client::new(&server.base_url).get("/health").status, 200);
}

/// Sends `request` as is and reads until the server closes the connection (at most 10 s).
fn raw_exchange(address: &str, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream.write_all(request).expect("write");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// The status and the JSON error body of a raw HTTP/1.1 answer.
fn status_and_error(answer: &str) -> (u16, serde_json::Value) {
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or_default())
}

#[test]
fn a_stalled_body_gets_408_in_the_error_shape() {
    let server = serve("bert-sentiment", &["--body-read-timeout", "1"]);
    let address = server.base_url.trim_start_matches("http://");
    let started = Instant::now();
    let answer = raw_exchange(
        address,
        b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"model\":",
    );
    let (status, error) = status_and_error(&answer);
    assert_eq!(
        (status, error["type"].as_str()),
        (408, Some("request_timeout")),
        "{answer}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn heads_over_the_limits_get_414_and_431_in_the_error_shape() {
    let server = serve("bert-sentiment", &[]);
    let address = server.base_url.trim_start_matches("http://");
    let long = format!(
        "GET /health?{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "a".repeat(9000)
    );
    let (status, error) = status_and_error(&raw_exchange(address, long.as_bytes()));
    assert_eq!(
        (status, error["type"].as_str()),
        (414, Some("uri_too_long"))
    );
    let headers: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
    let many = format!("GET /health HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n");
    let (status, error) = status_and_error(&raw_exchange(address, many.as_bytes()));
    assert_eq!(
        (status, error["type"].as_str()),
        (431, Some("headers_too_large"))
    );
}

#[test]
fn a_connection_past_the_cap_gets_503_at_once() {
    let server = serve("bert-sentiment", &["--max-connections", "2"]);
    let address = server.base_url.trim_start_matches("http://");
    let held: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(address).expect("connect"))
        .collect();
    // Let the server accept both before the third arrives.
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let answer = raw_exchange(address, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    let (status, error) = status_and_error(&answer);
    assert_eq!(
        (status, error["type"].as_str()),
        (503, Some("unavailable")),
        "{answer}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(Client::new(&server.base_url).get("/health").status, 200);
}

#[test]
fn admission_comes_before_the_body_is_read() {
    let server = serve("bert-sentiment", &["--max-concurrent-requests", "1"]);
    let address = server.base_url.trim_start_matches("http://");
    // Holds the only permit: its headers are in, its body never comes.
    let mut holder = TcpStream::connect(address).expect("connect");
    holder
        .write_all(b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n{")
        .expect("write");
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let answer = raw_exchange(
        address,
        b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n",
    );
    let (status, error) = status_and_error(&answer);
    assert_eq!(
        (status, error["type"].as_str()),
        (429, Some("overloaded")),
        "{answer}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(Client::new(&server.base_url).get("/health").status, 200);
    drop(holder);
}
