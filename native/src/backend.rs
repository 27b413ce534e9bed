//! The native [`Backend`]: one batcher per model, and a bounded set of threads for parsing and tokenization.

use std::time::Duration;

use classify_protocol::{ApiError, Backend, InferenceJob, ServedModel};
use tokio::sync::Semaphore;

use crate::batcher::{BatchLimits, Batcher};
use crate::metrics as names;
use crate::models::LoadedModel;

pub struct NativeBackend {
    models: Vec<ServedModel>,
    batchers: Vec<Batcher>,
    /// Permits to run CPU-bound request work, one per thread allowed to do it at once.
    cpu_workers: Semaphore,
}

impl NativeBackend {
    /// Starts a batcher thread per model; `cpu_workers` requests at most parse and tokenize at once.
    pub fn start(
        loaded: Vec<LoadedModel>,
        limits: BatchLimits,
        cpu_workers: usize,
    ) -> std::io::Result<Self> {
        let mut models = Vec::with_capacity(loaded.len());
        let mut batchers = Vec::with_capacity(loaded.len());
        for model in loaded {
            batchers.push(Batcher::spawn(
                &model.served.name,
                model.classifier,
                limits,
            )?);
            models.push(model.served);
        }
        Ok(NativeBackend {
            models,
            batchers,
            cpu_workers: Semaphore::new(cpu_workers.max(1)),
        })
    }
}

impl Backend for NativeBackend {
    fn models(&self) -> Vec<&ServedModel> {
        self.models.iter().collect()
    }

    async fn classify(&self, model: usize, job: InferenceJob) -> Result<Vec<Vec<f32>>, ApiError> {
        let batcher = self
            .batchers
            .get(model)
            .ok_or_else(|| ApiError::internal("no batcher for this model"))?;
        batcher
            .submit(job.sequences, job.priority)
            .await
            .map_err(|_| ApiError::internal("the model worker stopped"))?
            .map_err(|e| ApiError::internal(format!("inference failed: {e}")))
    }

    /// On a multi-threaded runtime the work leaves the async worker (`block_in_place` hands the worker's other
    /// tasks to another thread), so `/health` and `/metrics` keep answering while huge inputs are tokenized.
    async fn run_cpu_bound<R>(&self, work: impl FnOnce() -> R) -> R {
        // The semaphore is never closed, so acquiring only waits.
        let _permit = self.cpu_workers.acquire().await.ok();
        let multi_threaded = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if multi_threaded {
            tokio::task::block_in_place(work)
        } else {
            work()
        }
    }

    fn record_tokenization(&self, model: &str, elapsed: Duration) {
        metrics::histogram!(names::STAGE_SECONDS, "stage" => "tokenization", "model" => model.to_owned())
            .record(elapsed.as_secs_f64());
    }
}
