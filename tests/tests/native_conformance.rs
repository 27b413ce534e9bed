//! The contract's conformance cases against the native server, for every BERT checkpoint.

use std::sync::OnceLock;

use classify_tests::client::Client;
use classify_tests::fixtures::{BERT_MODELS, models_dir};
use classify_tests::native::NativeServer;

/// One server for the whole test binary, serving every BERT checkpoint.
fn client() -> Client {
    static SERVER: OnceLock<NativeServer> = OnceLock::new();
    let server = SERVER.get_or_init(|| {
        let dirs: Vec<_> = BERT_MODELS.iter().map(|m| models_dir().join(m)).collect();
        let dirs: Vec<&std::path::Path> = dirs.iter().map(|d| d.as_path()).collect();
        NativeServer::start(&dirs, &[]).unwrap_or_else(|e| panic!("native server: {e:#}"))
    });
    Client::new(&server.base_url)
}

classify_tests::conformance_tests!(client);
