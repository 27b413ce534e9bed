//! The native classification server: hyper + tokio in front, candle models behind a dynamic batcher.

pub mod batcher;
pub mod bundled;
pub mod cli;
pub mod deployment;
pub mod device;
pub mod hub;
pub mod metrics;
pub mod models;
pub mod server;

pub use cli::Args;
pub use server::{App, serve};
