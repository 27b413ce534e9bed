//! Conformance cases of the pair tasks (`/rerank`, `/score`, `/v1/zero-shot`) and of chat `messages`, against
//! the references the generator wrote with transformers (pairs.json, chat.json). Like the contract's cases, each
//! is a function of a running deployment and a fixture; a fixture without the reference a case needs is skipped
//! by that case.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::client::Client;
use crate::conformance::{REFERENCE_TOLERANCE, assert_close, floats};
use crate::fixtures::Fixture;

#[derive(Debug, Deserialize)]
pub struct PairReference {
    pub rerank: Option<RerankReference>,
    pub zero_shot: Option<Vec<ZeroShotReference>>,
}

#[derive(Debug, Deserialize)]
pub struct RerankReference {
    pub query: String,
    pub documents: Vec<String>,
    pub pairs: Vec<EncodedPair>,
    pub truncated: Vec<TruncatedPair>,
    pub only_second_refused_at: usize,
    /// vLLM's `max_tokens_per_doc` cut of each document, then the pairs.
    pub per_doc: Vec<PerDocCut>,
    /// An LLM reranker whose prompt takes an instruction: the pairs with this one instead of the default.
    pub instructed: Option<Instructed>,
    /// The model's activation when it is not the sigmoid (`identity`: a cross-encoder that saved raw scores).
    pub activation: Option<String>,
}

