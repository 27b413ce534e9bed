//! Sentence-pair tasks: `/rerank` (Jina/Cohere shape), `/score` (vLLM) and `/v1/zero-shot` (the Hugging Face
//! Inference API's zero-shot classification). Each request becomes a batch of (first, second) pairs encoded
//! with the tokenizer's pair template; the model's logits become scores here.

use serde_json::Value;

use crate::engine::TokenSequence;
use crate::error::{ApiError, wrong_type};
use crate::model::ServedModel;
use crate::request::Body;
use crate::response::{
    Document, PairResponse, RankedDocument, RerankResponse, ScoreData, ScoreResponse, Usage,
    ZeroShotResponse,
};
use crate::tokenize::{PairCut, PairEncodeError, PairSide, PairTruncation};

mod fields;
use fields::{
    DEFAULT_HYPOTHESIS_TEMPLATE, candidate_labels, cut_texts, documents, hypothesis, instruction,
    pair_cut, per_text_limit, text, texts,
};

/// A pair request, encoded, and what to make of its logits.
pub(crate) struct PairJob {
    pub sequences: Vec<TokenSequence>,
    pub task: PairTask,
    pub priority: i64,
    pub rid: Option<String>,
    pub user: Option<String>,
}

impl PairJob {
    fn new(
        body: &Body,
        sequences: Vec<TokenSequence>,
        task: PairTask,
    ) -> Result<PairJob, ApiError> {
        Ok(PairJob {
            sequences,
            task,
            priority: body.priority()?,
            rid: body.optional_string("rid")?,
            user: body.optional_string("user")?,
        })
    }
}

pub(crate) enum PairTask {
    Rerank {
        documents: Vec<String>,
        /// How many results to return; `None`: all.
        top_n: Option<usize>,
        return_documents: bool,
        use_activation: bool,
    },
    Score {
        use_activation: bool,
    },
    ZeroShot {
        sequence: String,
        labels: Vec<String>,
        multi_label: bool,
        entailment: usize,
        contradiction: usize,
    },
}

/// `/rerank` (and Cohere's `/v2/rerank`, which always returns the documents): `query` against each of
/// `documents`.
pub(crate) fn rerank(
    body: &Body,
    model: &ServedModel,
    max_inputs: usize,
    documents_always: bool,
) -> Result<PairJob, ApiError> {
    one_label(model, "reranking")?;
    let query = vec![text(body.required("query")?, "query")?];
    let documents = documents(body.required("documents")?, max_inputs)?;
    let top_n = match body.optional_integer("top_n")? {
        None | Some(0) => None,
        Some(n) if n > 0 => Some(usize::try_from(n).unwrap_or(usize::MAX)),
        Some(n) => {
            return Err(ApiError::invalid(
                "top_n",
                format!("`top_n` must be 0 (all documents) or more, got {n}"),
            ));
        }
    };
    let cut = pair_cut(body, model)?;
    let (query_kept, documents_kept) =
        per_text_cuts(body, model, ("query", &query), ("documents", &documents))?;
    let pairs: Vec<(&str, &str)> = documents_kept.iter().map(|d| (query_kept[0], *d)).collect();
    PairJob::new(
        body,
        encode_pairs(model, &pairs, &Pairing::new(body, model, cut)?, "documents")?,
        PairTask::Rerank {
            top_n,
            return_documents: documents_always
                || body.optional_bool("return_documents")?.unwrap_or(true),
            use_activation: body.use_activation()?,
            documents,
        },
    )
}

/// The names vLLM accepts for `/score`'s two sides: each first side's name with the second sides' that go
/// with it.
pub(crate) const SCORE_SIDES: [(&str, &[&str]); 3] = [
    ("text_1", &["text_2"]),
    ("queries", &["documents", "items"]),
    ("data_1", &["data_2"]),
];

/// `/score`: the first side against the second, 1:1, 1:N or N:N, in any of vLLM's spellings (`text_1` and
/// `text_2`, `queries` and `documents` or `items`, `data_1` and `data_2`).
pub(crate) fn score(
    body: &Body,
    model: &ServedModel,
    max_inputs: usize,
) -> Result<PairJob, ApiError> {
    one_label(model, "scoring")?;
    let (first_name, second_name) = score_fields(body)?;
    let first = texts(body.required(first_name)?, first_name, max_inputs)?;
    let second = texts(body.required(second_name)?, second_name, max_inputs)?;
    let cut = pair_cut(body, model)?;
    let (first, second) = per_text_cuts(body, model, (first_name, &first), (second_name, &second))?;
    let pairs: Vec<(&str, &str)> = match (first.len(), second.len()) {
        (1, _) => second.iter().map(|b| (first[0], *b)).collect(),
        (n, m) if n == m => first.iter().copied().zip(second.iter().copied()).collect(),
        (n, m) => {
            return Err(ApiError::invalid(
                second_name,
                format!(
                    "`{first_name}` has {n} texts and `{second_name}` {m}: send one `{first_name}` text, or as many \
                     as `{second_name}`"
                ),
            ));
        }
    };
    PairJob::new(
        body,
        encode_pairs(model, &pairs, &Pairing::new(body, model, cut)?, second_name)?,
        PairTask::Score {
            use_activation: body.use_activation()?,
        },
    )
}

