//! wasi:http 0.2 (WASIp2): the `incoming-handler` export, through spin-sdk 5.

use bytes::Bytes;
use classify_protocol::{ApiError, error_response};
use futures_util::StreamExt;
use http::{HeaderName, HeaderValue, Request, Response};
use http_body_util::StreamBody;
use spin_sdk::http::IncomingRequest;

use super::deployment::respond;

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
    respond(parts, StreamBody::new(chunks)).await
}