impl RerankReference {
    /// The relevance the model's own activation makes of a pair's logit.
    fn relevance(&self, logit: f32) -> f32 {
        match self.activation.as_deref() {
            Some("identity") => logit,
            _ => sigmoid(logit),
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct Instructed {
    pub instruction: String,
    pub pairs: Vec<EncodedPair>,
}

#[derive(Debug, Deserialize)]
pub struct PerDocCut {
    pub max_tokens_per_doc: usize,
    pub documents: Vec<String>,
    pub pairs: Vec<EncodedPair>,
}

#[derive(Debug, Deserialize)]
pub struct EncodedPair {
    pub ids: Vec<u32>,
    pub type_ids: Option<Vec<u32>>,
    pub logits: Vec<f32>,
}

#[derive(Debug, Deserialize)]
pub struct TruncatedPair {
    pub truncate_prompt_tokens: usize,
    pub truncation: String,
    pub document: String,
    pub ids: Vec<u32>,
    pub type_ids: Option<Vec<u32>>,
    pub logits: Vec<f32>,
}

#[derive(Debug, Deserialize)]
pub struct ZeroShotReference {
    pub sequence: String,
    pub candidate_labels: Vec<String>,
    pub hypothesis_template: String,
    pub multi_label: bool,
    pub labels: Vec<String>,
    pub scores: Vec<f32>,
    pub pairs: Vec<EncodedPair>,
}

#[derive(Debug, Deserialize)]
pub struct ChatReference {
    pub cases: Vec<ChatCase>,
}

#[derive(Debug, Deserialize)]
pub struct ChatCase {
    pub messages: Value,
    pub ids: Vec<u32>,
    pub logits: Vec<f32>,
}

fn read_optional<T: serde::de::DeserializeOwned>(fixture: &Fixture, file: &str) -> Option<T> {
    let path = fixture.dir.join(file);
    let text = std::fs::read(&path).ok()?;
    Some(serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

impl PairReference {
    pub fn load(fixture: &Fixture) -> Option<PairReference> {
        read_optional(fixture, "pairs.json")
    }
}

impl ChatReference {
    pub fn load(fixture: &Fixture) -> Option<ChatReference> {
        read_optional(fixture, "chat.json")
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

fn f32_of(value: &Value) -> f32 {
    value.as_f64().unwrap_or(f64::NAN) as f32
}

/// `/rerank`, `/v1/rerank`, Cohere's `/v2/rerank` and `/invocations` with a rerank body: every document's
/// relevance (transformers' logit on the pair through the model's activation), sorted, `top_n`, `return_documents`, raw logits, usage
/// of every pair, `{"text"}` documents.
pub fn rerank_matches_transformers(client: &Client, fixture: &Fixture) {
    let Some(rerank) = PairReference::load(fixture).and_then(|p| p.rerank) else {
        return;
    };
    let name = &fixture.name;
    let tokens: usize = rerank.pairs.iter().map(|p| p.ids.len()).sum();
    for path in ["/rerank", "/v1/rerank", "/v2/rerank", "/invocations"] {
        let reply = client.post(
            path,
            &json!({"model": name, "query": rerank.query, "documents": rerank.documents}),
        );
        assert_eq!(reply.status, 200, "{name} {path}: {}", reply.text);
        let body = reply.json();
        assert_eq!(body["model"], json!(name));
        assert_eq!(
            body["usage"]["prompt_tokens"],
            json!(tokens),
            "{name}: usage"
        );
        assert_eq!(
            body["usage"]["total_tokens"],
            json!(tokens),
            "{name}: usage"
        );
        let results = body["results"].as_array().expect("results");
        assert_eq!(results.len(), rerank.documents.len(), "{name}");
        let mut previous = f32::INFINITY;
        for result in results {
            let index = result["index"].as_u64().expect("index") as usize;
            let score = f32_of(&result["relevance_score"]);
            assert!(score <= previous, "{name}: results are not sorted: {body}");
            previous = score;
            let want = rerank.relevance(rerank.pairs[index].logits[0]);
            assert_close(
                &[score],
                &[want],
                REFERENCE_TOLERANCE,
                &format!("{name} {path} document {index}"),
            );
            assert_eq!(result["document"]["text"], json!(rerank.documents[index]));
        }
    }
    // top_n keeps the best n; usage still counts every pair. Raw logits; documents as {"text"} objects, left out.
    let objects: Vec<Value> = rerank
        .documents
        .iter()
        .map(|d| json!({"text": d}))
        .collect();
    let body = client
        .post(
            "/rerank",
            &json!({"model": name, "query": rerank.query, "documents": objects, "top_n": 2,
                    "return_documents": false, "use_activation": false}),
        )
        .json();
    let results = body["results"].as_array().expect("results");
    assert_eq!(results.len(), 2, "{name}: top_n: {body}");
    assert_eq!(
        body["usage"]["prompt_tokens"],
        json!(tokens),
        "{name}: top_n usage"
    );
    let mut best: Vec<(usize, f32)> = rerank
        .pairs
        .iter()
        .map(|p| p.logits[0])
        .enumerate()
        .collect();
    best.sort_by(|a, b| b.1.total_cmp(&a.1));
    for (result, (index, logit)) in results.iter().zip(&best) {
        assert_eq!(result["index"], json!(index), "{name}: top_n order: {body}");
        assert_close(
            &[f32_of(&result["relevance_score"])],
            &[*logit],
            REFERENCE_TOLERANCE,
            name,
        );
        assert!(
            result.get("document").is_none(),
            "{name}: return_documents false: {body}"
        );
    }
}

/// `/score` and `/v1/score`: 1:1, 1:N, N:N, each of vLLM's spellings (also through `/invocations`), and each
/// truncation strategy against transformers' own truncation of the pair.
pub fn score_matches_transformers(client: &Client, fixture: &Fixture) {
    let Some(rerank) = PairReference::load(fixture).and_then(|p| p.rerank) else {
        return;
    };
    let name = &fixture.name;
    let check = |body: &Value, want: &[f32], what: &str| {
        let data = body["data"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} {what}: {body}"));
        let got: Vec<f32> = data.iter().map(|d| f32_of(&d["score"])).collect();
        for (i, d) in data.iter().enumerate() {
            assert_eq!(
                (d["index"].clone(), d["object"].clone()),
                (json!(i), json!("score")),
                "{body}"
            );
        }
        assert_eq!(body["object"], "list");
        assert_close(&got, want, REFERENCE_TOLERANCE, &format!("{name} {what}"));
    };
    let all: Vec<f32> = rerank
        .pairs
        .iter()
        .map(|p| rerank.relevance(p.logits[0]))
        .collect();
    let one_to_many = client
        .post(
            "/score",
            &json!({"model": name, "text_1": rerank.query, "text_2": rerank.documents}),
        )
        .json();
    check(&one_to_many, &all, "1:N");
    let queries = vec![rerank.query.clone(); rerank.documents.len()];
    let many = client
        .post(
            "/v1/score",
            &json!({"model": name, "queries": queries, "documents": rerank.documents}),
        )
        .json();
    check(&many, &all, "N:N (queries/documents)");
    for (path, first, second) in [
        ("/score", "queries", "items"),
        ("/v1/score", "data_1", "data_2"),
        ("/invocations", "text_1", "text_2"),
    ] {
        let body = client
            .post(
                path,
                &json!({"model": name, first: rerank.query, second: rerank.documents}),
            )
            .json();
        check(&body, &all, &format!("{path} {first}/{second}"));
    }
    let one = client
        .post(
            "/score",
            &json!({"model": name, "text_1": [rerank.query], "text_2": rerank.documents[1],
                                "use_activation": false}),
        )
        .json();
    check(&one, &[rerank.pairs[1].logits[0]], "1:1 raw");
    let tokens: usize = rerank.pairs.iter().map(|p| p.ids.len()).sum();
    assert_eq!(
        many["usage"]["prompt_tokens"],
        json!(tokens),
        "{name}: usage"
    );
    for cut in &rerank.truncated {
        let body = client
            .post(
                "/score",
                &json!({"model": name, "text_1": rerank.query, "text_2": cut.document,
                        "truncate_prompt_tokens": cut.truncate_prompt_tokens, "truncation": cut.truncation}),
            )
            .json();
        let what = format!("{} to {}", cut.truncation, cut.truncate_prompt_tokens);
        check(&body, &[rerank.relevance(cut.logits[0])], &what);
        assert_eq!(
            body["usage"]["prompt_tokens"],
            json!(cut.ids.len()),
            "{name} {what}: tokens"
        );
    }
    // -1 is the max length, longest_first by default.
    let longest = rerank.truncated.last().expect("a cut to the max length");
    let body = client
        .post(
            "/score",
            &json!({"model": name, "text_1": rerank.query, "text_2": longest.document, "truncate_prompt_tokens": -1}),
        )
        .json();
    check(&body, &[rerank.relevance(longest.logits[0])], "-1");
}

/// `max_tokens_per_doc` on `/score` and `/v2/rerank`: each document cut as vLLM cuts it (alone, at its k-th
/// token's end), then paired, against transformers on the pairs of the cut documents; the answer shows the
/// documents as sent.
pub fn per_doc_cuts_match_vllm(client: &Client, fixture: &Fixture) {
    let Some(rerank) = PairReference::load(fixture).and_then(|p| p.rerank) else {
        return;
    };
    let name = &fixture.name;
    for cut in &rerank.per_doc {
        let k = cut.max_tokens_per_doc;
        let want: Vec<f32> = cut
            .pairs
            .iter()
            .map(|p| rerank.relevance(p.logits[0]))
            .collect();
        let tokens: usize = cut.pairs.iter().map(|p| p.ids.len()).sum();
        let body = client
            .post(
                "/score",
                &json!({"model": name, "text_1": rerank.query, "text_2": cut.documents,
                        "max_tokens_per_doc": k}),
            )
            .json();
        let got: Vec<f32> = body["data"]
            .as_array()
            .map(|data| data.iter().map(|d| f32_of(&d["score"])).collect())
            .unwrap_or_default();
        let what = format!("{name} max_tokens_per_doc {k}");
        assert_close(&got, &want, REFERENCE_TOLERANCE, &what);
        assert_eq!(
            body["usage"]["prompt_tokens"],
            json!(tokens),
            "{what}: usage"
        );
        let body = client
            .post(
                "/v2/rerank",
                &json!({"model": name, "query": rerank.query, "documents": cut.documents,
                        "max_tokens_per_doc": k, "return_documents": false}),
            )
            .json();
        for result in body["results"].as_array().expect("results") {
            let index = result["index"].as_u64().expect("index") as usize;
            assert_close(
                &[f32_of(&result["relevance_score"])],
                &[want[index]],
                REFERENCE_TOLERANCE,
                &format!("{what}: /v2/rerank document {index}"),
            );
            assert_eq!(
                result["document"]["text"],
                json!(cut.documents[index]),
                "{what}"
            );
        }
    }
}

/// An LLM reranker's `instruction` (or `instruct`) replaces its prompt's default, on every pair route, against the
/// model card's scoring with that instruction; a model whose prompt has no place for one (a cross-encoder, a
/// prompt without `{instruction}`) answers 400 naming the field.
pub fn instructions_replace_the_default(client: &Client, fixture: &Fixture) {
    let Some(rerank) = PairReference::load(fixture).and_then(|p| p.rerank) else {
        return;
    };
    let name = &fixture.name;
    let Some(instructed) = &rerank.instructed else {
        for field in ["instruction", "instruct"] {
            let reply = client.post(
                "/rerank",
                &json!({"model": name, "query": rerank.query, "documents": rerank.documents, field: "x"}),
            );
            let message = reply.expect_error(400, "invalid_request_error");
            assert_eq!(reply.json()["param"], json!(field), "{name}: {message}");
        }
        return;
    };
    let want: Vec<f32> = instructed
        .pairs
        .iter()
        .map(|p| rerank.relevance(p.logits[0]))
        .collect();
    let tokens: usize = instructed.pairs.iter().map(|p| p.ids.len()).sum();
    for (path, field) in [("/v1/rerank", "instruction"), ("/v2/rerank", "instruct")] {
        let body = client
            .post(
                path,
                &json!({"model": name, "query": rerank.query, "documents": rerank.documents,
                        field: instructed.instruction}),
            )
            .json();
        for result in body["results"].as_array().expect("results") {
            let index = result["index"].as_u64().expect("index") as usize;
            assert_close(
                &[f32_of(&result["relevance_score"])],
                &[want[index]],
                REFERENCE_TOLERANCE,
                &format!("{name} {path} {field}: document {index}"),
            );
        }
        assert_eq!(
            body["usage"]["prompt_tokens"],
            json!(tokens),
            "{name} {path}"
        );
    }
    let body = client
        .post(
            "/score",
            &json!({"model": name, "queries": rerank.query, "items": rerank.documents,
                    "instruction": instructed.instruction}),
        )
        .json();
    let got: Vec<f32> = body["data"]
        .as_array()
        .map(|data| data.iter().map(|d| f32_of(&d["score"])).collect())
        .unwrap_or_default();
    assert_close(&got, &want, REFERENCE_TOLERANCE, &format!("{name} /score"));
    let reply = client.post(
        "/rerank",
        &json!({"model": name, "query": rerank.query, "documents": rerank.documents,
                "instruction": "a", "instruct": "b"}),
    );
    reply.expect_error(400, "invalid_request_error");
    assert_eq!(reply.json()["param"], "instruct", "{name}");
}

/// The errors of the pair routes, in the contract's shape, naming the field.
pub fn pair_errors(client: &Client, fixture: &Fixture) {
    let Some(rerank) = PairReference::load(fixture).and_then(|p| p.rerank) else {
        return;
    };
    let name = &fixture.name;
    let query = &rerank.query;
    let long = &rerank.truncated[0].document;
    for (path, body, param) in [
        (
            "/rerank",
            json!({"model": name, "query": query, "documents": []}),
            "documents",
        ),
        (
            "/rerank",
            json!({"model": name, "documents": ["a"]}),
            "query",
        ),
        (
            "/rerank",
            json!({"model": name, "query": " ", "documents": ["a"]}),
            "query",
        ),
        (
            "/rerank",
            json!({"model": name, "query": query, "documents": ["a"], "top_n": -1}),
            "top_n",
        ),
        (
            "/rerank",
            json!({"model": name, "query": query, "documents": [long]}),
            "documents",
        ),
        (
            "/rerank",
            json!({"model": name, "query": query, "documents": [{"txt": "a"}]}),
            "documents",
        ),
        (
            "/rerank",
            json!({"model": name, "query": query, "documents": ["a"], "truncate_prompt_tokens": 2}),
            "truncate_prompt_tokens",
        ),
        (
            "/rerank",
            json!({"model": name, "query": query, "documents": ["a"], "truncate_prompt_tokens": 100000}),
            "truncate_prompt_tokens",
        ),
        (
            "/rerank",
            json!({"model": name, "query": query, "documents": [long], "truncation": "only_second",
                           "truncate_prompt_tokens": rerank.only_second_refused_at}),
            "truncation",
        ),
        (
            "/rerank",
            json!({"model": name, "query": query, "documents": ["a"], "truncation": "middle"}),
            "truncation",
        ),
        (
            "/score",
            json!({"model": name, "text_1": ["a", "b"], "text_2": ["a", "b", "c"]}),
            "text_2",
        ),
        ("/score", json!({"model": name, "text_1": "a"}), "text_2"),
        (
            "/score",
            json!({"model": name, "text_1": "a", "queries": "b", "text_2": "c"}),
            "text_1",
        ),
        (
            "/score",
            json!({"model": name, "queries": "a", "text_2": "c"}),
            "text_2",
        ),
        (
            "/v2/rerank",
            json!({"model": name, "query": query, "documents": ["a"], "max_tokens_per_doc": -1}),
            "max_tokens_per_doc",
        ),
        (
            "/score",
            json!({"model": name, "text_1": query, "text_2": "a", "max_tokens_per_query": 100000}),
            "max_tokens_per_query",
        ),
        (
            "/invocations",
            json!({"model": name, "prompt": "a"}),
            "input",
        ),
        (
            "/v1/zero-shot",
            json!({"model": name, "inputs": "a", "parameters": {"candidate_labels": ["x"]}}),
            "model",
        ),
        (
            "/v1/classify",
            json!({"model": name, "messages": [{"role": "user", "content": "hi"}]}),
            "messages",
        ),
    ] {
        let reply = client.post(path, &body);
        let message = reply.expect_error(400, "invalid_request_error");
        assert_eq!(
            reply.json()["param"],
            json!(param),
            "{name} {path} {body}: {message}"
        );
    }
}

/// `/v1/zero-shot`: labels and scores as transformers' zero-shot pipeline gives them, single- and multi-label,
/// one candidate, a text the pipeline cuts; its errors; and a model with three labels cannot rerank.
pub fn zero_shot_matches_the_pipeline(client: &Client, fixture: &Fixture) {
    let Some(cases) = PairReference::load(fixture).and_then(|p| p.zero_shot) else {
        return;
    };
    let name = &fixture.name;
    for case in &cases {
        let reply = client.post(
            "/v1/zero-shot",
            &json!({"model": name, "inputs": case.sequence, "parameters": {
                "candidate_labels": case.candidate_labels, "hypothesis_template": case.hypothesis_template,
                "multi_label": case.multi_label}}),
        );
        assert_eq!(reply.status, 200, "{name}: {}", reply.text);
        let body = reply.json();
        let what = format!("{name}: {:?}", case.candidate_labels);
        assert_eq!(body["labels"], json!(case.labels), "{what}: {body}");
        assert_close(
            &floats(&body["scores"]),
            &case.scores,
            REFERENCE_TOLERANCE,
            &what,
        );
        assert_eq!(body["sequence"], json!(case.sequence));
        assert_eq!(body["model"], json!(name));
        let tokens: usize = case.pairs.iter().map(|p| p.ids.len()).sum();
        assert_eq!(
            body["usage"]["prompt_tokens"],
            json!(tokens),
            "{what}: usage"
        );
    }
    let case = &cases[0];
    for (parameters, param) in [
        (
            json!({"candidate_labels": case.candidate_labels, "hypothesis_template": "No place"}),
            "hypothesis_template",
        ),
        (json!({"candidate_labels": []}), "candidate_labels"),
        (json!({}), "candidate_labels"),
        (
            json!({"candidate_labels": ["a"], "multi_label": "yes"}),
            "multi_label",
        ),
    ] {
        let reply = client.post(
            "/v1/zero-shot",
            &json!({"model": name, "inputs": "a", "parameters": parameters}),
        );
        reply.expect_error(400, "invalid_request_error");
        assert_eq!(reply.json()["param"], json!(param), "{name}: {parameters}");
    }
    let reply = client.post(
        "/rerank",
        &json!({"model": name, "query": "a", "documents": ["b"]}),
    );
    reply.expect_error(400, "invalid_request_error");
    assert_eq!(reply.json()["param"], "model");
}

/// Chat `messages` on classify: transformers' apply_chat_template token for token (through `usage`), and its
/// score.
pub fn chat_matches_apply_chat_template(client: &Client, fixture: &Fixture) {
    let Some(chat) = ChatReference::load(fixture) else {
        return;
    };
    let name = &fixture.name;
    for case in &chat.cases {
        let reply = client.post(
            "/v1/classify",
            &json!({"model": name, "messages": case.messages}),
        );
        assert_eq!(reply.status, 200, "{name}: {}", reply.text);
        let body = reply.json();
        assert_eq!(
            body["usage"]["prompt_tokens"],
            json!(case.ids.len()),
            "{name}: template tokens"
        );
        let data = &body["data"][0];
        assert_close(
            &floats(&data["probs"]),
            &[sigmoid(case.logits[0])],
            REFERENCE_TOLERANCE,
            &format!("{name}: {}", case.messages),
        );
        // The same ids as token-id input give the same answer: the rendering is what transformers tokenizes.
        let by_ids = client.classify(&json!({"model": name, "input": case.ids}));
        assert_close(
            &floats(&by_ids["data"][0]["probs"]),
            &floats(&data["probs"]),
            1e-6,
            name,
        );
    }
    let refused = client.post(
        "/v1/classify",
        &json!({"model": name, "messages": [{"role": "tool", "content": "x"}]}),
    );
    let message = refused.expect_error(400, "invalid_request_error");
    assert!(message.contains("Unknown role: tool"), "{message}");
    let empty = client.post("/v1/classify", &json!({"model": name, "messages": []}));
    empty.expect_error(400, "invalid_request_error");
}
