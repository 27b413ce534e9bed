//! Models of realistic size, generated where they are tested (too big to commit), with onnxruntime's answers:
//! what the edge must fit into an edge plan and still answer correctly.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_json::json;

use crate::client::Client;
use crate::conformance::floats;
use crate::exports::{INT8_TOLERANCE, max_row_delta};

/// Akamai Functions' plan, the smallest the edge is sold on: the application (the component with everything it
/// carries) and the memory of an instance.
pub const EDGE_PLAN_APPLICATION_BYTES: u64 = 50 << 20;
pub const EDGE_PLAN_MEMORY_BYTES: u64 = 128 << 20;

/// The MiniLM-L6-shaped int8 classifier of tests/fixtures/minilm_int8.py, at `root/name`: what onnxruntime
/// answers for its reference texts, and the size of its ONNX file. The directory is removed on drop.
pub struct MiniLmInt8 {
    pub root: PathBuf,
    pub name: &'static str,
    pub file_bytes: u64,
    reference: Vec<ReferenceLogits>,
    labels: Vec<String>,
}

#[derive(Deserialize)]
struct ReferenceLogits {
    text: String,
    /// onnxruntime on the int8 file.
    logits: Vec<f32>,
    /// onnxruntime on the fp32 graph the file was quantized from.
    fp32_logits: Vec<f32>,
}

impl MiniLmInt8 {
    /// Generates it under `root` with the Python named by `CLASSIFY_TEST_PYTHON` (one with
    /// tests/fixtures/requirements-minilm.txt; `.ci/run` makes one); without it, the reason to skip.
    pub fn generate(root: &Path) -> Result<MiniLmInt8, String> {
        let python = std::env::var_os("CLASSIFY_TEST_PYTHON").ok_or(
            "CLASSIFY_TEST_PYTHON is not set (a Python with tests/fixtures/requirements-minilm.txt)",
        )?;
        let name = "minilm-int8";
        let dir = root.join(name);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/minilm_int8.py");
        let run = Command::new(&python)
            .arg(&script)
            .arg(&dir)
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", Path::new(&python).display()));
        assert!(
            run.status.success(),
            "{}: {}",
            script.display(),
            String::from_utf8_lossy(&run.stderr)
        );
        let read = |file: &str| {
            std::fs::read(dir.join(file)).unwrap_or_else(|e| panic!("{name}/{file}: {e}"))
        };
        let reference = serde_json::from_slice(&read("reference.json")).expect("reference.json");
        let config: serde_json::Value =
            serde_json::from_slice(&read("config.json")).expect("config");
        let labels = (0..)
            .map_while(|i: usize| {
                config["id2label"][i.to_string()]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect();
        std::fs::remove_file(dir.join("reference.json")).expect("reference.json");
        Ok(MiniLmInt8 {
            root: root.to_path_buf(),
            name,
            file_bytes: read("model.onnx").len() as u64,
            reference,
            labels,
        })
    }

    /// Its raw logits for the reference texts (one batch) within [`INT8_TOLERANCE`] of onnxruntime's on the same
    /// file, or as close to the fp32 graph's as onnxruntime's are, give or take half: through 36 quantized
    /// matmuls, values on rounding boundaries that quantize the other way in tract and in onnxruntime add up to a
    /// few hundredths (tract 0.105 from fp32 where onnxruntime is 0.091, 0.042 apart), while a wrong scale or
    /// zero point is off by whole units. Each text labelled with its largest logit; and a 128-token request
    /// answered (the longest an edge plan is sized for here).
    pub fn answers_like_onnxruntime(&self, client: &Client) {
        let texts: Vec<&str> = self.reference.iter().map(|r| r.text.as_str()).collect();
        let raw =
            client.classify(&json!({"model": self.name, "input": texts, "use_activation": false}));
        let got: Vec<Vec<f32>> = (0..texts.len())
            .map(|i| floats(&raw["data"][i]["probs"]))
            .collect();
        let rows = |pick: fn(&ReferenceLogits) -> &Vec<f32>| -> Vec<Vec<f32>> {
            self.reference.iter().map(pick).cloned().collect()
        };
        let (onnxruntime, fp32) = (rows(|r| &r.logits), rows(|r| &r.fp32_logits));
        let delta = max_row_delta(&got, &onnxruntime);
        let vs_fp32 = max_row_delta(&got, &fp32);
        let onnxruntime_vs_fp32 = max_row_delta(&onnxruntime, &fp32);
        assert!(
            delta <= INT8_TOLERANCE || vs_fp32 <= 1.5 * onnxruntime_vs_fp32,
            "max |Δ| {delta} against onnxruntime; {vs_fp32} against fp32, onnxruntime's {onnxruntime_vs_fp32}"
        );
        let labelled = client.classify(&json!({"model": self.name, "input": texts}));
        for (i, expected) in self.reference.iter().enumerate() {
            let best = (0..expected.logits.len())
                .max_by(|&a, &b| expected.logits[a].total_cmp(&expected.logits[b]))
                .expect("logits");
            assert_eq!(
                labelled["data"][i]["label"], self.labels[best],
                "{}",
                expected.text
            );
        }
        let long = "the train was late again and we waited ".repeat(40);
        let full = client
            .classify(&json!({"model": self.name, "input": long, "truncate_prompt_tokens": 128}));
        assert_eq!(full["usage"]["prompt_tokens"], 128, "{full}");
    }
}

impl Drop for MiniLmInt8 {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.root.join(self.name));
    }
}
