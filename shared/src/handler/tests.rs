//! The handler end to end over a fake backend: model omission, token types, odd bodies on every route, and
//! the OpenAPI document's coverage of the route table.

use std::cell::Cell;

use super::*;
use crate::config::ModelConfig;
use crate::error::ErrorKind;
use crate::model::ServedModel;

/// Serves models named `names` (the test BERT tokenizer) with `labels`; every logit is the sum of the
/// sequence's token type ids; counts forwarded requests.
struct FakeBackend {
    models: Vec<ServedModel>,
    forwarded: Cell<usize>,
}

impl FakeBackend {
    fn new(names: &[&str]) -> FakeBackend {
        FakeBackend::with_labels(names, &["a", "b"])
    }

    fn with_labels(names: &[&str], labels: &[&str]) -> FakeBackend {
        let models = names
            .iter()
            .map(|name| ServedModel {
                name: (*name).to_owned(),
                config: ModelConfig::from_json(br#"{"id2label": {"0": "a", "1": "b"}}"#).unwrap(),
                tokenizer: crate::tokenize::tests::bert(),
                labels: labels.iter().map(|l| (*l).to_owned()).collect(),
                max_model_len: 16,
                vocab_size: 9,
                created: 0,
                chat_template: Ok(None),
            })
            .collect();
        FakeBackend {
            models,
            forwarded: Cell::new(0),
        }
    }
}

impl Backend for FakeBackend {
    fn models(&self) -> Vec<&ServedModel> {
        self.models.iter().collect()
    }

    async fn classify(&self, model: usize, job: InferenceJob) -> Result<Vec<Vec<f32>>, ApiError> {
        let width = self.models[model].num_classes();
        Ok(job
            .sequences
            .iter()
            .map(|s| vec![s.type_ids.iter().flatten().sum::<u32>() as f32; width])
            .collect())
    }

    async fn forward(&self, _: &Request<Vec<u8>>) -> Option<Response<Vec<u8>>> {
        self.forwarded.set(self.forwarded.get() + 1);
        None
    }
}

fn post(backend: &FakeBackend, path: &str, body: &str) -> (u16, serde_json::Value) {
    let request = Request::post(path).body(body.as_bytes().to_vec()).unwrap();
    let response = futures_executor::block_on(handle(backend, &HandlerConfig::default(), &request));
    let json = serde_json::from_slice(response.body()).unwrap();
    (response.status().as_u16(), json)
}

#[test]
fn model_may_be_left_out_when_one_is_served() {
    let one = FakeBackend::new(&["only"]);
    let (status, body) = post(&one, "/v1/classify", r#"{"input": "a b"}"#);
    assert_eq!((status, body["model"].as_str()), (200, Some("only")));
    let two = FakeBackend::new(&["x", "y"]);
    let (status, body) = post(&two, "/v1/classify", r#"{"input": "a b"}"#);
    assert_eq!((status, body["param"].as_str()), (400, Some("model")));
    assert!(body["error"].as_str().unwrap().contains("x, y"), "{body}");
    assert_eq!(
        two.forwarded.get(),
        1,
        "another server may serve exactly one model"
    );
    let (status, _) = post(&two, "/v1/classify", r#"{"model": "z", "input": "a"}"#);
    assert_eq!((status, two.forwarded.get()), (404, 2));
}

#[test]
fn pair_routes_send_token_types_and_single_texts_none() {
    let scorer = FakeBackend::with_labels(&["m"], &["LABEL_0"]);
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
    let two_labels = FakeBackend::new(&["m"]);
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

/// Seeded odd bodies on every model route, for a one-label and an NLI model: always an answer in the
/// contract's shape (200 or a 4xx), never a panic.
#[test]
fn odd_bodies_on_every_model_route_get_contract_answers() {
    let mut backend = FakeBackend::with_labels(&["scorer"], &["LABEL_0"]);
    backend.models.extend(
        FakeBackend::with_labels(&["nli"], &["contradiction", "entailment", "neutral"]).models,
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
        let (status, answer) = post(&backend, route, &body.to_string());
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
