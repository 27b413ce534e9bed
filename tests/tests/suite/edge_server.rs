//! The edge component in edge-host next to the native server: same answers, same tokens, forwarding; and the
//! other builds and the pre-initialized snapshot, on fresh instances.

use classify_edge_host::{EdgeHost, EdgeHostOptions, MemoryImage};
use classify_tests::client::Client;
use classify_tests::conformance::case05_reference_parity;
use classify_tests::edge::{
    Build, EdgeServer, comment_filter, component, host_options, snapshot, wac_plug,
};
use classify_tests::edge_checks::{
    bundled_model_answers_like_transformers, forwards_models_it_does_not_hold, native_with_decoder,
    native_with_encoders, same_answers_as_native, same_tokens_as_native,
    typed_calls_answer_like_the_routes,
};
use classify_tests::fixtures::{Fixture, bundled_models_dir, models_dir};
use classify_tests::generated::{EDGE_PLAN_APPLICATION_BYTES, EDGE_PLAN_MEMORY_BYTES, MiniLmInt8};
use classify_tests::spin::skip;

/// What spin.toml mounts by default: the bundled model, from its ONNX export.
#[test]
fn the_edge_serves_the_bundled_model() {
    let edge =
        EdgeServer::start(&bundled_models_dir(), None).unwrap_or_else(|e| panic!("edge: {e:#}"));
    bundled_model_answers_like_transformers(&Client::new(&edge.base_url));
}

#[test]
fn edge_and_native_give_the_same_answers() {
    let native = native_with_encoders();
    let edge = EdgeServer::start(&models_dir(), None).unwrap_or_else(|e| panic!("edge: {e:#}"));
    same_answers_as_native(&Client::new(&native.base_url), &Client::new(&edge.base_url));
}

#[test]
fn wasm_and_native_tokenizers_agree() {
    let native = native_with_encoders();
    let edge = EdgeServer::start(&models_dir(), None).unwrap_or_else(|e| panic!("edge: {e:#}"));
    same_tokens_as_native(&Client::new(&native.base_url), &Client::new(&edge.base_url));
}

#[test]
fn edge_forwards_models_it_does_not_hold() {
    let native = native_with_decoder();
    let edge = EdgeServer::start(&models_dir(), Some(&native.base_url))
        .unwrap_or_else(|e| panic!("edge: {e:#}"));
    forwards_models_it_does_not_hold(&Client::new(&edge.base_url), native);
}

/// The example consumer with the pre-initialized component plugged into its import by `wac plug`, served by
/// edge-host (fresh instances), answers what the component's HTTP route answers.
#[test]
fn a_wac_composed_consumer_calls_the_component_in_process() {
    let classify = snapshot(Build::P3, &models_dir()).unwrap_or_else(|e| panic!("{e:#}"));
    let filter = comment_filter(Build::P3).unwrap_or_else(|e| panic!("{e:#}"));
    let composed = match wac_plug(&filter, &classify) {
        Ok(composed) => composed,
        Err(reason) => return skip(&reason),
    };
    let filter = EdgeServer::start_component(&composed, Some(&models_dir()), None, Some(1))
        .unwrap_or_else(|e| panic!("edge: {e:#}"));
    let route = EdgeServer::start(&models_dir(), None).unwrap_or_else(|e| panic!("edge: {e:#}"));
    typed_calls_answer_like_the_routes(
        &Client::new(&filter.base_url),
        &Client::new(&route.base_url),
    );
}

#[test]
fn the_p2_build_answers_on_fresh_instances() {
    let native = native_with_encoders();
    let component = component(Build::P2).unwrap_or_else(|e| panic!("{e:#}"));
    // wasi:http 0.2 hosts create an instance per request.
    let edge = EdgeServer::start_component(&component, Some(&models_dir()), None, Some(1))
        .unwrap_or_else(|e| panic!("edge: {e:#}"));
    same_answers_as_native(&Client::new(&native.base_url), &Client::new(&edge.base_url));
}

#[test]
fn a_snapshot_answers_on_fresh_instances() {
    snapshot_answers_like_native(Some(&models_dir()));
}

/// A snapshot carries its models: with nothing mounted, every fresh instance answers from them.
#[test]
fn a_self_contained_snapshot_answers_with_nothing_mounted() {
    snapshot_answers_like_native(None);
}

/// The snapshot of every fixture, served on fresh instances with `mounted` at /models, is healthy and answers
/// like the native server.
fn snapshot_answers_like_native(mounted: Option<&std::path::Path>) {
    let native = native_with_encoders();
    let component = snapshot(Build::P3, &models_dir()).unwrap_or_else(|e| panic!("{e:#}"));
    let edge = EdgeServer::start_component(&component, mounted, None, Some(1))
        .unwrap_or_else(|e| panic!("edge: {e:#}"));
    let client = Client::new(&edge.base_url);
    assert_eq!(client.get("/health").json()["status"], "ok");
    same_answers_as_native(&Client::new(&native.base_url), &client);
}

