//! The contract's error shape: `{"error", "type", "code", "param"}`.

use serde::Serialize;

/// What went wrong; fixes both the HTTP status and the `type` string of the error body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidRequest,
    Authentication,
    ModelNotFound,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    PayloadTooLarge,
    UriTooLong,
    Overloaded,
    HeadersTooLarge,
    Internal,
    Upstream,
    UpstreamTimeout,
    Unavailable,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 14] = [
        ErrorKind::InvalidRequest,
        ErrorKind::Authentication,
        ErrorKind::ModelNotFound,
        ErrorKind::NotFound,
        ErrorKind::MethodNotAllowed,
        ErrorKind::RequestTimeout,
        ErrorKind::PayloadTooLarge,
        ErrorKind::UriTooLong,
        ErrorKind::Overloaded,
        ErrorKind::HeadersTooLarge,
        ErrorKind::Internal,
        ErrorKind::Upstream,
        ErrorKind::UpstreamTimeout,
        ErrorKind::Unavailable,
    ];

    pub fn status(self) -> u16 {
        match self {
            ErrorKind::InvalidRequest => 400,
            ErrorKind::Authentication => 401,
            ErrorKind::ModelNotFound | ErrorKind::NotFound => 404,
            ErrorKind::MethodNotAllowed => 405,
            ErrorKind::RequestTimeout => 408,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::UriTooLong => 414,
            ErrorKind::Overloaded => 429,
            ErrorKind::HeadersTooLarge => 431,
            ErrorKind::Internal => 500,
            ErrorKind::Upstream => 502,
            ErrorKind::Unavailable => 503,
            ErrorKind::UpstreamTimeout => 504,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest => "invalid_request_error",
            ErrorKind::Authentication => "authentication_error",
            ErrorKind::ModelNotFound => "model_not_found",
            ErrorKind::NotFound => "not_found",
            ErrorKind::MethodNotAllowed => "method_not_allowed",
            ErrorKind::RequestTimeout => "request_timeout",
            ErrorKind::PayloadTooLarge => "payload_too_large",
            ErrorKind::UriTooLong => "uri_too_long",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::HeadersTooLarge => "headers_too_large",
            ErrorKind::Internal => "internal_error",
            ErrorKind::Upstream => "upstream_error",
            ErrorKind::UpstreamTimeout => "upstream_timeout",
            ErrorKind::Unavailable => "unavailable",
        }
    }
}

/// An error answer. Its message is shown to clients, so it never carries host paths or backtraces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
    pub param: Option<&'static str>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    code: u16,
    param: Option<&'static str>,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
            param: None,
        }
    }

    /// A 400 `invalid_request_error` about the request field `param`.
    pub fn invalid(param: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(ErrorKind::InvalidRequest, message).with_param(param)
    }

    pub fn model_not_found(name: &str) -> Self {
        ApiError::new(
            ErrorKind::ModelNotFound,
            format!("the model `{name}` does not exist"),
        )
        .with_param("model")
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(ErrorKind::Internal, message)
    }

    pub fn payload_too_large(limit: usize) -> Self {
        ApiError::new(
            ErrorKind::PayloadTooLarge,
            format!("request body is larger than the limit of {limit} bytes"),
        )
    }

    pub fn overloaded(limit: usize) -> Self {
        ApiError::new(
            ErrorKind::Overloaded,
            format!("the server is at its limit of {limit} concurrent requests; retry later"),
        )
    }

    pub fn with_param(mut self, param: &'static str) -> Self {
        self.param = Some(param);
        self
    }

    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    pub fn to_json(&self) -> Vec<u8> {
        let body = ErrorBody {
            error: &self.message,
            kind: self.kind.as_str(),
            code: self.status(),
            param: self.param,
        };
        // Serializing a struct of strings and integers cannot fail.
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.status(),
            self.kind.as_str(),
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

/// A field whose JSON value has the wrong type.
pub(crate) fn wrong_type(field: &'static str, expected: &str, got: &serde_json::Value) -> ApiError {
    ApiError::invalid(
        field,
        format!("`{field}` must be {expected}, not {}", type_name(got)),
    )
}

/// How an error message names a JSON value's type.
pub(crate) fn type_name(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_has_the_contract_shape() {
        let error = ApiError::invalid("input", "input must not be empty");
        let json: serde_json::Value = serde_json::from_slice(&error.to_json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"error": "input must not be empty", "type": "invalid_request_error",
                               "code": 400, "param": "input"})
        );
    }

    #[test]
    fn every_kind_maps_to_its_status() {
        let cases = [
            (ErrorKind::InvalidRequest, 400),
            (ErrorKind::Authentication, 401),
            (ErrorKind::ModelNotFound, 404),
            (ErrorKind::NotFound, 404),
            (ErrorKind::MethodNotAllowed, 405),
            (ErrorKind::RequestTimeout, 408),
            (ErrorKind::PayloadTooLarge, 413),
            (ErrorKind::UriTooLong, 414),
            (ErrorKind::Overloaded, 429),
            (ErrorKind::HeadersTooLarge, 431),
            (ErrorKind::Internal, 500),
            (ErrorKind::Upstream, 502),
            (ErrorKind::Unavailable, 503),
            (ErrorKind::UpstreamTimeout, 504),
        ];
        for (kind, status) in cases {
            assert_eq!(kind.status(), status, "{kind:?}");
        }
    }
}
