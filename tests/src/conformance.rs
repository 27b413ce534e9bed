//! The 17 conformance cases of the contract, each a function of a running deployment and a fixture, so edge and
//! native run exactly the same checks. Each panics (fails its test) with the case and model in the message.

use serde_json::{Value, json};

use crate::client::Client;
use crate::fixtures::Fixture;

/// Tolerance against the transformers reference (f32).
pub const REFERENCE_TOLERANCE: f32 = 1e-4;

pub fn floats(value: &Value) -> Vec<f32> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {value}"))
        .iter()
        .map(|v| v.as_f64().unwrap_or(f64::NAN) as f32)
        .collect()
}

pub fn assert_close(got: &[f32], want: &[f32], tolerance: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: {got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g - w).abs() <= tolerance,
            "{what}: {got:?} vs {want:?} (tolerance {tolerance})"
        );
    }
}

fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|x| (x - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.iter().map(|e| e / sum).collect()
}

fn sigmoid(logits: &[f32]) -> Vec<f32> {
    logits.iter().map(|x| 1.0 / (1.0 + (-x).exp())).collect()
}

fn uses_softmax(fixture: &Fixture) -> bool {
    fixture.reference.problem_type.as_deref() != Some("multi_label_classification")
        && !answers_raw_scores(fixture)
        && fixture.reference.inputs[0].logits.len() > 1
}

/// Regression heads, and cross-encoders that saved the identity as their activation (the Ettin rerankers).
fn answers_raw_scores(fixture: &Fixture) -> bool {
    fixture.reference.problem_type.as_deref() == Some("regression")
        || fixture.reference.activation.as_deref() == Some("identity")
}

fn body(fixture: &Fixture, input: Value) -> Value {
    json!({"model": fixture.name, "input": input})
}

fn data(response: &Value) -> &Vec<Value> {
    response["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data: {response}"))
}

/// 1. A string input gives one result with exactly `index, label, probs, num_classes`; label = argmax label.
pub fn case01_string_input(client: &Client, fixture: &Fixture) {
    let reference = &fixture.reference.inputs[0];
    let response = client.classify(&body(fixture, json!(reference.text)));
    let results = data(&response);
    assert_eq!(results.len(), 1, "{response}");
    let mut keys: Vec<&str> = results[0]
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["index", "label", "num_classes", "probs"],
        "{response}"
    );
    assert_eq!(results[0]["index"], 0);
    let probs = floats(&results[0]["probs"]);
    let argmax = (0..probs.len()).fold(0, |best, i| if probs[i] > probs[best] { i } else { best });
    assert_eq!(
        results[0]["label"],
        fixture.expected_labels()[argmax],
        "{}",
        fixture.name
    );
    assert_eq!(
        results[0]["label"],
        reference.label.as_str(),
        "{}",
        fixture.name
    );
    assert_eq!(response["object"], "list");
    assert_eq!(response["model"], fixture.name.as_str());
    assert!(
        response["created"]
            .as_u64()
            .is_some_and(|t| t > 1_700_000_000),
        "{response}"
    );
}

/// 2. N strings give N results in order, each equal to the single-input answer.
pub fn case02_batch_of_strings(client: &Client, fixture: &Fixture) {
    let texts = fixture.texts();
    let response = client.classify(&body(fixture, json!(texts)));
    let results = data(&response);
    assert_eq!(results.len(), texts.len());
    for (i, (result, text)) in results.iter().zip(&texts).enumerate() {
        assert_eq!(result["index"], i);
        let single = client.classify(&body(fixture, json!(text)));
        assert_eq!(
            result["label"], single["data"][0]["label"],
            "{}: input {i}",
            fixture.name
        );
        assert_close(
            &floats(&result["probs"]),
            &floats(&single["data"][0]["probs"]),
            1e-5,
            &fixture.name,
        );
    }
}