/// A self-contained snapshot of a MiniLM-L6-shaped int8 classifier (tests/fixtures/minilm_int8.py, made int8 by
/// onnxruntime's quantize_dynamic) fits Akamai Functions' plan (a 50 MiB application, 128 MiB of memory), because
/// what it adds to the component's memory image is the model once: loading reads the file, decodes it, builds
/// and optimizes the graph, and everything but the result is zeroed before the memory is saved (it was 2.2× the
/// file before). It answers like onnxruntime, a 128-token request included, on fresh instances limited to 128 MiB.
#[test]
fn a_self_contained_snapshot_fits_an_edge_plan() {
    const MIB: u64 = 1 << 20;
    let dir = std::env::temp_dir().join(format!("classify-minilm-{}", std::process::id()));
    let model = match MiniLmInt8::generate(&dir) {
        Ok(model) => model,
        Err(reason) => return eprintln!("skipping the MiniLM-shaped plan test: {reason}"),
    };
    let taken = snapshot(Build::P3, &dir);
    // The same with no model: what the component's own state adds.
    let empty = std::env::temp_dir().join(format!("classify-no-models-{}", std::process::id()));
    std::fs::create_dir_all(&empty).expect("temp dir");
    let baseline = snapshot(Build::P3, &empty);
    let _ = std::fs::remove_dir_all(&empty);
    let (taken, baseline) = match (taken, baseline) {
        (Ok(taken), Ok(baseline)) => (taken, baseline),
        (Err(e), _) | (_, Err(e)) => panic!("{e:#}"),
    };
    let read = |path: &std::path::Path| {
        std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let image = |wasm: &[u8]| MemoryImage::of(wasm).unwrap_or_else(|e| panic!("{e:#}"));
    let application = read(&taken);
    let added = image(&application)
        .data_bytes
        .saturating_sub(image(&read(&baseline)).data_bytes);
    let options = EdgeHostOptions {
        max_instance_reuse: Some(1),
        max_instance_memory: Some(EDGE_PLAN_MEMORY_BYTES as usize),
        ..host_options(&taken, None)
    };
    let edge = EdgeServer::serve(EdgeHost::new(&options).unwrap_or_else(|e| panic!("{e:#}")))
        .unwrap_or_else(|e| panic!("edge: {e:#}"));
    model.answers_like_onnxruntime(&Client::new(&edge.base_url));
    drop(edge);
    let _ = std::fs::remove_file(&taken);
    let _ = std::fs::remove_file(&baseline);
    // The tokenizer, config and graph are a few hundred KiB more.
    let file_bytes = model.file_bytes;
    let limit = file_bytes + file_bytes / 20 + MIB;
    assert!(
        added <= limit,
        "the snapshot's data grew by {added} bytes for a {file_bytes}-byte model (limit {limit})"
    );
    assert!(
        application.len() as u64 <= EDGE_PLAN_APPLICATION_BYTES,
        "the application is {} MiB",
        application.len() as u64 / MIB
    );
}

#[test]
fn a_snapshot_of_other_files_loads_the_mounted_ones() {
    // Taken with bert-3label's files as `bert-sentiment`: the snapshot is stale wherever it is served.
    let serving_files = [
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "model.onnx",
    ];
    let copy = |from: &str, to: &std::path::Path| {
        std::fs::create_dir_all(to).expect("temp dir");
        for file in serving_files {
            std::fs::copy(models_dir().join(from).join(file), to.join(file)).expect("copy");
        }
    };
    let dir = std::env::temp_dir().join(format!("classify-snapshot-{}", std::process::id()));
    copy("bert-3label", &dir.join("bert-sentiment"));
    let stale = snapshot(Build::P3, &dir);
    let component = stale.unwrap_or_else(|e| {
        let _ = std::fs::remove_dir_all(&dir);
        panic!("{e:#}")
    });
    // The same directory with the real bert-sentiment's files: the model's own check finds them changed.
    copy("bert-sentiment", &dir.join("bert-sentiment"));
    let edge = EdgeServer::start_component(&component, Some(&dir), None, Some(1));
    let edge = edge.unwrap_or_else(|e| {
        let _ = std::fs::remove_dir_all(&dir);
        panic!("edge: {e:#}")
    });
    case05_reference_parity(
        &Client::new(&edge.base_url),
        &Fixture::load("bert-sentiment"),
    );
    drop(edge);
    let _ = std::fs::remove_dir_all(&dir);
    // Every fixture mounted: other directories, so the mounted files are scanned.
    let native = native_with_encoders();
    let edge = EdgeServer::start_component(&component, Some(&models_dir()), None, Some(1))
        .unwrap_or_else(|e| panic!("edge: {e:#}"));
    same_answers_as_native(&Client::new(&native.base_url), &Client::new(&edge.base_url));
}

#[test]
fn the_component_reads_external_data_files() {
    // torch's dynamo exporter as it comes: the graph in model.onnx, weights in model.onnx.data beside it.
    let dir = std::env::temp_dir().join(format!("classify-external-{}", std::process::id()));
    let name = "roberta-3label";
    let model = dir.join(name);
    std::fs::create_dir_all(&model).expect("temp dir");
    for file in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(models_dir().join(name).join(file), model.join(file)).expect("copy");
    }
    let export = models_dir().join("../exports").join(name).join("dynamo");
    for file in ["model.onnx", "model.onnx.data"] {
        std::fs::copy(export.join(file), model.join(file)).expect("copy");
    }
    let edge = EdgeServer::start(&dir, None).unwrap_or_else(|e| {
        let _ = std::fs::remove_dir_all(&dir);
        panic!("edge: {e:#}")
    });
    let health = Client::new(&edge.base_url).get("/health").json();
    if health["status"] != "ok" {
        let _ = std::fs::remove_dir_all(&dir);
        panic!("{health}");
    }
    case05_reference_parity(&Client::new(&edge.base_url), &Fixture::load(name));
    drop(edge);
    let _ = std::fs::remove_dir_all(&dir);
}
