use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

mod bindings {
    wit_bindgen::generate!({ path: "../../wit", world: "consumer" });
}

use bindings::classify::edge::classifier::{
    self, ClassifyOptions, Error, ErrorKind, Inputs, PairOptions,
};

#[spin_sdk::http_service]
async fn serve(request: spin_sdk::http::Request) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    type Route = fn(&[u8]) -> (StatusCode, Value, Option<Duration>);
    let post: Option<Route> = match parts.uri.path() {
        "/comments" => Some(check),
        "/comments/rank" => Some(rank),
        "/comments/relevance" => Some(relevance),
        "/comments/length" => Some(length),
        _ => None,
    };
    let (status, answer, took) = match (parts.method, post) {
        (Method::POST, Some(route)) => match body.collect().await {
            Ok(body) => route(&body.to_bytes()),
            Err(_) => failure(StatusCode::BAD_REQUEST, "the body could not be read"),
        },
        (Method::GET, None) if parts.uri.path() == "/comments/models" => {
            let ids: Vec<String> = classifier::models().into_iter().map(|m| m.id).collect();
            (StatusCode::OK, json!({ "models": ids }), None)
        }
        _ => failure(StatusCode::NOT_FOUND, "no such route"),
    };
    let mut response = Response::new(Full::new(Bytes::from(answer.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(took) = took
        && let Ok(timing) =
            HeaderValue::from_str(&format!("classify;dur={:.3}", took.as_secs_f64() * 1e3))
    {
        response.headers_mut().insert("server-timing", timing);
    }
    response
}

/// The classifier's verdict on the body's comment, and how long asking took.
fn check(body: &[u8]) -> (StatusCode, Value, Option<Duration>) {
    let (comment, model) = match comment_and_model(body) {
        Ok(fields) => fields,
        Err(message) => return failure(StatusCode::BAD_REQUEST, &message),
    };
    let model = model.as_deref();
    let options = ClassifyOptions {
        truncate_prompt_tokens: Some(-1),
        add_special_tokens: None,
        use_activation: None,
    };
    let inputs = Inputs::Texts(vec![comment]);
    let started = Instant::now();
    let classified = classifier::classify(model, &inputs, options);
    let took = started.elapsed();
    match classified {
        Ok(classified) => match classified.data.into_iter().next() {
            Some(verdict) => {
                let answer = json!({
                    "accepted": verdict.label != "spam",
                    "label": verdict.label,
                    "probs": verdict.probs,
                    "model": classified.model,
                });
                (StatusCode::OK, answer, Some(took))
            }
            None => failure(StatusCode::INTERNAL_SERVER_ERROR, "no answer"),
        },
        Err(error) => refused(error),
    }
}

/// The body's `comment` and `model`, or what is missing.
fn comment_and_model(body: &[u8]) -> Result<(String, Option<String>), String> {
    let body = serde_json::from_slice::<Value>(body).map_err(|_| "the body is not JSON")?;
    let Some(comment) = body.get("comment").and_then(Value::as_str) else {
        return Err("`comment` (a string) is required".to_owned());
    };
    let model = body.get("model").and_then(Value::as_str).map(str::to_owned);
    Ok((comment.to_owned(), model))
}

/// The body's `post`, its `comments` (strings) and `model`, or what is missing.
fn post_and_comments(body: &[u8]) -> Result<(String, Vec<String>, Option<String>), String> {
    let body = serde_json::from_slice::<Value>(body).map_err(|_| "the body is not JSON")?;
    let (Some(post), Some(comments)) = (
        body.get("post").and_then(Value::as_str),
        body.get("comments").and_then(Value::as_array),
    ) else {
        return Err("`post` (a string) and `comments` (strings) are required".to_owned());
    };
    let comments = comments
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    let model = body.get("model").and_then(Value::as_str).map(str::to_owned);
    Ok((post.to_owned(), comments, model))
}

const PAIR_DEFAULTS: PairOptions = PairOptions {
    truncate_prompt_tokens: None,
    max_tokens_per_doc: None,
    instruction: None,
    use_activation: None,
};

/// The body's comments, most relevant to its `post` first, by a cross-encoder through the linked component.
fn rank(body: &[u8]) -> (StatusCode, Value, Option<Duration>) {
    let (post, comments, model) = match post_and_comments(body) {
        Ok(fields) => fields,
        Err(message) => return failure(StatusCode::BAD_REQUEST, &message),
    };
    let started = Instant::now();
    let ranked = classifier::rerank(model.as_deref(), &post, &comments, None, &PAIR_DEFAULTS);
    let took = started.elapsed();
    match ranked {
        Ok(ranked) => {
            let results: Vec<Value> = ranked
                .results
                .iter()
                .map(|r| json!({"index": r.index, "relevance_score": r.relevance_score}))
                .collect();
            let answer = json!({"model": ranked.model, "ranked": results});
            (StatusCode::OK, answer, Some(took))
        }
        Err(error) => refused(error),
    }
}

/// Each of the body's comments' relevance to its `post`, in comment order (a cross-encoder's score).
fn relevance(body: &[u8]) -> (StatusCode, Value, Option<Duration>) {
    let (post, comments, model) = match post_and_comments(body) {
        Ok(fields) => fields,
        Err(message) => return failure(StatusCode::BAD_REQUEST, &message),
    };
    let started = Instant::now();
    let scored = classifier::score(model.as_deref(), &[post], &comments, &PAIR_DEFAULTS);
    let took = started.elapsed();
    match scored {
        Ok(scored) => {
            let answer = json!({"model": scored.model, "scores": scored.scores});
            (StatusCode::OK, answer, Some(took))
        }
        Err(error) => refused(error),
    }
}

/// The tokens the classifier reads for the body's `comment`, and whether they fit the model's length.
fn length(body: &[u8]) -> (StatusCode, Value, Option<Duration>) {
    let (comment, model) = match comment_and_model(body) {
        Ok(fields) => fields,
        Err(message) => return failure(StatusCode::BAD_REQUEST, &message),
    };
    let model = model.as_deref();
    let started = Instant::now();
    let tokenized = classifier::tokenize(model, &comment, None);
    let took = started.elapsed();
    match tokenized {
        Ok(tokenized) => {
            let answer = json!({
                "tokens": tokenized.tokens,
                "fits": tokenized.tokens.len() <= tokenized.max_model_len as usize,
                "max_model_len": tokenized.max_model_len,
            });
            (StatusCode::OK, answer, Some(took))
        }
        Err(error) => refused(error),
    }
}

/// The classifier's error as this example's HTTP answer: its kind's status and its message.
fn refused(error: Error) -> (StatusCode, Value, Option<Duration>) {
    let status = match error.kind {
        ErrorKind::InvalidRequest => StatusCode::BAD_REQUEST,
        ErrorKind::ModelNotFound | ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Overloaded => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    failure(status, &error.message)
}

fn failure(status: StatusCode, message: &str) -> (StatusCode, Value, Option<Duration>) {
    (status, json!({ "error": message }), None)
}
