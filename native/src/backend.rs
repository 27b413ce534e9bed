//! The native [`Backend`]: one batcher per model, and an admission limit across all of them.

use std::sync::Arc;
use std::time::Duration;

use classify_protocol::{ApiError, Backend, InferenceJob, ServedModel};
use tokio::sync::Semaphore;

use crate::batcher::{BatchLimits, Batcher};
use crate::metrics as names;
use crate::models::LoadedModel;

pub struct NativeBackend {
    models: Vec<ServedModel>,
    batchers: Vec<Batcher>,
    admission: Arc<Semaphore>,
    max_concurrent_requests: usize,
}

impl NativeBackend {
    /// Starts a batcher thread per model.
    pub fn start(
        loaded: Vec<LoadedModel>,
        limits: BatchLimits,
        max_concurrent_requests: usize,
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
            admission: Arc::new(Semaphore::new(max_concurrent_requests)),
            max_concurrent_requests,
        })
    }
}

impl Backend for NativeBackend {
    fn models(&self) -> Vec<&ServedModel> {
        self.models.iter().collect()
    }

    async fn classify(&self, model: usize, job: InferenceJob) -> Result<Vec<Vec<f32>>, ApiError> {
        let _permit = Arc::clone(&self.admission)
            .try_acquire_owned()
            .map_err(|_| ApiError::overloaded(self.max_concurrent_requests))?;
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

    fn record_tokenization(&self, model: &str, elapsed: Duration) {
        metrics::histogram!(names::STAGE_SECONDS, "stage" => "tokenization", "model" => model.to_owned())
            .record(elapsed.as_secs_f64());
    }
}
