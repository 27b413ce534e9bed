//! Sending to the native server over wasi:http 0.3 (WASIp3) through spin-sdk 6 (the 2026-03-15 release
//! candidate) or 7 (0.3.0 final); the two SDKs share this API.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use spin_sdk::http::body::IncomingBodyExt;
use spin_sdk::wasip3::http::types::{ErrorCode, RequestOptions};
use spin_sdk::wasip3::http_compat::RequestOptionsExtension;

use super::outgoing::{SendFailure, UpstreamTimeouts};

pub(super) async fn send(
    request: Request<Vec<u8>>,
    timeouts: &UpstreamTimeouts,
) -> Result<Response<Vec<u8>>, SendFailure> {
    let mut request = request.map(|body| Full::new(Bytes::from(body)));
    let options = RequestOptions::new();
    let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    // An error means the host does not support that timeout; its own limit applies then.
    let _ = options.set_connect_timeout(Some(nanos(timeouts.connect)));
    let _ = options.set_first_byte_timeout(Some(nanos(timeouts.first_byte)));
    request
        .extensions_mut()
        .insert(RequestOptionsExtension(options));
    let response = spin_sdk::http::send(request)
        .await
        .map_err(|code| match code {
            ErrorCode::ConnectionTimeout
            | ErrorCode::ConnectionReadTimeout
            | ErrorCode::HttpResponseTimeout => SendFailure::Timeout(format!("{code:?}")),
            _ => SendFailure::Other(format!("{code:?}")),
        })?;
    let (parts, body) = response.into_parts();
    let bytes = body
        .bytes()
        .await
        .map_err(|code| SendFailure::Other(format!("{code:?}")))?;
    Ok(Response::from_parts(parts, bytes.to_vec()))
}
