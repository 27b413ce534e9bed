//! Test support: the committed fixtures, the native server and the edge component started in-process, an HTTP
//! client, and the contract's conformance cases written once so that every deployment runs the same ones.
//! Also the edge component in its three builds, and Spin (`spin up`) for the tests under a real host.

pub mod bench;
pub mod client;
pub mod conformance;
pub mod edge;
pub mod edge_checks;
pub mod exports;
pub mod fixtures;
pub mod generated;
pub mod mock_hub;
pub mod native;
pub mod openapi;
pub mod pair_cases;
pub mod reliability;
pub mod server_thread;
pub mod spin;
pub mod token_cases;
