//! Sending to the native server over wasi:http 0.2 (WASIp2) through spin-sdk 5.

use http::{HeaderName, HeaderValue, Request, Response};
use spin_sdk::http::conversions::TryIntoOutgoingRequest;
use spin_sdk::http::{ErrorCode, IncomingResponse, OutgoingBody};
use spin_sdk::wit::wasi::http0_2_0::outgoing_handler;
use spin_sdk::wit::wasi::http0_2_0::types::RequestOptions;

use super::outgoing::{SendFailure, UpstreamTimeouts};

/// Sends through wasi:http 0.2's `outgoing-handler` itself, since spin-sdk 5's `send` takes no request options
/// (the connect and first-byte timeouts). A p2 instance serves one request, so waiting blocks nothing else.
pub(super) async fn send(
    request: Request<Vec<u8>>,
    timeouts: &UpstreamTimeouts,
) -> Result<Response<Vec<u8>>, SendFailure> {
    let other = |e: &dyn std::fmt::Debug| SendFailure::Other(format!("{e:?}"));
    let (outgoing, buffered) = request.try_into_outgoing_request().map_err(|e| other(&e))?;
    let body = outgoing
        .body()
        .map_err(|()| SendFailure::Other("the request body was taken".into()))?;
    let options = RequestOptions::new();
    let nanos = |d: std::time::Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    // An error means the host does not support that timeout; its own limit applies then.
    let _ = options.set_connect_timeout(Some(nanos(timeouts.connect)));
    let _ = options.set_first_byte_timeout(Some(nanos(timeouts.first_byte)));
    let pending = outgoing_handler::handle(outgoing, Some(options)).map_err(failure)?;
    if let Some(bytes) = buffered {
        let stream = body
            .write()
            .map_err(|()| SendFailure::Other("no request body stream".into()))?;
        for chunk in bytes.chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| other(&e))?;
        }
    }
    OutgoingBody::finish(body, None).map_err(failure)?;
    pending.subscribe().block();
    let response: IncomingResponse = match pending.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(failure(code)),
        Some(Err(())) | None => {
            return Err(SendFailure::Other("the response was not available".into()));
        }
    };
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

/// Timeouts are the host's verdict that the native server did not answer in time.
fn failure(code: ErrorCode) -> SendFailure {
    match code {
        ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::HttpResponseTimeout => SendFailure::Timeout(format!("{code:?}")),
        other => SendFailure::Other(format!("{other:?}")),
    }
}
