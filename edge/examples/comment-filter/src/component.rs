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
    let (status, answer, took) = match (parts.method, parts.uri.path()) {
        (Method::POST, "/comments") => match body.collect().await {
            Ok(body) => check(&body.to_bytes()),
            Err(_) => failure(StatusCode::BAD_REQUEST, "the body could not be read"),
        },
        (Method::POST, "/comments/rank") => match body.collect().await {
            Ok(body) => rank(&body.to_bytes()),
            Err(_) => failure(StatusCode::BAD_REQUEST, "the body could not be read"),
        },
        (Method::GET, "/comments/models") => {
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

/// What the classifier said of one text.
struct Verdict {
    model: String,
    label: String,
    probs: Vec<f32>,
}

/// The classifier's verdict on the body's comment, and how long asking took.
fn check(body: &[u8]) -> (StatusCode, Value, Option<Duration>) {
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return failure(StatusCode::BAD_REQUEST, "the body is not JSON");
    };
    let Some(comment) = body.get("comment").and_then(Value::as_str) else {
        return failure(StatusCode::BAD_REQUEST, "`comment` (a string) is required");
    };
    let model = body.get("model").and_then(Value::as_str);
    let started = Instant::now();
    let verdict = classify(comment, model);
    let took = started.elapsed();
    match verdict {
        Ok(verdict) => {
            let answer = json!({
                "accepted": verdict.label != "spam",
                "label": verdict.label,
                "probs": verdict.probs,
                "model": verdict.model,
            });
            (StatusCode::OK, answer, Some(took))
        }
        Err((status, message)) => failure(status, &message),
    }
}

/// Asks the linked classify component, in-process.
fn classify(comment: &str, model: Option<&str>) -> Result<Verdict, (StatusCode, String)> {
    let options = ClassifyOptions {
        truncate_prompt_tokens: Some(-1),
        add_special_tokens: None,
        use_activation: None,
    };
    let inputs = Inputs::Texts(vec![comment.to_owned()]);
    match classifier::classify(model, &inputs, options) {
        Ok(classified) => match classified.data.into_iter().next() {
            Some(first) => Ok(Verdict {
                model: classified.model,
                label: first.label,
                probs: first.probs,
            }),
            None => Err((StatusCode::INTERNAL_SERVER_ERROR, "no answer".to_owned())),
        },
        Err(error) => Err(refused(error)),
    }
}

/// The body's comments, most relevant to its `post` first, by a cross-encoder through the linked component.
fn rank(body: &[u8]) -> (StatusCode, Value, Option<Duration>) {
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return failure(StatusCode::BAD_REQUEST, "the body is not JSON");
    };
    let (Some(post), Some(comments)) = (
        body.get("post").and_then(Value::as_str),
        body.get("comments").and_then(Value::as_array),
    ) else {
        return failure(
            StatusCode::BAD_REQUEST,
            "`post` (a string) and `comments` (strings) are required",
        );
    };
    let comments: Vec<String> = comments
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    let model = body.get("model").and_then(Value::as_str);
    let options = PairOptions {
        truncate_prompt_tokens: None,
        max_tokens_per_doc: None,
        instruction: None,
        use_activation: None,
    };
    let started = Instant::now();
    let ranked = classifier::rerank(model, post, &comments, None, &options);
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
        Err(error) => {
            let (status, message) = refused(error);
            failure(status, &message)
        }
    }
}

/// The HTTP status and message of the classifier's error.
fn refused(error: Error) -> (StatusCode, String) {
    let status = match error.kind {
        ErrorKind::InvalidRequest => StatusCode::BAD_REQUEST,
        ErrorKind::ModelNotFound | ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Overloaded => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (status, error.message)
}

fn failure(status: StatusCode, message: &str) -> (StatusCode, Value, Option<Duration>) {
    (status, json!({ "error": message }), None)
}
