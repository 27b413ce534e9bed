//! Checks of a running edge deployment against the native server, shared by the edge-host and Spin tests: same
//! answers, same tokens, and forwarding for models only the native server has.

use serde_json::json;

use crate::client::Client;
use crate::conformance::{REFERENCE_TOLERANCE, assert_close, floats};
use crate::fixtures::{ENCODER_MODELS, Fixture, models_dir};
use crate::native::NativeServer;
use crate::pair_cases::PairReference;

/// The native server with the encoder fixtures, the ones the edge holds as ONNX.
pub fn native_with_encoders() -> NativeServer {
    let dirs: Vec<_> = ENCODER_MODELS
        .iter()
        .map(|m| models_dir().join(m))
        .collect();
    let dirs: Vec<&std::path::Path> = dirs.iter().map(|d| d.as_path()).collect();
    NativeServer::start(&dirs, &[]).unwrap_or_else(|e| panic!("native: {e:#}"))
}

/// The native server with a decoder model, which the edge (holding its directory without ONNX) forwards, and a
/// token classifier under a name the edge does not serve.
pub fn native_with_decoder() -> NativeServer {
    let decoder = models_dir().join(FORWARDED_MODEL);
    let tagger = format!(
        "{FORWARDED_TOKEN_MODEL}={}",
        models_dir().join("bert-ner").display()
    );
    NativeServer::start(&[decoder.as_path()], &["--model", &tagger])
        .unwrap_or_else(|e| panic!("native: {e:#}"))
}

pub const FORWARDED_MODEL: &str = "qwen3-2label";
pub const FORWARDED_TOKEN_MODEL: &str = "ner-on-native";

/// Same labels, probabilities within the reference tolerance and the same usage, for every encoder fixture.
pub fn same_answers_as_native(native: &Client, edge: &Client) {
    for name in ENCODER_MODELS {
        let fixture = Fixture::load(name);
        let texts = fixture.texts();
        for request in [
            json!({"model": name, "input": texts}),
            json!({"model": name, "input": texts[0], "use_activation": false}),
            json!({"model": name, "input": fixture.reference.long_text.text, "truncate_prompt_tokens": 7}),
            json!({"model": name, "input": [fixture.reference.inputs[1].ids, [2, 3]]}),
        ] {
            let (a, b) = (native.classify(&request), edge.classify(&request));
            assert_eq!(a["usage"], b["usage"], "{name}: {request}");
            let (a, b) = (
                a["data"].as_array().cloned().unwrap_or_default(),
                b["data"].as_array().cloned().unwrap_or_default(),
            );
            assert_eq!(a.len(), b.len());
            for (x, y) in a.iter().zip(&b) {
                assert_eq!(x["label"], y["label"], "{name}: {request}");
                assert_close(
                    &floats(&x["probs"]),
                    &floats(&y["probs"]),
                    REFERENCE_TOLERANCE,
                    name,
                );
            }
        }
    }
}

/// The wasm build of the tokenizers gives the native build's tokens on hard text.
pub fn same_tokens_as_native(native: &Client, edge: &Client) {
    let long = "Ünïcödé façade, naïve café. ".repeat(40);
    let corpus = [
        "Café déjà vu: a naïve résumé on the façade of the old hotel.",
        "Emoji 😀🎉👍🏽 and flags 🇫🇷, joiners 👩‍👩‍👧",
        "中文文本，日本語のテキスト，한국어 텍스트",
        "Mixed: don't stop—it's 3.14 × 2 ≈ 6.28!",
        "\tTabs\nnewlines\r\n and   spaces  ",
        "ÀÉÎÕÜ ñ ç ß ø å œ",
        &long,
    ];
    for name in ENCODER_MODELS {
        for text in corpus {
            for add_special_tokens in [true, false] {
                let request = json!({"model": name, "prompt": text, "add_special_tokens": add_special_tokens});
                let (a, b) = (
                    native.post("/tokenize", &request).json(),
                    edge.post("/tokenize", &request).json(),
                );
                assert_eq!(a, b, "{name}: {text:?}");
                assert!(a["count"].as_u64().is_some_and(|n| n > 0), "{a}");
            }
        }
    }
}

