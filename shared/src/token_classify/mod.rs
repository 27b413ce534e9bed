//! Token classification (`/v1/token-classify`): texts or token ids to entities as transformers'
//! token-classification pipeline finds them (`aggregate.rs`), optionally redacted (`redact.rs`); request fields
//! in `fields.rs`.

mod aggregate;
mod fields;
mod redact;

use crate::classify::checked_ids;
use crate::engine::{Logits, TokenSequence};
use crate::error::ApiError;
use crate::model::ServedModel;
use crate::request::{Body, Input, parse_input};
use crate::response::{EntityBody, TokenClassifyData, TokenClassifyResponse, Usage};
use crate::tokenize::{EncodeError, Overflow, SpannedTokens};
use aggregate::{Aggregation, Entity, Strategy, Window};
use redact::Redaction;

/// A token-classify request, tokenized.
pub(crate) struct TokenJob {
    pub sequences: Vec<TokenSequence>,
    pub task: TokenTask,
    pub priority: i64,
    pub rid: Option<String>,
    pub user: Option<String>,
}

/// What to make of the per-token logits of a [`TokenJob`].
pub(crate) struct TokenTask {
    inputs: Vec<TokenInput>,
    strategy: Strategy,
    ignore_labels: Vec<String>,
    threshold: Option<f32>,
    redaction: Option<Redaction>,
}

/// One input: its text (none for token ids) and its windows, one sequence of the job each.
struct TokenInput {
    text: Option<String>,
    windows: Vec<SpannedTokens>,
}

pub(crate) fn prepare(
    body: Body,
    model: &ServedModel,
    max_inputs: usize,
) -> Result<TokenJob, ApiError> {
    let input = parse_input(body.required("input")?, max_inputs)?;
    let strategy = fields::strategy(&body)?;
    let stride = fields::stride(&body, strategy)?;
    let redaction = fields::redaction(&body)?;
    let truncation = body.truncate_prompt_tokens()?;
    let add_special_tokens = body.optional_bool("add_special_tokens")?.unwrap_or(true);
    let max_len = model.max_model_len;
    let limit = truncation.map(|t| t.limit(max_len)).transpose()?;
    let inputs = match input {
        Input::Texts(texts) => {
            let overflow = match (stride, truncation) {
                (Some(stride), _) => Overflow::Windows { stride },
                (None, Some(_)) => Overflow::Truncate,
                (None, None) => Overflow::Refuse,
            };
            let limit = limit.unwrap_or(max_len);
            texts
                .into_iter()
                .enumerate()
                .map(|(i, text)| {
                    let windows = model
                        .tokenizer
                        .encode_spans(&text, add_special_tokens, limit, overflow)
                        .map_err(|e| encode_error(model, i, e, stride))?;
                    Ok(TokenInput {
                        text: Some(text),
                        windows,
                    })
                })
                .collect::<Result<Vec<_>, ApiError>>()?
        }
        Input::TokenIds { sequences, batched } => {
            if stride.is_some() || redaction.is_some() {
                let field = if stride.is_some() { "stride" } else { "redact" };
                return Err(ApiError::invalid(
                    field,
                    format!("`{field}` needs text inputs: token ids have no characters"),
                ));
            }
            let mut inputs = Vec::with_capacity(sequences.len());
            for (i, mut ids) in checked_ids(model, &sequences, batched)?
                .into_iter()
                .enumerate()
            {
                if let Some(limit) = limit {
                    model.tokenizer.truncate_ids(&mut ids, limit);
                }
                if ids.len() > max_len {
                    return Err(too_long(model, i, &format!("{} tokens", ids.len()), false));
                }
                inputs.push(TokenInput {
                    text: None,
                    windows: vec![SpannedTokens {
                        offsets: vec![(0, 0); ids.len()],
                        special: ids
                            .iter()
                            .map(|&id| model.tokenizer.is_special(id))
                            .collect(),
                        ids,
                    }],
                });
            }
            inputs
        }
    };
    let windows: usize = inputs.iter().map(|input| input.windows.len()).sum();
    if windows > max_inputs {
        return Err(ApiError::invalid(
            "stride",
            format!(
                "the inputs make {windows} windows, more than the {max_inputs} a request may run; send less text or \
                 a smaller `stride`"
            ),
        ));
    }
    if let Some((i, _)) = inputs
        .iter()
        .enumerate()
        .find(|(_, input)| input.windows.iter().any(|w| w.ids.is_empty()))
    {
        return Err(ApiError::invalid(
            "input",
            format!("input[{i}] produces no tokens"),
        ));
    }
    let sequences = inputs
        .iter()
        .flat_map(|input| &input.windows)
        .map(|window| TokenSequence::single(window.ids.clone()))
        .collect();
    Ok(TokenJob {
        sequences,
        task: TokenTask {
            inputs,
            strategy,
            ignore_labels: fields::ignore_labels(&body)?,
            threshold: fields::threshold(&body)?,
            redaction,
        },
        priority: body.priority()?,
        rid: body.optional_string("rid")?,
        user: body.optional_string("user")?,
    })
}

