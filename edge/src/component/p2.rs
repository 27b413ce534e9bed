//! wasi:http 0.2 (WASIp2): the `incoming-handler` export and outgoing requests through spin-sdk 5.

use bytes::Bytes;
use classify_protocol::{ApiError, error_response};
use futures_util::StreamExt;
use http::{HeaderName, HeaderValue, Request, Response};
use http_body_util::StreamBody;
use spin_sdk::http::{ErrorCode, IncomingRequest, IncomingResponse, SendError};

use super::SendFailure;

/// spin-sdk 5 sends without request options, so on wasi:http 0.2 the host's own timeouts apply to forwarded
/// requests (the p3 builds set their own).
pub(super) struct UpstreamTimeouts;

impl UpstreamTimeouts {
    pub(super) fn from_env() -> UpstreamTimeouts {
        UpstreamTimeouts
    }
}

pub(super) async fn send(
    request: Request<Vec<u8>>,
    _timeouts: &UpstreamTimeouts,
) -> Result<Response<Vec<u8>>, SendFailure> {
    let response: IncomingResponse =
        spin_sdk::http::send(request)
            .await
            .map_err(|error| match error {
                SendError::Http(
                    code @ (ErrorCode::ConnectionTimeout
                    | ErrorCode::ConnectionReadTimeout
                    | ErrorCode::HttpResponseTimeout),
                ) => SendFailure::Timeout(format!("{code:?}")),
                other => SendFailure::Other(other.to_string()),
            })?;
    let mut answer = Response::builder().status(response.status());
    for (name, value) in response.headers().entries() {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            answer = answer.header(name, value);
        }
    }
    let body = response
        .into_body()
        .await
        .map_err(|e| SendFailure::Other(e.to_string()))?;
    answer
        .body(body)
        .map_err(|e| SendFailure::Other(e.to_string()))
}

#[spin_sdk::http_component]
async fn serve(request: IncomingRequest) -> Response<Vec<u8>> {
    let mut parts = Request::new(()).into_parts().0;
    let method = request.method().to_string();
    let Ok(method) = http::Method::from_bytes(method.as_bytes()) else {
        let error = ApiError::invalid("method", format!("`{method}` is not an HTTP method"));
        return error_response(&error);
    };
    parts.method = method;
    parts.uri = request
        .path_with_query()
        .and_then(|p| p.parse().ok())
        .unwrap_or_default();
    for (name, value) in request.headers().entries() {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            parts.headers.append(name, value);
        }
    }
    let chunks = request.into_body_stream().map(|chunk| {
        chunk
            .map(|bytes| http_body::Frame::data(Bytes::from(bytes)))
            .map_err(|e| e.to_string())
    });
    super::respond(parts, StreamBody::new(chunks)).await
}
