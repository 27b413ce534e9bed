//! The one seam between the protocol and an inference engine.

use std::future::Future;
use std::time::Duration;

use http::{Request, Response};

use crate::error::ApiError;
use crate::model::ServedModel;

/// One input's tokens for a forward pass.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TokenSequence {
    pub ids: Vec<u32>,
    /// One token type (segment) id per token for a sentence pair, as the tokenizer's pair template assigns them
    /// (BERT: 0 on `[CLS] a [SEP]`, 1 on `b [SEP]`); `None` for a single segment, all 0.
    pub type_ids: Option<Vec<u32>>,
}

impl TokenSequence {
    pub fn single(ids: Vec<u32>) -> TokenSequence {
        TokenSequence {
            ids,
            type_ids: None,
        }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// The token sequences of one request, ready for a forward pass. Every sequence is non-empty, within the
/// model's max length, and uses ids below its vocabulary size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InferenceJob {
    pub sequences: Vec<TokenSequence>,
    /// Higher runs first when requests wait for the engine.
    pub priority: i64,
}

/// An engine that serves some models: the edge's tract runner or the native server's candle batcher.
pub trait Backend {
    /// Every model that serves here, in a fixed order (a backend that loads on first use loads them all).
    fn models(&self) -> Vec<&ServedModel>;

    /// The model served as `name` and its index for [`Backend::classify`] (by default its position in
    /// [`Backend::models`]); `None` when it is not served here, an error when it is but cannot serve.
    fn model(&self, name: &str) -> Option<Result<(usize, &ServedModel), ApiError>> {
        self.models()
            .into_iter()
            .enumerate()
            .find(|(_, m)| m.name == name)
            .map(Ok)
    }

    /// Readiness for `/health`: an error (usually 503 `unavailable`) while not every model can serve.
    fn health(&self) -> Result<(), ApiError> {
        Ok(())
    }

    /// Raw logits, one vector per sequence of `job`, for the model with index `model` (see [`Backend::model`]).
    fn classify(
        &self,
        model: usize,
        job: InferenceJob,
    ) -> impl Future<Output = Result<Vec<Vec<f32>>, ApiError>>;

    /// Answers a classify or tokenize request for a model this backend does not serve, e.g. by forwarding it to
    /// another server. `None` gives the client 404 `model_not_found`.
    fn forward(
        &self,
        _request: &Request<Vec<u8>>,
    ) -> impl Future<Output = Option<Response<Vec<u8>>>> {
        std::future::ready(None)
    }

    /// Cards of models served elsewhere (in `/v1/models` shape), listed after the local ones.
    fn remote_models(&self) -> impl Future<Output = Vec<serde_json::Value>> {
        std::future::ready(Vec::new())
    }

    /// Runs the CPU-bound part of a request (parsing, validation, tokenization). The native server runs it on a
    /// bounded set of threads off its async workers, so that huge inputs cannot starve `/health`; by default it
    /// runs in place.
    fn run_cpu_bound<R>(&self, work: impl FnOnce() -> R) -> impl Future<Output = R> {
        std::future::ready(work())
    }

    /// Called after the inputs of a request were tokenized, for metrics.
    fn record_tokenization(&self, _model: &str, _elapsed: Duration) {}
}