/// `edge` forwards [`FORWARDED_MODEL`] and [`FORWARDED_TOKEN_MODEL`] to `native` (its NATIVE_URL), but not a
/// request that names no model; once `native` is stopped, 502 for it (without the native server's address) while
/// local models keep serving.
pub fn forwards_models_it_does_not_hold(edge: &Client, native: NativeServer) {
    let native_url = native.base_url.clone();
    let request =
        json!({"model": FORWARDED_MODEL, "input": ["I loved this movie", "ok"], "rid": "fwd"});
    let direct = Client::new(&native_url).classify(&request);
    let forwarded = edge.classify(&request);
    assert_eq!(forwarded["id"], "classify-fwd");
    assert_eq!(forwarded["data"], direct["data"]);
    let entities =
        json!({"model": FORWARDED_TOKEN_MODEL, "input": "Ann lives in Berlin", "rid": "fwd"});
    let direct = Client::new(&native_url).post_ok("/v1/token-classify", &entities);
    let forwarded = edge.post_ok("/v1/token-classify", &entities);
    assert_eq!(forwarded["data"], direct["data"]);
    let tokens = edge.post(
        "/tokenize",
        &json!({"model": FORWARDED_MODEL, "prompt": "ok"}),
    );
    assert_eq!(tokens.status, 200, "{}", tokens.text);
    let bad = edge.post(
        "/v1/classify",
        &json!({"model": FORWARDED_MODEL, "input": ""}),
    );
    bad.expect_error(400, "invalid_request_error");
    // The edge serves several models: a request without `model` is ambiguous here, so it is a 400 naming them, not
    // a request for the native server's one model.
    let ambiguous = edge.post("/v1/classify", &json!({"input": "ok"}));
    let message = ambiguous.expect_error(400, "invalid_request_error");
    assert!(message.contains("bert-sentiment"), "{message}");
    let models = edge.get("/v1/models").json();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .map(|d| d.iter().filter_map(|m| m["id"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        ids.contains(&"bert-sentiment") && ids.contains(&FORWARDED_MODEL),
        "{ids:?}"
    );

    drop(native);
    let reply = edge.post("/v1/classify", &request);
    let message = reply.expect_error(502, "upstream_error");
    // The client is told which server failed, not where it runs.
    assert!(message.contains("the native server"), "{message}");
    let port = native_url.rsplit(':').next().unwrap_or_default();
    assert!(
        !message.contains(&native_url) && !message.contains(port),
        "{message}"
    );
    let local = edge.classify(&json!({"model": "bert-sentiment", "input": "still here"}));
    assert_eq!(local["data"].as_array().map(Vec::len), Some(1));
    let models = edge.get("/v1/models");
    assert_eq!(models.status, 200);
}

/// The bundled spam/ham model answers the training script's examples as transformers does: raw logits within
/// 1e-4 and the same labels (the README's spam message is spam, its ordinary one ham).
pub fn bundled_model_answers_like_transformers(client: &Client) {
    bundled_answers(client, |e| &e.logits, REFERENCE_TOLERANCE);
    let examples = crate::fixtures::bundled_examples();
    assert_eq!(examples[0].label, "spam");
    assert_eq!(examples[2].label, "ham");
}

/// The bundled model's int8 file (`onnx/model_quantized.onnx`, picked with `CLASSIFY_ONNX_FILES`): raw logits
/// within 1e-3 of onnxruntime running the same file (the fp32 file is up to 2e-2 away, so this also shows which
/// file answered), and transformers' labels.
pub fn bundled_int8_answers_like_onnxruntime(client: &Client) {
    bundled_answers(client, |e| &e.int8_logits, 1e-3);
}

/// Raw logits of every bundled example within `tolerance` of `expected`, and its label, batched and activated.
fn bundled_answers(
    client: &Client,
    expected: fn(&crate::fixtures::BundledExample) -> &Vec<f32>,
    tolerance: f32,
) {
    let examples = crate::fixtures::bundled_examples();
    let texts: Vec<&str> = examples.iter().map(|e| e.text.as_str()).collect();
    let raw =
        client.classify(&json!({"model": "spam-bert", "input": texts, "use_activation": false}));
    let labelled = client.classify(&json!({"model": "spam-bert", "input": texts}));
    for (i, example) in examples.iter().enumerate() {
        let what = &example.text;
        assert_close(
            &floats(&raw["data"][i]["probs"]),
            expected(example),
            tolerance,
            what,
        );
        assert_eq!(labelled["data"][i]["label"], json!(example.label), "{what}");
    }
}

/// The example consumer `edge/examples/comment-filter` (at `filter`), which calls the classify component through
/// its typed interface in-process, gets what the HTTP route of the classify component (at `classify`) answers for
/// the same text: the same label and probabilities, bit for bit; the same ranking and scores of a cross-encoder as
/// `/v1/rerank` and the same scores as `/v1/score`; the same tokens as `/tokenize`; the same error message for a
/// model not served; the same models.
pub fn typed_calls_answer_like_the_routes(filter: &Client, classify: &Client) {
    // The example's routes are not the contract's.
    let ask = |path: &str, body: &serde_json::Value| {
        filter.send(
            "POST",
            path,
            &[("content-type", "application/json")],
            Some(body.to_string().as_bytes()),
        )
    };
    for name in ENCODER_MODELS {
        let fixture = Fixture::load(name);
        for text in fixture.texts() {
            let verdict = ask("/comments", &json!({"comment": text, "model": name}));
            assert_eq!(verdict.status, 200, "{name}: {}", verdict.text);
            let verdict = verdict.json();
            let route = classify
                .classify(&json!({"model": name, "input": [text], "truncate_prompt_tokens": -1}));
            let data = &route["data"][0];
            assert_eq!(verdict["label"], data["label"], "{name}: {text}");
            // The same f32 values (the two JSON writers spell them with different digits).
            assert_eq!(
                floats(&verdict["probs"]),
                floats(&data["probs"]),
                "{name}: {text}"
            );
            assert_eq!(verdict["model"], route["model"], "{name}");
            assert_eq!(verdict["accepted"], json!(data["label"] != "spam"));
        }
    }
    for name in ENCODER_MODELS {
        let Some(rerank) = PairReference::load(&Fixture::load(name)).and_then(|p| p.rerank) else {
            continue;
        };
        let body = json!({"model": name, "post": rerank.query, "comments": rerank.documents});
        let typed = ask("/comments/rank", &body);
        assert_eq!(typed.status, 200, "{name}: {}", typed.text);
        let typed = typed.json();
        let route = classify.post_ok(
            "/v1/rerank",
            &json!({"model": name, "query": rerank.query, "documents": rerank.documents}),
        );
        let field = |results: &serde_json::Value, key: &str| -> Vec<f32> {
            results
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| r[key].as_f64().unwrap_or(f64::NAN) as f32)
                .collect()
        };
        assert_eq!(typed["model"], route["model"], "{name}");
        for key in ["index", "relevance_score"] {
            assert_eq!(
                field(&typed["ranked"], key),
                field(&route["results"], key),
                "{name}: {key}"
            );
        }
        let typed = ask("/comments/relevance", &body);
        assert_eq!(typed.status, 200, "{name}: {}", typed.text);
        let typed = typed.json();
        let route = classify.post_ok(
            "/v1/score",
            &json!({"model": name, "text_1": rerank.query, "text_2": rerank.documents}),
        );
        assert_eq!(typed["model"], route["model"], "{name}");
        assert_eq!(
            floats(&typed["scores"]),
            field(&route["data"], "score"),
            "{name}"
        );
    }
    for name in ENCODER_MODELS {
        for text in Fixture::load(name).texts() {
            let typed = ask("/comments/length", &json!({"comment": text, "model": name}));
            assert_eq!(typed.status, 200, "{name}: {}", typed.text);
            let typed = typed.json();
            let route = classify.post_ok("/tokenize", &json!({"model": name, "prompt": text}));
            assert_eq!(typed["tokens"], route["tokens"], "{name}: {text}");
            assert_eq!(typed["max_model_len"], route["max_model_len"], "{name}");
            let fits = route["count"].as_u64() <= route["max_model_len"].as_u64();
            assert_eq!(typed["fits"], json!(fits), "{name}: {text}");
        }
    }
    let typed = ask(
        "/comments",
        &json!({"comment": "hello", "model": "no-such-model"}),
    );
    assert_eq!(typed.status, 404, "{}", typed.text);
    let route = classify.post(
        "/v1/classify",
        &json!({"model": "no-such-model", "input": "hello"}),
    );
    assert_eq!(
        typed.json()["error"].as_str(),
        Some(route.expect_error(404, "model_not_found").as_str())
    );
    let models = filter.send("GET", "/comments/models", &[], None).json();
    let mut typed: Vec<String> = serde_json::from_value(models["models"].clone())
        .unwrap_or_else(|e| panic!("{models}: {e}"));
    let mut listed: Vec<String> = classify.get("/v1/models").json()["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|card| card["id"].as_str().map(str::to_owned))
        .collect();
    typed.sort();
    listed.sort();
    assert_eq!(typed, listed);
}
