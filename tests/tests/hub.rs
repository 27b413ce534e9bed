//! `--model org/name[@revision]`: from a Hugging Face cache laid out as the Python client writes it (offline),
//! and downloaded from a local mock of the hub's file API (`HF_ENDPOINT`): a single-file and a sharded
//! checkpoint, a revision, a gated repository with and without a token, a 404, a repository without safetensors,
//! and an interrupted download that leaves no half-written file in the cache.
//!
//! One test, because it sets the `HF_*` environment the in-process server reads.

use std::path::{Path, PathBuf};

use classify_tests::client::Client;
use classify_tests::conformance::{assert_close, floats};
use classify_tests::fixtures::{Fixture, models_dir, sharded_copy};
use classify_tests::mock_hub::{MockHub, MockRepo, write_python_cache};
use classify_tests::native::NativeServer;
use serde_json::json;

const COMMIT_CACHED: &str = "1111111111111111111111111111111111111111";
const COMMIT_MAIN: &str = "2222222222222222222222222222222222222222";
const COMMIT_V1: &str = "3333333333333333333333333333333333333333";

fn set_env(name: &str, value: Option<&str>) {
    // SAFETY: this test binary has one test, and no other thread reads or writes the environment while it runs
    // (servers read it only while loading, on this thread).
    unsafe {
        match value {
            Some(value) => std::env::set_var(name, value),
            None => std::env::remove_var(name),
        }
    }
}

fn load_error(spec: &str) -> String {
    match NativeServer::start(&[Path::new(spec)], &[]) {
        Ok(_) => panic!("{spec} loaded"),
        Err(e) => format!("{e:#}"),
    }
}

