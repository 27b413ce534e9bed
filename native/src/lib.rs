//! The native classification server: hyper + tokio in front, candle models behind a dynamic batcher.

pub mod backend;
pub mod batcher;
pub mod bundled;
pub mod cli;
pub mod device;
pub mod hub;
pub mod metrics;
pub mod models;
pub mod server;

pub use backend::NativeBackend;
pub use cli::Args;
pub use server::{App, serve};
