//! Sentence-pair tasks: `/rerank` (Jina/Cohere shape), `/score` (vLLM) and `/v1/zero-shot` (the Hugging Face
//! Inference API's zero-shot classification). Each request becomes a batch of (first, second) pairs encoded
//! with the tokenizer's pair template; the model's logits become scores here.

use http::Response;
use serde_json::Value;

use crate::backend::TokenSequence;
use crate::error::ApiError;
use crate::handler::json_response;
use crate::model::ServedModel;
use crate::request::{Body, Truncation, type_name, wrong_type};
use crate::response::{
    Document, RankedDocument, RerankResponse, ScoreData, ScoreResponse, Usage, ZeroShotResponse,
};
use crate::tokenize::{PairCut, PairEncodeError, PairSide, PairTruncation};

/// A pair request, encoded, and what to make of its logits.
pub(crate) struct PairJob {
    pub sequences: Vec<TokenSequence>,
    pub task: PairTask,
    pub priority: i64,
    pub rid: Option<String>,
    pub user: Option<String>,
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

/// The hypothesis template of transformers' zero-shot pipeline.
const DEFAULT_HYPOTHESIS_TEMPLATE: &str = "This example is {}.";

/// `/rerank`: `query` against each of `documents`.
pub(crate) fn rerank(
    body: &Body,
    model: &ServedModel,
    max_inputs: usize,
) -> Result<PairJob, ApiError> {
    one_label(model, "reranking")?;
    let query = text(body.required("query")?, "query")?;
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
    let pairs: Vec<(&str, &str)> = documents
        .iter()
        .map(|d| (query.as_str(), d.as_str()))
        .collect();
    Ok(PairJob {
        sequences: encode_pairs(model, &pairs, cut, "documents")?,
        task: PairTask::Rerank {
            top_n,
            return_documents: body.optional_bool("return_documents")?.unwrap_or(true),
            use_activation: body.use_activation()?,
            documents,
        },
        priority: body.priority()?,
        rid: body.optional_string("rid")?,
        user: body.optional_string("user")?,
    })
}

/// `/score`: `text_1` against `text_2` (or vLLM's newer `queries` and `documents`), 1:1, 1:N or N:N.
pub(crate) fn score(
    body: &Body,
    model: &ServedModel,
    max_inputs: usize,
) -> Result<PairJob, ApiError> {
    one_label(model, "scoring")?;
    let side =
        |old: &'static str, new: &'static str| -> Result<(&'static str, Vec<String>), ApiError> {
            match (body.optional(old), body.optional(new)) {
                (Some(_), Some(_)) => Err(ApiError::invalid(
                    old,
                    format!("send `{old}` or `{new}`, not both"),
                )),
                (Some(value), None) => Ok((old, texts(value, old, max_inputs)?)),
                (None, Some(value)) => Ok((new, texts(value, new, max_inputs)?)),
                (None, None) => Err(ApiError::invalid(
                    old,
                    format!("`{old}` (or `{new}`) is required"),
                )),
            }
        };
    let (first_name, first) = side("text_1", "queries")?;
    let (second_name, second) = side("text_2", "documents")?;
    let pairs: Vec<(&str, &str)> = match (first.len(), second.len()) {
        (1, _) => second
            .iter()
            .map(|b| (first[0].as_str(), b.as_str()))
            .collect(),
        (n, m) if n == m => first
            .iter()
            .zip(&second)
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect(),
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
    let cut = pair_cut(body, model)?;
    Ok(PairJob {
        sequences: encode_pairs(model, &pairs, cut, second_name)?,
        task: PairTask::Score {
            use_activation: body.use_activation()?,
        },
        priority: body.priority()?,
        rid: body.optional_string("rid")?,
        user: body.optional_string("user")?,
    })
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
    Ok(PairJob {
        sequences: encode_pairs(model, &pairs, Some(cut), "parameters.candidate_labels")?,
        task: PairTask::ZeroShot {
            sequence,
            labels,
            multi_label,
            entailment,
            contradiction,
        },
        priority: body.priority()?,
        rid: body.optional_string("rid")?,
        user: body.optional_string("user")?,
    })
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

/// Python's `template.format(label)` for the one positional argument: `{}` and `{0}` become the label, `{{` and
/// `}}` literal braces; a template without a place for the label is refused, as the pipeline does.
fn hypothesis(template: &str, label: &str) -> Result<String, ApiError> {
    let invalid = |why: &str| {
        ApiError::invalid(
            "hypothesis_template",
            format!(
                "`hypothesis_template` {why}: write `{{}}` where the label goes, e.g. \"{DEFAULT_HYPOTHESIS_TEMPLATE}\""
            ),
        )
    };
    let mut out = String::with_capacity(template.len() + label.len());
    let mut placed = false;
    let mut rest = template;
    while let Some(at) = rest.find(['{', '}']) {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("{{").or_else(|| tail.strip_prefix("}}")) {
            out.push_str(&tail[..1]);
            rest = after;
        } else if let Some(after) = tail.strip_prefix("{}").or_else(|| tail.strip_prefix("{0}")) {
            out.push_str(label);
            placed = true;
            rest = after;
        } else {
            return Err(invalid("has a brace that is not `{}`, `{{` or `}}`"));
        }
    }
    out.push_str(rest);
    if !placed {
        return Err(invalid("has no `{}` for the label"));
    }
    Ok(out)
}

fn candidate_labels(value: Option<&Value>, max_inputs: usize) -> Result<Vec<String>, ApiError> {
    const FIELD: &str = "candidate_labels";
    let labels: Vec<String> = match value {
        None => {
            return Err(ApiError::invalid(
                FIELD,
                "`parameters.candidate_labels` is required",
            ));
        }
        // The pipeline's shorthand: "sports, politics".
        Some(Value::String(list)) => list
            .split(',')
            .map(str::trim)
            .filter(|label| !label.is_empty())
            .map(str::to_owned)
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(label) if !label.trim().is_empty() => Ok(label.clone()),
                other => Err(ApiError::invalid(
                    FIELD,
                    format!(
                        "candidate_labels[{i}] must be a non-blank string, not {}",
                        describe(other)
                    ),
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(wrong_type(FIELD, "a list of strings", other)),
    };
    if labels.is_empty() {
        return Err(ApiError::invalid(
            FIELD,
            "`parameters.candidate_labels` must name at least one label",
        ));
    }
    within(labels.len(), max_inputs, FIELD, "candidate labels")?;
    Ok(labels)
}

/// A required non-blank string field.
fn text(value: &Value, field: &'static str) -> Result<String, ApiError> {
    match value {
        Value::String(text) if !text.trim().is_empty() => Ok(text.clone()),
        Value::String(_) => Err(ApiError::invalid(
            field,
            format!("`{field}` must not be empty or blank"),
        )),
        other => Err(wrong_type(field, "a string", other)),
    }
}

/// A string or a non-empty list of non-blank strings.
fn texts(value: &Value, field: &'static str, max_inputs: usize) -> Result<Vec<String>, ApiError> {
    let items = match value {
        Value::String(_) => return Ok(vec![text(value, field)?]),
        Value::Array(items) => items,
        other => return Err(wrong_type(field, "a string or a list of strings", other)),
    };
    if items.is_empty() {
        return Err(ApiError::invalid(
            field,
            format!("`{field}` must not be an empty list"),
        ));
    }
    within(items.len(), max_inputs, field, "texts")?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::String(text) if !text.trim().is_empty() => Ok(text.clone()),
            other => Err(ApiError::invalid(
                field,
                format!(
                    "{field}[{i}] must be a non-blank string, not {}",
                    describe(other)
                ),
            )),
        })
        .collect()
}

/// `documents` of a rerank request: strings or `{"text": …}` objects.
fn documents(value: &Value, max_inputs: usize) -> Result<Vec<String>, ApiError> {
    const FIELD: &str = "documents";
    let Value::Array(items) = value else {
        return Err(wrong_type(
            FIELD,
            "a list of strings or {\"text\"} objects",
            value,
        ));
    };
    if items.is_empty() {
        return Err(ApiError::invalid(
            FIELD,
            "`documents` must not be an empty list",
        ));
    }
    within(items.len(), max_inputs, FIELD, "documents")?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let text = match item {
                Value::Object(fields) => fields.get("text").and_then(Value::as_str),
                other => other.as_str(),
            };
            match text {
                Some(text) if !text.trim().is_empty() => Ok(text.to_owned()),
                _ => Err(ApiError::invalid(
                    FIELD,
                    format!(
                        "documents[{i}] must be a non-blank string or {{\"text\": \"…\"}}, not {}",
                        describe(item)
                    ),
                )),
            }
        })
        .collect()
}

fn within(count: usize, max: usize, field: &'static str, what: &str) -> Result<(), ApiError> {
    if count > max {
        return Err(ApiError::invalid(
            field,
            format!("too many {what}: {count} given, at most {max} per request"),
        ));
    }
    Ok(())
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "a blank string",
        other => type_name(other),
    }
}

