//! The handler end to end over a fake deployment: model omission, token types, the reward token, odd bodies
//! on every route, and the OpenAPI document's coverage of the route table.

use std::cell::{Cell, RefCell};

use super::*;
use crate::config::ModelConfig;
use crate::deployment::InferenceJob;
use crate::engine::{Logits, TokenSequence};
use crate::error::ErrorKind;
use crate::model::ServedModel;
use crate::moderation::ModerationPolicy;

mod moderations;
mod pair_routes;

/// Serves models named `names` (the test BERT tokenizer) with `labels`; every logit is the sum of the
/// sequence's token type ids; keeps the sequences of the last job and counts forwarded requests.
struct FakeDeployment {
    models: Vec<ServedModel>,
    forwarded: Cell<usize>,
    last_job: RefCell<Vec<TokenSequence>>,
}

impl FakeDeployment {
    fn new(names: &[&str]) -> FakeDeployment {
        FakeDeployment::with_labels(names, &["a", "b"])
    }

    fn with_labels(names: &[&str], labels: &[&str]) -> FakeDeployment {
        FakeDeployment::with_config(names, labels, r#"{"id2label": {"0": "a", "1": "b"}}"#)
    }

    fn with_config(names: &[&str], labels: &[&str], config: &str) -> FakeDeployment {
        FakeDeployment::with_output(names, labels, config, OutputKind::Sequence)
    }

    /// Token models score each token by its id: 5 for the label `id % labels`, 0 for the others.
    fn tagger(labels: &[&str]) -> FakeDeployment {
        FakeDeployment::with_output(&["tagger"], labels, "{}", OutputKind::Token)
    }

    fn with_output(
        names: &[&str],
        labels: &[&str],
        config: &str,
        output: OutputKind,
    ) -> FakeDeployment {
        let labels: Vec<String> = labels.iter().map(|l| (*l).to_owned()).collect();
        let models = names
            .iter()
            .map(|name| ServedModel {
                name: (*name).to_owned(),
                config: ModelConfig::from_json(config.as_bytes()).unwrap(),
                tokenizer: crate::tokenize::tests::bert(),
                labels: labels.clone(),
                max_model_len: 16,
                vocab_size: 9,
                output,
                created: 0,
                chat_template: Ok(None),
                moderation: ModerationPolicy::new(&labels, None).unwrap(),
                prompt: None,
            })
            .collect();
        FakeDeployment {
            models,
            forwarded: Cell::new(0),
            last_job: RefCell::new(Vec::new()),
        }
    }
}

impl Deployment for FakeDeployment {
    fn models(&self) -> Vec<&ServedModel> {
        self.models.iter().collect()
    }

    async fn run(&self, model: usize, job: InferenceJob) -> Result<Logits, ApiError> {
        let width = self.models[model].num_classes();
        let rows = match self.models[model].output {
            OutputKind::Sequence => job
                .sequences
                .iter()
                .map(|s| vec![s.type_ids.iter().flatten().sum::<u32>() as f32; width])
                .collect(),
            OutputKind::Token => job
                .sequences
                .iter()
                .flat_map(|s| &s.ids)
                .map(|&id| {
                    let mut row = vec![0.0; width];
                    row[id as usize % width] = 5.0;
                    row
                })
                .collect(),
        };
        self.last_job.replace(job.sequences);
        Logits::from_rows(width, rows).map_err(|e| ApiError::internal(e.to_string()))
    }

