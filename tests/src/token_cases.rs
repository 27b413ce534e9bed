//! Conformance cases of token classification (`/v1/token-classify`) against what transformers'
//! token-classification pipeline answered on the same checkpoints (tokens.json). Each is a function of a running
//! deployment and a token fixture.

use serde_json::{Value, json};

use crate::client::Client;
use crate::conformance::REFERENCE_TOLERANCE;
use crate::fixtures::{AGGREGATION_STRATEGIES, TokenFixture};

/// Asserts `got` are the pipeline's `want` entities: the same keys, labels, words and offsets exactly, scores
/// within the reference tolerance.
pub fn assert_entities(got: &Value, want: &[Value], what: &str) {
    let got = got
        .as_array()
        .unwrap_or_else(|| panic!("{what}: no entities"));
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: {} entities, the pipeline has {}\n got: {got:?}\nwant: {want:?}",
        got.len(),
        want.len()
    );
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let keys = |v: &Value| {
            let mut keys: Vec<String> = v
                .as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default();
            keys.sort();
            keys
        };
        assert_eq!(keys(g), keys(w), "{what}: entity {i}: {g} vs {w}");
        for key in ["entity", "entity_group", "word", "start", "end", "index"] {
            assert_eq!(
                g.get(key),
                w.get(key),
                "{what}: entity {i} `{key}`: {g} vs {w}"
            );
        }
        let (gs, ws) = (
            g["score"].as_f64().unwrap_or(f64::NAN),
            w["score"].as_f64().unwrap_or(f64::NAN),
        );
        assert!(
            (gs - ws).abs() <= f64::from(REFERENCE_TOLERANCE),
            "{what}: entity {i} score {gs} vs {ws}"
        );
    }
}

/// Every reference text in one batch (mixed lengths), for every aggregation strategy, equals the pipeline's
/// entities; `usage` counts every token.
pub fn token_classify_matches_the_pipeline(client: &Client, fixture: &TokenFixture) {
    let name = &fixture.name;
    let texts: Vec<&str> = fixture
        .reference
        .inputs
        .iter()
        .map(|i| i.text.as_str())
        .collect();
    let tokens: usize = fixture.reference.inputs.iter().map(|i| i.ids.len()).sum();
    for strategy in AGGREGATION_STRATEGIES {
        let path = if strategy == "first" {
            "/token-classify"
        } else {
            "/v1/token-classify"
        };
        let reply = client.post(
            path,
            &json!({"model": name, "input": texts, "aggregation_strategy": strategy}),
        );
        assert_eq!(reply.status, 200, "{name} {strategy}: {}", reply.text);
        let body = reply.json();
        assert_eq!(
            body["usage"]["prompt_tokens"],
            json!(tokens),
            "{name}: usage"
        );
        for (i, input) in fixture.reference.inputs.iter().enumerate() {
            assert_eq!(body["data"][i]["index"], json!(i));
            assert_entities(
                &body["data"][i]["entities"],
                &input.entities[strategy],
                &format!("{name} {strategy} {:?}", input.text),
            );
        }
    }
}

/// A text longer than the max length: refused naming `truncate_prompt_tokens` and `stride`; with `stride`, the
/// pipeline's entities of the overlapping windows, merged as it merges them.
pub fn long_texts_in_windows_match_the_pipeline(client: &Client, fixture: &TokenFixture) {
    let name = &fixture.name;
    let stride = &fixture.reference.stride;
    let message = client
        .post(
            "/v1/token-classify",
            &json!({"model": name, "input": stride.text}),
        )
        .expect_error(400, "invalid_request_error");
    assert!(
        message.contains("truncate_prompt_tokens") && message.contains("stride"),
        "{message}"
    );
    for (strategy, want) in &stride.entities {
        let reply = client.post(
            "/v1/token-classify",
            &json!({"model": name, "input": stride.text, "stride": stride.stride,
                    "aggregation_strategy": strategy}),
        );
        assert_eq!(reply.status, 200, "{name} {strategy}: {}", reply.text);
        assert_entities(
            &reply.json()["data"][0]["entities"],
            want,
            &format!("{name} stride {strategy}"),
        );
    }
}

