//! Every answer a test gets through [`crate::client::Client`] is checked against the committed OpenAPI document
//! (`shared/openapi.json`, served at `/openapi.json`): a 200 against its route's response schema, any error
//! against the Error schema. So the document cannot drift from the code on either deployment.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use classify_protocol::handler::OPENAPI;
use serde_json::{Value, json};

/// Panics (failing the test) when `body` does not match what the document says `method path` answers with
/// `status`.
pub fn check(method: &str, path: &str, status: u16, content_type: &str, body: &str) {
    let path = path.split('?').next().unwrap_or(path);
    let schema = if status >= 400 {
        "#/components/schemas/Error".to_owned()
    } else {
        let operation = &document()["paths"][path][method.to_ascii_lowercase()];
        match &operation["responses"][status.to_string()]["content"]["application/json"]["schema"] {
            Value::Object(schema) => match schema.get("$ref").and_then(Value::as_str) {
                Some(reference) => reference.to_owned(),
                // Inline schemas are named by where they are.
                None => format!(
                    "#/paths/{}/{}/responses/{status}/content/application~1json/schema",
                    path.replace('~', "~0").replace('/', "~1"),
                    method.to_ascii_lowercase()
                ),
            },
            // Not JSON (metrics) or not a documented answer.
            _ => return,
        }
    };
    assert!(
        content_type.starts_with("application/json"),
        "{method} {path} answered {status} with {content_type}, not JSON"
    );
    let instance: Value = serde_json::from_str(body).unwrap_or_else(|e| {
        panic!("{method} {path} answered {status} with invalid JSON ({e}): {body}")
    });
    let mut validators = validators().lock().unwrap_or_else(|e| e.into_inner());
    let validator = validators.entry(schema.clone()).or_insert_with(|| {
        let mut root = document().clone();
        root["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
        root["$ref"] = json!(schema);
        jsonschema::validator_for(&root).unwrap_or_else(|e| {
            panic!("the OpenAPI document's {schema} is not a valid schema: {e}")
        })
    });
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {path} → {status} does not match {schema} of shared/openapi.json: {}\n{body}",
        errors.join("; ")
    );
}

fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        serde_json::from_str(OPENAPI).unwrap_or_else(|e| panic!("shared/openapi.json: {e}"))
    })
}

fn validators() -> &'static Mutex<HashMap<String, jsonschema::Validator>> {
    static VALIDATORS: OnceLock<Mutex<HashMap<String, jsonschema::Validator>>> = OnceLock::new();
    VALIDATORS.get_or_init(Mutex::default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_that_match_the_document_pass() {
        check(
            "GET",
            "/health",
            200,
            "application/json",
            r#"{"status":"ok"}"#,
        );
        let error = r#"{"error":"no","type":"not_found","code":404,"param":null}"#;
        check("GET", "/anything", 404, "application/json", error);
    }

    #[test]
    #[should_panic(expected = "does not match")]
    fn a_classify_answer_without_usage_fails() {
        let body = r#"{"id":"classify-1","object":"list","created":1,"model":"m",
            "data":[{"index":0,"label":"A","probs":[1.0],"num_classes":1}]}"#;
        check("POST", "/v1/classify", 200, "application/json", body);
    }

    #[test]
    #[should_panic(expected = "does not match")]
    fn an_error_with_an_unknown_type_fails() {
        let body = r#"{"error":"no","type":"teapot","code":418,"param":null}"#;
        check("POST", "/v1/classify", 418, "application/json", body);
    }
}
