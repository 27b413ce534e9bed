//! The edge engine (tract on the exported ONNX graphs) run natively against transformers' reference logits.

use classify_edge::onnx::OnnxClassifier;
use classify_edge::registry::{EdgeModels, OnnxFileOrder};
use classify_protocol::Engine;
use classify_protocol::config::ModelConfig;
use classify_tests::conformance::{REFERENCE_TOLERANCE, assert_close};
use classify_tests::exports::exported_files;
use classify_tests::fixtures::{ENCODER_MODELS, Fixture, TOKEN_MODELS, models_dir};

#[test]
fn onnx_models_load_and_others_are_skipped() {
    let models = EdgeModels::scan(&models_dir(), &OnnxFileOrder::default());
    let failures = models.load_all();
    assert!(failures.is_empty(), "{failures:?}");
    let served: Vec<&str> = models.loaded().map(|m| m.served.name.as_str()).collect();
    let mut encoders = [ENCODER_MODELS, TOKEN_MODELS].concat();
    encoders.sort_unstable();
    assert_eq!(served, encoders);
    assert!(
        models.skipped.contains(&"llama-2label".to_owned()),
        "{:?}",
        models.skipped
    );
}

#[test]
fn padded_batches_match_the_reference() {
    let models = EdgeModels::scan(&models_dir(), &OnnxFileOrder::default());
    for name in ENCODER_MODELS {
        let fixture = Fixture::load(name);
        let (_, model) = models.find(name).unwrap_or_else(|| panic!("{name}"));
        let engine = &model.load().unwrap_or_else(|e| panic!("{e}")).engine;
        let batch = fixture.reference_batch();
        let batch: Vec<_> = batch.iter().collect();
        let logits = engine
            .forward(&batch)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .into_rows();
        for (got, reference) in logits.iter().zip(&fixture.reference.inputs) {
            assert_close(
                got,
                &reference.logits,
                REFERENCE_TOLERANCE,
                &format!("{name}: {:?}", reference.text),
            );
        }
        let alone = engine
            .forward(&batch[..1])
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .into_rows();
        assert_close(&alone[0], &logits[0], 1e-5, "alone vs batched");
    }
}

/// Every family exported every way users get ONNX files (optimum, its int8 copy, dynamo inline and with external
/// data, the legacy exporter) loads and matches, as one padded batch and each input alone: fp32 files
/// transformers (≤ 1e-4); int8 files onnxruntime running the same file (≤ 2e-2), or, where a value on a rounding
/// boundary quantizes the other way, transformers at least as closely as onnxruntime does.
#[test]
fn every_export_matches_its_reference() {
    let files = exported_files();
    assert!(
        files.len() >= 30,
        "the manifest lists {} files",
        files.len()
    );
    let failures: Vec<String> = files
        .iter()
        .filter_map(|file| {
            let label = format!("{} ({}, {})", file.path, file.exporter, file.precision);
            let (expected, tolerance) = file.expected();
            let got = match file.run_on_edge() {
                Ok(got) => got,
                Err(e) => return Some(format!("{label}: {e}")),
            };
            let delta = got.max_delta(&expected);
            let vs_transformers = got.max_delta(&file.transformers());
            let int8_as_close = file.onnxruntime_logits.is_some()
                && vs_transformers <= file.onnxruntime_vs_transformers;
            if delta <= tolerance || int8_as_close {
                println!("{label}: max |Δ| {delta:.2e} (vs transformers {vs_transformers:.2e})");
                None
            } else {
                Some(format!(
                    "{label}: max |Δ| {delta} (vs transformers {vs_transformers}, onnxruntime's {})",
                    file.onnxruntime_vs_transformers
                ))
            }
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_broken_onnx_file_is_reported_with_its_path() {
    let dir = std::env::temp_dir().join(format!("classify-edge-broken-{}", std::process::id()));
    let model = dir.join("broken");
    std::fs::create_dir_all(&model).expect("temp dir");
    for file in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(
            models_dir().join("bert-sentiment").join(file),
            model.join(file),
        )
        .expect("copy");
    }
    std::fs::write(model.join("model.onnx"), b"not an onnx graph").expect("write");
    let fine = dir.join("fine");
    std::fs::create_dir_all(&fine).expect("temp dir");
    for file in [
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "model.onnx",
    ] {
        std::fs::copy(models_dir().join("bert-3label").join(file), fine.join(file)).expect("copy");
    }
    let models = EdgeModels::scan(&dir, &OnnxFileOrder::default());
    // Scanning loads nothing: the broken file is found when the model is first used.
    let fine_loads_alone = models.find("fine").map(|(_, m)| m.load().is_ok());
    let failures = models.load_all();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(fine_loads_alone, Some(true));
    assert_eq!(
        models
            .loaded()
            .map(|m| m.served.name.as_str())
            .collect::<Vec<_>>(),
        ["fine"]
    );
    assert_eq!(failures.len(), 1);
    assert!(
        failures[0].contains("broken") && failures[0].contains("model.onnx"),
        "{failures:?}"
    );
}

/// A config.json that any of the test graphs could come with.
fn config(pad_token_id: u32) -> ModelConfig {
    let json = format!(
        r#"{{"pad_token_id": {pad_token_id}, "max_position_embeddings": 512, "vocab_size": 1000}}"#
    );
    ModelConfig::from_json(json.as_bytes()).expect("a valid config")
}

#[test]
fn files_tract_cannot_run_are_refused_by_name() {
    let refused = models_dir().join("../exports/refused");
    let bnb4 = OnnxClassifier::load(&refused.join("matmul-bnb4.onnx"), &config(0)).err();
    let bnb4 = bnb4.unwrap_or_else(|| panic!("a MatMulBnb4 graph loaded"));
    assert!(
        bnb4.contains("com.microsoft.MatMulBnb4") && bnb4.contains("node `"),
        "{bnb4}"
    );
    let fp16 = OnnxClassifier::load(&refused.join("fp16.onnx"), &config(0)).err();
    let fp16 = fp16.unwrap_or_else(|| panic!("an fp16 graph loaded"));
    assert!(fp16.contains("float16"), "{fp16}");
}

#[test]
fn truncated_external_data_is_an_error_not_a_crash() {
    let dir = std::env::temp_dir().join(format!("classify-truncated-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let export = models_dir().join("../exports/roberta-3label/dynamo");
    std::fs::copy(export.join("model.onnx"), dir.join("model.onnx")).expect("copy");
    let data = std::fs::read(export.join("model.onnx.data")).expect("read");
    std::fs::write(dir.join("model.onnx.data"), &data[..data.len() / 2]).expect("write");
    let loaded = OnnxClassifier::load(&dir.join("model.onnx"), &config(1)).err();
    let _ = std::fs::remove_dir_all(&dir);
    let error = loaded.unwrap_or_else(|| panic!("a truncated data file loaded"));
    assert!(
        error.contains("model.onnx.data") && error.contains("past the file"),
        "{error}"
    );
}
