//! What an architecture's loader reads (config.json and the weights), and the conversion of its head's output
//! into the engine contract's [`Logits`].

use std::path::PathBuf;

use anyhow::Context;
use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;
use classify_protocol::config::ModelConfig;
use classify_protocol::cross_encoder::CrossEncoderHead;
use classify_protocol::tokenize::YesNoTokens;
use classify_protocol::{EngineError, Logits};

use crate::device::Placement;

/// What an architecture's loader reads: config.json (parsed for the protocol, and as bytes for the
/// architecture's own config struct) and the weights. A loader may adjust `config`, e.g. a reward head that
/// answers one score whatever labels config.json lists.
pub struct Checkpoint<'a> {
    pub config_json: &'a [u8],
    pub config: &'a mut ModelConfig,
    pub weights: &'a [PathBuf],
    pub vb: VarBuilder<'a>,
    pub placement: &'a Placement,
    /// The answer tokens of an LLM reranker's prompt, when the model has one.
    pub yes_no: Option<YesNoTokens>,
    /// The head of a Sentence-Transformers cross-encoder saved as modules, when the model is one.
    pub cross_encoder: Option<&'a CrossEncoderHead>,
}

impl Checkpoint<'_> {
    /// The cross-encoder head a bare backbone (`BertModel`, `ModernBertModel`) is served with.
    pub fn cross_encoder_head(&self, architecture: &str) -> anyhow::Result<&CrossEncoderHead> {
        self.cross_encoder.context(format!(
            "{architecture} is a bare encoder: it is served as a Sentence-Transformers cross-encoder, whose head \
             is in modules.json and config_sentence_transformers.json (model_type CrossEncoder), and those are \
             missing"
        ))
    }
}

impl Checkpoint<'_> {
    /// config.json as an architecture's config struct.
    pub fn parse_config<T: serde::de::DeserializeOwned>(&self) -> anyhow::Result<T> {
        serde_json::from_slice(self.config_json).context("config.json")
    }
}

/// A head's `[rows, num_classes]` output as [`Logits`]. A candle error becomes its first line (candle appends a
/// backtrace when `RUST_BACKTRACE` is set); the whole error goes to the log.
pub fn into_logits(head_output: candle_core::Result<Tensor>) -> Result<Logits, EngineError> {
    let convert = || -> candle_core::Result<(usize, Vec<f32>)> {
        let output = head_output?;
        let (_, width) = output.dims2()?;
        Ok((
            width,
            output.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?,
        ))
    };
    let (width, values) = convert().map_err(|e| {
        tracing::error!(error = %e, "forward pass error");
        EngineError::new(e.to_string().lines().next().unwrap_or_default())
    })?;
    Logits::new(width, values)
}
