//! The edge component under real Spin, as users run it: the repo's spin.toml (a generated copy that mounts the
//! test models) with `spin up`. The conformance suite, parity with the native server and forwarding run on the
//! default build under Spin 4.0.2; the pre-initialized snapshot on a fresh instance per request, the p2 build
//! under Spin 4.0.2 and the wasi:http 0.3.0 final build under Spin 4.1 answer like the native server; a hung native
//! server gives 504 within the first-byte timeout under Spin 4.0.2 (rc and p2 builds). Without a
//! Spin binary (see classify_tests::spin) every test here says so and passes.

use std::sync::OnceLock;

use classify_edge_host::MemoryImage;
use classify_tests::client::Client;
use classify_tests::edge::{Build, comment_filter, component, snapshot};
use classify_tests::edge_checks::{
    bundled_int8_answers_like_onnxruntime, bundled_model_answers_like_transformers,
    forwards_models_it_does_not_hold, native_with_decoder, native_with_encoders,
    same_answers_as_native, same_tokens_as_native, typed_calls_answer_like_the_routes,
};
use classify_tests::fixtures::{ENCODER_MODELS, TOKEN_MODELS, bundled_models_dir, models_dir};
use classify_tests::generated::{EDGE_PLAN_APPLICATION_BYTES, EDGE_PLAN_MEMORY_BYTES, MiniLmInt8};
use classify_tests::spin::{
    SpinServer, comment_filter_manifest, skip, spin_4_1_binary, spin_binary,
};

/// `spin up` (Spin 4.0.2) of the default build with every fixture mounted, shared by the conformance cases.
fn client() -> Option<Client> {
    static SERVER: OnceLock<Result<SpinServer, String>> = OnceLock::new();
    let server = SERVER.get_or_init(|| {
        let spin = spin_binary()?;
        let component = component(Build::P3Rc).map_err(|e| format!("{e:#}"))?;
        SpinServer::start(&spin, &component, &models_dir(), None, &[]).map_err(|e| format!("{e:#}"))
    });
    match server {
        Ok(server) => Some(Client::new(&server.base_url)),
        Err(reason) if reason.starts_with("no Spin binary") => {
            skip(reason);
            None
        }
        Err(reason) => panic!("spin up: {reason}"),
    }
}

classify_tests::conformance_tests!(client, ENCODER_MODELS, TOKEN_MODELS);

/// The repo's spin.toml as it is mounts the bundled spam/ham model; under Spin it answers as transformers.
#[test]
fn spin_serves_the_bundled_model() {
    let spin = match spin_binary() {
        Ok(spin) => spin,
        Err(reason) => return skip(&reason),
    };
    let component = component(Build::P3Rc).unwrap_or_else(|e| panic!("{e:#}"));
    let edge = SpinServer::start(&spin, &component, &bundled_models_dir(), None, &[])
        .unwrap_or_else(|e| panic!("spin up: {e:#}"));
    bundled_model_answers_like_transformers(&Client::new(&edge.base_url));
}

/// The same app with the int8 file picked through the component's environment (`spin up --env`).
#[test]
fn spin_serves_the_bundled_int8_model() {
    let spin = match spin_binary() {
        Ok(spin) => spin,
        Err(reason) => return skip(&reason),
    };
    let component = component(Build::P3Rc).unwrap_or_else(|e| panic!("{e:#}"));
    let edge = SpinServer::start(
        &spin,
        &component,
        &bundled_models_dir(),
        None,
        &["--env", "CLASSIFY_ONNX_FILES=onnx/model_quantized.onnx"],
    )
    .unwrap_or_else(|e| panic!("spin up: {e:#}"));
    bundled_int8_answers_like_onnxruntime(&Client::new(&edge.base_url));
}

/// spin-comment-filter.toml: the example linked with the pre-initialized component by Spin's component
/// dependencies answers what the component's HTTP route in the same app answers.
#[test]
fn spin_links_the_component_into_a_consumer() {
    let spin = match spin_binary() {
        Ok(spin) => spin,
        Err(reason) => return skip(&reason),
    };
    let classify = snapshot(Build::P3Rc, &models_dir()).unwrap_or_else(|e| panic!("{e:#}"));
    let filter = comment_filter(Build::P3Rc).unwrap_or_else(|e| panic!("{e:#}"));
    let manifest = comment_filter_manifest(&filter, &classify).unwrap_or_else(|e| panic!("{e:#}"));
    let app = SpinServer::start_app(&spin, &manifest, Some(&models_dir()), &[])
        .unwrap_or_else(|e| panic!("spin up: {e:#}"));
    let client = Client::new(&app.base_url);
    typed_calls_answer_like_the_routes(&client, &client);
}

#[test]
fn spin_and_native_give_the_same_answers_and_tokens() {
    let Some(edge) = client() else { return };
    let native = native_with_encoders();
    let native = Client::new(&native.base_url);
    same_answers_as_native(&native, &edge);
    same_tokens_as_native(&native, &edge);
}