/// 3. Token ids, as one list and as a list of lists, answer like the equivalent text.
pub fn case03_token_ids(client: &Client, fixture: &Fixture) {
    let inputs = &fixture.reference.inputs[..3];
    let by_text = client.classify(&body(
        fixture,
        json!(inputs.iter().map(|i| &i.text).collect::<Vec<_>>()),
    ));
    let single = client.classify(&body(fixture, json!(inputs[0].ids)));
    assert_close(
        &floats(&single["data"][0]["probs"]),
        &floats(&by_text["data"][0]["probs"]),
        1e-5,
        "one id list",
    );
    assert_eq!(single["data"][0]["label"], by_text["data"][0]["label"]);
    assert_eq!(single["usage"]["prompt_tokens"], inputs[0].ids.len());
    let batch = client.classify(&body(
        fixture,
        json!(inputs.iter().map(|i| &i.ids).collect::<Vec<_>>()),
    ));
    for i in 0..inputs.len() {
        assert_close(
            &floats(&batch["data"][i]["probs"]),
            &floats(&by_text["data"][i]["probs"]),
            1e-5,
            "id lists",
        );
        assert_eq!(batch["data"][i]["label"], by_text["data"][i]["label"]);
    }
    assert_eq!(batch["usage"], by_text["usage"]);
}

/// 4. `len(probs) == num_classes == num_labels`; softmax probs sum to 1.
pub fn case04_probs_shape(client: &Client, fixture: &Fixture) {
    let models = client.get("/v1/models").json();
    let card = models["data"]
        .as_array()
        .and_then(|cards| cards.iter().find(|c| c["id"] == fixture.name.as_str()))
        .unwrap_or_else(|| panic!("{} not in {models}", fixture.name))
        .clone();
    let response = client.classify(&body(fixture, json!(fixture.reference.inputs[1].text)));
    let result = &data(&response)[0];
    let probs = floats(&result["probs"]);
    assert_eq!(result["num_classes"], probs.len());
    assert_eq!(card["num_labels"], probs.len());
    if uses_softmax(fixture) {
        assert!((probs.iter().sum::<f32>() - 1.0).abs() <= 1e-5, "{probs:?}");
    }
}

/// 5. probs match the transformers reference within 1e-4.
pub fn case05_reference_parity(client: &Client, fixture: &Fixture) {
    let texts = fixture.texts();
    let response = client.classify(&body(fixture, json!(texts)));
    for (result, reference) in data(&response).iter().zip(&fixture.reference.inputs) {
        let what = format!("{}: {:?}", fixture.name, reference.text);
        assert_close(
            &floats(&result["probs"]),
            &reference.probs,
            REFERENCE_TOLERANCE,
            &what,
        );
        assert_eq!(result["label"], reference.label.as_str(), "{what}");
    }
}

/// 6. usage counts special tokens, after truncation, summed over the batch; completion_tokens is 0.
pub fn case06_usage(client: &Client, fixture: &Fixture) {
    let inputs = &fixture.reference.inputs[..4];
    let response = client.classify(&body(
        fixture,
        json!(inputs.iter().map(|i| &i.text).collect::<Vec<_>>()),
    ));
    let expected: usize = inputs.iter().map(|i| i.ids.len()).sum();
    assert_eq!(
        response["usage"],
        json!({"prompt_tokens": expected, "total_tokens": expected, "completion_tokens": 0,
               "prompt_tokens_details": null})
    );
    let truncated = client.classify(&json!({"model": fixture.name, "truncate_prompt_tokens": 5,
        "input": [fixture.reference.long_text.text, inputs[0].text]}));
    assert_eq!(
        truncated["usage"]["prompt_tokens"],
        5 + 5.min(inputs[0].ids.len())
    );
}

/// 7. `truncate_prompt_tokens`: 5 keeps 5 tokens; above the max length → 400 naming the field; -1 works.
pub fn case07_truncation(client: &Client, fixture: &Fixture) {
    let long = &fixture.reference.long_text;
    for truncated in &fixture.reference.truncated {
        let k = truncated.truncate_prompt_tokens;
        let value = if k == fixture.reference.max_model_len {
            json!(-1)
        } else {
            json!(k)
        };
        let response = client.classify(&json!({"model": fixture.name, "input": long.text,
            "truncate_prompt_tokens": value, "use_activation": false}));
        assert_eq!(
            response["usage"]["prompt_tokens"],
            truncated.ids.len(),
            "{}: k={k}",
            fixture.name
        );
        assert_eq!(truncated.ids.len(), k);
        let what = format!("{}: truncated to {k}", fixture.name);
        assert_close(
            &floats(&response["data"][0]["probs"]),
            &truncated.logits,
            REFERENCE_TOLERANCE,
            &what,
        );
        let tokens = client
            .post(
                "/tokenize",
                &json!({"model": fixture.name, "prompt": long.text}),
            )
            .json();
        assert_eq!(tokens["count"], long.num_tokens);
    }
    let too_big = fixture.reference.max_model_len + 1;
    let reply = client.post(
        "/v1/classify",
        &json!({"model": fixture.name, "input": "hello",
        "truncate_prompt_tokens": too_big}),
    );
    let message = reply.expect_error(400, "invalid_request_error");
    assert!(message.contains("truncate_prompt_tokens"), "{message}");
    assert_eq!(reply.json()["param"], "truncate_prompt_tokens");
}

