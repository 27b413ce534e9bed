//! A blocking HTTP client for tests and benchmarks.

use std::time::Duration;

use serde_json::Value;

pub struct Client {
    base: String,
    agent: ureq::Agent,
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub allow: Option<String>,
    pub text: String,
}

impl Reply {
    /// The body as JSON; panics (failing the test) when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// Asserts the contract's error shape with this status and type, and returns the message.
    pub fn expect_error(&self, status: u16, kind: &str) -> String {
        assert_eq!(self.status, status, "{}", self.text);
        assert!(
            self.content_type.starts_with("application/json"),
            "{}",
            self.content_type
        );
        let body = self.json();
        let keys: Vec<&str> = body
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        assert_eq!(keys, ["code", "error", "param", "type"], "{body}");
        assert_eq!(body["type"], kind, "{body}");
        assert_eq!(body["code"], status, "{body}");
        body["error"].as_str().unwrap_or_default().to_owned()
    }
}

impl Client {
    pub fn new(base: &str) -> Client {
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(60))
            .build();
        Client {
            base: base.trim_end_matches('/').to_owned(),
            agent,
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Reply {
        let reply = self.send(method, path, headers, body);
        crate::openapi::check(method, path, reply.status, &reply.content_type, &reply.text);
        reply
    }

    /// [`Client::request`] to a route outside the contract (an example's): its answer is not checked against the
    /// OpenAPI document.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Reply {
        let mut request = self.agent.request(method, &format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.set(name, value);
        }
        let result = match body {
            Some(bytes) => request.send_bytes(bytes),
            None => request.call(),
        };
        let response = match result {
            Ok(response) => response,
            Err(ureq::Error::Status(_, response)) => response,
            Err(e) => panic!("{method} {path}: {e}"),
        };
        Reply {
            status: response.status(),
            content_type: response
                .header("content-type")
                .unwrap_or_default()
                .to_owned(),
            allow: response.header("allow").map(str::to_owned),
            text: response.into_string().unwrap_or_default(),
        }
    }

    pub fn post(&self, path: &str, body: &Value) -> Reply {
        self.request(
            "POST",
            path,
            &[("content-type", "application/json")],
            Some(body.to_string().as_bytes()),
        )
    }

    pub fn get(&self, path: &str) -> Reply {
        self.request("GET", path, &[], None)
    }

    /// POST /v1/classify that must succeed; returns the body.
    pub fn classify(&self, body: &Value) -> Value {
        self.post_ok("/v1/classify", body)
    }

    /// A POST that must succeed; returns the body.
    pub fn post_ok(&self, path: &str, body: &Value) -> Value {
        let reply = self.post(path, body);
        assert_eq!(reply.status, 200, "{path} {body} → {}", reply.text);
        reply.json()
    }
}
