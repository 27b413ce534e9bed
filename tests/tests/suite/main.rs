//! The integration tests, as one test binary: each links wasmtime, candle and tract, so one binary links them
//! once instead of once per file. `edge_upstream.rs` and `hub.rs` stay binaries of their own because they set
//! process environment variables that the servers they start read.

mod edge_conformance;
mod edge_engine;
mod edge_server;
mod native_conformance;
mod native_server;
mod pair_encodings;
mod shutdown;
mod spin_edge;
mod spin_manifest;
mod token_engines;
