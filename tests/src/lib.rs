//! Test support: the committed fixtures, an in-process native server, an HTTP client, and the contract's
//! conformance cases written once so that every deployment runs the same ones.

pub mod client;
pub mod conformance;
pub mod fixtures;
pub mod native;
