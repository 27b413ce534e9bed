//! The response `id`: `classify-<rid>`, else `classify-<X-Request-Id>`, else `classify-<32 random hex digits>`
//! (`modr-…` on moderations).

use http::HeaderMap;

/// The id of an answer whose ids start with `prefix` (`classify`; `modr` for moderations, as OpenAI's).
pub fn response_id(prefix: &str, rid: Option<&str>, headers: &HeaderMap) -> String {
    let from_header = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty());
    match rid.filter(|r| !r.is_empty()).or(from_header) {
        Some(id) => format!("{prefix}-{id}"),
        None => format!("{prefix}-{}", random_hex()),
    }
}

fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    // The OS random source only fails on platforms we do not build for; a zero id is still well-formed.
    let _ = getrandom::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rid_wins_over_header_and_random_is_32_hex() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            response_id("classify", Some("abc"), &headers),
            "classify-abc"
        );
        headers.insert("x-request-id", "hdr".parse().unwrap());
        assert_eq!(response_id("classify", None, &headers), "classify-hdr");
        assert_eq!(
            response_id("classify", Some("abc"), &headers),
            "classify-abc"
        );
        let random = response_id("classify", None, &HeaderMap::new());
        let hex = random.strip_prefix("classify-").unwrap();
        assert_eq!(hex.len(), 32);
        assert!(
            hex.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(random, response_id("classify", None, &HeaderMap::new()));
        assert_eq!(response_id("modr", Some("x"), &headers), "modr-x");
    }
}
