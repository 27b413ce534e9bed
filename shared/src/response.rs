//! Answer bodies, and the HTTP responses that carry them and the contract's errors.

use http::{HeaderValue, Response, StatusCode, header};
use serde::Serialize;

use crate::error::ApiError;

/// Seconds since the Unix epoch (0 if the clock is before it): `created` in answers and model cards.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The contract error body with its status.
pub fn error_response(error: &ApiError) -> Response<Vec<u8>> {
    let mut response = Response::new(error.to_json());
    *response.status_mut() =
        StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// `body` as a 200 JSON response (an encoding failure, which our types cannot produce, as a 500 error body).
pub fn json_response<T: Serialize>(body: &T) -> Response<Vec<u8>> {
    match serde_json::to_vec(body) {
        Ok(bytes) => {
            let mut response = Response::new(bytes);
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(e) => error_response(&ApiError::internal(format!(
            "could not encode the response: {e}"
        ))),
    }
}

#[derive(Debug, Serialize)]
pub struct ClassifyResponse {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub model: String,
    pub data: Vec<ClassifyData>,
    pub usage: Usage,
}

#[derive(Debug, Serialize)]
pub struct ClassifyData {
    pub index: usize,
    pub label: String,
    pub probs: Vec<f32>,
    pub num_classes: usize,
}

#[derive(Debug, Serialize)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub total_tokens: usize,
    pub completion_tokens: usize,
    pub prompt_tokens_details: Option<()>,
}

impl Usage {
    pub fn prompt_only(prompt_tokens: usize) -> Usage {
        Usage {
            prompt_tokens,
            total_tokens: prompt_tokens,
            completion_tokens: 0,
            prompt_tokens_details: None,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ModelList {
    pub object: &'static str,
    pub data: Vec<serde_json::Value>,
}

#[derive(Debug, Serialize)]
pub struct ModelCard {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub owned_by: &'static str,
    pub max_model_len: usize,
    pub num_labels: usize,
    pub labels: Vec<String>,
    pub architecture: String,
    /// `classify` or `token_classify` (see `ServedModel::task`).
    pub task: &'static str,
}

#[derive(Debug, Serialize)]
pub struct TokenizeResponse {
    pub tokens: Vec<u32>,
    pub count: usize,
    pub max_model_len: usize,
}

/// The answer of a pair task: its route's body.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum PairResponse {
    Rerank(RerankResponse),
    Score(ScoreResponse),
    ZeroShot(ZeroShotResponse),
}

/// `/v1/moderations`: OpenAI's moderation object, one result per input.
#[derive(Debug, Serialize)]
pub struct ModerationResponse {
    pub id: String,
    pub model: String,
    pub results: Vec<ModerationResult>,
}

#[derive(Debug, Serialize)]
pub struct ModerationResult {
    pub flagged: bool,
    pub categories: ByLabel<bool>,
    pub category_scores: ByLabel<f32>,
    pub category_applied_input_types: ByLabel<[&'static str; 1]>,
}

/// Label → value, a JSON object in the model's class order.
#[derive(Debug, Clone, PartialEq)]
pub struct ByLabel<V>(pub Vec<(String, V)>);

impl<V: Serialize> Serialize for ByLabel<V> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(label, value)| (label, value)))
    }
}

impl<V> FromIterator<(String, V)> for ByLabel<V> {
    fn from_iter<I: IntoIterator<Item = (String, V)>>(pairs: I) -> Self {
        ByLabel(pairs.into_iter().collect())
    }
}

/// `/rerank`: results by relevance, highest first.
#[derive(Debug, Serialize)]
pub struct RerankResponse {
    pub id: String,
    pub model: String,
    pub usage: Usage,
    pub results: Vec<RankedDocument>,
}

#[derive(Debug, Serialize)]
pub struct RankedDocument {
    /// The document's position in the request.
    pub index: usize,
    pub relevance_score: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<Document>,
}

#[derive(Debug, Serialize)]
pub struct Document {
    pub text: String,
}

/// `/score`: one score per pair, in pair order.
#[derive(Debug, Serialize)]
pub struct ScoreResponse {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub model: String,
    pub data: Vec<ScoreData>,
    pub usage: Usage,
}

#[derive(Debug, Serialize)]
pub struct ScoreData {
    pub index: usize,
    pub object: &'static str,
    pub score: f32,
}

/// `/v1/zero-shot`: the Hugging Face Inference API's zero-shot answer (labels by score, highest first), with
/// the contract's `id`, `model` and `usage`.
#[derive(Debug, Serialize)]
pub struct ZeroShotResponse {
    pub id: String,
    pub model: String,
    pub sequence: String,
    pub labels: Vec<String>,
    pub scores: Vec<f32>,
    pub usage: Usage,
}

/// `/v1/token-classify`: the entities of each input.
#[derive(Debug, Serialize)]
pub struct TokenClassifyResponse {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub model: String,
    pub data: Vec<TokenClassifyData>,
    pub usage: Usage,
}

#[derive(Debug, Serialize)]
pub struct TokenClassifyData {
    pub index: usize,
    pub entities: Vec<EntityBody>,
    /// The input with its entities' spans replaced, when the request asked to redact.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redacted: Option<String>,
}

/// An entity in the pipeline's keys: `entity` and the token's `index` per token (aggregation "none"),
/// `entity_group` otherwise; no `word`, `start` or `end` for token-id inputs.
#[derive(Debug, Serialize)]
pub struct EntityBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity_group: Option<String>,
    pub score: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub word: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<usize>,
}

/// vLLM's `/pooling` answer.
#[derive(Debug, Serialize)]
pub struct PoolingResponse {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub model: String,
    pub data: Vec<PoolingData>,
    pub usage: Usage,
}

#[derive(Debug, Serialize)]
pub struct PoolingData {
    pub index: usize,
    pub object: &'static str,
    pub data: PoolingValues,
}

/// One row of scores per input (`classify`) or per token (`token_classify`).
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum PoolingValues {
    Row(Vec<f32>),
    Rows(Vec<Vec<f32>>),
}
