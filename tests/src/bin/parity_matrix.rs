//! Prints, per encoder fixture, the largest |logit − transformers' logit| of the native engine (candle) and of the
//! edge engine (tract on the ONNX file the edge serves), over the reference inputs run as one padded batch; then,
//! per exported file (every family × every export way), the edge's |Δ| against transformers and, for int8 files,
//! against onnxruntime running the same file (batched and each input alone).
//! `cargo run -p classify-tests --bin parity-matrix`.

use candle_core::{DType, Device};
use classify_edge::registry::{EdgeModels, OnnxFileOrder};
use classify_native::device::Placement;
use classify_protocol::Engine;
use classify_tests::exports::exported_files;
use classify_tests::fixtures::{ENCODER_MODELS, Fixture, models_dir};

fn max_delta(got: &[Vec<f32>], fixture: &Fixture) -> f32 {
    got.iter()
        .zip(&fixture.reference.inputs)
        .flat_map(|(row, reference)| {
            row.iter()
                .zip(&reference.logits)
                .map(|(g, w)| (g - w).abs())
        })
        .fold(0.0, f32::max)
}

fn main() -> anyhow::Result<()> {
    let placement = Placement {
        device: Device::Cpu,
        dtype: DType::F32,
    };
    let edge = EdgeModels::scan(&models_dir(), &OnnxFileOrder::default());
    println!("| fixture | architecture | native max abs Δ | edge (served ONNX file) max abs Δ |");
    println!("|---|---|---|---|");
    for name in ENCODER_MODELS {
        let fixture = Fixture::load(name);
        let batch = fixture.reference_batch();
        let slices: Vec<_> = batch.iter().collect();
        let native = classify_native::models::load(name, &fixture.dir, &placement)?;
        let native_delta = max_delta(&native.engine.forward(&slices)?.into_rows(), &fixture);
        let edge_delta = match edge.find(name) {
            Some((_, model)) => {
                let loaded = model.load().map_err(|e| anyhow::anyhow!("{e}"))?;
                let logits = loaded.engine.forward(&slices)?.into_rows();
                format!("{:.2e}", max_delta(&logits, &fixture))
            }
            None => "not served".to_owned(),
        };
        println!(
            "| {name} | {} | {native_delta:.2e} | {edge_delta} |",
            fixture.reference.architecture
        );
    }
    println!();
    println!(
        "| file | exporter | precision | edge vs transformers | edge vs onnxruntime | onnxruntime vs transformers |"
    );
    println!("|---|---|---|---|---|---|");
    for file in exported_files() {
        let (edge_vs_transformers, edge_vs_onnxruntime) = match file.run_on_edge() {
            Ok(logits) => (
                format!("{:.2e}", logits.max_delta(&file.transformers())),
                if file.onnxruntime_logits.is_some() {
                    format!("{:.2e}", logits.max_delta(&file.expected().0))
                } else {
                    "(fp32: same as transformers)".to_owned()
                },
            ),
            Err(e) => (format!("fails: {e}"), String::new()),
        };
        println!(
            "| {} | {} | {} | {edge_vs_transformers} | {edge_vs_onnxruntime} | {:.2e} |",
            file.path, file.exporter, file.precision, file.onnxruntime_vs_transformers
        );
    }
    Ok(())
}
