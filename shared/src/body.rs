//! Reading request bodies under the size limit, for both front ends.

use bytes::Buf;
use http::HeaderMap;
use http_body::Body;
use http_body_util::BodyExt;

use crate::error::ApiError;

/// An oversize body is still read and dropped up to this many bytes before the 413, so that a client that is
/// still sending gets to read the answer; beyond it reading stops and the connection may be cut.
pub const DRAIN_LIMIT: u64 = 64 * 1024 * 1024;

/// Collects `body` if it is at most `limit` bytes; otherwise 413 `payload_too_large`. A body that fails to
/// arrive is a 400.
pub async fn read_limited<B: Body>(
    headers: &HeaderMap,
    body: B,
    limit: usize,
) -> Result<Vec<u8>, ApiError> {
    read_limited_with(headers, body, limit, |_| {
        ApiError::invalid("body", "could not read the request body")
    })
    .await
}

/// [`read_limited`], with the answer to a body that fails to arrive chosen by `on_error` (e.g. 408 when the
/// front end's read timeout ran out).
pub async fn read_limited_with<B: Body>(
    headers: &HeaderMap,
    body: B,
    limit: usize,
    on_error: impl Fn(B::Error) -> ApiError,
) -> Result<Vec<u8>, ApiError> {
    let too_large = || ApiError::payload_too_large(limit);
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > DRAIN_LIMIT) {
        return Err(too_large());
    }
    let mut body = std::pin::pin!(body);
    let mut bytes = Vec::with_capacity(declared.map_or(0, |n| n.min(limit as u64) as usize));
    let mut received: u64 = 0;
    while let Some(frame) = body.as_mut().frame().await {
        let frame = frame.map_err(&on_error)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        received += data.remaining() as u64;
        if received > DRAIN_LIMIT {
            return Err(too_large());
        }
        if received <= limit as u64 {
            bytes.extend_from_slice(data.chunk());
        }
    }
    if received > limit as u64 {
        return Err(too_large());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use http_body_util::Full;

    use super::*;

    fn read(body: &'static [u8], limit: usize) -> Result<Vec<u8>, ApiError> {
        futures_executor::block_on(read_limited(&HeaderMap::new(), Full::new(body), limit))
    }

    #[test]
    fn bodies_up_to_the_limit_are_read_whole() {
        assert_eq!(read(b"hello", 5).unwrap(), b"hello");
        assert_eq!(read(b"", 0).unwrap(), b"");
    }

    #[test]
    fn larger_bodies_are_413() {
        assert_eq!(read(b"hello!", 5).unwrap_err().status(), 413);
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_LENGTH,
            (DRAIN_LIMIT + 1).to_string().parse().unwrap(),
        );
        let declared = futures_executor::block_on(read_limited(&headers, Full::new(&b""[..]), 5));
        assert_eq!(declared.unwrap_err().status(), 413);
    }
}
