//! The fields of a token-classify request, each parsed with a 400 naming the field.

use serde_json::Value;

use super::aggregate::Strategy;
use super::redact::Redaction;
use crate::error::{ApiError, wrong_type};
use crate::request::Body;

/// `aggregation_strategy`: one of the pipeline's names, any case (the pipeline upper-cases it); default `simple`.
pub(super) fn strategy(body: &Body) -> Result<Strategy, ApiError> {
    let Some(value) = body.optional("aggregation_strategy") else {
        return Ok(Strategy::Simple);
    };
    let name = value
        .as_str()
        .ok_or_else(|| wrong_type("aggregation_strategy", "a string", value))?;
    Strategy::NAMES
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(name))
        .map(|&(_, strategy)| strategy)
        .ok_or_else(|| {
            let names: Vec<&str> = Strategy::NAMES.iter().map(|(known, _)| *known).collect();
            ApiError::invalid(
                "aggregation_strategy",
                format!(
                    "unknown `aggregation_strategy` `{name}`; use one of {}",
                    names.join(", ")
                ),
            )
        })
}

/// `ignore_labels`: labels (or entity groups) to leave out; default `["O"]`.
pub(super) fn ignore_labels(body: &Body) -> Result<Vec<String>, ApiError> {
    match body.optional("ignore_labels") {
        None => Ok(vec!["O".to_owned()]),
        Some(value) => strings(value, "ignore_labels"),
    }
}

fn strings(value: &Value, field: &'static str) -> Result<Vec<String>, ApiError> {
    let expected = "an array of strings";
    let items = value
        .as_array()
        .ok_or_else(|| wrong_type(field, expected, value))?;
    items
        .iter()
        .map(|item| {
            item.as_str()
                .map(str::to_owned)
                .ok_or_else(|| wrong_type(field, expected, value))
        })
        .collect()
}

/// `threshold`: entities scoring below it are left out.
pub(super) fn threshold(body: &Body) -> Result<Option<f32>, ApiError> {
    let Some(value) = body.optional("threshold") else {
        return Ok(None);
    };
    match value.as_f64() {
        Some(t) if (0.0..=1.0).contains(&t) => Ok(Some(t as f32)),
        Some(t) => Err(ApiError::invalid(
            "threshold",
            format!("`threshold` must be between 0 and 1, got {t}"),
        )),
        None => Err(wrong_type("threshold", "a number", value)),
    }
}

/// `stride`: tokens shared by consecutive windows of a text longer than the max length.
pub(super) fn stride(body: &Body, strategy: Strategy) -> Result<Option<usize>, ApiError> {
    let Some(stride) = body.optional_integer("stride")? else {
        return Ok(None);
    };
    let stride = usize::try_from(stride).map_err(|_| {
        ApiError::invalid(
            "stride",
            format!("`stride` must be 0 or more, got {stride}"),
        )
    })?;
    if strategy == Strategy::None {
        return Err(ApiError::invalid(
            "stride",
            "`stride` merges the entities of overlapping windows, which needs an `aggregation_strategy` other than \
             \"none\"",
        ));
    }
    if body.optional("truncate_prompt_tokens").is_some() {
        return Err(ApiError::invalid(
            "stride",
            "send either `stride` (every token, in overlapping windows) or `truncate_prompt_tokens` (the first \
             tokens only), not both",
        ));
    }
    Ok(Some(stride))
}

/// `redact`: `true`, or `{"labels": [...], "replacement": "[{label}]"}`; `false` or absent: no redaction.
pub(super) fn redaction(body: &Body) -> Result<Option<Redaction>, ApiError> {
    let expected = "a boolean or an object with `labels` and `replacement`";
    match body.optional("redact") {
        None | Some(Value::Bool(false)) => Ok(None),
        Some(Value::Bool(true)) => Ok(Some(Redaction::default())),
        Some(Value::Object(fields)) => {
            let mut redaction = Redaction::default();
            match fields.get("labels") {
                None | Some(Value::Null) => {}
                Some(labels) => redaction.labels = Some(strings(labels, "redact")?),
            }
            match fields.get("replacement") {
                None | Some(Value::Null) => {}
                Some(Value::String(replacement)) => redaction.replacement = replacement.clone(),
                Some(other) => return Err(wrong_type("redact", expected, other)),
            }
            Ok(Some(redaction))
        }
        Some(other) => Err(wrong_type("redact", expected, other)),
    }
}