/// `truncate_prompt_tokens` (each pair's total, `-1` = the max length) and `truncation` (transformers' strategy
/// name, `longest_first` by default; given alone, it cuts to the max length).
fn pair_cut(body: &Body, model: &ServedModel) -> Result<Option<PairCut>, ApiError> {
    let strategy = match body.optional("truncation") {
        None => None,
        Some(Value::String(name)) => Some(PairTruncation::from_name(name).ok_or_else(|| {
            ApiError::invalid(
                "truncation",
                format!("`truncation` must be \"longest_first\", \"only_first\" or \"only_second\", not \"{name}\""),
            )
        })?),
        Some(other) => return Err(wrong_type("truncation", "a string", other)),
    };
    let max_len = model.max_model_len;
    let max_tokens = match body.truncate_prompt_tokens()? {
        None if strategy.is_none() => return Ok(None),
        None | Some(Truncation::ModelMax) => max_len,
        Some(Truncation::Tokens(k)) => match usize::try_from(k) {
            Ok(k) if k <= max_len => k,
            _ => {
                return Err(ApiError::invalid(
                    "truncate_prompt_tokens",
                    format!(
                        "`truncate_prompt_tokens` ({k}) is greater than the model's max length ({max_len})"
                    ),
                ));
            }
        },
    };
    Ok(Some(PairCut {
        max_tokens,
        strategy: strategy.unwrap_or(PairTruncation::LongestFirst),
    }))
}

