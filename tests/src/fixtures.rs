//! The checkpoints under tests/fixtures/models and their transformers reference outputs.

use std::path::PathBuf;

use classify_protocol::TokenSequence;
use serde::Deserialize;

/// The encoder checkpoints, one or more per family, each also exported to ONNX for the edge; among them the
/// Sentence-Transformers cross-encoders saved as modules (bare backbone + modules.json), exported whole.
pub const ENCODER_MODELS: &[&str] = &[
    "bert-sentiment",
    "bert-3label",
    "bert-score",
    "bert-nli",
    "bert-multilabel",
    "bert-toxicity",
    "distilbert-2label",
    "electra-3label",
    "roberta-3label",
    "xlm-roberta-2label",
    "xlm-roberta-reranker",
    "bert-st-reranker",
    "modernbert-st-reranker",
    "deberta-v3-3label",
    "deberta-v2-2label",
    "modernbert-2label",
    "modernbert-mean-3label",
];

/// Decoder sequence classifiers (native only), including a bf16 checkpoint and a one-label score head.
pub const DECODER_MODELS: &[&str] = &[
    "llama-2label",
    "llama-bf16",
    "qwen2-3label",
    "qwen3-2label",
    "qwen3-score",
    "gemma2-2label",
];

/// LLM rerankers (native only): causal LMs scored on "yes" against "no" after a prompt; Qwen3-Reranker's shape
/// (tied embeddings, its model card's prompt) and a Qwen2 one with its own prompt and answer tokens in
/// reranker.json. Their pairs.json holds the prompts' ids and scores.
pub const LLM_RERANKERS: &[&str] = &["qwen3-reranker", "qwen2-reranker"];

/// Reward models (native only): heads transformers does not ship, referenced by the generator's own modules.
/// InternLM2's appends its `reward_token_id` to every input.
pub const REWARD_MODELS: &[&str] = &["qwen2-reward", "llama-normal-weights", "internlm2-reward"];

/// Token classifiers (NER and PII taggers), one per family, each also exported to ONNX for the edge; their
/// references are `tokens.json` ([`TokenFixture`]).
pub const TOKEN_MODELS: &[&str] = &[
    "bert-ner",
    "distilbert-ner",
    "electra-ner",
    "roberta-ner",
    "xlm-roberta-ner",
    "deberta-v3-pii",
    "modernbert-pii",
];

/// The aggregation strategies of transformers' token-classification pipeline, each with a reference.
pub const AGGREGATION_STRATEGIES: [&str; 5] = ["none", "simple", "first", "average", "max"];

