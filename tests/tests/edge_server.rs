//! The edge component next to the native server: same answers, same tokens, and forwarding for models only
//! the native server has.

use classify_tests::client::Client;
use classify_tests::conformance::{REFERENCE_TOLERANCE, assert_close, floats};
use classify_tests::edge::EdgeServer;
use classify_tests::fixtures::{BERT_MODELS, Fixture, models_dir};
use classify_tests::native::NativeServer;
use serde_json::json;

fn native_with_bert_models() -> NativeServer {
    let dirs: Vec<_> = BERT_MODELS.iter().map(|m| models_dir().join(m)).collect();
    let dirs: Vec<&std::path::Path> = dirs.iter().map(|d| d.as_path()).collect();
    NativeServer::start(&dirs, &[]).unwrap_or_else(|e| panic!("native: {e:#}"))
}

#[test]
fn edge_and_native_give_the_same_answers() {
    let native = native_with_bert_models();
    let edge = EdgeServer::start(&models_dir(), None).unwrap_or_else(|e| panic!("edge: {e:#}"));
    let (native, edge) = (Client::new(&native.base_url), Client::new(&edge.base_url));
    for name in BERT_MODELS {
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

#[test]
fn wasm_and_native_tokenizers_agree() {
    let native = native_with_bert_models();
    let edge = EdgeServer::start(&models_dir(), None).unwrap_or_else(|e| panic!("edge: {e:#}"));
    let (native, edge) = (Client::new(&native.base_url), Client::new(&edge.base_url));
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
    for name in BERT_MODELS {
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

#[test]
fn edge_forwards_models_it_does_not_hold() {
    // A decoder model: its directory is mounted in the edge too, but without an ONNX export, so only the native
    // server can answer for it.
    let decoder = models_dir().join("qwen3-2label");
    let native =
        NativeServer::start(&[decoder.as_path()], &[]).unwrap_or_else(|e| panic!("native: {e:#}"));
    let native_url = native.base_url.clone();
    let edge = EdgeServer::start(&models_dir(), Some(&native_url))
        .unwrap_or_else(|e| panic!("edge: {e:#}"));
    let edge_client = Client::new(&edge.base_url);
    let request =
        json!({"model": "qwen3-2label", "input": ["I loved this movie", "ok"], "rid": "fwd"});
    let direct = Client::new(&native_url).classify(&request);
    let forwarded = edge_client.classify(&request);
    assert_eq!(forwarded["id"], "classify-fwd");
    assert_eq!(forwarded["data"], direct["data"]);
    let tokens = edge_client.post(
        "/tokenize",
        &json!({"model": "qwen3-2label", "prompt": "ok"}),
    );
    assert_eq!(tokens.status, 200, "{}", tokens.text);
    let bad = edge_client.post(
        "/v1/classify",
        &json!({"model": "qwen3-2label", "input": ""}),
    );
    bad.expect_error(400, "invalid_request_error");
    let models = edge_client.get("/v1/models").json();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .map(|d| d.iter().filter_map(|m| m["id"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        ids.contains(&"bert-sentiment") && ids.contains(&"qwen3-2label"),
        "{ids:?}"
    );

    drop(native);
    let reply = edge_client.post("/v1/classify", &request);
    let message = reply.expect_error(502, "upstream_error");
    assert!(message.contains(&native_url), "{message}");
    let local = edge_client.classify(&json!({"model": "bert-sentiment", "input": "still here"}));
    assert_eq!(local["data"].as_array().map(Vec::len), Some(1));
    let models = edge_client.get("/v1/models");
    assert_eq!(models.status, 200);
}
