//! The seam between the protocol and a deployment: which models it serves, whether they are ready, running a
//! job on one, and where requests for other models go.

use std::future::Future;
use std::time::Duration;

use http::{Request, Response};

use crate::engine::{Logits, TokenSequence};
use crate::error::ApiError;
use crate::model::ServedModel;

/// The token sequences of one request, ready for a forward pass. Every sequence is non-empty, within the
/// model's max length, and uses ids below its vocabulary size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InferenceJob {
    pub sequences: Vec<TokenSequence>,
    /// Higher runs first when requests wait for the engine.
    pub priority: i64,
    /// How long parsing and tokenizing the request took, for a deployment's metrics.
    pub tokenization: Duration,
}

/// Where models are served: the edge component over its mounted ONNX files, or the native server over one
/// batcher per model.
pub trait Deployment {
    /// Every model that serves here, in a fixed order (a deployment that loads on first use loads them all).
    fn models(&self) -> Vec<&ServedModel>;

    /// The model served as `name` and its index for [`Deployment::run`] (by default its position in
    /// [`Deployment::models`]); `None` when it is not served here, an error when it is but cannot serve.
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

    /// Runs `job` on the model with index `model` (see [`Deployment::model`]): the engine's raw scores.
    fn run(
        &self,
        model: usize,
        job: InferenceJob,
    ) -> impl Future<Output = Result<Logits, ApiError>>;

    /// Answers a request for a model this deployment does not serve, e.g. by forwarding it to another server.
    /// `None` gives the client 404 `model_not_found`.
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
}
