//! Test support: the committed fixtures, the native server and the edge component started in-process, an HTTP
//! client, and the contract's conformance cases written once so that every deployment runs the same ones.
//! Also home of `edge-host`, the wasi:http host for the edge component.

pub mod bench;
pub mod client;
pub mod conformance;
pub mod edge;
pub mod edge_host;
pub mod fixtures;
pub mod native;
pub mod server_thread;
