//! The contract's conformance cases against the native server, for every BERT checkpoint.

use std::sync::OnceLock;

use classify_tests::client::Client;
use classify_tests::conformance;
use classify_tests::fixtures::{BERT_MODELS, Fixture, models_dir};
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

fn for_each_bert(case: fn(&Client, &Fixture)) {
    let client = client();
    for name in BERT_MODELS {
        case(&client, &Fixture::load(name));
    }
}

#[test]
fn case01_string_input() {
    for_each_bert(conformance::case01_string_input);
}
#[test]
fn case02_batch_of_strings() {
    for_each_bert(conformance::case02_batch_of_strings);
}
#[test]
fn case03_token_ids() {
    for_each_bert(conformance::case03_token_ids);
}
#[test]
fn case04_probs_shape() {
    for_each_bert(conformance::case04_probs_shape);
}
#[test]
fn case05_reference_parity() {
    for_each_bert(conformance::case05_reference_parity);
}
#[test]
fn case06_usage() {
    for_each_bert(conformance::case06_usage);
}
#[test]
fn case07_truncation() {
    for_each_bert(conformance::case07_truncation);
}
#[test]
fn case08_invalid_inputs() {
    for_each_bert(conformance::case08_invalid_inputs);
}
#[test]
fn case09_max_length() {
    for_each_bert(conformance::case09_max_length);
}
#[test]
fn case10_model_errors() {
    for_each_bert(conformance::case10_model_errors);
}
#[test]
fn case11_malformed_bodies() {
    for_each_bert(conformance::case11_malformed_bodies);
}
#[test]
fn case12_raw_logits() {
    for_each_bert(conformance::case12_raw_logits);
}
#[test]
fn case13_sigmoid_heads() {
    for_each_bert(conformance::case13_sigmoid_heads);
}
#[test]
fn case14_special_tokens() {
    for_each_bert(conformance::case14_special_tokens);
}
#[test]
fn case15_request_id() {
    for_each_bert(conformance::case15_request_id);
}
#[test]
fn case16_alias_and_unknown_fields() {
    for_each_bert(conformance::case16_alias_and_unknown_fields);
}
#[test]
fn case17_labels() {
    for_each_bert(conformance::case17_labels);
}
#[test]
fn routes_health_and_method_errors() {
    conformance::routes(&client());
}
