//! The one seam between the protocol and an inference engine.

use std::future::Future;
use std::time::Duration;

use crate::error::ApiError;
use crate::model::ServedModel;

/// Token-id sequences of one request, ready for a forward pass. Every sequence is non-empty, within the
/// model's max length, and uses ids below its vocabulary size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InferenceJob {
    pub sequences: Vec<Vec<u32>>,
    /// Higher runs first when requests wait for the engine.
    pub priority: i64,
}

/// An engine that serves some models: the edge's tract runner or the native server's candle batcher.
pub trait Backend {
    fn models(&self) -> &[ServedModel];

    /// Readiness for `/health`: an error (usually 503 `unavailable`) while not every model can serve.
    fn health(&self) -> Result<(), ApiError> {
        Ok(())
    }

    /// Raw logits, one vector per sequence of `job`, for the model at `model` in [`Backend::models`].
    fn classify(
        &self,
        model: usize,
        job: InferenceJob,
    ) -> impl Future<Output = Result<Vec<Vec<f32>>, ApiError>>;

    /// Called after the inputs of a request were tokenized, for metrics.
    fn record_tokenization(&self, _model: &str, _elapsed: Duration) {}
}
