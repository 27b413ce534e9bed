//! The contract's conformance cases against the native server, for every checkpoint (encoders, decoders, reward
//! models).

use std::sync::OnceLock;

use classify_tests::client::Client;
use classify_tests::fixtures::{
    DECODER_MODELS, ENCODER_MODELS, LLM_RERANKERS, REWARD_MODELS, TOKEN_MODELS, models_dir,
};
use classify_tests::native::NativeServer;

fn all_models() -> impl Iterator<Item = &'static &'static str> {
    ENCODER_MODELS
        .iter()
        .chain(DECODER_MODELS)
        .chain(REWARD_MODELS)
        .chain(LLM_RERANKERS)
}

/// One server for all these tests, serving every checkpoint.
fn client() -> Client {
    static SERVER: OnceLock<NativeServer> = OnceLock::new();
    let server = SERVER.get_or_init(|| {
        let dirs: Vec<_> = all_models()
            .chain(TOKEN_MODELS)
            .map(|m| models_dir().join(m))
            .collect();
        let dirs: Vec<&std::path::Path> = dirs.iter().map(|d| d.as_path()).collect();
        NativeServer::start(&dirs, &[]).unwrap_or_else(|e| panic!("native server: {e:#}"))
    });
    Client::new(&server.base_url)
}

classify_tests::conformance_tests!(client, all_models(), TOKEN_MODELS);

/// Every row of the native registry (`ARCHITECTURES`) is run by the conformance suite above on a fixture of that
/// architecture, and has its row in the README's architecture table.
#[test]
fn every_architecture_has_a_fixture_and_a_readme_row() {
    let readme_path = models_dir().join("../../../README.md");
    let readme = std::fs::read_to_string(&readme_path)
        .unwrap_or_else(|e| panic!("{}: {e}", readme_path.display()));
    let fixture_architectures: Vec<(String, &str)> = all_models()
        .chain(TOKEN_MODELS)
        .map(|name| {
            let config = std::fs::read(models_dir().join(name).join("config.json"))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let config: serde_json::Value =
                serde_json::from_slice(&config).unwrap_or_else(|e| panic!("{name}: {e}"));
            (
                config["architectures"][0]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                *name,
            )
        })
        .collect();
    for architecture in classify_native::models::supported_architectures() {
        assert!(
            fixture_architectures.iter().any(|(a, _)| a == architecture),
            "{architecture} has no fixture in the conformance run ({fixture_architectures:?})"
        );
        let row = format!("`{architecture}`");
        assert!(
            readme
                .lines()
                .any(|line| line.starts_with("| ") && line.contains(&row)),
            "{architecture} has no row in the README's architecture table"
        );
    }
}