/// 8. Empty, blank, mistyped and negative inputs → 400 in the error shape.
pub fn case08_invalid_inputs(client: &Client, fixture: &Fixture) {
    for input in [
        json!(""),
        json!("   "),
        json!([]),
        json!([""]),
        json!([[]]),
        json!([1, -1]),
        json!([1, "a"]),
        json!({}),
        json!(5),
    ] {
        let reply = client.post("/v1/classify", &body(fixture, input.clone()));
        reply.expect_error(400, "invalid_request_error");
        assert_eq!(reply.json()["param"], "input", "{input}");
    }
    let reply = client.post("/v1/classify", &body(fixture, json!([[1, 2], [3, -4]])));
    assert!(
        reply
            .expect_error(400, "invalid_request_error")
            .contains("input[1][1]")
    );
    let vocab = u32::MAX as u64 + 10;
    let reply = client.post("/v1/classify", &body(fixture, json!([2, vocab])));
    assert!(
        reply
            .expect_error(400, "invalid_request_error")
            .contains("input[1]")
    );
}

/// 9. Too long → 400 with both numbers; exactly the max length → 200.
pub fn case09_max_length(client: &Client, fixture: &Fixture) {
    let max = fixture.reference.max_model_len;
    let long = &fixture.reference.long_text;
    let message = client
        .post("/v1/classify", &body(fixture, json!(long.text)))
        .expect_error(400, "invalid_request_error");
    assert!(
        message.contains(&long.num_tokens.to_string()) && message.contains(&max.to_string()),
        "{message}"
    );
    let filler = fixture.reference.inputs[0].ids[1];
    // Inputs end with the reward token where the model appends one, so their length is what the model sees.
    let of_length = |n: usize| -> Vec<u32> {
        let mut ids: Vec<u32> = std::iter::repeat_n(filler, n).collect();
        if let (Some(token), Some(last)) = (fixture.reference.reward_token_id, ids.last_mut()) {
            *last = token;
        }
        ids
    };
    let response = client.classify(&body(fixture, json!(of_length(max))));
    assert_eq!(response["usage"]["prompt_tokens"], max);
    let over = of_length(max + 1);
    let message = client
        .post("/v1/classify", &body(fixture, json!(over)))
        .expect_error(400, "invalid_request_error");
    assert!(
        message.contains(&(max + 1).to_string()) && message.contains(&max.to_string()),
        "{message}"
    );
}

/// 10. Unknown model → 404; missing `model` → 400.
pub fn case10_model_errors(client: &Client, _fixture: &Fixture) {
    let reply = client.post(
        "/v1/classify",
        &json!({"model": "no-such-model", "input": "hi"}),
    );
    assert!(
        reply
            .expect_error(404, "model_not_found")
            .contains("no-such-model")
    );
    let reply = client.post(
        "/v1/classify",
        &json!({"model": "../../etc/passwd", "input": "hi"}),
    );
    reply.expect_error(404, "model_not_found");
    let reply = client.post("/v1/classify", &json!({"input": "hi"}));
    reply.expect_error(400, "invalid_request_error");
    assert_eq!(reply.json()["param"], "model");
}