/// Every pair through the tokenizer's pair template; errors name `field`, or the truncation fields when the
/// asked truncation cannot be done.
fn encode_pairs(
    model: &ServedModel,
    pairs: &[(&str, &str)],
    cut: Option<PairCut>,
    field: &'static str,
) -> Result<Vec<TokenSequence>, ApiError> {
    let max_len = model.max_model_len;
    pairs
        .iter()
        .enumerate()
        .map(|(i, (first, second))| {
            model
                .tokenizer
                .encode_pair(first, second, cut, max_len)
                .map_err(|e| pair_error(e, i, field, max_len))
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
                "cannot keep {max_tokens} tokens of a pair: the tokenizer's pair template adds {specials} special tokens"
            ),
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

impl PairTask {
    /// The answer from one logit row per pair (already checked: one row per pair, finite, `num_classes` wide).
    pub(crate) fn answer(
        self,
        model: &ServedModel,
        logits: Vec<Vec<f32>>,
        id: String,
        created: u64,
        usage: Usage,
    ) -> Response<Vec<u8>> {
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
                        relevance_score: if use_activation {
                            sigmoid(row[0])
                        } else {
                            row[0]
                        },
                        document: return_documents.then_some(Document { text }),
                    })
                    .collect();
                results.sort_by(|a, b| b.relevance_score.total_cmp(&a.relevance_score));
                if let Some(n) = top_n {
                    results.truncate(n);
                }
                json_response(&RerankResponse {
                    id,
                    model: model.name.clone(),
                    usage,
                    results,
                })
            }
            PairTask::Score { use_activation } => json_response(&ScoreResponse {
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
                        score: if use_activation {
                            sigmoid(row[0])
                        } else {
                            row[0]
                        },
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
                json_response(&ZeroShotResponse {
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
    fn hypothesis_follows_python_format() {
        assert_eq!(
            hypothesis("This example is {}.", "sports").unwrap(),
            "This example is sports."
        );
        assert_eq!(hypothesis("{0} or {}? {{x}}", "a").unwrap(), "a or a? {x}");
        for bad in ["no place", "{label}", "{1}", "{", "}"] {
            let error = hypothesis(bad, "a").unwrap_err();
            assert_eq!(error.param, Some("hypothesis_template"), "{bad}");
        }
    }

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

    #[test]
    fn candidate_labels_as_list_or_comma_string() {
        let parse = |json: &str| candidate_labels(Some(&serde_json::from_str(json).unwrap()), 3);
        assert_eq!(parse(r#""a, b,,c ""#).unwrap(), ["a", "b", "c"]);
        assert_eq!(parse(r#"["x y"]"#).unwrap(), ["x y"]);
        for bad in [
            r#"[]"#,
            r#"" , ""#,
            r#"["a",""]"#,
            r#"[1]"#,
            r#"{}"#,
            r#"["a","b","c","d"]"#,
        ] {
            assert_eq!(
                parse(bad).unwrap_err().param,
                Some("candidate_labels"),
                "{bad}"
            );
        }
        assert!(candidate_labels(None, 3).is_err());
    }

    #[test]
    fn documents_are_strings_or_text_objects() {
        let parse = |json: &str| documents(&serde_json::from_str(json).unwrap(), 2);
        assert_eq!(parse(r#"["a", {"text": "b"}]"#).unwrap(), ["a", "b"]);
        for bad in [
            r#"[]"#,
            r#""a""#,
            r#"[" "]"#,
            r#"[{"txt": "a"}]"#,
            r#"[1]"#,
            r#"["a","b","c"]"#,
        ] {
            assert_eq!(parse(bad).unwrap_err().param, Some("documents"), "{bad}");
        }
    }
}
