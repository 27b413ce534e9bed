//! Request bodies: parsing with field-precise 400 messages. Unknown fields are ignored; `null` counts as absent.

use serde_json::{Map, Value};

use crate::error::{ApiError, type_name, wrong_type};

/// The inputs of a classify request, in one of the contract's four forms.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// `"text"` or `["t1", "t2"]`.
    Texts(Vec<String>),
    /// `[101, 2023, 102]` (one input, `batched: false`) or `[[101, 102], [101, 7592, 102]]` (`batched: true`).
    TokenIds {
        sequences: Vec<Vec<u64>>,
        batched: bool,
    },
}

impl Input {
    pub fn len(&self) -> usize {
        match self {
            Input::Texts(texts) => texts.len(),
            Input::TokenIds { sequences, .. } => sequences.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How many tokens to keep: the request's `truncate_prompt_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truncation {
    /// `-1`: the model's max length.
    ModelMax,
    /// `k ≥ 1`: keep k tokens in total.
    Tokens(u64),
}

impl Truncation {
    /// Tokens to keep for a model of `max_len` positions; more than it is a 400 naming
    /// `truncate_prompt_tokens`.
    pub fn limit(self, max_len: usize) -> Result<usize, ApiError> {
        match self {
            Truncation::ModelMax => Ok(max_len),
            Truncation::Tokens(k) => match usize::try_from(k) {
                Ok(k) if k <= max_len => Ok(k),
                _ => Err(ApiError::invalid(
                    "truncate_prompt_tokens",
                    format!(
                        "`truncate_prompt_tokens` ({k}) is greater than the model's max length ({max_len})"
                    ),
                )),
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClassifyRequest {
    pub input: Input,
    pub user: Option<String>,
    pub rid: Option<String>,
    pub priority: i64,
    pub truncate_prompt_tokens: Option<Truncation>,
    pub add_special_tokens: bool,
    pub use_activation: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TokenizeRequest {
    pub prompt: String,
    pub add_special_tokens: bool,
}

/// A JSON object body, before its fields are read.
#[derive(Debug)]
pub struct Body(Map<String, Value>);

impl Body {
    /// A body given as a JSON object already (the edge component's typed export builds one).
    pub fn from_object(fields: Map<String, Value>) -> Body {
        Body(fields)
    }

    pub fn parse(bytes: &[u8]) -> Result<Body, ApiError> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| {
            ApiError::invalid("body", format!("request body is not valid JSON: {e}"))
        })?;
        match value {
            Value::Object(map) => Ok(Body(map)),
            other => Err(ApiError::invalid(
                "body",
                format!(
                    "request body must be a JSON object, not {}",
                    type_name(&other)
                ),
            )),
        }
    }

    /// The `model` field, read first so that an unknown model can be answered (or forwarded) early. It may be
    /// left out when one model is served.
    pub fn model(&self) -> Result<Option<&str>, ApiError> {
        match self.0.get("model") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(name)) => Ok(Some(name)),
            Some(other) => Err(wrong_type("model", "a string", other)),
        }
    }

    /// A field that must be present (not `null`).
    pub(crate) fn required(&self, field: &'static str) -> Result<&Value, ApiError> {
        match self.0.get(field) {
            None | Some(Value::Null) => {
                Err(ApiError::invalid(field, format!("`{field}` is required")))
            }
            Some(value) => Ok(value),
        }
    }

    /// A field that may be absent (or `null`).
    pub(crate) fn optional(&self, field: &str) -> Option<&Value> {
        self.0.get(field).filter(|v| !v.is_null())
    }

    /// A classify request: `input`, or vLLM's chat form `messages` (returned apart: rendering it needs the
    /// model's template), never both.
    pub fn into_classify(
        self,
        max_inputs: usize,
    ) -> Result<(ClassifyRequest, Option<Vec<crate::chat::Message>>), ApiError> {
        let messages = match self.optional("messages") {
            None => None,
            Some(value) => {
                if self.optional("input").is_some() {
                    return Err(ApiError::invalid(
                        "messages",
                        "send either `input` or `messages`, not both",
                    ));
                }
                Some(crate::chat::parse_messages(value)?)
            }
        };
        let input = match (&messages, self.optional("input")) {
            (Some(_), _) => Input::Texts(Vec::new()),
            (None, None) => {
                return Err(ApiError::invalid(
                    "input",
                    "`input` (or `messages`) is required",
                ));
            }
            (None, Some(value)) => parse_input(value, max_inputs)?,
        };
        // vLLM renders chat templates without the tokenizer's special tokens: the template writes its own.
        let add_special_tokens = self
            .optional_bool("add_special_tokens")?
            .unwrap_or(messages.is_none());
        let request = ClassifyRequest {
            input,
            user: self.optional_string("user")?,
            rid: self.optional_string("rid")?,
            priority: self.priority()?,
            truncate_prompt_tokens: self.truncate_prompt_tokens()?,
            add_special_tokens,
            use_activation: self.use_activation()?,
        };
        Ok((request, messages))
    }

    pub(crate) fn priority(&self) -> Result<i64, ApiError> {
        Ok(self.optional_integer("priority")?.unwrap_or(0))
    }

    /// `truncate_prompt_tokens`: `-1` (the model's max length) or a count of at least 1.
    pub(crate) fn truncate_prompt_tokens(&self) -> Result<Option<Truncation>, ApiError> {
        match self.optional_integer("truncate_prompt_tokens")? {
            None => Ok(None),
            Some(-1) => Ok(Some(Truncation::ModelMax)),
            Some(k) if k >= 1 => Ok(Some(Truncation::Tokens(k as u64))),
            Some(k) => Err(ApiError::invalid(
                "truncate_prompt_tokens",
                format!("`truncate_prompt_tokens` must be -1 or at least 1, got {k}"),
            )),
        }
    }

    pub fn into_tokenize(self) -> Result<TokenizeRequest, ApiError> {
        let prompt = match self.0.get("prompt") {
            None | Some(Value::Null) => {
                return Err(ApiError::invalid("prompt", "`prompt` is required"));
            }
            Some(Value::String(prompt)) => prompt.clone(),
            Some(other) => return Err(wrong_type("prompt", "a string", other)),
        };
        Ok(TokenizeRequest {
            prompt,
            add_special_tokens: self.optional_bool("add_special_tokens")?.unwrap_or(true),
        })
    }

    pub(crate) fn optional_string(&self, field: &'static str) -> Result<Option<String>, ApiError> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(wrong_type(field, "a string", other)),
        }
    }

    pub(crate) fn optional_integer(&self, field: &'static str) -> Result<Option<i64>, ApiError> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => value
                .as_i64()
                .map(Some)
                .ok_or_else(|| wrong_type(field, "an integer that fits in 64 bits", value)),
        }
    }

    /// `use_activation`, or vLLM's deprecated alias `activation`; both, disagreeing, is a 400.
    pub(crate) fn use_activation(&self) -> Result<bool, ApiError> {
        match (
            self.optional_bool("use_activation")?,
            self.optional_bool("activation")?,
        ) {
            (Some(a), Some(b)) if a != b => Err(ApiError::invalid(
                "use_activation",
                "`use_activation` and its deprecated alias `activation` disagree; send only `use_activation`",
            )),
            (Some(value), _) | (None, Some(value)) => Ok(value),
            (None, None) => Ok(true),
        }
    }

    pub(crate) fn optional_bool(&self, field: &'static str) -> Result<Option<bool>, ApiError> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(wrong_type(field, "a boolean", other)),
        }
    }
}

