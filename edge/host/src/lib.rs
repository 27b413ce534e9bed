//! `edge-host`: serves the classify edge component on wasmtime ([`EdgeHost`]) and pre-initializes it with its
//! models loaded ([`snapshot`]).

mod host;
mod snapshot;

pub use host::{EdgeHost, EdgeHostOptions, GuestProfiler};
pub use snapshot::{MemoryImage, SnapshotReport, snapshot};