/// Which of [`SCORE_SIDES`] the body uses; a 400 naming the field when a side is missing, given twice, or spelled
/// from another pair of names.
fn score_fields(body: &Body) -> Result<(&'static str, &'static str), ApiError> {
    let given = |names: &[&'static str]| -> Vec<&'static str> {
        names
            .iter()
            .copied()
            .filter(|name| body.optional(name).is_some())
            .collect()
    };
    let firsts = given(&SCORE_SIDES.map(|(first, _)| first));
    let seconds: Vec<&'static str> = SCORE_SIDES
        .iter()
        .flat_map(|(_, seconds)| seconds.iter().copied())
        .collect();
    let seconds = given(&seconds);
    let either = |names: &[&str]| names.join("` or `");
    let (first, partners) = match firsts.as_slice() {
        [] => {
            return Err(ApiError::invalid(
                "text_1",
                "`text_1` and `text_2` are required (or vLLM's `queries` and `documents` or `items`, `data_1` and \
                 `data_2`)",
            ));
        }
        [first] => SCORE_SIDES
            .iter()
            .find(|(name, _)| name == first)
            .copied()
            .ok_or_else(|| ApiError::internal("a score field without its partners"))?,
        [a, b, ..] => {
            return Err(ApiError::invalid(
                a,
                format!("send `{a}` or `{b}`, not both"),
            ));
        }
    };
    match seconds.as_slice() {
        [] => Err(ApiError::invalid(
            partners[0],
            format!("`{}` is required with `{first}`", either(partners)),
        )),
        [second] if partners.contains(second) => Ok((first, second)),
        [second] => Err(ApiError::invalid(
            second,
            format!(
                "`{second}` does not go with `{first}`: send `{}`",
                either(partners)
            ),
        )),
        [a, b, ..] => Err(ApiError::invalid(
            a,
            format!("send `{a}` or `{b}`, not both"),
        )),
    }
}

/// The first and second texts of each pair after `max_tokens_per_query` and `max_tokens_per_doc` (vLLM's cuts of
/// each text alone, before pairing); each side is `(field, texts)`.
fn per_text_cuts<'t>(
    body: &Body,
    model: &ServedModel,
    first: (&'static str, &'t [String]),
    second: (&'static str, &'t [String]),
) -> Result<(Vec<&'t str>, Vec<&'t str>), ApiError> {
    let query_limit = per_text_limit(body, model, "max_tokens_per_query")?;
    let doc_limit = per_text_limit(body, model, "max_tokens_per_doc")?;
    Ok((
        cut_texts(model, first.1, query_limit, first.0)?,
        cut_texts(model, second.1, doc_limit, second.0)?,
    ))
}

/// `/v1/zero-shot`: the text against one hypothesis per candidate label, as transformers' zero-shot pipeline.
pub(crate) fn zero_shot(
    body: &Body,
    model: &ServedModel,
    max_inputs: usize,
) -> Result<PairJob, ApiError> {
    let entailment = model.entailment_id().ok_or_else(|| {
        ApiError::invalid(
            "model",
            format!(
                "zero-shot classification needs an NLI model with an \"entailment\" label; `{}` has {:?}",
                model.name, model.labels
            ),
        )
    })?;
    if model.num_classes() < 2 {
        return Err(ApiError::invalid(
            "model",
            "zero-shot classification needs an NLI model with entailment and contradiction labels",
        ));
    }
    let contradiction = if entailment == 0 {
        model.num_classes() - 1
    } else {
        0
    };
    let sequence = text(body.required("inputs")?, "inputs")?;
    let empty = serde_json::Map::new();
    let parameters = match body.optional("parameters") {
        None => &empty,
        Some(Value::Object(parameters)) => parameters,
        Some(other) => return Err(wrong_type("parameters", "an object", other)),
    };
    let parameter = |name: &str| parameters.get(name).filter(|v| !v.is_null());
    let labels = candidate_labels(parameter("candidate_labels"), max_inputs)?;
    let template = match parameter("hypothesis_template") {
        None => DEFAULT_HYPOTHESIS_TEMPLATE,
        Some(Value::String(template)) => template,
        Some(other) => return Err(wrong_type("hypothesis_template", "a string", other)),
    };
    let multi_label = match parameter("multi_label") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => return Err(wrong_type("multi_label", "a boolean", other)),
    };
    let hypotheses = labels
        .iter()
        .map(|label| hypothesis(template, label))
        .collect::<Result<Vec<_>, _>>()?;
    let pairs: Vec<(&str, &str)> = hypotheses
        .iter()
        .map(|h| (sequence.as_str(), h.as_str()))
        .collect();
    // The pipeline cuts only the text, to the model's max length, and keeps each hypothesis whole.
    let cut = PairCut {
        max_tokens: model.max_model_len,
        strategy: PairTruncation::OnlyFirst,
    };
    PairJob::new(
        body,
        encode_pairs(
            model,
            &pairs,
            &Pairing {
                cut: Some(cut),
                instruction: None,
            },
            "parameters.candidate_labels",
        )?,
        PairTask::ZeroShot {
            sequence,
            labels,
            multi_label,
            entailment,
            contradiction,
        },
    )
}

