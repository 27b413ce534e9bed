//! The token classifiers' engines, native (candle) and edge (tract on the ONNX exports), against transformers'
//! per-token logits: one row per token, special tokens included, batched with mixed lengths and alone.

use classify_edge::registry::{EdgeModels, OnnxFileOrder};
use classify_native::device::Placement;
use classify_protocol::{Engine, OutputKind};
use classify_tests::conformance::{REFERENCE_TOLERANCE, assert_close};
use classify_tests::fixtures::{TOKEN_MODELS, TokenFixture, models_dir};

fn check(engine: &dyn Engine, fixture: &TokenFixture, what: &str) {
    assert_eq!(engine.shape().output, OutputKind::Token, "{what}");
    let batch = fixture.reference_batch();
    let batch: Vec<_> = batch.iter().collect();
    let logits = engine
        .forward(&batch)
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let want: Vec<&Vec<f32>> = fixture
        .reference
        .inputs
        .iter()
        .flat_map(|input| &input.logits)
        .collect();
    assert_eq!(logits.rows(), want.len(), "{what}: one row per token");
    for (i, (got, want)) in logits.iter().zip(want).enumerate() {
        assert_close(
            got,
            want,
            REFERENCE_TOLERANCE,
            &format!("{what}: token row {i}"),
        );
    }
    let alone = engine
        .forward(&batch[1..2])
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let first = fixture.reference.inputs[0].ids.len();
    for (i, got) in alone.iter().enumerate() {
        assert_close(
            got,
            logits.row(first + i),
            1e-5,
            &format!("{what}: alone vs batched"),
        );
    }
}

#[test]
fn native_token_classifiers_match_transformers_per_token() {
    let placement = Placement {
        device: candle_core::Device::Cpu,
        dtype: candle_core::DType::F32,
    };
    for name in TOKEN_MODELS {
        let fixture = TokenFixture::load(name);
        let model = classify_native::models::load(name, &fixture.dir, &placement)
            .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        assert_eq!(model.served.labels, fixture.reference.labels, "{name}");
        assert_eq!(model.served.architecture(), fixture.reference.architecture);
        check(model.engine.as_ref(), &fixture, &format!("native {name}"));
    }
}

#[test]
fn edge_token_classifiers_match_transformers_per_token() {
    let models = EdgeModels::scan(&models_dir(), &OnnxFileOrder::default());
    for name in TOKEN_MODELS {
        let fixture = TokenFixture::load(name);
        let (_, model) = models.find(name).unwrap_or_else(|| panic!("{name}"));
        let loaded = model.load().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(loaded.served.max_model_len, fixture.reference.max_model_len);
        check(&loaded.engine, &fixture, &format!("edge {name}"));
    }
}
