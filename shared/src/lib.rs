//! The `/v1/classify` contract, independent of any inference engine, for the edge component (wasm32-wasip2)
//! and the native server alike.

pub mod accept;
pub mod activation;
pub mod body;
pub mod chat;
mod classify;
pub mod config;
pub mod cross_encoder;
pub mod deployment;
pub mod engine;
pub mod error;
pub mod handler;
pub mod model;
pub mod moderation;
mod pairs;
pub mod request;
pub mod request_id;
pub mod response;
#[cfg(feature = "server")]
pub mod server;
mod token_classify;
pub mod tokenize;

pub use deployment::{Deployment, InferenceJob};
pub use engine::{Engine, EngineError, Logits, ModelShape, OutputKind, TokenSequence};
pub use error::{ApiError, ErrorKind};
pub use handler::{HandlerConfig, handle, handle_with};
pub use model::{ModelFiles, ServedModel};
pub use response::{error_response, unix_now};
