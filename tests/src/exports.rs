//! The encoder fixtures (sequence and token classifiers) exported the ways users get ONNX files
//! (`tests/fixtures/exports/manifest.json`, written by export_variants.py), and running one of them on the edge
//! engine against its reference.

use std::path::PathBuf;

use classify_edge::onnx::OnnxClassifier;
use classify_protocol::{Engine, Logits, ModelFiles, TokenSequence};
use serde::Deserialize;

use crate::conformance::REFERENCE_TOLERANCE;
use crate::fixtures::{Fixture, TOKEN_MODELS, TokenFixture, models_dir};

/// Tolerance of an int8 export against onnxruntime running the same file.
pub const INT8_TOLERANCE: f32 = 2e-2;

/// One exported file of the manifest.
#[derive(Debug, Clone, Deserialize)]
pub struct ExportedFile {
    pub model: String,
    /// Relative to tests/fixtures.
    pub path: String,
    pub exporter: String,
    pub precision: String,
    /// The largest |onnxruntime − transformers| over the reference inputs.
    pub onnxruntime_vs_transformers: f32,
    /// For int8 files, the reference there: what onnxruntime computes for each reference input alone (the edge
    /// runs graphs that quantize activations one sequence at a time, so batching does not change them): a row
    /// per input, or for token classifiers a row per token of each input, one input after another.
    #[serde(default)]
    pub onnxruntime_logits: Option<Vec<Vec<f32>>>,
}

/// Logits for the reference inputs, a row per input (or per token of each input, for token classifiers): all of
/// them in one padded batch, and each alone.
pub struct ReferenceLogits {
    pub batched: Vec<Vec<f32>>,
    pub alone: Vec<Vec<f32>>,
}

/// A fixture's reference inputs and transformers' rows for them (reference.json, or tokens.json for the token
/// classifiers).
fn reference(model: &str) -> (Vec<TokenSequence>, Vec<Vec<f32>>) {
    if TOKEN_MODELS.contains(&model) {
        let fixture = TokenFixture::load(model);
        let rows = fixture
            .reference
            .inputs
            .iter()
            .flat_map(|i| i.logits.clone())
            .collect();
        (fixture.reference_batch(), rows)
    } else {
        let fixture = Fixture::load(model);
        let rows = fixture
            .reference
            .inputs
            .iter()
            .map(|i| i.logits.clone())
            .collect();
        (fixture.reference_batch(), rows)
    }
}

/// The largest |a − b| over rows of logits; NaN if any logit is NaN or a shape differs.
pub fn max_row_delta(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    if a.len() != b.len() {
        return f32::NAN;
    }
    let mut worst = 0.0f32;
    for (x, y) in a.iter().zip(b) {
        if x.len() != y.len() {
            return f32::NAN;
        }
        for delta in x.iter().zip(y).map(|(p, q)| (p - q).abs()) {
            if delta.is_nan() {
                return f32::NAN;
            }
            worst = worst.max(delta);
        }
    }
    worst
}

impl ReferenceLogits {
    fn transformers(model: &str) -> ReferenceLogits {
        let (_, logits) = reference(model);
        ReferenceLogits {
            batched: logits.clone(),
            alone: logits,
        }
    }

    /// The largest |self − other| over both runs; NaN if any logit is NaN or a shape differs.
    pub fn max_delta(&self, other: &ReferenceLogits) -> f32 {
        let batched = max_row_delta(&self.batched, &other.batched);
        let alone = max_row_delta(&self.alone, &other.alone);
        if batched.is_nan() || alone.is_nan() {
            f32::NAN
        } else {
            batched.max(alone)
        }
    }
}

impl ExportedFile {
    pub fn full_path(&self) -> PathBuf {
        models_dir().join("..").join(&self.path)
    }

    /// What the edge must match, and how closely: transformers for fp32 files, onnxruntime for int8 ones.
    pub fn expected(&self) -> (ReferenceLogits, f32) {
        match &self.onnxruntime_logits {
            Some(alone) => (
                ReferenceLogits {
                    batched: alone.clone(),
                    alone: alone.clone(),
                },
                INT8_TOLERANCE,
            ),
            None => (
                ReferenceLogits::transformers(&self.model),
                REFERENCE_TOLERANCE,
            ),
        }
    }

    /// transformers' logits for the fixture's reference inputs.
    pub fn transformers(&self) -> ReferenceLogits {
        ReferenceLogits::transformers(&self.model)
    }

    /// Loads the file on the edge engine and runs the reference inputs, batched and each alone.
    pub fn run_on_edge(&self) -> Result<ReferenceLogits, String> {
        let config = ModelFiles::read(&models_dir().join(&self.model))?.config;
        let engine = OnnxClassifier::load(&self.full_path(), &config)?;
        let (batch, _) = reference(&self.model);
        let batch: Vec<_> = batch.iter().collect();
        let run = |batch: &[&TokenSequence]| {
            engine
                .forward(batch)
                .map(Logits::into_rows)
                .map_err(|e| e.to_string())
        };
        let batched = run(&batch)?;
        let mut alone = Vec::new();
        for sequence in &batch {
            alone.extend(run(std::slice::from_ref(sequence))?);
        }
        Ok(ReferenceLogits { batched, alone })
    }
}

/// Every exported file of the manifest; panics (failing the test) when it is missing.
pub fn exported_files() -> Vec<ExportedFile> {
    #[derive(Deserialize)]
    struct Manifest {
        files: Vec<ExportedFile>,
    }
    let path = models_dir().join("../exports/manifest.json");
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let manifest: Manifest =
        serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    manifest.files
}