/// `redact` replaces each entity's span (code points) with its label; `threshold` and `ignore_labels` leave
/// entities out; token ids answer without words or offsets; the other routes name this one.
pub fn token_classify_options(client: &Client, fixture: &TokenFixture) {
    let name = &fixture.name;
    let input = &fixture.reference.inputs[1];
    let want = &input.entities["simple"];
    let body = client
        .post(
            "/v1/token-classify",
            &json!({"model": name, "input": input.text, "redact": true}),
        )
        .json();
    // Spans in code points without their edge whitespace; those that overlap (the byte pieces of one character)
    // as one, under the first label.
    let chars: Vec<char> = input.text.chars().collect();
    let mut spans: Vec<(usize, usize, &str)> = want
        .iter()
        .map(|e| {
            let at = |key: &str| e[key].as_u64().unwrap_or(0) as usize;
            let (mut start, mut end) = (at("start"), at("end"));
            while start < end && chars[start].is_whitespace() {
                start += 1;
            }
            while end > start && chars[end - 1].is_whitespace() {
                end -= 1;
            }
            (start, end, e["entity_group"].as_str().unwrap_or_default())
        })
        .filter(|(start, end, _)| start < end)
        .collect();
    spans.sort_by_key(|&(start, end, _)| (start, std::cmp::Reverse(end)));
    let mut redacted = String::new();
    let mut at = 0;
    for (start, end, label) in spans {
        if start < at {
            at = at.max(end);
            continue;
        }
        redacted.extend(&chars[at..start]);
        redacted.push_str(&format!("[{label}]"));
        at = end;
    }
    redacted.extend(&chars[at..]);
    assert_eq!(body["data"][0]["redacted"], json!(redacted), "{name}");

    let scores: Vec<f64> = want.iter().filter_map(|e| e["score"].as_f64()).collect();
    // Halfway between two scores, so that ours and the pipeline's (within 1e-4) fall on the same side.
    let threshold = {
        let mut sorted = scores.clone();
        sorted.sort_by(f64::total_cmp);
        let k = sorted.len() / 2;
        (sorted[k - 1] + sorted[k]) / 2.0
    };
    let body = client
        .post(
            "/v1/token-classify",
            &json!({"model": name, "input": input.text, "threshold": threshold}),
        )
        .json();
    let kept = body["data"][0]["entities"].as_array().map_or(0, Vec::len);
    let expected = scores.iter().filter(|&&s| s >= threshold).count();
    assert_eq!(kept, expected, "{name}: threshold {threshold}");

    let first_group = want[0]["entity_group"].clone();
    let body = client
        .post(
            "/v1/token-classify",
            &json!({"model": name, "input": input.text, "ignore_labels": [first_group]}),
        )
        .json();
    let groups: Vec<&Value> = body["data"][0]["entities"]
        .as_array()
        .map(|a| a.iter().map(|e| &e["entity_group"]).collect())
        .unwrap_or_default();
    assert!(!groups.contains(&&first_group), "{name}: {groups:?}");

    let body = client
        .post(
            "/v1/token-classify",
            &json!({"model": name, "input": input.ids, "aggregation_strategy": "none"}),
        )
        .json();
    let tokens = body["data"][0]["entities"].as_array().expect("entities");
    let by_text = &input.entities["none"];
    assert_eq!(tokens.len(), by_text.len(), "{name}: token ids");
    for (got, want) in tokens.iter().zip(by_text) {
        assert_eq!(
            (&got["entity"], &got["index"]),
            (&want["entity"], &want["index"])
        );
        assert!(
            got.get("word").is_none() && got.get("start").is_none(),
            "{got}"
        );
    }

    for path in ["/v1/classify", "/v1/score"] {
        let message = client
            .post(
                path,
                &json!({"model": name, "input": "a", "text_1": "a", "text_2": "b"}),
            )
            .expect_error(400, "invalid_request_error");
        assert!(
            message.contains("/v1/token-classify"),
            "{name} {path}: {message}"
        );
    }
    let models = client.get("/v1/models").json();
    let card = models["data"]
        .as_array()
        .and_then(|cards| cards.iter().find(|c| c["id"] == json!(name)))
        .unwrap_or_else(|| panic!("{name} is not listed: {models}"));
    assert_eq!(card["task"], "token_classify");
    assert_eq!(card["labels"], json!(fixture.reference.labels));
}

/// vLLM's `/pooling` with `task: token_classify`: per-token probabilities (softmax of transformers' logits) for
/// every token, special tokens included; raw logits with `use_activation: false`.
pub fn pooling_matches_transformers_per_token(client: &Client, fixture: &TokenFixture) {
    let name = &fixture.name;
    let texts: Vec<&str> = fixture
        .reference
        .inputs
        .iter()
        .map(|i| i.text.as_str())
        .collect();
    for use_activation in [true, false] {
        let reply = client.post(
            "/pooling",
            &json!({"model": name, "input": texts, "task": "token_classify", "use_activation": use_activation}),
        );
        assert_eq!(reply.status, 200, "{name}: {}", reply.text);
        let body = reply.json();
        for (i, input) in fixture.reference.inputs.iter().enumerate() {
            let rows = body["data"][i]["data"].as_array().expect("rows");
            assert_eq!(rows.len(), input.ids.len(), "{name}: a row per token");
            for (row, logits) in rows.iter().zip(&input.logits) {
                let want = if use_activation {
                    softmax(logits)
                } else {
                    logits.clone()
                };
                crate::conformance::assert_close(
                    &crate::conformance::floats(row),
                    &want,
                    REFERENCE_TOLERANCE,
                    &format!("{name} {:?}", input.text),
                );
            }
        }
    }
}

fn softmax(logits: &[f32]) -> Vec<f32> {
    let top = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|x| (x - top).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.iter().map(|e| e / sum).collect()
}
