//! Classify requests (texts, token ids or chat `messages`) and tokenize requests: their inputs as token
//! sequences within the model's max length, and the classify answer from the logits.

use crate::activation;
use crate::engine::{Logits, OutputKind, TokenSequence};
use crate::error::ApiError;
use crate::model::ServedModel;
use crate::request::{Body, ClassifyRequest, Input};
use crate::response::{
    ClassifyData, ClassifyResponse, PoolingData, PoolingResponse, PoolingValues, TokenizeResponse,
    Usage,
};
use crate::tokenize::EncodeError;

/// A classify request for a model served here, tokenized.
pub(crate) struct ClassifyJob {
    pub sequences: Vec<TokenSequence>,
    pub priority: i64,
    pub rid: Option<String>,
    pub user: Option<String>,
    pub use_activation: bool,
}

pub(crate) fn prepare(
    body: Body,
    model: &ServedModel,
    max_inputs: usize,
) -> Result<ClassifyJob, ApiError> {
    let (mut request, messages) = body.into_classify(max_inputs)?;
    if let Some(messages) = messages {
        let template = match &model.chat_template {
            Ok(Some(template)) => template,
            Ok(None) => {
                return Err(ApiError::invalid(
                    "messages",
                    format!(
                        "`{}` has no chat template (tokenizer_config.json `chat_template` or \
                         chat_template.jinja); send `input` instead",
                        model.name
                    ),
                ));
            }
            Err(e) => {
                return Err(ApiError::invalid(
                    "messages",
                    format!("the chat template of `{}` cannot be used: {e}", model.name),
                ));
            }
        };
        request.input = Input::Texts(vec![template.render(&messages)?]);
    }
    let sequences = prepare_inputs(model, &request)?;
    Ok(ClassifyJob {
        sequences: sequences.into_iter().map(TokenSequence::single).collect(),
        priority: request.priority,
        rid: request.rid,
        user: request.user,
        use_activation: request.use_activation,
    })
}

/// vLLM's `/pooling` on a classifier: one row of scores per input (`task` `classify`) or per token, special
/// tokens included (`token_classify`); `task` may be left out, and must be the model's when given.
pub(crate) struct PoolingTask {
    /// Tokens of each input, which its rows of a token model are.
    lengths: Vec<usize>,
    use_activation: bool,
}

pub(crate) fn prepare_pooling(
    body: Body,
    model: &ServedModel,
    max_inputs: usize,
) -> Result<(ClassifyJob, PoolingTask), ApiError> {
    match body.optional_string("task")?.as_deref() {
        None => {}
        Some(task) if task == model.task() => {}
        Some(task @ ("classify" | "token_classify")) => {
            return Err(ApiError::invalid(
                "task",
                format!(
                    "`{}` pools with `task` \"{}\", not \"{task}\"",
                    model.name,
                    model.task()
                ),
            ));
        }
        Some(other) => {
            return Err(ApiError::invalid(
                "task",
                format!(
                    "unknown `task` \"{other}\": classifiers pool with \"classify\" or \"token_classify\""
                ),
            ));
        }
    }
    let job = prepare(body, model, max_inputs)?;
    let task = PoolingTask {
        lengths: job.sequences.iter().map(TokenSequence::len).collect(),
        use_activation: job.use_activation,
    };
    Ok((job, task))
}

impl PoolingTask {
    pub(crate) fn answer(
        self,
        model: &ServedModel,
        logits: &Logits,
        id: String,
        created: u64,
        usage: Usage,
    ) -> PoolingResponse {
        let activation = model.activation();
        let score = |row: &[f32]| {
            if self.use_activation {
                activation.apply(row)
            } else {
                row.to_vec()
            }
        };
        let mut rows = logits.iter();
        let values: Vec<PoolingValues> = match model.output {
            OutputKind::Sequence => rows.map(|row| PoolingValues::Row(score(row))).collect(),
            OutputKind::Token => self
                .lengths
                .iter()
                .map(|&n| PoolingValues::Rows((&mut rows).take(n).map(score).collect()))
                .collect(),
        };
        PoolingResponse {
            id,
            object: "list",
            created,
            model: model.name.clone(),
            data: values
                .into_iter()
                .enumerate()
                .map(|(index, data)| PoolingData {
                    index,
                    object: "pooling",
                    data,
                })
                .collect(),
            usage,
        }
    }
}

/// The classify answer: activated scores (or the raw logits) and the argmax label per input.
pub(crate) fn answer(
    model: &ServedModel,
    logits: Vec<Vec<f32>>,
    use_activation: bool,
    id: String,
    created: u64,
    usage: Usage,
) -> ClassifyResponse {
    let activation = model.activation();
    let data = logits
        .into_iter()
        .enumerate()
        .map(|(i, raw)| {
            let probs = activation.apply(&raw);
            ClassifyData {
                index: i,
                label: model.labels[activation::argmax(&probs)].clone(),
                probs: if use_activation { probs } else { raw },
                num_classes: model.num_classes(),
            }
        })
        .collect();
    ClassifyResponse {
        id,
        object: "list",
        created,
        model: model.name.clone(),
        data,
        usage,
    }
}