pub(crate) fn parse_input(value: &Value, max_inputs: usize) -> Result<Input, ApiError> {
    let items = match value {
        Value::String(text) => {
            if text.trim().is_empty() {
                return Err(ApiError::invalid(
                    "input",
                    "`input` must not be an empty or blank string",
                ));
            }
            return Ok(Input::Texts(vec![text.clone()]));
        }
        Value::Array(items) => items,
        other => {
            return Err(ApiError::invalid(
                "input",
                format!(
                    "`input` must be a string, a list of strings, a list of token ids or a list of token-id lists, not {}",
                    type_name(other)
                ),
            ));
        }
    };
    let Some(first) = items.first() else {
        return Err(ApiError::invalid(
            "input",
            "`input` must not be an empty list",
        ));
    };
    if let Some((index, item)) = items
        .iter()
        .enumerate()
        .find(|(_, item)| std::mem::discriminant(*item) != std::mem::discriminant(first))
    {
        return Err(ApiError::invalid(
            "input",
            format!(
                "`input` mixes element types: input[0] is {} but input[{index}] is {}",
                type_name(first),
                type_name(item)
            ),
        ));
    }
    match first {
        Value::String(_) => {
            check_count(items.len(), max_inputs)?;
            let mut texts = Vec::with_capacity(items.len());
            for (index, item) in items.iter().enumerate() {
                let text = item.as_str().unwrap_or_default();
                if text.trim().is_empty() {
                    return Err(ApiError::invalid(
                        "input",
                        format!("input[{index}] is an empty or blank string"),
                    ));
                }
                texts.push(text.to_owned());
            }
            Ok(Input::Texts(texts))
        }
        Value::Number(_) => {
            let ids = items
                .iter()
                .enumerate()
                .map(|(index, item)| token_id(item, &format!("input[{index}]")))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Input::TokenIds {
                sequences: vec![ids],
                batched: false,
            })
        }
        Value::Array(_) => {
            check_count(items.len(), max_inputs)?;
            let mut sequences = Vec::with_capacity(items.len());
            for (index, item) in items.iter().enumerate() {
                let inner = item.as_array().map(Vec::as_slice).unwrap_or_default();
                if inner.is_empty() {
                    return Err(ApiError::invalid(
                        "input",
                        format!("input[{index}] is an empty list"),
                    ));
                }
                let ids = inner
                    .iter()
                    .enumerate()
                    .map(|(j, id)| token_id(id, &format!("input[{index}][{j}]")))
                    .collect::<Result<Vec<_>, _>>()?;
                sequences.push(ids);
            }
            Ok(Input::TokenIds {
                sequences,
                batched: true,
            })
        }
        other => Err(ApiError::invalid(
            "input",
            format!(
                "input[0] must be a string, a token id or a list of token ids, not {}",
                type_name(other)
            ),
        )),
    }
}

