//! The native server behind the edge: requests for models not mounted here are sent to it unchanged.

use classify_protocol::{ApiError, ErrorKind};
use http::{HeaderMap, Request, Response};

use super::log::log_once;
use super::outgoing::{SendFailure, UpstreamTimeouts};
#[cfg(feature = "wasi-http-p2")]
use super::outgoing_p2::send;
#[cfg(any(feature = "wasi-http-p3-rc", feature = "wasi-http-p3"))]
use super::outgoing_p3::send;

/// The native server for models not mounted here (`NATIVE_URL`).
pub(super) struct NativeServer {
    pub(super) url: String,
    pub(super) timeouts: UpstreamTimeouts,
}

/// Headers that describe one hop, not the message, and that wasi:http hosts refuse to pass on.
fn copy_end_to_end(from: &HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        let hop_by_hop = matches!(
            name.as_str(),
            "host"
                | "connection"
                | "keep-alive"
                | "proxy-connection"
                | "transfer-encoding"
                | "te"
                | "upgrade"
                | "proxy-authenticate"
                | "proxy-authorization"
                | "http2-settings"
                | "content-length"
        );
        if !hop_by_hop {
            to.append(name.clone(), value.clone());
        }
    }
}

/// Sends `request` unchanged (method, path, query, headers, body) to the native server.
pub(super) async fn forward(
    native: &NativeServer,
    request: &Request<Vec<u8>>,
) -> Result<Response<Vec<u8>>, ApiError> {
    let base = native.url.as_str();
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let mut outgoing = Request::builder()
        .method(request.method().clone())
        .uri(&url)
        .body(request.body().clone())
        .map_err(|e| upstream(ErrorKind::Upstream, base, &e.to_string()))?;
    copy_end_to_end(request.headers(), outgoing.headers_mut());
    // The body is whole: say its length, or Spin 4.0 sends it chunked without saying so and the server reads
    // an empty body followed by garbage.
    outgoing
        .headers_mut()
        .insert(http::header::CONTENT_LENGTH, request.body().len().into());
    let response = send(outgoing, &native.timeouts)
        .await
        .map_err(|failure| match failure {
            SendFailure::Timeout(reason) => upstream(ErrorKind::UpstreamTimeout, base, &reason),
            SendFailure::Other(reason) => upstream(ErrorKind::Upstream, base, &reason),
        })?;
    let (parts, body) = response.into_parts();
    let mut answer = Response::new(body);
    *answer.status_mut() = parts.status;
    copy_end_to_end(&parts.headers, answer.headers_mut());
    Ok(answer)
}

/// The client learns that the native server failed, not where it is: its URL and the transport's reason go to
/// the component's log.
fn upstream(kind: ErrorKind, base: &str, reason: &str) -> ApiError {
    log_once(&format!(
        "the native server at {base} did not answer: {reason}"
    ));
    let message = match kind {
        ErrorKind::UpstreamTimeout => "the native server did not answer in time",
        _ => "the native server did not answer",
    };
    ApiError::new(kind, message)
}
