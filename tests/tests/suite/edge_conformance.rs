//! The contract's conformance cases against the edge component (wasm, in edge-host), for every encoder checkpoint.

use std::sync::OnceLock;

use classify_tests::client::Client;
use classify_tests::edge::EdgeServer;
use classify_tests::fixtures::{ENCODER_MODELS, TOKEN_MODELS, models_dir};

/// One component instance host for all these tests, with every fixture mounted and no native server.
fn client() -> Client {
    static SERVER: OnceLock<EdgeServer> = OnceLock::new();
    let server = SERVER.get_or_init(|| {
        EdgeServer::start(&models_dir(), None).unwrap_or_else(|e| panic!("edge: {e:#}"))
    });
    Client::new(&server.base_url)
}

classify_tests::conformance_tests!(client, ENCODER_MODELS, TOKEN_MODELS);