/// 11. Invalid JSON, a JSON array body, non-JSON content → 400; a body over the limit → 413.
pub fn case11_malformed_bodies(client: &Client, _fixture: &Fixture) {
    for (content_type, bytes) in [
        ("application/json", &b"{\"model\": "[..]),
        (
            "application/json",
            &b"[{\"model\":\"m\",\"input\":\"x\"}]"[..],
        ),
        ("text/plain", &b"hello world"[..]),
        ("application/x-www-form-urlencoded", &b"model=m&input=x"[..]),
        ("application/json", &b""[..]),
    ] {
        let reply = client.request(
            "POST",
            "/v1/classify",
            &[("content-type", content_type)],
            Some(bytes),
        );
        reply.expect_error(400, "invalid_request_error");
    }
    let huge = format!(
        "{{\"model\":\"m\",\"input\":\"{}\"}}",
        "a".repeat(3 * 1024 * 1024)
    );
    let reply = client.request(
        "POST",
        "/v1/classify",
        &[("content-type", "application/json")],
        Some(huge.as_bytes()),
    );
    reply.expect_error(413, "payload_too_large");
}

/// 12. `use_activation: false` returns the raw logits; their activation equals the default probs.
pub fn case12_raw_logits(client: &Client, fixture: &Fixture) {
    let reference = &fixture.reference.inputs[2];
    let raw = client.classify(
        &json!({"model": fixture.name, "input": reference.text, "use_activation": false}),
    );
    let probs = client.classify(&body(fixture, json!(reference.text)));
    let logits = floats(&raw["data"][0]["probs"]);
    assert_close(
        &logits,
        &reference.logits,
        REFERENCE_TOLERANCE,
        &format!("{}: raw logits", fixture.name),
    );
    let activated = if uses_softmax(fixture) {
        softmax(&logits)
    } else if answers_raw_scores(fixture) {
        logits.clone()
    } else {
        sigmoid(&logits)
    };
    assert_close(
        &activated,
        &floats(&probs["data"][0]["probs"]),
        1e-6,
        &fixture.name,
    );
    assert_eq!(raw["data"][0]["label"], probs["data"][0]["label"]);
}

/// 13. One- and multi-label models use sigmoid unless they saved another activation; raw scores without it.
pub fn case13_sigmoid_heads(client: &Client, fixture: &Fixture) {
    if uses_softmax(fixture) || answers_raw_scores(fixture) {
        return;
    }
    for reference in &fixture.reference.inputs {
        let response = client.classify(&body(fixture, json!(reference.text)));
        let probs = floats(&response["data"][0]["probs"]);
        assert_close(
            &probs,
            &sigmoid(&reference.logits),
            REFERENCE_TOLERANCE,
            &fixture.name,
        );
        assert!(probs.iter().all(|p| (0.0..=1.0).contains(p)));
        let raw = client.classify(
            &json!({"model": fixture.name, "input": reference.text, "use_activation": false}),
        );
        assert_close(
            &floats(&raw["data"][0]["probs"]),
            &reference.logits,
            REFERENCE_TOLERANCE,
            &fixture.name,
        );
    }
}

/// 14. `add_special_tokens: false` lowers the token count by the number of special tokens.
pub fn case14_special_tokens(client: &Client, fixture: &Fixture) {
    let reference = &fixture.reference.inputs[0];
    let with = client.classify(&body(fixture, json!(reference.text)));
    let without = client.classify(
        &json!({"model": fixture.name, "input": reference.text, "add_special_tokens": false}),
    );
    let (with, without) = (
        &with["usage"]["prompt_tokens"],
        &without["usage"]["prompt_tokens"],
    );
    assert_eq!(
        with.as_u64().unwrap_or(0) - without.as_u64().unwrap_or(0),
        fixture.reference.num_special_tokens as u64
    );
    let tokens = client.post(
        "/tokenize",
        &json!({"model": fixture.name, "prompt": reference.text,
        "add_special_tokens": false}),
    );
    assert_eq!(tokens.json()["tokens"], json!(reference.ids_no_special));
    let tokens = client.post(
        "/tokenize",
        &json!({"model": fixture.name, "prompt": reference.text}),
    );
    assert_eq!(tokens.json()["tokens"], json!(reference.ids));
    assert_eq!(
        tokens.json()["max_model_len"],
        fixture.reference.max_model_len
    );
}

