//! A model route's last part: inference through the [`Deployment`] and the answer as data ([`Answer`]), which the
//! HTTP handler writes as JSON and `call`'s callers (the edge component's typed export, `edge/wit/`) turn into
//! their own values.

use http::{HeaderMap, Response};

use crate::classify::{self, PoolingTask};
use crate::deployment::{Deployment, InferenceJob};
use crate::engine::{OutputKind, TokenSequence};
use crate::error::ApiError;
use crate::model::ServedModel;
use crate::pairs::PairTask;
use crate::request_id;
use crate::response::{
    ClassifyResponse, ModelCard, ModerationResponse, PairResponse, PoolingResponse,
    TokenClassifyResponse, TokenizeResponse, Usage, json_response, unix_now,
};
use crate::token_classify::TokenTask;

/// A request for a model served here, tokenized, and what to make of the logits.
pub(super) struct ModelJob {
    pub(super) model: String,
    pub(super) sequences: Vec<TokenSequence>,
    pub(super) priority: i64,
    pub(super) rid: Option<String>,
    pub(super) user: Option<String>,
    pub(super) task: Task,
    pub(super) tokenization: std::time::Duration,
}

pub(super) enum Task {
    Classify { use_activation: bool },
    Moderate,
    Pairs(PairTask),
    Tokens(TokenTask),
    Pooling(PoolingTask),
}

/// What a model route answers, before it is written as a body.
#[derive(Debug)]
pub enum Answer {
    Classify(ClassifyResponse),
    Pairs(PairResponse),
    Moderation(ModerationResponse),
    Tokens(TokenClassifyResponse),
    Pooling(PoolingResponse),
    Tokenize(TokenizeResponse),
}

impl Answer {
    /// The HTTP answer: status 200 and the JSON body.
    pub fn into_response(self) -> Response<Vec<u8>> {
        match self {
            Answer::Classify(body) => json_response(&body),
            Answer::Pairs(body) => json_response(&body),
            Answer::Moderation(body) => json_response(&body),
            Answer::Tokens(body) => json_response(&body),
            Answer::Pooling(body) => json_response(&body),
            Answer::Tokenize(body) => json_response(&body),
        }
    }
}

/// `/v1/models`' entry for a model served here.
pub fn model_card(model: &ServedModel) -> ModelCard {
    ModelCard {
        id: model.name.clone(),
        object: "model",
        created: model.created,
        owned_by: "classify",
        max_model_len: model.max_model_len,
        num_labels: model.num_classes(),
        labels: model.labels.clone(),
        architecture: model.architecture().to_owned(),
        task: model.task(),
    }
}

/// Runs `job` and makes its answer; `headers` may name the response id (`X-Request-Id`).
pub(super) async fn run<D: Deployment>(
    deployment: &D,
    headers: &HeaderMap,
    job: ModelJob,
) -> Result<Answer, ApiError> {
    let ModelJob {
        model,
        sequences,
        priority,
        rid,
        user,
        task,
        tokenization,
    } = job;
    let (index, model) = deployment
        .model(&model)
        .ok_or_else(|| ApiError::internal("the model went away during the request"))??;
    let prompt_tokens = sequences.iter().map(TokenSequence::len).sum();
    tracing::info!(
        model = %model.name,
        user = user.as_deref().unwrap_or(""),
        inputs = sequences.len(),
        prompt_tokens,
        "classify"
    );
    let rows = match model.output {
        OutputKind::Sequence => sequences.len(),
        OutputKind::Token => prompt_tokens,
    };
    let logits = deployment
        .run(
            index,
            InferenceJob {
                sequences,
                priority,
                tokenization,
            },
        )
        .await?;
    logits
        .check_rows(rows, model.num_classes())
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let id = |prefix| request_id::response_id(prefix, rid.as_deref(), headers);
    let created = unix_now();
    let usage = Usage::prompt_only(prompt_tokens);
    Ok(match task {
        Task::Pairs(task) => {
            Answer::Pairs(task.answer(model, logits.into_rows(), id("classify"), created, usage))
        }
        Task::Classify { use_activation } => Answer::Classify(classify::answer(
            model,
            logits.into_rows(),
            use_activation,
            id("classify"),
            created,
            usage,
        )),
        Task::Moderate => Answer::Moderation(ModerationResponse {
            id: id("modr"),
            model: model.name.clone(),
            results: model.moderation.results(
                &model.labels,
                model.activation(),
                &logits.into_rows(),
            ),
        }),
        Task::Tokens(task) => {
            Answer::Tokens(task.answer(model, &logits, id("classify"), created, usage))
        }
        Task::Pooling(task) => {
            Answer::Pooling(task.answer(model, &logits, id("classify"), created, usage))
        }
    })
}
