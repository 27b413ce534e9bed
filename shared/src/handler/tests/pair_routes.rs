//! The pair routes' request shapes from vLLM and Cohere: `/score`'s spellings, `max_tokens_per_doc` and
//! `max_tokens_per_query`, `/v2/rerank`, `/invocations`, and the model's own activation on scores.

use serde_json::{Value, json};

use super::{FakeDeployment, TAGS, post};

fn scorer() -> FakeDeployment {
    FakeDeployment::with_labels(&["m"], &["LABEL_0"])
}

/// The raw scores of a `/score` answer (the fake's logit is the pair's count of type-1 tokens: the second text's).
fn scores(body: &Value) -> Vec<f64> {
    body["data"]
        .as_array()
        .map(|data| data.iter().filter_map(|d| d["score"].as_f64()).collect())
        .unwrap_or_default()
}

#[test]
fn score_takes_every_vllm_spelling_of_its_two_sides() {
    let scorer = scorer();
    for (first, second) in [
        ("text_1", "text_2"),
        ("queries", "documents"),
        ("queries", "items"),
        ("data_1", "data_2"),
    ] {
        for (a, b, want) in [
            (json!("a"), json!(["c d", "e"]), vec![2.0, 1.0]),
            (json!(["a", "b"]), json!(["c", "d e a"]), vec![1.0, 3.0]),
            (json!(["a"]), json!("b c"), vec![2.0]),
        ] {
            let raw = json!({first: a, second: b, "use_activation": false});
            let (status, body) = post(&scorer, "/score", &raw.to_string());
            assert_eq!((status, scores(&body)), (200, want), "{raw}: {body}");
        }
    }
    for (raw, param) in [
        (json!({"text_1": "a", "documents": "b"}), "documents"),
        (json!({"queries": "a", "text_2": "b"}), "text_2"),
        (json!({"data_1": "a", "items": "b"}), "items"),
        (
            json!({"queries": "a", "documents": "b", "items": "c"}),
            "documents",
        ),
        (
            json!({"data_1": "a", "text_1": "b", "text_2": "c"}),
            "text_1",
        ),
        (json!({"queries": "a"}), "documents"),
        (
            json!({"data_1": ["a", "b"], "data_2": ["a", "b", "c"]}),
            "data_2",
        ),
        (json!({"data_1": ["a", "b"], "data_2": "c"}), "data_2"),
        (json!({"items": "a"}), "text_1"),
    ] {
        let (status, body) = post(&scorer, "/score", &raw.to_string());
        assert_eq!(
            (status, body["param"].as_str()),
            (400, Some(param)),
            "{raw}: {body}"
        );
    }
}

#[test]
fn max_tokens_per_doc_and_per_query_cut_each_text_alone() {
    let scorer = scorer();
    let raw = json!({"text_1": "a b c", "text_2": ["c d e", "e"], "max_tokens_per_doc": 2,
                     "max_tokens_per_query": 1, "use_activation": false});
    let (status, body) = post(&scorer, "/score", &raw.to_string());
    assert_eq!((status, scores(&body)), (200, vec![2.0, 1.0]), "{body}");
    // [a] [c d]: three tokens in the first pair, two in the second ([a] [e]).
    assert_eq!(body["usage"]["prompt_tokens"], 5, "{body}");
    let raw = json!({"query": "a", "documents": ["c d e"], "max_tokens_per_doc": 1,
                     "use_activation": false});
    let (status, body) = post(&scorer, "/v1/rerank", &raw.to_string());
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["relevance_score"], 1.0, "{body}");
    assert_eq!(
        body["results"][0]["document"]["text"], "c d e",
        "the document as sent"
    );
    let (_, body) = post(
        &scorer,
        "/v1/rerank",
        r#"{"query": "a", "documents": ["c d e"], "max_tokens_per_doc": 0, "use_activation": false}"#,
    );
    assert_eq!(body["results"][0]["relevance_score"], 3.0, "0: no cut");
    // The fake model's max length is 16.
    for (field, value) in [
        ("max_tokens_per_doc", json!(-1)),
        ("max_tokens_per_doc", json!(16)),
        ("max_tokens_per_query", json!(1000)),
        ("max_tokens_per_doc", json!("2")),
    ] {
        let mut raw = json!({"query": "a", "documents": ["b"]});
        raw[field] = value;
        for path in ["/rerank", "/v2/rerank"] {
            let (status, body) = post(&scorer, path, &raw.to_string());
            assert_eq!(
                (status, body["param"].as_str()),
                (400, Some(field)),
                "{path} {raw}: {body}"
            );
        }
    }
}

#[test]
fn v2_rerank_always_returns_the_documents() {
    let scorer = scorer();
    let raw = r#"{"query": "a", "documents": ["b", {"text": "c d"}], "return_documents": false}"#;
    let (_, v1) = post(&scorer, "/v1/rerank", raw);
    let (status, v2) = post(&scorer, "/v2/rerank", raw);
    assert_eq!(status, 200, "{v2}");
    assert!(v1["results"][0].get("document").is_none(), "{v1}");
    assert_eq!(v2["results"][0]["document"]["text"], "c d", "{v2}");
    assert_eq!(v2["results"][1]["index"], 0);
    assert_eq!(v2["usage"]["total_tokens"], v2["usage"]["prompt_tokens"]);
}

#[test]
fn invocations_runs_the_task_the_body_has_the_shape_of() {
    let scorer = scorer();
    let (status, body) = post(&scorer, "/invocations", r#"{"input": ["a", "b"]}"#);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"][1]["label"], "LABEL_0", "classify: {body}");
    let (_, body) = post(
        &scorer,
        "/invocations",
        r#"{"query": "a", "documents": ["b", "c d"], "use_activation": false}"#,
    );
    assert_eq!(body["results"][0]["index"], 1, "rerank: {body}");
    for raw in [
        r#"{"text_1": "a", "text_2": "b c", "use_activation": false}"#,
        r#"{"queries": "a", "items": "b c", "use_activation": false}"#,
    ] {
        let (_, body) = post(&scorer, "/invocations", raw);
        assert_eq!(scores(&body), [2.0], "score: {body}");
    }
    let tagger = FakeDeployment::tagger(&TAGS);
    let (status, body) = post(&tagger, "/invocations", r#"{"input": "a b"}"#);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"][0]["object"], "pooling",
        "a tagger pools: {body}"
    );
    for (deployment, raw) in [
        (&scorer, r#"{"prompt": "a"}"#),
        (&tagger, r#"{"query": "a"}"#),
    ] {
        let (status, body) = post(deployment, "/invocations", raw);
        assert_eq!(status, 400, "{raw}: {body}");
    }
}

#[test]
fn scores_go_through_the_activation_the_cross_encoder_saved() {
    let identity = FakeDeployment::with_config(
        &["m"],
        &["LABEL_0"],
        r#"{"sentence_transformers": {"activation_fn": "torch.nn.modules.linear.Identity"}}"#,
    );
    let raw = r#"{"text_1": "a", "text_2": "b c"}"#;
    let (_, body) = post(&identity, "/score", raw);
    assert_eq!(scores(&body), [2.0], "identity: {body}");
    let (_, body) = post(&scorer(), "/score", raw);
    let sigmoid = 1.0 / (1.0 + (-2.0f64).exp());
    assert!((scores(&body)[0] - sigmoid).abs() < 1e-6, "sigmoid: {body}");
}