/// 15. `rid` or `X-Request-Id` name the response id; otherwise `classify-` + 32 hex digits.
pub fn case15_request_id(client: &Client, fixture: &Fixture) {
    let request = json!({"model": fixture.name, "input": "hello", "rid": "abc"});
    assert_eq!(client.classify(&request)["id"], "classify-abc");
    let plain = body(fixture, json!("hello")).to_string();
    let headers = [
        ("content-type", "application/json"),
        ("x-request-id", "abc"),
    ];
    let reply = client.request("POST", "/v1/classify", &headers, Some(plain.as_bytes()));
    assert_eq!(reply.json()["id"], "classify-abc");
    let id = client.classify(&body(fixture, json!("hello")))["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let hex = id.strip_prefix("classify-").unwrap_or_default();
    assert!(
        hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit()),
        "{id}"
    );
}

/// 16. `/classify` answers exactly like `/v1/classify`; unknown fields are ignored.
pub fn case16_alias_and_unknown_fields(client: &Client, fixture: &Fixture) {
    let request = json!({"model": fixture.name, "input": [fixture.reference.inputs[0].text, "ok"], "rid": "same",
        "encoding_format": "float", "extra": {"nested": [1, 2]}});
    let mut v1 = client.classify(&request);
    let reply = client.post("/classify", &request);
    assert_eq!(reply.status, 200, "{}", reply.text);
    let mut alias = reply.json();
    v1["created"] = json!(0);
    alias["created"] = json!(0);
    assert_eq!(v1, alias);
}

/// 17. Labels: id2label, else LABEL_i, else Class_i — in `/v1/models` and in answers.
pub fn case17_labels(client: &Client, fixture: &Fixture) {
    let expected = fixture.expected_labels();
    let models = client.get("/v1/models").json();
    let card = models["data"]
        .as_array()
        .and_then(|cards| cards.iter().find(|c| c["id"] == fixture.name.as_str()))
        .cloned()
        .unwrap_or_default();
    assert_eq!(card["labels"], json!(expected), "{models}");
    assert_eq!(card["object"], "model");
    assert_eq!(card["max_model_len"], fixture.reference.max_model_len);
    assert_eq!(
        card["architecture"],
        fixture.reference.architecture.as_str()
    );
    for reference in &fixture.reference.inputs {
        assert!(
            expected.contains(&reference.label),
            "{} not in {expected:?}",
            reference.label
        );
    }
}