    async fn forward(&self, _: &Request<Vec<u8>>) -> Option<Response<Vec<u8>>> {
        self.forwarded.set(self.forwarded.get() + 1);
        None
    }
}

fn post(deployment: &FakeDeployment, path: &str, body: &str) -> (u16, serde_json::Value) {
    let request = Request::post(path).body(body.as_bytes().to_vec()).unwrap();
    let response =
        futures_executor::block_on(handle(deployment, &HandlerConfig::default(), &request));
    let json = serde_json::from_slice(response.body()).unwrap();
    (response.status().as_u16(), json)
}

#[test]
fn model_may_be_left_out_when_one_is_served() {
    let one = FakeDeployment::new(&["only"]);
    let (status, body) = post(&one, "/v1/classify", r#"{"input": "a b"}"#);
    assert_eq!((status, body["model"].as_str()), (200, Some("only")));
    let two = FakeDeployment::new(&["x", "y"]);
    let (status, body) = post(&two, "/v1/classify", r#"{"input": "a b"}"#);
    assert_eq!((status, body["param"].as_str()), (400, Some("model")));
    assert!(body["error"].as_str().unwrap().contains("x, y"), "{body}");
    assert_eq!(two.forwarded.get(), 0, "ambiguous here, ambiguous anywhere");
    let (status, _) = post(&two, "/v1/classify", r#"{"model": "z", "input": "a"}"#);
    assert_eq!((status, two.forwarded.get()), (404, 1));
    // With no model here, the server requests are forwarded to may serve exactly one.
    let none = FakeDeployment::new(&[]);
    let (status, _) = post(&none, "/v1/classify", r#"{"input": "a b"}"#);
    assert_eq!((status, none.forwarded.get()), (400, 1));
}

#[test]
fn pair_routes_send_token_types_and_single_texts_none() {
    let scorer = FakeDeployment::with_labels(&["m"], &["LABEL_0"]);
    // The test tokenizer's pair template is `A B:1`: "c d" has type 1 on both of its tokens.
    let raw = r#"{"text_1": "a", "text_2": "c d", "use_activation": false}"#;
    let (status, body) = post(&scorer, "/v1/score", raw);
    assert_eq!(
        (status, body["data"][0]["score"].as_f64()),
        (200, Some(2.0)),
        "{body}"
    );
    let (_, body) = post(
        &scorer,
        "/v1/classify",
        r#"{"input": "c d", "use_activation": false}"#,
    );
    assert_eq!(body["data"][0]["probs"][0].as_f64(), Some(0.0), "{body}");
    let two_labels = FakeDeployment::new(&["m"]);
    let (status, body) = post(&two_labels, "/v1/score", raw);
    assert_eq!(
        (status, body["param"].as_str()),
        (400, Some("model")),
        "{body}"
    );
    let zero_shot = r#"{"inputs": "a", "parameters": {"candidate_labels": ["b"]}}"#;
    let (status, body) = post(&two_labels, "/v1/zero-shot", zero_shot);
    assert_eq!(
        (status, body["param"].as_str()),
        (400, Some("model")),
        "no entailment: {body}"
    );
}

/// transformers' `get_score` appends `reward_token_id` to any input that does not end with it: classify, score
/// and rerank alike, counted in usage, and a truncation budget keeps its place.
#[test]
fn the_reward_token_ends_every_input_of_a_reward_model() {
    const REWARD: u32 = 8;
    let reward = FakeDeployment::with_config(
        &["rm"],
        &["LABEL_0"],
        r#"{"num_labels": 1, "reward_token_id": 8}"#,
    );
    let cases = [
        ("/v1/classify", r#"{"input": "a b"}"#, 5),
        ("/v1/classify", r#"{"input": [4, 5]}"#, 3),
        ("/v1/classify", r#"{"input": [4, 8]}"#, 2),
        ("/v1/score", r#"{"text_1": "a", "text_2": "c d"}"#, 4),
        (
            "/v1/rerank",
            r#"{"query": "a", "documents": ["b", "c d"]}"#,
            3 + 4,
        ),
        (
            "/v1/score",
            r#"{"text_1": "a b c", "text_2": "d", "truncate_prompt_tokens": 3}"#,
            3,
        ),
    ];
    for (route, body, prompt_tokens) in cases {
        let (status, answer) = post(&reward, route, body);
        assert_eq!(status, 200, "{route} {body}: {answer}");
        assert_eq!(
            answer["usage"]["prompt_tokens"].as_u64(),
            Some(prompt_tokens),
            "{route} {body}: {answer}"
        );
        for sequence in reward.last_job.borrow().iter() {
            assert_eq!(sequence.ids.last(), Some(&REWARD), "{route} {body}");
            if let Some(types) = &sequence.type_ids {
                assert_eq!(types.len(), sequence.ids.len(), "{route} {body}");
            }
        }
    }
    // The pair of 16 tokens fits the max length alone, not with the reward token.
    let long = r#"{"text_1": "a b c d e a b", "text_2": "c d e a b c d e a"}"#;
    let (status, answer) = post(&reward, "/v1/score", long);
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("has 17 tokens"),
        "{answer}"
    );
}

/// Seeded odd bodies on every model route, for a one-label and an NLI model: always an answer in the
/// contract's shape (200 or a 4xx), never a panic.
#[test]
fn odd_bodies_on_every_model_route_get_contract_answers() {
    let mut deployment = FakeDeployment::with_labels(&["scorer"], &["LABEL_0"]);
    deployment.models.extend(
        FakeDeployment::with_labels(&["nli"], &["contradiction", "entailment", "neutral"]).models,
    );
    let odd = [
        serde_json::json!(null),
        serde_json::json!(-1),
        serde_json::json!(0),
        serde_json::json!(1e308),
        serde_json::json!(u64::MAX),
        serde_json::json!(""),
        serde_json::json!(" "),
        serde_json::json!("{}{0}{{}}"),
        serde_json::json!("a b c d e a b c d e a b c d e"),
        serde_json::json!([]),
        serde_json::json!([""]),
        serde_json::json!([1, "a"]),
        serde_json::json!([{"text": "a"}, {"text": 5}]),
        serde_json::json!({"candidate_labels": "a, b", "multi_label": true}),
        serde_json::json!([{"role": "user", "content": "a"}]),
        serde_json::json!("only_second"),
        serde_json::json!(true),
    ];
    let fields = [
        "model",
        "input",
        "messages",
        "query",
        "documents",
        "top_n",
        "text_1",
        "text_2",
        "queries",
        "inputs",
        "parameters",
        "truncate_prompt_tokens",
        "truncation",
        "use_activation",
        "return_documents",
        "prompt",
        "items",
        "data_1",
        "data_2",
        "max_tokens_per_doc",
        "max_tokens_per_query",
    ];
    let routes: Vec<&str> = ROUTES
        .iter()
        .filter(|(_, route)| route.runs_a_model())
        .map(|(path, _)| *path)
        .collect();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    for _ in 0..3000 {
        let route = routes[next(routes.len())];
        let mut body = serde_json::json!({
            "model": if next(2) == 0 { "scorer" } else { "nli" },
            "input": "a b", "query": "a", "documents": ["b", "c d"], "text_1": "a", "text_2": ["b"],
            "inputs": "a b", "parameters": {"candidate_labels": ["a", "b"]}, "prompt": "a",
        });
        if route.contains("score")
            && let Some(object) = body.as_object_mut()
        {
            // `documents` is score's other name for `text_2`.
            object.remove("documents");
        }
        for _ in 0..1 + next(3) {
            let field = fields[next(fields.len())];
            body[field] = odd[next(odd.len())].clone();
        }
        let (status, answer) = post(&deployment, route, &body.to_string());
        assert!(
            status == 200 || (400..500).contains(&status),
            "{route} {body} → {status} {answer}"
        );
        if status != 200 {
            assert!(
                answer["error"].is_string() && answer["type"].is_string(),
                "{answer}"
            );
        }
    }
}

#[test]
fn settings_from_the_environment_name_a_bad_variable() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        }
    };
    assert_eq!(
        HandlerConfig::from_env(env(&[])),
        Ok(HandlerConfig::default())
    );
    let set = HandlerConfig::from_env(env(&[
        ("CLASSIFY_MAX_BODY_BYTES", "1024"),
        ("CLASSIFY_MAX_INPUT_PER_REQUEST", " 8 "),
        ("CLASSIFY_API_KEY", "k"),
    ]))
    .unwrap();
    assert_eq!(
        (
            set.max_body_bytes,
            set.max_inputs_per_request,
            set.api_key.as_deref()
        ),
        (1024, 8, Some("k"))
    );
    let bad = HandlerConfig::from_env(env(&[("CLASSIFY_MAX_INPUT_PER_REQUEST", "lots")]));
    assert_eq!(
        bad,
        Err("CLASSIFY_MAX_INPUT_PER_REQUEST: `lots` is not a whole number".to_owned())
    );
}

#[test]
fn the_openapi_document_lists_every_route_and_error_type() {
    let document: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
    for (path, route) in ROUTES {
        let method = route.method().as_str().to_ascii_lowercase();
        assert!(
            document["paths"][path][&method].is_object(),
            "{method} {path} is missing"
        );
    }
    let types = &document["components"]["schemas"]["Error"]["properties"]["type"]["enum"];
    for kind in ErrorKind::ALL {
        let listed = types
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t == kind.as_str()));
        assert!(listed, "{} is missing", kind.as_str());
    }
}

const TAGS: [&str; 3] = ["O", "B-X", "I-X"];

#[test]
fn token_classify_groups_tags_into_entities_and_redacts_them() {
    let tagger = FakeDeployment::tagger(&TAGS);
    // a = 4 → B-X, b = 5 → I-X, c = 6 → O, d = 7 → B-X.
    let raw = r#"{"input": ["a b c d", "c"], "redact": true}"#;
    let (status, body) = post(&tagger, "/v1/token-classify", raw);
    assert_eq!(status, 200, "{body}");
    let entities = &body["data"][0]["entities"];
    assert_eq!(entities.as_array().unwrap().len(), 2, "{body}");
    assert_eq!(entities[0]["entity_group"], "X");
    assert_eq!(entities[0]["word"], "a b");
    assert_eq!(
        (entities[0]["start"].as_u64(), entities[0]["end"].as_u64()),
        (Some(0), Some(3))
    );
    assert_eq!(entities[1]["word"], "d");
    assert_eq!(body["data"][0]["redacted"], "[X] c [X]");
    assert_eq!(body["data"][1]["entities"], serde_json::json!([]));
    assert_eq!(body["data"][1]["redacted"], "c");
    assert_eq!(body["usage"]["prompt_tokens"], 9);
    let (_, body) = post(
        &tagger,
        "/token-classify",
        r#"{"input": "a b c", "aggregation_strategy": "NONE", "ignore_labels": []}"#,
    );
    let tokens = body["data"][0]["entities"].as_array().unwrap();
    let labels: Vec<&str> = tokens
        .iter()
        .map(|t| t["entity"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["B-X", "I-X", "O"], "{body}");
    assert_eq!(tokens[1]["index"], 2);
    assert!(tokens[1].get("entity_group").is_none());
}

#[test]
fn token_ids_give_entities_without_words_or_offsets() {
    let tagger = FakeDeployment::tagger(&TAGS);
    let (status, body) = post(
        &tagger,
        "/v1/token-classify",
        r#"{"input": [2, 4, 5, 6, 3]}"#,
    );
    assert_eq!(status, 200, "{body}");
    let entity = &body["data"][0]["entities"][0];
    assert_eq!(entity["entity_group"], "X");
    assert!(
        entity.get("word").is_none() && entity.get("start").is_none(),
        "{body}"
    );
    let (status, body) = post(
        &tagger,
        "/v1/token-classify",
        r#"{"input": [4, 5], "redact": true}"#,
    );
    assert_eq!((status, body["param"].as_str()), (400, Some("redact")));
}

#[test]
fn long_texts_are_refused_cut_or_classified_in_windows() {
    let tagger = FakeDeployment::tagger(&TAGS);
    // 20 tokens with [CLS] and [SEP]; the fake models' max length is 16.
    let text = "a b c d a b c d a b c d a b c d a b";
    let (status, body) = post(
        &tagger,
        "/v1/token-classify",
        &format!(r#"{{"input": "{text}"}}"#),
    );
    assert_eq!((status, body["param"].as_str()), (400, Some("input")));
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains("truncate_prompt_tokens") && message.contains("stride"),
        "{message}"
    );
    let cut = format!(r#"{{"input": "{text}", "truncate_prompt_tokens": 6}}"#);
    let (_, body) = post(&tagger, "/v1/token-classify", &cut);
    assert_eq!(
        body["data"][0]["entities"].as_array().unwrap().len(),
        2,
        "{body}"
    );
    let windows = format!(r#"{{"input": "{text}", "stride": 4}}"#);
    let (status, body) = post(&tagger, "/v1/token-classify", &windows);
    assert_eq!(status, 200, "{body}");
    let starts: Vec<u64> = body["data"][0]["entities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["start"].as_u64().unwrap())
        .collect();
    assert_eq!(starts, [0, 6, 8, 14, 16, 22, 24, 30, 32], "{body}");
    for (field, raw) in [
        ("stride", format!(r#"{{"input": "{text}", "stride": 14}}"#)),
        (
            "stride",
            r#"{"input": "a", "stride": 1, "aggregation_strategy": "none"}"#.to_owned(),
        ),
        (
            "stride",
            r#"{"input": "a", "stride": 1, "truncate_prompt_tokens": 4}"#.to_owned(),
        ),
        (
            "aggregation_strategy",
            r#"{"input": "a", "aggregation_strategy": "mean"}"#.to_owned(),
        ),
        ("threshold", r#"{"input": "a", "threshold": 2}"#.to_owned()),
        (
            "ignore_labels",
            r#"{"input": "a", "ignore_labels": "O"}"#.to_owned(),
        ),
        ("redact", r#"{"input": "a", "redact": "yes"}"#.to_owned()),
    ] {
        let (status, body) = post(&tagger, "/v1/token-classify", &raw);
        assert_eq!(
            (status, body["param"].as_str()),
            (400, Some(field)),
            "{raw}: {body}"
        );
    }
}

#[test]
fn threshold_keeps_entities_scoring_at_least_it() {
    let tagger = FakeDeployment::tagger(&TAGS);
    // Every token scores e^5 / (e^5 + 2) ≈ 0.9867.
    let raw = |threshold: f32| format!(r#"{{"input": "a b c d", "threshold": {threshold}}}"#);
    let (_, body) = post(&tagger, "/v1/token-classify", &raw(0.98));
    assert_eq!(body["data"][0]["entities"].as_array().unwrap().len(), 2);
    let (_, body) = post(&tagger, "/v1/token-classify", &raw(0.99));
    assert_eq!(body["data"][0]["entities"], serde_json::json!([]));
}

#[test]
fn each_kind_of_model_names_the_route_it_answers() {
    let tagger = FakeDeployment::tagger(&TAGS);
    for path in ["/v1/classify", "/v1/score", "/v1/rerank", "/v1/zero-shot"] {
        let (status, body) = post(
            &tagger,
            path,
            r#"{"input": "a", "text_1": "a", "text_2": "b"}"#,
        );
        assert_eq!(status, 400, "{path}");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("/v1/token-classify"),
            "{path}: {body}"
        );
    }
    let (status, _) = post(&tagger, "/tokenize", r#"{"prompt": "a"}"#);
    assert_eq!(status, 200);
    let classifier = FakeDeployment::new(&["m"]);
    let (status, body) = post(&classifier, "/v1/token-classify", r#"{"input": "a"}"#);
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("/v1/classify"),
        "{body}"
    );
    let request = Request::get("/v1/models").body(Vec::new()).unwrap();
    for (deployment, task) in [(&tagger, "token_classify"), (&classifier, "classify")] {
        let response =
            futures_executor::block_on(handle(deployment, &HandlerConfig::default(), &request));
        let json: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(json["data"][0]["task"], task);
    }
}

#[test]
fn pooling_answers_rows_per_token_or_per_input_in_vllms_shape() {
    let tagger = FakeDeployment::tagger(&TAGS);
    let raw = r#"{"input": ["a b", "c"], "task": "token_classify", "use_activation": false}"#;
    let (status, body) = post(&tagger, "/pooling", raw);
    assert_eq!(status, 200, "{body}");
    // [CLS] a b [SEP] and [CLS] c [SEP]: ids 2 4 5 3 and 2 6 3, scored at id % 3.
    let rows = &body["data"][0]["data"];
    assert_eq!(rows.as_array().unwrap().len(), 4, "{body}");
    assert_eq!(rows[1], serde_json::json!([0.0, 5.0, 0.0]));
    assert_eq!(body["data"][1]["data"].as_array().unwrap().len(), 3);
    assert_eq!(body["data"][1]["object"], "pooling");
    assert_eq!(body["usage"]["prompt_tokens"], 7);
    let (_, body) = post(&tagger, "/v1/pooling", r#"{"input": "a"}"#);
    let probs: f64 = body["data"][0]["data"][1]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_f64().unwrap())
        .sum();
    assert!((probs - 1.0).abs() < 1e-6, "{body}");
    let classifier = FakeDeployment::new(&["m"]);
    let (status, body) = post(
        &classifier,
        "/pooling",
        r#"{"input": "a", "task": "classify"}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"][0]["data"].as_array().unwrap().len(), 2);
    for (deployment, raw) in [
        (&classifier, r#"{"input": "a", "task": "token_classify"}"#),
        (&tagger, r#"{"input": "a", "task": "embed"}"#),
    ] {
        let (status, body) = post(deployment, "/pooling", raw);
        assert_eq!(
            (status, body["param"].as_str()),
            (400, Some("task")),
            "{body}"
        );
    }
}

/// A model route called in-process (`call`) answers what the HTTP route answers, errors included, and forwards
/// nothing.
#[test]
fn a_call_answers_what_its_route_answers() {
    let mut deployment = FakeDeployment::with_labels(&["scorer"], &["LABEL_0"]);
    deployment
        .models
        .extend(FakeDeployment::with_labels(&["sentiment"], &["negative", "positive"]).models);
    let cases = [
        (
            Route::Classify,
            "/v1/classify",
            r#"{"model": "sentiment", "input": ["a b", "c d e"]}"#,
        ),
        (
            Route::Classify,
            "/v1/classify",
            r#"{"model": "sentiment", "input": [[1, 2]], "use_activation": false}"#,
        ),
        (
            Route::Rerank,
            "/v1/rerank",
            r#"{"model": "scorer", "query": "a", "documents": ["b c", "d"], "top_n": 1}"#,
        ),
        (
            Route::Score,
            "/v1/score",
            r#"{"model": "scorer", "text_1": ["a"], "text_2": ["b", "c d"]}"#,
        ),
        (
            Route::Tokenize,
            "/tokenize",
            r#"{"model": "sentiment", "prompt": "a b c"}"#,
        ),
        (Route::Classify, "/v1/classify", r#"{"input": "a"}"#),
        (
            Route::Classify,
            "/v1/classify",
            r#"{"model": "elsewhere", "input": "a"}"#,
        ),
        (
            Route::Classify,
            "/v1/classify",
            r#"{"model": "sentiment", "input": []}"#,
        ),
        (
            Route::Rerank,
            "/v1/rerank",
            r#"{"model": "sentiment", "query": "a", "documents": ["b"]}"#,
        ),
    ];
    let without_ids = |mut answer: serde_json::Value| {
        if let Some(fields) = answer.as_object_mut() {
            fields.remove("id");
            fields.remove("created");
        }
        answer
    };
    for (route, path, body) in cases {
        let (status, expected) = post(&deployment, path, body);
        let fields = match serde_json::from_str(body) {
            Ok(serde_json::Value::Object(fields)) => fields,
            other => panic!("{body}: {other:?}"),
        };
        let called = futures_executor::block_on(call(
            &deployment,
            &HandlerConfig::default(),
            route,
            Body::from_object(fields),
        ));
        match called {
            Ok(answer) => {
                assert_eq!(status, 200, "{body}: {expected}");
                let response = answer.into_response();
                let answer: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
                assert_eq!(without_ids(answer), without_ids(expected), "{body}");
            }
            Err(error) => {
                assert_eq!(error.status(), status, "{body}: {expected}");
                assert_eq!(
                    serde_json::Value::from(error.message),
                    expected["error"],
                    "{body}"
                );
                assert_eq!(expected["type"], error.kind.as_str(), "{body}");
            }
        }
    }
    assert_eq!(
        deployment.forwarded.get(),
        1,
        "only the HTTP route forwards"
    );
}