/// Reranking and scoring read one relevance logit.
fn one_label(model: &ServedModel, task: &str) -> Result<(), ApiError> {
    if model.num_classes() == 1 {
        return Ok(());
    }
    Err(ApiError::invalid(
        "model",
        format!(
            "{task} needs a model with one output (a cross-encoder); `{}` has {} labels",
            model.name,
            model.num_classes()
        ),
    ))
}

/// How a request's pairs are encoded: its truncation, and its instruction for an LLM reranker's prompt.
struct Pairing {
    cut: Option<PairCut>,
    instruction: Option<String>,
}

impl Pairing {
    fn new(body: &Body, model: &ServedModel, cut: Option<PairCut>) -> Result<Pairing, ApiError> {
        Ok(Pairing {
            cut,
            instruction: instruction(body, model)?,
        })
    }
}

/// Every pair through the tokenizer's pair template (or an LLM reranker's prompt), then the model's reward token
/// (which takes one place of the max length or of a truncation budget); errors name `field`, or the truncation
/// fields when the asked truncation cannot be done.
fn encode_pairs(
    model: &ServedModel,
    pairs: &[(&str, &str)],
    pairing: &Pairing,
    field: &'static str,
) -> Result<Vec<TokenSequence>, ApiError> {
    let max_len = model.max_model_len;
    let appended = model.appended_tokens();
    let cut = pairing.cut.map(|cut| PairCut {
        max_tokens: cut.max_tokens.saturating_sub(appended),
        ..cut
    });
    let limit = max_len.saturating_sub(appended);
    let instruction = pairing.instruction.as_deref();
    pairs
        .iter()
        .enumerate()
        .map(|(i, (first, second))| {
            let pair = match &model.prompt {
                Some(prompt) => {
                    prompt.encode(&model.tokenizer, instruction, first, second, cut, limit)
                }
                None => model.tokenizer.encode_pair(first, second, cut, limit),
            };
            let mut pair = pair.map_err(|e| pair_error(e.counting(appended), i, field, max_len))?;
            model.append_reward_token(&mut pair.ids);
            if let Some(types) = &mut pair.type_ids {
                let last = types.last().copied().unwrap_or(0);
                types.resize(pair.ids.len(), last);
            }
            Ok(pair)
        })
        .collect()
}

