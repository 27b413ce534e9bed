//! The native [`Deployment`]: one batcher per model; and the bounded set of threads that parse and tokenize.

use classify_protocol::handler::CpuWork;
use classify_protocol::{ApiError, Deployment, InferenceJob, Logits, ServedModel};
use tokio::sync::Semaphore;

use crate::batcher::{BatchLimits, Batcher};
use crate::metrics as names;
use crate::models::LoadedModel;

pub struct NativeDeployment {
    models: Vec<ServedModel>,
    batchers: Vec<Batcher>,
}

impl NativeDeployment {
    /// Starts a batcher thread per model.
    pub fn start(loaded: Vec<LoadedModel>, limits: BatchLimits) -> std::io::Result<Self> {
        let mut models = Vec::with_capacity(loaded.len());
        let mut batchers = Vec::with_capacity(loaded.len());
        for model in loaded {
            batchers.push(Batcher::spawn(&model.served.name, model.engine, limits)?);
            models.push(model.served);
        }
        Ok(NativeDeployment { models, batchers })
    }
}

impl Deployment for NativeDeployment {
    fn models(&self) -> Vec<&ServedModel> {
        self.models.iter().collect()
    }

    async fn run(&self, model: usize, job: InferenceJob) -> Result<Logits, ApiError> {
        let (served, batcher) = self
            .models
            .get(model)
            .zip(self.batchers.get(model))
            .ok_or_else(|| ApiError::internal("no batcher for this model"))?;
        metrics::histogram!(names::STAGE_SECONDS, "stage" => "tokenization", "model" => served.name.clone())
            .record(job.tokenization.as_secs_f64());
        batcher
            .submit(job.sequences, job.priority)
            .await
            .map_err(|_| ApiError::internal("the model worker stopped"))?
            .map_err(|e| ApiError::internal(format!("inference failed: {e}")))
    }
}

/// Where requests are parsed and tokenized: at most a fixed number at once, each off the async worker that
/// took it.
pub struct TokenizerThreads(Semaphore);

impl TokenizerThreads {
    pub fn new(threads: usize) -> TokenizerThreads {
        TokenizerThreads(Semaphore::new(threads.max(1)))
    }
}

impl CpuWork for TokenizerThreads {
    /// On a multi-threaded runtime the work leaves the async worker (`block_in_place` hands the worker's other
    /// tasks to another thread), so `/health` and `/metrics` keep answering while huge inputs are tokenized.
    async fn run<R>(&self, work: impl FnOnce() -> R) -> R {
        // The semaphore is never closed, so acquiring only waits.
        let _permit = self.0.acquire().await.ok();
        let multi_threaded = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if multi_threaded {
            tokio::task::block_in_place(work)
        } else {
            work()
        }
    }
}
