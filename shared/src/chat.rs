//! vLLM's chat form of classify: a conversation rendered with the model's own `chat_template` (minijinja, with
//! the environment transformers' `apply_chat_template` gives it), then tokenized without special tokens.

use minijinja::{Environment, ErrorKind as TemplateErrorKind, Value as TemplateValue, context};
use serde::Serialize;
use serde_json::Value;

use crate::error::{ApiError, type_name};

/// One message of a conversation, its content flattened to text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

/// Template work one rendering may do (minijinja's fuel): far above what any chat template needs for a request
/// within the body limit, low enough that a template that loops forever ends.
const RENDER_FUEL: u64 = 50_000_000;

/// A model's chat template, compiled at load, with the special tokens it may write.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate").finish_non_exhaustive()
    }
}

impl ChatTemplate {
    /// The template of a model directory: `chat_template.jinja` (what transformers ≥ 4.43 writes) when given,
    /// else `chat_template` of tokenizer_config.json (a string, or a list of named templates whose `default` is
    /// used). `Ok(None)`: the model has none.
    pub fn from_files(
        template_file: Option<String>,
        tokenizer_config: &Value,
    ) -> Result<Option<ChatTemplate>, String> {
        let source = match template_file {
            Some(source) => source,
            None => match tokenizer_config.get("chat_template") {
                None | Some(Value::Null) => return Ok(None),
                Some(Value::String(source)) => source.clone(),
                Some(Value::Array(named)) => {
                    let default = named.iter().find(|t| t["name"] == "default");
                    match default.and_then(|t| t["template"].as_str()) {
                        Some(source) => source.to_owned(),
                        None => return Ok(None),
                    }
                }
                Some(other) => {
                    return Err(format!(
                        "tokenizer_config.json: `chat_template` must be a string or a list, not {}",
                        type_name(other)
                    ));
                }
            },
        };
        let token = |name: &str| match tokenizer_config.get(name) {
            Some(Value::String(token)) => token.clone(),
            // transformers writes special tokens as AddedToken objects in some versions.
            Some(Value::Object(added)) => added
                .get("content")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            _ => String::new(),
        };
        let mut env = Environment::new();
        // transformers compiles chat templates with these settings and the loop-controls extension.
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(|e| e.to_string())?;
        env.set_syntax(syntax);
        env.set_fuel(Some(RENDER_FUEL));
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_template_owned("chat_template", source)
            .map_err(|e| format!("the chat template does not compile: {e}"))?;
        Ok(Some(ChatTemplate {
            env,
            bos_token: token("bos_token"),
            eos_token: token("eos_token"),
        }))
    }

    /// The conversation as the template writes it, with `add_generation_prompt` false (a classifier or reward
    /// model scores the conversation as it stands).
    pub fn render(&self, messages: &[Message]) -> Result<String, ApiError> {
        let failed = |e: minijinja::Error| {
            let reason = match e.kind() {
                TemplateErrorKind::InvalidOperation => {
                    e.detail().map_or_else(|| e.to_string(), ToOwned::to_owned)
                }
                _ => e.to_string(),
            };
            ApiError::invalid(
                "messages",
                format!("the model's chat template refused the conversation: {reason}"),
            )
        };
        let template = self
            .env
            .get_template("chat_template")
            .map_err(|e| ApiError::internal(e.to_string()))?;
        template
            .render(context! {
                messages => minijinja::value::Serde(messages),
                bos_token => &self.bos_token,
                eos_token => &self.eos_token,
                add_generation_prompt => false,
            })
            .map_err(failed)
    }
}

/// The `raise_exception(message)` transformers gives templates, for conversations they refuse.
fn raise_exception(message: String) -> Result<TemplateValue, minijinja::Error> {
    Err(minijinja::Error::new(
        TemplateErrorKind::InvalidOperation,
        message,
    ))
}

