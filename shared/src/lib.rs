//! The `/v1/classify` contract, independent of any inference engine, for the edge component (wasm32-wasip2)
//! and the native server alike.

pub mod accept;
pub mod activation;
pub mod backend;
pub mod body;
pub mod chat;
mod classify;
pub mod config;
pub mod error;
pub mod handler;
pub mod model;
mod pairs;
pub mod request;
pub mod request_id;
pub mod response;
#[cfg(feature = "server")]
pub mod server;
pub mod tokenize;

pub use backend::{Backend, InferenceJob, TokenSequence};
pub use error::{ApiError, ErrorKind};
pub use handler::{HandlerConfig, error_response, handle};
pub use model::{ModelFiles, ModelShape, ServedModel};

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
