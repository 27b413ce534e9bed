//! What a send to the native server is given and how it fails, shared by the wasi:http 0.2 and 0.3 senders
//! (`outgoing_p2.rs`, `outgoing_p3.rs`).

use std::time::Duration;

use classify_protocol::handler::env_number;

/// Limits on a forwarded request, well under hosts' own request limits (Spin, edge-host: 120 s), so that a hung
/// native server gives 504 `upstream_timeout` instead of the host's 500.
pub(super) struct UpstreamTimeouts {
    /// To open the connection (`CLASSIFY_NATIVE_CONNECT_TIMEOUT_MS`, default 2 s).
    pub(super) connect: Duration,
    /// From sending the request to the first byte of the answer (`CLASSIFY_NATIVE_FIRST_BYTE_TIMEOUT_MS`,
    /// default 30 s).
    pub(super) first_byte: Duration,
}

impl UpstreamTimeouts {
    pub(super) fn from_env() -> Result<UpstreamTimeouts, String> {
        let millis = |name: &str, default: u64| {
            env_number(|n| std::env::var(n).ok(), name, default).map(Duration::from_millis)
        };
        Ok(UpstreamTimeouts {
            connect: millis("CLASSIFY_NATIVE_CONNECT_TIMEOUT_MS", 2_000)?,
            first_byte: millis("CLASSIFY_NATIVE_FIRST_BYTE_TIMEOUT_MS", 30_000)?,
        })
    }
}

/// Why sending a request to the native server failed.
pub(super) enum SendFailure {
    Timeout(String),
    Other(String),
}
