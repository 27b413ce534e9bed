//! The typed export `classify:edge/classifier@0.1.0` (`edge/wit/classifier.wit`): each function writes its
//! route's body from its arguments and runs it through the protocol handler (`deployment::call`), so it answers
//! what the HTTP route answers for the same input, as WIT values.

use classify_protocol::handler::{Answer, Route};
use classify_protocol::request::Body;
use classify_protocol::response::{ModelCard, PairResponse, Usage};
use classify_protocol::{ApiError, ErrorKind};
use serde_json::{Map, Value, json};

use super::deployment::{call, served_models};

mod bindings {
    wit_bindgen::generate!({ path: "wit", world: "provider" });
}

use bindings::exports::classify::edge::classifier as wit;

struct Classifier;

impl wit::Guest for Classifier {
    fn classify(
        model: Option<String>,
        inputs: wit::Inputs,
        options: wit::ClassifyOptions,
    ) -> Result<wit::Classified, wit::Error> {
        let mut body = Fields::new(model);
        body.set(
            "input",
            match inputs {
                wit::Inputs::Texts(texts) => json!(texts),
                wit::Inputs::TokenIds(sequences) => json!(sequences),
            },
        );
        body.set_some("truncate_prompt_tokens", options.truncate_prompt_tokens);
        body.set_some("add_special_tokens", options.add_special_tokens);
        body.set_some("use_activation", options.use_activation);
        match body.call(Route::Classify)? {
            Answer::Classify(answer) => Ok(wit::Classified {
                model: answer.model,
                data: answer
                    .data
                    .into_iter()
                    .map(|data| wit::Classification {
                        label: data.label,
                        probs: data.probs,
                        num_classes: count(data.num_classes),
                    })
                    .collect(),
                usage: usage(&answer.usage),
            }),
            other => Err(unexpected(&other)),
        }
    }

    fn rerank(
        model: Option<String>,
        query: String,
        documents: Vec<String>,
        top_n: Option<u32>,
        options: wit::PairOptions,
    ) -> Result<wit::Reranked, wit::Error> {
        let mut body = Fields::new(model);
        body.set("query", json!(query));
        body.set("documents", json!(documents));
        body.set("return_documents", json!(false));
        body.set_some("top_n", top_n);
        body.set_pair_options(options);
        match body.call(Route::Rerank)? {
            Answer::Pairs(PairResponse::Rerank(answer)) => Ok(wit::Reranked {
                model: answer.model,
                results: answer
                    .results
                    .into_iter()
                    .map(|ranked| wit::Ranked {
                        index: count(ranked.index),
                        relevance_score: ranked.relevance_score,
                    })
                    .collect(),
                usage: usage(&answer.usage),
            }),
            other => Err(unexpected(&other)),
        }
    }

    fn score(
        model: Option<String>,
        first: Vec<String>,
        second: Vec<String>,
        options: wit::PairOptions,
    ) -> Result<wit::Scored, wit::Error> {
        let mut body = Fields::new(model);
        body.set("text_1", json!(first));
        body.set("text_2", json!(second));
        body.set_pair_options(options);
        match body.call(Route::Score)? {
            Answer::Pairs(PairResponse::Score(answer)) => Ok(wit::Scored {
                model: answer.model,
                scores: answer.data.into_iter().map(|data| data.score).collect(),
                usage: usage(&answer.usage),
            }),
            other => Err(unexpected(&other)),
        }
    }

    fn tokenize(
        model: Option<String>,
        text: String,
        add_special_tokens: Option<bool>,
    ) -> Result<wit::Tokenized, wit::Error> {
        let mut body = Fields::new(model);
        body.set("prompt", json!(text));
        body.set_some("add_special_tokens", add_special_tokens);
        match body.call(Route::Tokenize)? {
            Answer::Tokenize(answer) => Ok(wit::Tokenized {
                tokens: answer.tokens,
                max_model_len: count(answer.max_model_len),
            }),
            other => Err(unexpected(&other)),
        }
    }

    fn models() -> Vec<wit::ModelInfo> {
        served_models()
            .into_iter()
            .map(|card: ModelCard| wit::ModelInfo {
                id: card.id,
                labels: card.labels,
                max_model_len: count(card.max_model_len),
                architecture: card.architecture,
                task: card.task.to_owned(),
            })
            .collect()
    }
}

bindings::export!(Classifier with_types_in bindings);

/// A route's JSON body, written field by field; a field left `None` is left out (the route's default).
struct Fields(Map<String, Value>);

impl Fields {
    fn new(model: Option<String>) -> Fields {
        let mut fields = Fields(Map::new());
        fields.set_some("model", model);
        fields
    }

    fn set(&mut self, name: &str, value: Value) {
        self.0.insert(name.to_owned(), value);
    }

    fn set_some(&mut self, name: &str, value: Option<impl Into<Value>>) {
        if let Some(value) = value {
            self.set(name, value.into());
        }
    }

    fn set_pair_options(&mut self, options: wit::PairOptions) {
        self.set_some("truncate_prompt_tokens", options.truncate_prompt_tokens);
        self.set_some("max_tokens_per_doc", options.max_tokens_per_doc);
        self.set_some("instruction", options.instruction);
        self.set_some("use_activation", options.use_activation);
    }

    fn call(self, route: Route) -> Result<Answer, wit::Error> {
        call(route, Body::from_object(self.0)).map_err(error)
    }
}

fn usage(usage: &Usage) -> wit::Usage {
    wit::Usage {
        prompt_tokens: count(usage.prompt_tokens),
        total_tokens: count(usage.total_tokens),
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A route that answered with another route's shape: a bug here, reported as the contract's internal error.
fn unexpected(answer: &Answer) -> wit::Error {
    error(ApiError::internal(format!(
        "the handler answered {answer:?} for this function"
    )))
}

fn error(error: ApiError) -> wit::Error {
    wit::Error {
        kind: match error.kind {
            ErrorKind::InvalidRequest => wit::ErrorKind::InvalidRequest,
            ErrorKind::Authentication => wit::ErrorKind::Authentication,
            ErrorKind::ModelNotFound => wit::ErrorKind::ModelNotFound,
            ErrorKind::NotFound => wit::ErrorKind::NotFound,
            ErrorKind::MethodNotAllowed => wit::ErrorKind::MethodNotAllowed,
            ErrorKind::RequestTimeout => wit::ErrorKind::RequestTimeout,
            ErrorKind::PayloadTooLarge => wit::ErrorKind::PayloadTooLarge,
            ErrorKind::UriTooLong => wit::ErrorKind::UriTooLong,
            ErrorKind::Overloaded => wit::ErrorKind::Overloaded,
            ErrorKind::HeadersTooLarge => wit::ErrorKind::HeadersTooLarge,
            ErrorKind::Internal => wit::ErrorKind::Internal,
            ErrorKind::Upstream => wit::ErrorKind::Upstream,
            ErrorKind::UpstreamTimeout => wit::ErrorKind::UpstreamTimeout,
            ErrorKind::Unavailable => wit::ErrorKind::Unavailable,
        },
        message: error.message,
        param: error.param.map(str::to_owned),
    }
}