/// 18. Moderations.
///
/// `/v1/moderations` in OpenAI's shape: each label a category scored by the model's activation (the reference's
/// probs), flagged at or above its threshold from the fixture's `moderation.json` (else 0.5) unless it
/// never flags (the file's `never_flag`, else benign names: among the fixtures' labels `neutral`, `benign`, `safe`).
pub fn case18_moderations(client: &Client, fixture: &Fixture) {
    let texts = fixture.texts();
    let answer = client.post_ok(
        "/v1/moderations",
        &json!({"model": fixture.name, "input": texts, "rid": "m1"}),
    );
    assert_eq!(answer["id"], "modr-m1");
    assert_eq!(answer["model"], fixture.name.as_str());
    let settings: Value = std::fs::read(fixture.dir.join("moderation.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    let labels = fixture.expected_labels();
    let never_flag = |label: &str| match settings["never_flag"].as_array() {
        Some(named) => named.iter().any(|n| n == label),
        None => ["neutral", "benign", "safe"].contains(&label.to_lowercase().as_str()),
    };
    let threshold = |label: &str| {
        settings["thresholds"][label]
            .as_f64()
            .or(settings["default_threshold"].as_f64())
            .unwrap_or(0.5)
    };
    let results = answer["results"].as_array().cloned().unwrap_or_default();
    assert_eq!(results.len(), texts.len(), "{answer}");
    for (result, reference) in results.iter().zip(&fixture.reference.inputs) {
        let what = format!("{}: {:?}", fixture.name, reference.text);
        let scores: Vec<f64> = labels
            .iter()
            .map(|label| {
                result["category_scores"][label]
                    .as_f64()
                    .unwrap_or(f64::NAN)
            })
            .collect();
        let as_f32: Vec<f32> = scores.iter().map(|&s| s as f32).collect();
        assert_close(&as_f32, &reference.probs, REFERENCE_TOLERANCE, &what);
        let mut any = false;
        for (label, score) in labels.iter().zip(&scores) {
            let flags = !never_flag(label) && *score >= threshold(label);
            assert_eq!(
                result["categories"][label], flags,
                "{what} {label}: {result}"
            );
            assert_eq!(
                result["category_applied_input_types"][label],
                json!(["text"])
            );
            any |= flags;
        }
        assert_eq!(result["flagged"], any, "{what}: {result}");
    }
}

/// Routes outside the classify handler's happy path: 404, 405, /health.
pub fn routes(client: &Client) {
    client.get("/nope").expect_error(404, "not_found");
    let reply = client.get("/v1/classify");
    reply.expect_error(405, "method_not_allowed");
    assert_eq!(reply.allow.as_deref(), Some("POST"));
    client
        .request("POST", "/v1/models", &[], Some(b"{}"))
        .expect_error(405, "method_not_allowed");
    let health = client.get("/health");
    assert_eq!(
        (health.status, health.json()),
        (200, json!({"status": "ok"}))
    );
    // The document every answer here is checked against (crate::openapi) is the one the deployment serves.
    let served = client.get("/openapi.json").json();
    let committed: Value =
        serde_json::from_str(classify_protocol::handler::OPENAPI).unwrap_or_default();
    assert_eq!(served, committed);
}

/// One `#[test]` per conformance case, each run for every checkpoint in `$models` (a `&[&str]`) against the
/// deployment that `$client` (a `fn() -> Client`) reaches.
#[macro_export]
macro_rules! conformance_tests {
    ($client:path, $models:expr, $token_models:expr) => {
        $crate::conformance_tests!(@cases $client, $models;
            case01_string_input, case02_batch_of_strings, case03_token_ids, case04_probs_shape,
            case05_reference_parity, case06_usage, case07_truncation, case08_invalid_inputs, case09_max_length,
            case10_model_errors, case11_malformed_bodies, case12_raw_logits, case13_sigmoid_heads,
            case14_special_tokens, case15_request_id, case16_alias_and_unknown_fields, case17_labels,
            case18_moderations);
        $crate::conformance_tests!(@pair_cases $client, $models;
            rerank_matches_transformers, score_matches_transformers, per_doc_cuts_match_vllm, pair_errors,
            instructions_replace_the_default, zero_shot_matches_the_pipeline, chat_matches_apply_chat_template);
        $crate::conformance_tests!(@token_cases $client, $token_models;
            token_classify_matches_the_pipeline, long_texts_in_windows_match_the_pipeline,
            token_classify_options, pooling_matches_transformers_per_token);

        #[test]
        fn routes_health_and_method_errors() {
            if let Some(client) = $crate::conformance::Deployment::client($client()) {
                $crate::conformance::routes(&client);
            }
        }
    };
    (@token_cases $client:path, $models:expr; $($case:ident),*) => {
        $(
            #[test]
            fn $case() {
                let Some(client) = $crate::conformance::Deployment::client($client()) else {
                    return;
                };
                for name in $models {
                    $crate::token_cases::$case(&client, &$crate::fixtures::TokenFixture::load(name));
                }
            }
        )*
    };
    (@pair_cases $client:path, $models:expr; $($case:ident),*) => {
        $(
            #[test]
            fn $case() {
                let Some(client) = $crate::conformance::Deployment::client($client()) else {
                    return;
                };
                for name in $models {
                    $crate::pair_cases::$case(&client, &$crate::fixtures::Fixture::load(name));
                }
            }
        )*
    };
    (@cases $client:path, $models:expr; $($case:ident),*) => {
        $(
            #[test]
            fn $case() {
                let Some(client) = $crate::conformance::Deployment::client($client()) else {
                    return;
                };
                for name in $models {
                    $crate::conformance::$case(&client, &$crate::fixtures::Fixture::load(name));
                }
            }
        )*
    };
}

/// What a conformance suite's client function gives: a client, or `None` for a deployment that cannot run here
/// (a host binary that is missing), whose tests then pass after saying why.
pub trait Deployment {
    fn client(self) -> Option<Client>;
}

impl Deployment for Client {
    fn client(self) -> Option<Client> {
        Some(self)
    }
}

impl Deployment for Option<Client> {
    fn client(self) -> Option<Client> {
        self
    }
}