fn encode_error(
    model: &ServedModel,
    i: usize,
    error: EncodeError,
    stride: Option<usize>,
) -> ApiError {
    match error {
        // Its text is the count: "70 tokens", or "more than 64 tokens" when the rest was not tokenized.
        long @ EncodeError::TooLong { .. } => too_long(model, i, &long.to_string(), true),
        EncodeError::Tokenizer(e) => ApiError::invalid(
            if stride.is_some() { "stride" } else { "input" },
            format!("input[{i}] cannot be tokenized: {e}"),
        ),
    }
}

fn too_long(model: &ServedModel, i: usize, tokens: &str, text: bool) -> ApiError {
    let windows = if text {
        ", or set `stride` to classify every token in overlapping windows"
    } else {
        ""
    };
    ApiError::invalid(
        "input",
        format!(
            "input[{i}] has {tokens}, more than the model's max length of {}; shorten it, set \
             `truncate_prompt_tokens` to classify the first tokens only{windows}",
            model.max_model_len
        ),
    )
}

impl TokenTask {
    /// The entities of every input from the job's logits: one row per token of each window, in order.
    pub(crate) fn answer(
        self,
        model: &ServedModel,
        logits: &Logits,
        id: String,
        created: u64,
        usage: Usage,
    ) -> TokenClassifyResponse {
        let aggregation = Aggregation {
            tokenizer: &model.tokenizer,
            labels: &model.labels,
            strategy: self.strategy,
            ignore_labels: &self.ignore_labels,
        };
        let mut row = 0;
        let mut data = Vec::with_capacity(self.inputs.len());
        for (index, input) in self.inputs.iter().enumerate() {
            let windows: Vec<Window> = input
                .windows
                .iter()
                .map(|tokens| {
                    let rows = logits.rows_slice(row, tokens.ids.len());
                    row += tokens.ids.len();
                    Window {
                        tokens,
                        logits: rows,
                    }
                })
                .collect();
            let mut entities = aggregation.entities(input.text.as_deref(), &windows);
            if let Some(threshold) = self.threshold {
                entities.retain(|e| e.score >= threshold);
            }
            let redacted = match (&self.redaction, &input.text) {
                (Some(redaction), Some(text)) => Some(redaction.apply(text, &entities)),
                _ => None,
            };
            let grouped = self.strategy != Strategy::None;
            data.push(TokenClassifyData {
                index,
                entities: entities
                    .into_iter()
                    .map(|e| entity_body(e, grouped, input.text.is_some()))
                    .collect(),
                redacted,
            });
        }
        TokenClassifyResponse {
            id,
            object: "list",
            created,
            model: model.name.clone(),
            data,
            usage,
        }
    }
}

/// `grouped`: the strategy groups tokens (`entity_group`); `text`: the input was text (words and offsets).
fn entity_body(entity: Entity, grouped: bool, text: bool) -> EntityBody {
    let (label, group) = if grouped {
        (None, Some(entity.label))
    } else {
        (Some(entity.label), None)
    };
    let span = entity.span.filter(|_| text);
    EntityBody {
        entity: label,
        entity_group: group,
        score: entity.score,
        index: entity.index,
        word: text.then_some(entity.word),
        start: span.map(|(start, _)| start),
        end: span.map(|(_, end)| end),
    }
}