/// `messages`: a non-empty list of `{"role", "content"}`, the content a string or a list of OpenAI content parts
/// of which the text parts are joined with newlines (vLLM's "string" content format).
pub fn parse_messages(value: &Value) -> Result<Vec<Message>, ApiError> {
    let invalid = |message: String| ApiError::invalid("messages", message);
    let Value::Array(items) = value else {
        return Err(invalid(format!(
            "`messages` must be a list of messages, not {}",
            type_name(value)
        )));
    };
    if items.is_empty() {
        return Err(invalid(
            "`messages` must not be an empty list: send at least one message".to_owned(),
        ));
    }
    let mut messages = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Value::Object(fields) = item else {
            return Err(invalid(format!(
                "messages[{i}] must be an object with `role` and `content`, not {}",
                type_name(item)
            )));
        };
        let role = match fields.get("role") {
            Some(Value::String(role)) if !role.is_empty() => role.clone(),
            _ => return Err(invalid(format!("messages[{i}].role must be a string"))),
        };
        let content = match fields.get("content") {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Array(parts)) => {
                let mut texts = Vec::with_capacity(parts.len());
                for (j, part) in parts.iter().enumerate() {
                    match (part.get("type").and_then(Value::as_str), part.get("text")) {
                        (Some("text"), Some(Value::String(text))) => texts.push(text.as_str()),
                        _ => {
                            return Err(invalid(format!(
                                "messages[{i}].content[{j}] must be a text part {{\"type\": \"text\", \"text\": …}}"
                            )));
                        }
                    }
                }
                texts.join("\n")
            }
            None | Some(Value::Null) => String::new(),
            Some(other) => {
                return Err(invalid(format!(
                    "messages[{i}].content must be a string or a list of content parts, not {}",
                    type_name(other)
                )));
            }
        };
        messages.push(Message { role, content });
    }
    Ok(messages)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(source: &str) -> ChatTemplate {
        let config = serde_json::json!({"bos_token": "<s>", "eos_token": {"content": "</s>"}});
        ChatTemplate::from_files(Some(source.to_owned()), &config)
            .unwrap()
            .unwrap()
    }

    fn messages(json: &str) -> Vec<Message> {
        parse_messages(&serde_json::from_str(json).unwrap()).unwrap()
    }

    #[test]
    fn renders_with_transformers_settings_and_variables() {
        let chat = template(
            "{{ bos_token }}{% for m in messages %}\n  {% if m.role == 'user' %}\n[{{ m.content.strip() }}]{% else %}{{ m['content'] }}{% endif %}\n{% endfor %}{% if add_generation_prompt %}GEN{% endif %}{{ eos_token }}",
        );
        let rendered = chat
            .render(&messages(
                r#"[{"role":"user","content":" hi "},{"role":"assistant","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]"#,
            ))
            .unwrap();
        assert_eq!(rendered, "<s>[hi]a\nb</s>");
    }

    #[test]
    fn raise_exception_is_a_400_with_the_templates_message() {
        let chat = template(
            "{% if messages[0]['role'] != 'user' %}{{ raise_exception('Conversations must start with a user message') }}{% endif %}ok",
        );
        let error = chat
            .render(&messages(r#"[{"role":"system","content":"x"}]"#))
            .unwrap_err();
        assert_eq!((error.status(), error.param), (400, Some("messages")));
        assert!(
            error
                .message
                .contains("Conversations must start with a user message"),
            "{}",
            error.message
        );
    }

    #[test]
    fn templates_come_from_the_file_or_tokenizer_config() {
        let config = serde_json::json!({"chat_template": [{"name": "tool_use", "template": "T"},
                                                           {"name": "default", "template": "D"}]});
        let chat = ChatTemplate::from_files(None, &config).unwrap().unwrap();
        assert_eq!(
            chat.render(&messages(r#"[{"role":"user","content":"x"}]"#))
                .unwrap(),
            "D"
        );
        assert!(
            ChatTemplate::from_files(None, &serde_json::json!({}))
                .unwrap()
                .is_none()
        );
        assert!(ChatTemplate::from_files(Some("{% for %}".into()), &config).is_err());
    }

    #[test]
    fn a_template_that_never_ends_runs_out_of_fuel() {
        let chat = template(
            "{% for i in range(10000) %}{% for j in range(10000) %}{{ j }}{% endfor %}{% endfor %}",
        );
        assert!(
            chat.render(&messages(r#"[{"role":"user","content":"x"}]"#))
                .is_err()
        );
    }

    #[test]
    fn malformed_messages_are_400s() {
        for body in [
            "[]",
            "\"hi\"",
            "[1]",
            r#"[{"content":"x"}]"#,
            r#"[{"role":"user","content":5}]"#,
            r#"[{"role":"user","content":[{"type":"image_url","image_url":{}}]}]"#,
        ] {
            let error = parse_messages(&serde_json::from_str(body).unwrap()).unwrap_err();
            assert_eq!(
                (error.status(), error.param),
                (400, Some("messages")),
                "{body}"
            );
        }
    }
}
