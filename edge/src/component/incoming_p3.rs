//! wasi:http 0.3 (WASIp3): the `handler` export, through spin-sdk 6 (release candidate) or 7 (final).

use bytes::Bytes;
use http::Response;
use http_body_util::Full;

use super::deployment::respond;

#[spin_sdk::http_service]
async fn serve(request: spin_sdk::http::Request) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    respond(parts, body)
        .await
        .map(|body| Full::new(Bytes::from(body)))
}