/// The server answers like the fixture's transformers reference, under `served`.
fn answers_like(server: &NativeServer, served: &str, fixture: &str) {
    let fixture = Fixture::load(fixture);
    let client = Client::new(&server.base_url);
    assert_eq!(
        client.get("/v1/models").json()["data"][0]["id"],
        json!(served)
    );
    let reference = &fixture.reference.inputs[0];
    let answer = client.classify(&json!({"model": served, "input": reference.text}));
    assert_close(
        &floats(&answer["data"][0]["probs"]),
        &reference.probs,
        1e-4,
        served,
    );
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() && !path.is_symlink() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn models_by_hub_id_from_the_cache_and_from_a_mock_hub() {
    let root = std::env::temp_dir().join(format!("classify-hub-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let fixtures = models_dir();

    // A cache the Python client wrote, offline, the hub unreachable.
    let python_cache = root.join("python-cache");
    write_python_cache(
        &python_cache,
        "test-org/bert-sentiment",
        "main",
        COMMIT_CACHED,
        &fixtures.join("bert-sentiment"),
    )
    .expect("cache");
    set_env("HF_HUB_CACHE", python_cache.to_str());
    set_env("HF_HUB_OFFLINE", Some("1"));
    set_env("HF_ENDPOINT", Some("http://127.0.0.1:9"));
    let server = NativeServer::start(&[Path::new("test-org/bert-sentiment")], &[])
        .unwrap_or_else(|e| panic!("{e:#}"));
    answers_like(&server, "test-org/bert-sentiment", "bert-sentiment");
    drop(server);
    let error = load_error("test-org/not-cached");
    assert!(
        error.contains("HF_HUB_OFFLINE") && error.contains("not in the Hugging Face cache"),
        "{error}"
    );

    // Downloads from the mock hub into HF_HOME/hub.
    let mut main = MockRepo::from_dir(
        "test-org/bert-sentiment",
        COMMIT_MAIN,
        &fixtures.join("bert-sentiment"),
    )
    .expect("repo");
    main.files.insert("README.md".into(), b"# a model".to_vec());
    let mut v1 = MockRepo::from_dir(
        "test-org/bert-sentiment",
        COMMIT_V1,
        &fixtures.join("bert-3label"),
    )
    .expect("repo");
    v1.refs = vec!["v1".into()];
    let sharded_dir = sharded_copy("qwen3-2label", &root.join("sharded"));
    let sharded = MockRepo::from_dir("test-org/sharded", COMMIT_MAIN, &sharded_dir).expect("repo");
    let mut gated = MockRepo::from_dir("test-org/gated", COMMIT_MAIN, &fixtures.join("bert-score"))
        .expect("repo");
    gated.token = Some("hf_secret".into());
    let mut no_safetensors = MockRepo::from_dir(
        "test-org/bin-only",
        COMMIT_MAIN,
        &fixtures.join("bert-score"),
    )
    .expect("repo");
    let weights = no_safetensors
        .files
        .remove("model.safetensors")
        .expect("weights");
    no_safetensors
        .files
        .insert("pytorch_model.bin".into(), weights);
    let mut cut = MockRepo::from_dir("test-org/cut", COMMIT_MAIN, &fixtures.join("bert-score"))
        .expect("repo");
    cut.cut_off = Some("model.safetensors".into());
    let hub =
        MockHub::start(vec![main, v1, sharded, gated, no_safetensors, cut]).expect("mock hub");
    let home = root.join("home");
    let cache = home.join("hub");
    set_env("HF_HUB_CACHE", None);
    set_env("HF_HOME", home.to_str());
    set_env("HF_HUB_OFFLINE", None);
    set_env("HF_ENDPOINT", Some(&hub.url));
    set_env("HF_TOKEN", None);

    let server = NativeServer::start(&[Path::new("test-org/bert-sentiment")], &[])
        .unwrap_or_else(|e| panic!("{e:#}"));
    answers_like(&server, "test-org/bert-sentiment", "bert-sentiment");
    drop(server);
    let repo = cache.join("models--test-org--bert-sentiment");
    assert_eq!(
        std::fs::read_to_string(repo.join("refs/main")).expect("ref"),
        COMMIT_MAIN
    );
    let snapshot = repo.join("snapshots").join(COMMIT_MAIN);
    for file in [
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "model.safetensors",
    ] {
        assert!(
            snapshot.join(file).is_file(),
            "{file} is not in the snapshot"
        );
    }
    for unneeded in ["model.onnx", "reference.json", "README.md"] {
        assert_eq!(hub.count(unneeded), 0, "{unneeded} was downloaded");
        assert!(!snapshot.join(unneeded).exists());
    }
    // Cached now: served again offline, without asking the hub.
    let before = hub.requests.lock().map(|r| r.len()).unwrap_or_default();
    set_env("HF_HUB_OFFLINE", Some("1"));
    let server = NativeServer::start(&[Path::new("test-org/bert-sentiment")], &[])
        .unwrap_or_else(|e| panic!("{e:#}"));
    answers_like(&server, "test-org/bert-sentiment", "bert-sentiment");
    drop(server);
    assert_eq!(
        hub.requests.lock().map(|r| r.len()).unwrap_or_default(),
        before
    );
    set_env("HF_HUB_OFFLINE", None);

    // A revision, under its own name; a sharded checkpoint.
    let server = NativeServer::start(
        &[
            Path::new("v1=test-org/bert-sentiment@v1"),
            Path::new("test-org/sharded"),
        ],
        &[],
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    let client = Client::new(&server.base_url);
    let three = Fixture::load("bert-3label");
    let answer = client.classify(&json!({"model": "v1", "input": three.reference.inputs[0].text}));
    assert_close(
        &floats(&answer["data"][0]["probs"]),
        &three.reference.inputs[0].probs,
        1e-4,
        "v1",
    );
    let qwen = Fixture::load("qwen3-2label");
    let answer = client
        .classify(&json!({"model": "test-org/sharded", "input": qwen.reference.inputs[0].text}));
    assert_close(
        &floats(&answer["data"][0]["probs"]),
        &qwen.reference.inputs[0].probs,
        1e-4,
        "sharded",
    );
    assert!(hub.count("model-00002-of-00002.safetensors") > 0);
    drop(server);

    // Errors name the problem.
    let error = load_error("test-org/missing");
    assert!(
        error.contains("not found") && error.contains("test-org/missing"),
        "{error}"
    );
    let error = load_error("test-org/gated");
    assert!(
        error.contains("gated") && error.contains("HF_TOKEN") && error.contains("401"),
        "{error}"
    );
    set_env("HF_TOKEN", Some("hf_secret"));
    let server = NativeServer::start(&[Path::new("test-org/gated")], &[])
        .unwrap_or_else(|e| panic!("{e:#}"));
    answers_like(&server, "test-org/gated", "bert-score");
    drop(server);
    let error = load_error("test-org/bin-only");
    assert!(
        error.contains("no safetensors") && error.contains("pytorch_model.bin"),
        "{error}"
    );
    let error = load_error("test-org/cut");
    assert!(error.contains("model.safetensors"), "{error}");
    let cut_repo = cache.join("models--test-org--cut");
    let left: Vec<PathBuf> = files_under(&cut_repo)
        .into_iter()
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            name.ends_with(".part") || name == "model.safetensors"
        })
        .collect();
    assert!(left.is_empty(), "an interrupted download left {left:?}");
    let _ = std::fs::remove_dir_all(&root);
}