/// Tokenizes text inputs or checks token-id inputs, applies truncation and enforces the max length.
fn prepare_inputs(
    model: &ServedModel,
    request: &ClassifyRequest,
) -> Result<Vec<Vec<u32>>, ApiError> {
    let max_len = model.max_model_len;
    let limit = request
        .truncate_prompt_tokens
        .map(|t| t.limit(max_len))
        .transpose()?;
    // A reward token the model appends takes one place of a `truncate_prompt_tokens` budget.
    let body_limit = limit.map(|k| k.saturating_sub(model.appended_tokens()));
    let mut sequences = match &request.input {
        Input::Texts(texts) => texts
            .iter()
            .enumerate()
            .map(|(i, text)| encode_text(model, request, i, text, body_limit))
            .collect::<Result<Vec<_>, _>>()?,
        Input::TokenIds { sequences, batched } => {
            let mut checked = checked_ids(model, sequences, *batched)?;
            if let Some(limit) = body_limit {
                for ids in &mut checked {
                    model.tokenizer.truncate_ids(ids, limit);
                }
            }
            checked
        }
    };
    for sequence in &mut sequences {
        model.append_reward_token(sequence);
    }
    for (i, sequence) in sequences.iter().enumerate() {
        if sequence.is_empty() {
            return Err(ApiError::invalid(
                "input",
                format!("input[{i}] produces no tokens"),
            ));
        }
        if sequence.len() > max_len {
            return Err(too_long(model, i, &sequence.len().to_string()));
        }
    }
    Ok(sequences)
}

/// Token-id inputs as u32 ids below the model's vocabulary size; a 400 names the first that is not.
pub(crate) fn checked_ids(
    model: &ServedModel,
    sequences: &[Vec<u64>],
    batched: bool,
) -> Result<Vec<Vec<u32>>, ApiError> {
    let mut checked = Vec::with_capacity(sequences.len());
    for (i, ids) in sequences.iter().enumerate() {
        let mut out = Vec::with_capacity(ids.len());
        for (j, &id) in ids.iter().enumerate() {
            match u32::try_from(id) {
                Ok(id) if (id as usize) < model.vocab_size => out.push(id),
                _ => {
                    let path = if batched {
                        format!("input[{i}][{j}]")
                    } else {
                        format!("input[{j}]")
                    };
                    return Err(ApiError::invalid(
                        "input",
                        format!(
                            "{path} = {id} is not a valid token id (vocab size {})",
                            model.vocab_size
                        ),
                    ));
                }
            }
        }
        checked.push(out);
    }
    Ok(checked)
}

/// One text input's tokens: cut to `body_limit` when truncating, else refused past the max length (a long text
/// is only tokenized as far as that needs; see [`crate::tokenize::TextTokenizer::encode_within`]).
fn encode_text(
    model: &ServedModel,
    request: &ClassifyRequest,
    i: usize,
    text: &str,
    body_limit: Option<usize>,
) -> Result<Vec<u32>, ApiError> {
    let cannot = |e: &dyn std::fmt::Display| {
        ApiError::invalid("input", format!("input[{i}] cannot be tokenized: {e}"))
    };
    let tokenizer = &model.tokenizer;
    if body_limit.is_some() {
        return tokenizer
            .encode(text, request.add_special_tokens, body_limit)
            .map_err(|e| cannot(&e));
    }
    let room = model.max_model_len.saturating_sub(model.appended_tokens());
    match tokenizer.encode_within(text, request.add_special_tokens, room) {
        Ok(ids) => Ok(ids),
        Err(EncodeError::Tokenizer(e)) => Err(cannot(&e)),
        Err(EncodeError::TooLong { count, exact }) => {
            let count = count + model.appended_tokens();
            let count = if exact {
                count.to_string()
            } else {
                format!("more than {}", count - 1)
            };
            Err(too_long(model, i, &count))
        }
    }
}

fn too_long(model: &ServedModel, i: usize, count: &str) -> ApiError {
    let max_len = model.max_model_len;
    ApiError::invalid(
        "input",
        format!(
            "input[{i}] has {count} tokens{}, more than the model's max length of {max_len}; shorten it or set \
             `truncate_prompt_tokens`",
            if model.config.reward_token_id.is_some() {
                " (with the reward token this model appends)"
            } else {
                ""
            }
        ),
    )
}

pub(crate) fn tokenize(model: &ServedModel, body: Body) -> Result<TokenizeResponse, ApiError> {
    let request = body.into_tokenize()?;
    let mut tokens = model
        .tokenizer
        .encode(&request.prompt, request.add_special_tokens, None)
        .map_err(|e| ApiError::invalid("prompt", format!("`prompt` cannot be tokenized: {e}")))?;
    model.append_reward_token(&mut tokens);
    Ok(TokenizeResponse {
        count: tokens.len(),
        tokens,
        max_model_len: model.max_model_len,
    })
}
