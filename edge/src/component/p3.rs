//! wasi:http 0.3 (WASIp3): the `handler` export and outgoing requests through spin-sdk 6 (the 2026-03-15
//! release candidate) or 7 (0.3.0 final); the two SDKs share this API.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use spin_sdk::http::body::IncomingBodyExt;
use spin_sdk::wasip3::http::types::ErrorCode;

use super::SendFailure;

pub(super) async fn send(request: Request<Vec<u8>>) -> Result<Response<Vec<u8>>, SendFailure> {
    let response = spin_sdk::http::send(request.map(|body| Full::new(Bytes::from(body))))
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

#[spin_sdk::http_service]
async fn serve(request: spin_sdk::http::Request) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    super::respond(parts, body)
        .await
        .map(|body| Full::new(Bytes::from(body)))
}
