//! The fields of the pair requests: texts, documents, candidate labels, the hypothesis template and the pair
//! truncation, each parsed with a 400 naming the field.

use serde_json::Value;

use crate::error::{ApiError, type_name, wrong_type};
use crate::model::ServedModel;
use crate::request::Body;
use crate::tokenize::{PairCut, PairTruncation};

/// The hypothesis template of transformers' zero-shot pipeline.
pub(super) const DEFAULT_HYPOTHESIS_TEMPLATE: &str = "This example is {}.";

/// Python's `template.format(label)` for the one positional argument: `{}` and `{0}` become the label, `{{` and
/// `}}` literal braces; a template without a place for the label is refused, as the pipeline does.
pub(super) fn hypothesis(template: &str, label: &str) -> Result<String, ApiError> {
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

/// An LLM reranker's instruction for this request: `instruction` (vLLM's name) or `instruct`. Refused for a model
/// whose prompt has no place for one.
pub(super) fn instruction(body: &Body, model: &ServedModel) -> Result<Option<String>, ApiError> {
    let given = [
        ("instruction", body.optional_string("instruction")?),
        ("instruct", body.optional_string("instruct")?),
    ];
    let mut given = given
        .into_iter()
        .filter_map(|(field, value)| Some((field, value?)));
    let Some((field, instruction)) = given.next() else {
        return Ok(None);
    };
    if given.next().is_some() {
        return Err(ApiError::invalid(
            "instruct",
            "send the instruction once, as `instruction` or as `instruct`",
        ));
    }
    match &model.prompt {
        Some(prompt) if prompt.takes_instruction() => Ok(Some(instruction)),
        Some(_) => Err(ApiError::invalid(
            field,
            format!(
                "`{}`'s prompt (reranker.json) has no `{{instruction}}` place",
                model.name
            ),
        )),
        None => Err(ApiError::invalid(
            field,
            format!(
                "`{}` is a cross-encoder: it takes no instruction (LLM rerankers such as Qwen3-Reranker do)",
                model.name
            ),
        )),
    }
}

pub(super) fn candidate_labels(
    value: Option<&Value>,
    max_inputs: usize,
) -> Result<Vec<String>, ApiError> {
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
pub(super) fn text(value: &Value, field: &'static str) -> Result<String, ApiError> {
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
pub(super) fn texts(
    value: &Value,
    field: &'static str,
    max_inputs: usize,
) -> Result<Vec<String>, ApiError> {
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
pub(super) fn documents(value: &Value, max_inputs: usize) -> Result<Vec<String>, ApiError> {
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
pub(super) fn pair_cut(body: &Body, model: &ServedModel) -> Result<Option<PairCut>, ApiError> {
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
    let max_tokens = match body.truncate_prompt_tokens()? {
        None if strategy.is_none() => return Ok(None),
        None => model.max_model_len,
        Some(truncation) => truncation.limit(model.max_model_len)?,
    };
    Ok(Some(PairCut {
        max_tokens,
        strategy: strategy.unwrap_or(PairTruncation::LongestFirst),
    }))
}

/// vLLM's `max_tokens_per_query` and `max_tokens_per_doc`: `None` when absent or 0, else a token count below the
/// model's max length.
pub(super) fn per_text_limit(
    body: &Body,
    model: &ServedModel,
    field: &'static str,
) -> Result<Option<usize>, ApiError> {
    let max_len = model.max_model_len;
    match body.optional_integer(field)? {
        None | Some(0) => Ok(None),
        Some(n) if n < 0 => Err(ApiError::invalid(
            field,
            format!("`{field}` must be 0 (no cut) or more, got {n}"),
        )),
        Some(n) => match usize::try_from(n) {
            Ok(n) if n < max_len => Ok(Some(n)),
            _ => Err(ApiError::invalid(
                field,
                format!("`{field}` ({n}) must be less than the model's max length of {max_len}"),
            )),
        },
    }
}

/// Each of `texts` cut after its `limit`-th token ([`crate::tokenize::TextTokenizer::cut_after_tokens`]); errors
/// name `field`.
pub(super) fn cut_texts<'t>(
    model: &ServedModel,
    texts: &'t [String],
    limit: Option<usize>,
    field: &'static str,
) -> Result<Vec<&'t str>, ApiError> {
    texts
        .iter()
        .enumerate()
        .map(|(i, text)| match limit {
            None => Ok(text.as_str()),
            Some(limit) => model.tokenizer.cut_after_tokens(text, limit).map_err(|e| {
                ApiError::invalid(field, format!("{field}[{i}] cannot be tokenized: {e}"))
            }),
        })
        .collect()
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