/// A token classifier and what transformers answers for it (tests/fixtures/token_models.py).
#[derive(Debug, Clone)]
pub struct TokenFixture {
    pub name: String,
    pub dir: PathBuf,
    pub reference: TokenReference,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TokenReference {
    pub architecture: String,
    pub max_model_len: usize,
    pub labels: Vec<String>,
    pub inputs: Vec<TokenInput>,
    pub stride: StrideReference,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TokenInput {
    pub text: String,
    pub ids: Vec<u32>,
    /// One row of label scores per token, special tokens included.
    pub logits: Vec<Vec<f32>>,
    /// The pipeline's entities by aggregation strategy.
    pub entities: std::collections::BTreeMap<String, Vec<serde_json::Value>>,
}

/// The pipeline on a text longer than the max length with `stride`, by strategy ("none" refuses a stride).
#[derive(Debug, Clone, Deserialize)]
pub struct StrideReference {
    pub text: String,
    pub stride: usize,
    pub entities: std::collections::BTreeMap<String, Vec<serde_json::Value>>,
}

impl TokenFixture {
    /// Reads `tests/fixtures/models/<name>/tokens.json`; panics (failing the test) when it is missing.
    pub fn load(name: &str) -> TokenFixture {
        let dir = models_dir().join(name);
        let path = dir.join("tokens.json");
        let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let reference =
            serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        TokenFixture {
            name: name.to_owned(),
            dir,
            reference,
        }
    }

    /// The token ids of every reference input, in order.
    pub fn reference_batch(&self) -> Vec<TokenSequence> {
        self.reference
            .inputs
            .iter()
            .map(|i| TokenSequence::single(i.ids.clone()))
            .collect()
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Reference {
    pub architecture: String,
    pub max_model_len: usize,
    pub problem_type: Option<String>,
    pub num_special_tokens: usize,
    pub inputs: Vec<ReferenceInput>,
    pub long_text: LongText,
    pub truncated: Vec<Truncated>,
    /// Set for models the server appends a reward token to; every reference sequence ends with it.
    #[serde(default)]
    pub reward_token_id: Option<u32>,
    /// `identity` for a cross-encoder that saved it as its activation: its probs are its logits.
    #[serde(default)]
    pub activation: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ReferenceInput {
    pub text: String,
    pub ids: Vec<u32>,
    pub ids_no_special: Vec<u32>,
    pub logits: Vec<f32>,
    pub probs: Vec<f32>,
    pub label: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LongText {
    pub text: String,
    pub num_tokens: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Truncated {
    pub truncate_prompt_tokens: usize,
    pub ids: Vec<u32>,
    pub logits: Vec<f32>,
}

#[derive(Debug, Clone)]
pub struct Fixture {
    pub name: String,
    pub dir: PathBuf,
    pub reference: Reference,
}

pub fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join("models")
}

impl Fixture {
    /// Reads `tests/fixtures/models/<name>/reference.json`; panics (failing the test) when it is missing.
    pub fn load(name: &str) -> Fixture {
        let dir = models_dir().join(name);
        let path = dir.join("reference.json");
        let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let reference =
            serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Fixture {
            name: name.to_owned(),
            dir,
            reference,
        }
    }

    /// The texts with a full reference, in order.
    pub fn texts(&self) -> Vec<&str> {
        self.reference
            .inputs
            .iter()
            .map(|i| i.text.as_str())
            .collect()
    }

    /// The token ids of every reference input, in order.
    pub fn reference_batch(&self) -> Vec<TokenSequence> {
        self.reference
            .inputs
            .iter()
            .map(|i| TokenSequence::single(i.ids.clone()))
            .collect()
    }

    /// The labels the contract prescribes for this checkpoint's config.json.
    pub fn expected_labels(&self) -> Vec<String> {
        let config: serde_json::Value = serde_json::from_slice(
            &std::fs::read(self.dir.join("config.json")).unwrap_or_default(),
        )
        .unwrap_or_default();
        let classes = self.reference.inputs[0].logits.len();
        // Reward heads, LLM rerankers and cross-encoders saved as modules (config.json describes their bare
        // backbone) answer one score, LABEL_0, whatever labels config.json lists.
        let architecture = &self.reference.architecture;
        let reward = ["RewardModel", "Normal_Weights", "ForCausalLM"]
            .iter()
            .any(|kind| architecture.ends_with(kind))
            || self.dir.join("modules.json").exists();
        (0..classes)
            .map(|i| {
                if reward {
                    format!("LABEL_{i}")
                } else if let Some(label) = config
                    .pointer(&format!("/id2label/{i}"))
                    .and_then(|v| v.as_str())
                {
                    label.to_owned()
                } else if config.get("num_labels").is_some() {
                    format!("LABEL_{i}")
                } else {
                    format!("Class_{i}")
                }
            })
            .collect()
    }
}

/// A copy of fixture `model` under `into` with its weights split into two safetensors shards and an index, as
/// `save_pretrained` writes large checkpoints. Returns the model directory.
pub fn sharded_copy(model: &str, into: &std::path::Path) -> PathBuf {
    use candle_core::Device;
    let source = models_dir().join(model);
    let _ = std::fs::remove_dir_all(into);
    let sharded = into.join(model);
    std::fs::create_dir_all(&sharded).expect("temp dir");
    for file in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(source.join(file), sharded.join(file)).expect("copy");
    }
    let tensors = candle_core::safetensors::load(source.join("model.safetensors"), &Device::Cpu)
        .expect("weights");
    let shards = [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ];
    let mut parts = [
        std::collections::HashMap::new(),
        std::collections::HashMap::new(),
    ];
    let mut weight_map = serde_json::Map::new();
    for (i, (name, tensor)) in tensors.into_iter().enumerate() {
        weight_map.insert(name.clone(), serde_json::json!(shards[i % 2]));
        parts[i % 2].insert(name, tensor);
    }
    for (part, shard) in parts.iter().zip(shards) {
        candle_core::safetensors::save(part, sharded.join(shard)).expect("shard");
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
    std::fs::write(
        sharded.join("model.safetensors.index.json"),
        index.to_string(),
    )
    .expect("index");
    sharded
}

/// The bundled model's directory (`models/` holds it and its training script).
pub fn bundled_models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("models")
}

#[derive(Debug, Clone, Deserialize)]
pub struct BundledExample {
    pub text: String,
    pub logits: Vec<f32>,
    pub label: String,
    /// onnxruntime's logits on `onnx/model_quantized.onnx`.
    pub int8_logits: Vec<f32>,
}

/// `models/spam-bert/examples.json`: transformers' logits and labels for the training script's examples.
pub fn bundled_examples() -> Vec<BundledExample> {
    let path = bundled_models_dir().join("spam-bert").join("examples.json");
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