fn pair_error(error: PairEncodeError, i: usize, field: &'static str, max_len: usize) -> ApiError {
    match error {
        PairEncodeError::Tokenizer(e) => {
            ApiError::invalid(field, format!("pair {i} cannot be tokenized: {e}"))
        }
        PairEncodeError::BelowSpecialTokens {
            max_tokens,
            specials,
        } => ApiError::invalid(
            "truncate_prompt_tokens",
            format!(
                "cannot keep {max_tokens} tokens of a pair: the model adds {specials} tokens of its own to each pair \
                 (its tokenizer's pair template, or an LLM reranker's prompt)"
            ),
        ),
        PairEncodeError::PromptCutsTheEnd => ApiError::invalid(
            "truncation",
            "an LLM reranker's prompt is cut at its end, the document's: use `longest_first` or `only_second`",
        ),
        PairEncodeError::KeptSideTooLong { side, max_tokens } => {
            let (kept, cut) = match side {
                PairSide::First => ("first text (the query)", "only_second"),
                PairSide::Second => ("second text", "only_first"),
            };
            let param = if field == "parameters.candidate_labels" {
                "candidate_labels"
            } else {
                "truncation"
            };
            ApiError::invalid(
                param,
                format!(
                    "pair {i} cannot be cut to {max_tokens} tokens with `{cut}`: its {kept} alone does not fit with \
                     the special tokens"
                ),
            )
        }
        PairEncodeError::TooLong { count, exact } => {
            let count = if exact {
                count.to_string()
            } else {
                format!("more than {max_len}")
            };
            ApiError::invalid(
                field,
                format!(
                    "pair {i} has {count} tokens, more than the model's max length of {max_len}; set \
                     `truncate_prompt_tokens` (or `truncation`) to cut it"
                ),
            )
        }
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// A one-label model's relevance: its logit through the model's own activation (sigmoid unless config.json says
/// otherwise), or raw.
fn relevance(model: &ServedModel, row: &[f32], use_activation: bool) -> f32 {
    let score = match use_activation {
        true => model.activation().apply(row),
        false => row.to_vec(),
    };
    score.first().copied().unwrap_or(f32::NAN)
}

impl PairTask {
    /// The answer from one logit row per pair (already checked: one row per pair, finite, `num_classes` wide).
    pub(crate) fn answer(
        self,
        model: &ServedModel,
        logits: Vec<Vec<f32>>,
        id: String,
        created: u64,
        usage: Usage,
    ) -> PairResponse {
        match self {
            PairTask::Rerank {
                documents,
                top_n,
                return_documents,
                use_activation,
            } => {
                let mut results: Vec<RankedDocument> = logits
                    .iter()
                    .zip(documents)
                    .enumerate()
                    .map(|(index, (row, text))| RankedDocument {
                        index,
                        relevance_score: relevance(model, row, use_activation),
                        document: return_documents.then_some(Document { text }),
                    })
                    .collect();
                results.sort_by(|a, b| b.relevance_score.total_cmp(&a.relevance_score));
                if let Some(n) = top_n {
                    results.truncate(n);
                }
                PairResponse::Rerank(RerankResponse {
                    id,
                    model: model.name.clone(),
                    usage,
                    results,
                })
            }
            PairTask::Score { use_activation } => PairResponse::Score(ScoreResponse {
                id,
                object: "list",
                created,
                model: model.name.clone(),
                data: logits
                    .iter()
                    .enumerate()
                    .map(|(index, row)| ScoreData {
                        index,
                        object: "score",
                        score: relevance(model, row, use_activation),
                    })
                    .collect(),
                usage,
            }),
            PairTask::ZeroShot {
                sequence,
                labels,
                multi_label,
                entailment,
                contradiction,
            } => {
                let scores = zero_shot_scores(&logits, multi_label, entailment, contradiction);
                let mut order: Vec<usize> = (0..labels.len()).collect();
                order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
                PairResponse::ZeroShot(ZeroShotResponse {
                    id,
                    model: model.name.clone(),
                    sequence,
                    labels: order.iter().map(|&i| labels[i].clone()).collect(),
                    scores: order.iter().map(|&i| scores[i]).collect(),
                    usage,
                })
            }
        }
    }
}

/// The zero-shot pipeline's scores: with one label or `multi_label`, softmax over [contradiction, entailment]
/// per label; otherwise softmax over the labels' entailment logits.
fn zero_shot_scores(
    logits: &[Vec<f32>],
    multi_label: bool,
    entailment: usize,
    contradiction: usize,
) -> Vec<f32> {
    if multi_label || logits.len() == 1 {
        return logits
            .iter()
            .map(|row| sigmoid(row[entailment] - row[contradiction]))
            .collect();
    }
    let entail: Vec<f32> = logits.iter().map(|row| row[entailment]).collect();
    let top = entail.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = entail.iter().map(|x| (x - top).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.iter().map(|e| e / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_shot_scores_are_the_pipelines() {
        // softmax([c, e]) at index 1 is sigmoid(e - c).
        let rows = vec![vec![0.5, -1.0, 2.0], vec![1.0, 0.0, -1.0]];
        let multi = zero_shot_scores(&rows, true, 2, 0);
        let expected = |c: f32, e: f32| e.exp() / (c.exp() + e.exp());
        assert!((multi[0] - expected(0.5, 2.0)).abs() < 1e-6);
        assert!((multi[1] - expected(1.0, -1.0)).abs() < 1e-6);
        let single = zero_shot_scores(&rows, false, 2, 0);
        let z = 2f32.exp() + (-1f32).exp();
        assert!((single[0] - 2f32.exp() / z).abs() < 1e-6);
        assert!((single.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        let one = zero_shot_scores(&rows[..1], false, 2, 0);
        assert!((one[0] - expected(0.5, 2.0)).abs() < 1e-6);
    }
}
