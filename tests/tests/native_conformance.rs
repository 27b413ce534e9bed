//! The contract's conformance cases against the native server, for every checkpoint (encoders, decoders, reward
//! models).

use std::sync::OnceLock;

use classify_tests::client::Client;
use classify_tests::fixtures::{DECODER_MODELS, ENCODER_MODELS, REWARD_MODELS, models_dir};
use classify_tests::native::NativeServer;

fn all_models() -> impl Iterator<Item = &'static &'static str> {
    ENCODER_MODELS
        .iter()
        .chain(DECODER_MODELS)
        .chain(REWARD_MODELS)
}

/// One server for the whole test binary, serving every checkpoint.
fn client() -> Client {
    static SERVER: OnceLock<NativeServer> = OnceLock::new();
    let server = SERVER.get_or_init(|| {
        let dirs: Vec<_> = all_models().map(|m| models_dir().join(m)).collect();
        let dirs: Vec<&std::path::Path> = dirs.iter().map(|d| d.as_path()).collect();
        NativeServer::start(&dirs, &[]).unwrap_or_else(|e| panic!("native server: {e:#}"))
    });
    Client::new(&server.base_url)
}

classify_tests::conformance_tests!(client, all_models());