pub(crate) fn check_count(count: usize, max_inputs: usize) -> Result<(), ApiError> {
    if count > max_inputs {
        return Err(ApiError::invalid(
            "input",
            format!("too many inputs: {count} given, at most {max_inputs} per request"),
        ));
    }
    Ok(())
}

fn token_id(value: &Value, path: &str) -> Result<u64, ApiError> {
    match value {
        Value::Number(n) => {
            if let Some(id) = n.as_u64() {
                Ok(id)
            } else if n.as_i64().is_some_and(|id| id < 0) || n.as_f64().is_some_and(|id| id < 0.0) {
                Err(ApiError::invalid(
                    "input",
                    format!("{path} is a negative token id ({n})"),
                ))
            } else {
                Err(ApiError::invalid(
                    "input",
                    format!("{path} is not an integer token id ({n})"),
                ))
            }
        }
        other => Err(ApiError::invalid(
            "input",
            format!("{path} must be a token id, not {}", type_name(other)),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(body: &str) -> Result<ClassifyRequest, ApiError> {
        Ok(Body::parse(body.as_bytes())?.into_classify(4)?.0)
    }

    fn error(body: &str) -> ApiError {
        classify(body).unwrap_err()
    }

    #[test]
    fn four_input_forms() {
        assert_eq!(
            classify(r#"{"model":"m","input":"hi"}"#).unwrap().input,
            Input::Texts(vec!["hi".into()])
        );
        assert_eq!(
            classify(r#"{"model":"m","input":["a","b"]}"#)
                .unwrap()
                .input,
            Input::Texts(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            classify(r#"{"model":"m","input":[1,2]}"#).unwrap().input,
            Input::TokenIds {
                sequences: vec![vec![1, 2]],
                batched: false
            }
        );
        assert_eq!(
            classify(r#"{"model":"m","input":[[1],[2,3]]}"#)
                .unwrap()
                .input,
            Input::TokenIds {
                sequences: vec![vec![1], vec![2, 3]],
                batched: true
            }
        );
    }

    #[test]
    fn defaults_and_unknown_fields() {
        let request =
            classify(r#"{"model":"m","input":"x","whatever":{"a":[1]},"user":null}"#).unwrap();
        assert_eq!(request.priority, 0);
        assert!(request.add_special_tokens && request.use_activation);
        assert_eq!(request.truncate_prompt_tokens, None);
        assert_eq!(request.user, None);
        let request = classify(
            r#"{"model":"m","input":"x","priority":-3,"truncate_prompt_tokens":-1,"add_special_tokens":false,
                "use_activation":false,"rid":"abc","user":"u"}"#,
        )
        .unwrap();
        assert_eq!(request.priority, -3);
        assert_eq!(request.truncate_prompt_tokens, Some(Truncation::ModelMax));
        assert!(!request.add_special_tokens && !request.use_activation);
        assert_eq!(request.rid.as_deref(), Some("abc"));
        assert_eq!(request.user.as_deref(), Some("u"));
    }

    #[test]
    fn activation_is_vllms_deprecated_alias_of_use_activation() {
        let alias = classify(r#"{"model":"m","input":"x","activation":false}"#).unwrap();
        assert!(!alias.use_activation);
        let both =
            classify(r#"{"model":"m","input":"x","activation":false,"use_activation":false}"#);
        assert!(!both.unwrap().use_activation);
        let disagree =
            classify(r#"{"model":"m","input":"x","activation":false,"use_activation":true}"#);
        assert_eq!(disagree.unwrap_err().param, Some("use_activation"));
        let wrong = classify(r#"{"model":"m","input":"x","activation":"no"}"#);
        assert_eq!(wrong.unwrap_err().param, Some("activation"));
    }

    #[test]
    fn empty_and_blank_inputs() {
        for (body, fragment) in [
            (r#"{"model":"m","input":""}"#, "empty or blank string"),
            (r#"{"model":"m","input":"   "}"#, "empty or blank string"),
            (r#"{"model":"m","input":[]}"#, "empty list"),
            (r#"{"model":"m","input":["a",""]}"#, "input[1] is an empty"),
            (r#"{"model":"m","input":[[]]}"#, "input[0] is an empty list"),
            (
                r#"{"model":"m","input":[[1],[]]}"#,
                "input[1] is an empty list",
            ),
        ] {
            let error = error(body);
            assert_eq!(error.status(), 400, "{body}");
            assert!(
                error.message.contains(fragment),
                "{body}: {}",
                error.message
            );
            assert_eq!(error.param, Some("input"));
        }
    }

    #[test]
    fn bad_token_ids_name_their_index() {
        assert!(
            error(r#"{"model":"m","input":[1,-1]}"#)
                .message
                .contains("input[1] is a negative")
        );
        assert!(
            error(r#"{"model":"m","input":[[1],[2,-5]]}"#)
                .message
                .contains("input[1][1] is a negative")
        );
        assert!(
            error(r#"{"model":"m","input":[1,2.5]}"#)
                .message
                .contains("input[1] is not an integer")
        );
        assert!(
            error(r#"{"model":"m","input":[[1,"a"]]}"#)
                .message
                .contains("input[0][1] must be a token id")
        );
        let huge = error(r#"{"model":"m","input":[1,-99999999999999999999999]}"#);
        assert!(
            huge.message.contains("input[1] is a negative"),
            "{}",
            huge.message
        );
    }

    #[test]
    fn mixed_and_wrong_input_types() {
        let mixed = error(r#"{"model":"m","input":[1,"a"]}"#);
        assert!(
            mixed.message.contains("input[1] is a string"),
            "{}",
            mixed.message
        );
        assert!(
            error(r#"{"model":"m","input":5}"#)
                .message
                .contains("not an integer")
        );
        assert!(
            error(r#"{"model":"m","input":{}}"#)
                .message
                .contains("not an object")
        );
        assert!(
            error(r#"{"model":"m","input":[{}]}"#)
                .message
                .contains("input[0] must be")
        );
        assert!(
            error(r#"{"model":"m","input":[true]}"#)
                .message
                .contains("input[0] must be")
        );
        assert!(
            error(r#"{"model":"m"}"#)
                .message
                .contains("`input` (or `messages`) is required")
        );
    }

    #[test]
    fn too_many_inputs() {
        let error = error(r#"{"model":"m","input":["a","b","c","d","e"]}"#);
        assert!(
            error.message.contains("5 given, at most 4"),
            "{}",
            error.message
        );
        assert!(classify(r#"{"model":"m","input":[[1],[2],[3],[4]]}"#).is_ok());
        assert!(classify(r#"{"model":"m","input":[[1],[2],[3],[4],[5]]}"#).is_err());
    }

    #[test]
    fn body_must_be_a_json_object() {
        assert!(
            Body::parse(b"{not json")
                .unwrap_err()
                .message
                .contains("not valid JSON")
        );
        assert!(
            Body::parse(b"[1,2]")
                .unwrap_err()
                .message
                .contains("not a list")
        );
        assert!(
            Body::parse(b"")
                .unwrap_err()
                .message
                .contains("not valid JSON")
        );
        assert!(Body::parse(b"{\"model\":\"\xff\"}").is_err());
        let deep = "[".repeat(100_000);
        assert_eq!(Body::parse(deep.as_bytes()).unwrap_err().status(), 400);
    }

    #[test]
    fn field_types_are_checked() {
        for (body, param) in [
            (r#"{"model":"m","input":"x","priority":"high"}"#, "priority"),
            (r#"{"model":"m","input":"x","priority":1e40}"#, "priority"),
            (
                r#"{"model":"m","input":"x","priority":99999999999999999999}"#,
                "priority",
            ),
            (
                r#"{"model":"m","input":"x","add_special_tokens":"yes"}"#,
                "add_special_tokens",
            ),
            (
                r#"{"model":"m","input":"x","use_activation":1}"#,
                "use_activation",
            ),
            (r#"{"model":"m","input":"x","rid":5}"#, "rid"),
            (r#"{"model":"m","input":"x","user":[]}"#, "user"),
            (
                r#"{"model":"m","input":"x","truncate_prompt_tokens":0}"#,
                "truncate_prompt_tokens",
            ),
            (
                r#"{"model":"m","input":"x","truncate_prompt_tokens":-2}"#,
                "truncate_prompt_tokens",
            ),
            (
                r#"{"model":"m","input":"x","truncate_prompt_tokens":"5"}"#,
                "truncate_prompt_tokens",
            ),
        ] {
            let error = error(body);
            assert_eq!(
                (error.status(), error.param),
                (400, Some(param)),
                "{body}: {}",
                error.message
            );
        }
    }

    #[test]
    fn model_is_a_string_or_absent() {
        let model = |body: &str| {
            Body::parse(body.as_bytes())
                .unwrap()
                .model()
                .map(|m| m.map(str::to_owned))
        };
        assert_eq!(model(r#"{"model":"m"}"#).unwrap().as_deref(), Some("m"));
        assert_eq!(model(r#"{"model":null}"#).unwrap(), None);
        assert_eq!(model(r#"{"model":1}"#).unwrap_err().param, Some("model"));
    }

    #[test]
    fn messages_or_input_but_not_both() {
        let parse = |body: &str| Body::parse(body.as_bytes()).unwrap().into_classify(4);
        let (request, messages) =
            parse(r#"{"messages":[{"role":"user","content":"hi"}]}"#).unwrap();
        assert_eq!(messages.unwrap().len(), 1);
        assert!(
            !request.add_special_tokens,
            "chat renders without the tokenizer's special tokens"
        );
        let (request, _) =
            parse(r#"{"messages":[{"role":"user","content":"hi"}],"add_special_tokens":true}"#)
                .unwrap();
        assert!(request.add_special_tokens);
        let both = parse(r#"{"input":"x","messages":[{"role":"user","content":"hi"}]}"#);
        assert_eq!(both.unwrap_err().param, Some("messages"));
        assert_eq!(
            parse(r#"{"messages":[]}"#).unwrap_err().param,
            Some("messages")
        );
    }

    #[test]
    fn tokenize_request() {
        let body = Body::parse(br#"{"model":"m","prompt":"","add_special_tokens":false}"#).unwrap();
        let request = body.into_tokenize().unwrap();
        assert_eq!(
            (request.prompt.as_str(), request.add_special_tokens),
            ("", false)
        );
        let missing = Body::parse(br#"{"model":"m"}"#)
            .unwrap()
            .into_tokenize()
            .unwrap_err();
        assert_eq!(missing.param, Some("prompt"));
    }
}