/// Serves `component` under `spin` (a binary, or the reason there is none), with every fixture mounted or
/// nothing (a self-contained snapshot), and runs the parity check on it.
fn answers_like_native(
    spin: Result<std::path::PathBuf, String>,
    component: anyhow::Result<std::path::PathBuf>,
    mount_models: bool,
    extra_args: &[&str],
) {
    let spin = match spin {
        Ok(spin) => spin,
        Err(reason) => return skip(&reason),
    };
    let component = component.unwrap_or_else(|e| panic!("{e:#}"));
    let edge = if mount_models {
        SpinServer::start(&spin, &component, &models_dir(), None, extra_args)
    } else {
        SpinServer::start_self_contained(&spin, &component, extra_args)
    };
    let edge = edge.unwrap_or_else(|e| panic!("spin up: {e:#}"));
    let edge = Client::new(&edge.base_url);
    assert_eq!(edge.get("/health").json()["status"], "ok");
    let native = native_with_encoders();
    same_answers_as_native(&Client::new(&native.base_url), &edge);
}

#[test]
fn spin_forwards_models_it_does_not_hold() {
    let spin = match spin_binary() {
        Ok(spin) => spin,
        Err(reason) => return skip(&reason),
    };
    let native = native_with_decoder();
    let component = component(Build::P3Rc).unwrap_or_else(|e| panic!("{e:#}"));
    let edge = SpinServer::start(
        &spin,
        &component,
        &models_dir(),
        Some(&native.base_url),
        &[],
    )
    .unwrap_or_else(|e| panic!("spin up: {e:#}"));
    forwards_models_it_does_not_hold(&Client::new(&edge.base_url), native);
}

#[test]
fn a_snapshot_answers_under_spin_on_fresh_instances() {
    answers_like_native(
        spin_binary(),
        snapshot(Build::P3Rc, &models_dir()),
        true,
        &["--max-instance-reuse-count", "1"],
    );
}

/// With nothing mounted (spin.toml without `files`), the snapshot serves the models it was taken with.
#[test]
fn a_self_contained_snapshot_answers_under_spin() {
    answers_like_native(
        spin_binary(),
        snapshot(Build::P3Rc, &models_dir()),
        false,
        &["--max-instance-reuse-count", "1"],
    );
}

/// The MiniLM-L6-shaped int8 classifier (tests/fixtures/minilm_int8.py) as an edge plan runs it: self-contained,
/// so the application is the snapshot alone, within Akamai Functions' 50 MiB, with its memory at start within
/// 128 MiB; a fresh instance per request, answering like onnxruntime.
#[test]
fn a_minilm_shaped_int8_snapshot_fits_an_edge_plan_under_spin() {
    let spin = match spin_binary() {
        Ok(spin) => spin,
        Err(reason) => return skip(&reason),
    };
    let dir = std::env::temp_dir().join(format!("classify-minilm-spin-{}", std::process::id()));
    let model = match MiniLmInt8::generate(&dir) {
        Ok(model) => model,
        Err(reason) => return skip(&reason),
    };
    let taken = snapshot(Build::P3Rc, &dir).unwrap_or_else(|e| panic!("{e:#}"));
    let application = std::fs::read(&taken).expect("snapshot");
    let image = MemoryImage::of(&application).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(
        application.len() as u64 <= EDGE_PLAN_APPLICATION_BYTES,
        "the application is {} bytes",
        application.len()
    );
    assert!(
        image.initial_memory_bytes <= EDGE_PLAN_MEMORY_BYTES,
        "an instance starts with {} bytes",
        image.initial_memory_bytes
    );
    let edge =
        SpinServer::start_self_contained(&spin, &taken, &["--max-instance-reuse-count", "1"])
            .unwrap_or_else(|e| panic!("spin up: {e:#}"));
    model.answers_like_onnxruntime(&Client::new(&edge.base_url));
}

#[test]
fn the_p2_build_answers_under_spin() {
    answers_like_native(spin_binary(), component(Build::P2), true, &[]);
}

#[test]
fn the_final_p3_build_answers_under_spin_4_1() {
    answers_like_native(spin_4_1_binary(), component(Build::P3), true, &[]);
}

#[test]
fn a_hung_native_server_gives_504_under_spin() {
    let spin = match spin_binary() {
        Ok(spin) => spin,
        Err(reason) => return skip(&reason),
    };
    let hung = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let hung_url = format!("http://{}", hung.local_addr().expect("address"));
    std::thread::spawn(move || {
        // Accept and hold every connection, never answering.
        let held: Vec<_> = hung.incoming().collect();
        drop(held);
    });
    for build in [Build::P3Rc, Build::P2] {
        let component = component(build).unwrap_or_else(|e| panic!("{e:#}"));
        let args = ["--env", "CLASSIFY_NATIVE_FIRST_BYTE_TIMEOUT_MS=1000"];
        let edge = SpinServer::start(&spin, &component, &models_dir(), Some(&hung_url), &args)
            .unwrap_or_else(|e| panic!("spin up: {e:#}"));
        let client = Client::new(&edge.base_url);
        let started = std::time::Instant::now();
        let reply = client.post(
            "/v1/classify",
            &serde_json::json!({"model": classify_tests::edge_checks::FORWARDED_MODEL, "input": "hi"}),
        );
        let took = started.elapsed();
        reply.expect_error(504, "upstream_timeout");
        assert!(
            took < std::time::Duration::from_secs(10),
            "{build:?}: 504 after {took:?}"
        );
    }
}
