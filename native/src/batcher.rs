//! Dynamic batching: requests from concurrent clients wait in a priority queue; a dedicated thread takes as
//! many as fit the token budget, sorts their sequences by length to cut padding, and runs the model.
//! Under load (a forward pass has just ended) it first gathers for a moment: see [`BatchLimits::max_delay`].
//! Knows nothing of HTTP: callers submit token ids and await logits from the model's [`Engine`].

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use classify_protocol::{Engine, Logits, TokenSequence};
use tokio::sync::oneshot;

use crate::metrics as names;

/// The request's logits (its sequences' rows in order), or why the forward pass failed.
pub type BatchResult = Result<Logits, String>;

/// One sequence's rows of logits, or why its forward pass failed.
type RowResult = Result<Vec<f32>, String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Most tokens in one forward pass (padding included for engines that pad). A longer single sequence still
    /// runs, alone.
    pub max_batch_tokens: usize,
    /// Most requests taken from the queue for one batch.
    pub max_batch_requests: usize,
    /// Under load, how long the first request of a batch may wait for more. When a forward pass has just ended,
    /// the clients it answered usually send their next requests within a few milliseconds; without waiting, the
    /// batch would hold only those that came in during the pass, and a steady load splits into half-size
    /// batches, which on the CPU compute ~25% fewer sequences per second. Gathering stops early when the batch
    /// is full or no request has come in for a quarter of this. A request that finds the model idle starts at
    /// once. Zero turns gathering off.
    pub max_delay: Duration,
}

pub struct Batcher {
    queue: Arc<Queue>,
    worker: Option<JoinHandle<()>>,
}

struct Queue {
    state: Mutex<QueueState>,
    wake: Condvar,
    model: String,
}

struct QueueState {
    waiting: BinaryHeap<Pending>,
    next_seq: u64,
    closed: bool,
}

struct Pending {
    priority: i64,
    seq: u64,
    sequences: Vec<TokenSequence>,
    tokens: usize,
    enqueued: Instant,
    reply: oneshot::Sender<BatchResult>,
}

impl Pending {
    /// Higher priority first, then first come first served.
    fn rank(&self) -> (i64, Reverse<u64>) {
        (self.priority, Reverse(self.seq))
    }
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.rank() == other.rank()
    }
}

impl Eq for Pending {}

impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Pending {
    fn cmp(&self, other: &Self) -> Ordering {
        self.rank().cmp(&other.rank())
    }
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // A panic while holding the lock cannot leave the heap half-updated, so a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Batcher {
    /// Starts the worker thread that owns `model`.
    pub fn spawn(
        model_name: &str,
        model: Box<dyn Engine>,
        limits: BatchLimits,
    ) -> std::io::Result<Batcher> {
        let queue = Arc::new(Queue {
            state: Mutex::new(QueueState {
                waiting: BinaryHeap::new(),
                next_seq: 0,
                closed: false,
            }),
            wake: Condvar::new(),
            model: model_name.to_owned(),
        });
        let worker_queue = Arc::clone(&queue);
        let worker = std::thread::Builder::new()
            .name(format!("model-{model_name}"))
            .spawn(move || run_worker(&worker_queue, model.as_ref(), limits))?;
        Ok(Batcher {
            queue,
            worker: Some(worker),
        })
    }

    /// Queues one request's sequences; the receiver gets their logits in order.
    pub fn submit(
        &self,
        sequences: Vec<TokenSequence>,
        priority: i64,
    ) -> oneshot::Receiver<BatchResult> {
        let (reply, receiver) = oneshot::channel();
        let tokens = sequences.iter().map(TokenSequence::len).sum();
        let mut state = self.queue.lock();
        if state.closed {
            let _ = reply.send(Err("the server is shutting down".to_owned()));
            return receiver;
        }
        let seq = state.next_seq;
        state.next_seq += 1;
        state.waiting.push(Pending {
            priority,
            seq,
            sequences,
            tokens,
            enqueued: Instant::now(),
            reply,
        });
        metrics::gauge!(names::QUEUE_DEPTH, "model" => self.queue.model.clone())
            .set(state.waiting.len() as f64);
        drop(state);
        self.queue.wake.notify_one();
        receiver
    }
}

impl Drop for Batcher {
    /// Lets the worker finish everything already queued, then stops it.
    fn drop(&mut self) {
        self.queue.lock().closed = true;
        self.queue.wake.notify_all();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

fn run_worker(queue: &Queue, model: &dyn Engine, limits: BatchLimits) {
    let mut last_pass_ended = None;
    while let Some(batch) = next_batch(queue, limits, last_pass_ended) {
        run_batch(queue, model, limits, batch);
        last_pass_ended = Some(Instant::now());
    }
}

/// Whether the waiting requests already fill a batch.
fn batch_is_full(state: &QueueState, limits: BatchLimits) -> bool {
    state.waiting.len() >= limits.max_batch_requests
        || state.waiting.iter().map(|p| p.tokens).sum::<usize>() >= limits.max_batch_tokens
}

/// Waits for more requests while the batch could grow: until it is full, `limits.max_delay` has passed, or no
/// request has arrived for a quarter of it.
fn gather<'a>(
    queue: &'a Queue,
    mut state: MutexGuard<'a, QueueState>,
    limits: BatchLimits,
) -> MutexGuard<'a, QueueState> {
    let started = Instant::now();
    let quiet = limits.max_delay / 4;
    let (mut waiting, mut last_arrival) = (state.waiting.len(), started);
    while !state.closed && !batch_is_full(&state, limits) {
        let deadline = (started + limits.max_delay).min(last_arrival + quiet);
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        state = queue
            .wake
            .wait_timeout(state, deadline - now)
            .map_or_else(|poisoned| poisoned.into_inner().0, |(state, _)| state);
        if state.waiting.len() > waiting {
            (waiting, last_arrival) = (state.waiting.len(), Instant::now());
        }
    }
    state
}

/// Blocks until requests wait, then takes the highest-priority ones that fit the limits, after gathering when
/// the last forward pass ended less than `max_delay` ago. `None` once closed and drained.
fn next_batch(
    queue: &Queue,
    limits: BatchLimits,
    last_pass_ended: Option<Instant>,
) -> Option<Vec<Pending>> {
    let mut state = queue.lock();
    loop {
        // Requests whose client went away are dropped instead of computed.
        while state.waiting.peek().is_some_and(|p| p.reply.is_closed()) {
            state.waiting.pop();
        }
        if !state.waiting.is_empty() {
            break;
        }
        if state.closed {
            return None;
        }
        state = queue
            .wake
            .wait(state)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
    }
    let under_load = last_pass_ended.is_some_and(|ended| ended.elapsed() < limits.max_delay);
    if under_load && limits.max_batch_requests > 1 {
        state = gather(queue, state, limits);
    }
    let mut batch: Vec<Pending> = Vec::new();
    let mut tokens = 0;
    while let Some(next) = state.waiting.peek() {
        let fits = batch.len() < limits.max_batch_requests.max(1)
            && tokens + next.tokens <= limits.max_batch_tokens;
        if !batch.is_empty() && !fits {
            break;
        }
        let Some(pending) = state.waiting.pop() else {
            break;
        };
        if !pending.reply.is_closed() {
            tokens += pending.tokens;
            batch.push(pending);
        }
    }
    metrics::gauge!(names::QUEUE_DEPTH, "model" => queue.model.clone())
        .set(state.waiting.len() as f64);
    Some(batch)
}

/// Runs every sequence of `batch` in forward passes of similar lengths and replies to each request.
fn run_batch(queue: &Queue, model: &dyn Engine, limits: BatchLimits, batch: Vec<Pending>) {
    let shape = model.shape();
    let started = Instant::now();
    for pending in &batch {
        metrics::histogram!(names::STAGE_SECONDS, "stage" => "queue", "model" => queue.model.clone())
            .record(started.duration_since(pending.enqueued).as_secs_f64());
    }
    // (request, sequence) pairs, shortest first, so each forward pass pads little.
    let mut order: Vec<(usize, usize)> = batch
        .iter()
        .enumerate()
        .flat_map(|(r, p)| (0..p.sequences.len()).map(move |s| (r, s)))
        .collect();
    order.sort_by_key(|&(r, s)| batch[r].sequences[s].len());
    let mut results: Vec<Vec<Option<RowResult>>> = batch
        .iter()
        .map(|p| vec![None; p.sequences.len()])
        .collect();
    let padded = model.pads_batches();
    for chunk in chunks_within_budget(
        &order,
        |&(r, s)| batch[r].sequences[s].len(),
        limits.max_batch_tokens,
        padded,
    ) {
        let inputs: Vec<&TokenSequence> =
            chunk.iter().map(|&(r, s)| &batch[r].sequences[s]).collect();
        let longest = inputs.last().map_or(0, |s| s.len());
        let tokens = if padded {
            inputs.len() * longest
        } else {
            inputs.iter().map(|s| s.len()).sum()
        };
        metrics::histogram!(names::BATCH_SEQUENCES, "model" => queue.model.clone())
            .record(inputs.len() as f64);
        metrics::histogram!(names::BATCH_TOKENS, "model" => queue.model.clone())
            .record(tokens as f64);
        let forward_started = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| model.forward(&inputs)));
        metrics::histogram!(names::STAGE_SECONDS, "stage" => "inference", "model" => queue.model.clone())
            .record(forward_started.elapsed().as_secs_f64());
        let logits = match outcome {
            Ok(Ok(logits)) => logits
                .check(&shape, &inputs)
                .map(|()| logits)
                .map_err(|e| e.to_string()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("the model panicked".to_owned()),
        };
        if let Err(e) = &logits {
            tracing::error!(model = %queue.model, error = %e, "forward pass failed");
        }
        let mut next_row = 0;
        for (&(r, s), input) in chunk.iter().zip(&inputs) {
            results[r][s] = Some(match &logits {
                Ok(logits) => {
                    let rows = shape.rows_for(std::slice::from_ref(input));
                    let mine = (next_row..next_row + rows).flat_map(|i| logits.row(i));
                    next_row += rows;
                    Ok(mine.copied().collect())
                }
                Err(e) => Err(e.clone()),
            });
        }
    }
    for (pending, rows) in batch.into_iter().zip(results) {
        let reply = rows
            .into_iter()
            .map(|row| row.unwrap_or_else(|| Err("sequence was not run".to_owned())))
            .collect::<Result<Vec<_>, _>>()
            .and_then(|rows| {
                Logits::new(shape.num_classes, rows.concat()).map_err(|e| e.to_string())
            });
        let _ = pending.reply.send(reply);
    }
}

/// Splits length-sorted items into runs whose size stays within `budget` tokens: count × longest when the
/// engine pads, the sum of the lengths when it does not. An item longer than the budget runs alone.
fn chunks_within_budget<T: Copy>(
    sorted: &[T],
    len: impl Fn(&T) -> usize,
    budget: usize,
    padded: bool,
) -> Vec<Vec<T>> {
    let mut chunks: Vec<Vec<T>> = Vec::new();
    let mut current: Vec<T> = Vec::new();
    let mut tokens = 0;
    for item in sorted {
        let size = if padded {
            (current.len() + 1) * len(item)
        } else {
            tokens + len(item)
        };
        if !current.is_empty() && size > budget {
            chunks.push(std::mem::take(&mut current));
            tokens = 0;
        }
        tokens += len(item);
        current.push(*item);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
    use std::time::Duration;

    use classify_protocol::{ModelShape, OutputKind};

    use super::*;

    /// Logits are [length, first id]; records the batch sizes it saw; optionally sleeps or fails.
    struct Recorder {
        batches: Arc<Mutex<Vec<usize>>>,
        delay: Duration,
        calls: Arc<AtomicUsize>,
    }

    impl Engine for Recorder {
        fn shape(&self) -> ModelShape {
            ModelShape {
                num_classes: 2,
                max_positions: 64,
                vocab_size: 1000,
                output: OutputKind::Sequence,
            }
        }

        fn forward(
            &self,
            batch: &[&TokenSequence],
        ) -> Result<Logits, classify_protocol::EngineError> {
            self.calls.fetch_add(1, AtomicOrdering::SeqCst);
            std::thread::sleep(self.delay);
            self.batches.lock().unwrap().push(batch.len());
            if batch.iter().any(|s| s.ids[0] == 666) {
                panic!("boom");
            }
            Logits::from_rows(
                2,
                batch
                    .iter()
                    .map(|s| vec![s.len() as f32, s.ids[0] as f32])
                    .collect(),
            )
        }
    }

    fn singles(sequences: Vec<Vec<u32>>) -> Vec<TokenSequence> {
        sequences.into_iter().map(TokenSequence::single).collect()
    }

    fn batcher(delay: Duration, limits: BatchLimits) -> (Batcher, Arc<Mutex<Vec<usize>>>) {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let model = Recorder {
            batches: batches.clone(),
            delay,
            calls: Arc::new(AtomicUsize::new(0)),
        };
        (
            Batcher::spawn("test", Box::new(model), limits).unwrap(),
            batches,
        )
    }

    const WIDE: BatchLimits = BatchLimits {
        max_batch_tokens: 1000,
        max_batch_requests: 64,
        max_delay: Duration::ZERO,
    };

    #[test]
    fn results_come_back_in_request_order() {
        let (batcher, _) = batcher(Duration::ZERO, WIDE);
        let reply = batcher
            .submit(singles(vec![vec![5, 1, 1], vec![7], vec![9, 9]]), 0)
            .blocking_recv()
            .unwrap();
        assert_eq!(
            reply.unwrap().into_rows(),
            [vec![3.0, 5.0], vec![1.0, 7.0], vec![2.0, 9.0]]
        );
    }

    #[test]
    fn requests_that_wait_together_share_a_forward_pass() {
        let (batcher, batches) = batcher(Duration::from_millis(100), WIDE);
        let first = batcher.submit(singles(vec![vec![1]]), 0);
        std::thread::sleep(Duration::from_millis(30)); // the worker is now busy with `first`
        let low = batcher.submit(singles(vec![vec![2]]), 0);
        let high = batcher.submit(singles(vec![vec![3]]), 5);
        let _ = first.blocking_recv();
        assert_eq!(
            high.blocking_recv().unwrap().unwrap().into_rows(),
            [vec![1.0, 3.0]]
        );
        assert_eq!(
            low.blocking_recv().unwrap().unwrap().into_rows(),
            [vec![1.0, 2.0]]
        );
        // `low` and `high` arrived while the model ran, so they share the second forward pass.
        assert_eq!(*batches.lock().unwrap(), [1, 2]);
    }

    #[test]
    fn under_load_a_batch_waits_for_the_clients_just_answered() {
        let limits = BatchLimits {
            max_delay: Duration::from_millis(400),
            ..WIDE
        };
        let (batcher, batches) = batcher(Duration::from_millis(50), limits);
        let first = batcher.submit(singles(vec![vec![1]]), 0);
        std::thread::sleep(Duration::from_millis(10));
        let during = batcher.submit(singles(vec![vec![2]]), 0);
        // The client of `first` sends its next request as soon as it is answered.
        let _ = first.blocking_recv();
        let next = batcher.submit(singles(vec![vec![3]]), 0);
        let _ = (during.blocking_recv(), next.blocking_recv());
        assert_eq!(*batches.lock().unwrap(), [1, 2]);
    }

    #[test]
    fn an_idle_model_starts_at_once_and_a_full_batch_does_not_wait() {
        let limits = BatchLimits {
            max_batch_requests: 2,
            max_delay: Duration::from_secs(5),
            ..WIDE
        };
        let (batcher, batches) = batcher(Duration::from_millis(50), limits);
        let started = Instant::now();
        let first = batcher.submit(singles(vec![vec![1]]), 0);
        std::thread::sleep(Duration::from_millis(10));
        let (b, c) = (
            batcher.submit(singles(vec![vec![2]]), 0),
            batcher.submit(singles(vec![vec![3]]), 0),
        );
        let _ = (first.blocking_recv(), b.blocking_recv(), c.blocking_recv());
        // Gathering would have held either pass for up to 5 s.
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(*batches.lock().unwrap(), [1, 2]);
    }

    #[test]
    fn priority_orders_the_queue_under_a_one_request_limit() {
        let limits = BatchLimits {
            max_batch_requests: 1,
            ..WIDE
        };
        let (batcher, _) = batcher(Duration::from_millis(50), limits);
        let first = batcher.submit(singles(vec![vec![1]]), 0);
        std::thread::sleep(Duration::from_millis(20));
        let low = batcher.submit(singles(vec![vec![2]]), 0);
        let high = batcher.submit(singles(vec![vec![3]]), 9);
        let done = Arc::new(Mutex::new(Vec::new()));
        let threads: Vec<_> = [(low, 2), (high, 3)]
            .into_iter()
            .map(|(rx, id)| {
                let done = done.clone();
                std::thread::spawn(move || {
                    let _ = rx.blocking_recv();
                    done.lock().unwrap().push(id);
                })
            })
            .collect();
        let _ = first.blocking_recv();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*done.lock().unwrap(), [3, 2]);
    }

    #[test]
    fn token_budget_splits_forward_passes() {
        let limits = BatchLimits {
            max_batch_tokens: 4,
            ..WIDE
        };
        let (batcher, batches) = batcher(Duration::ZERO, limits);
        let reply = batcher
            .submit(
                singles(vec![vec![1, 1], vec![2, 2], vec![3, 3], vec![4; 9]]),
                0,
            )
            .blocking_recv();
        assert_eq!(reply.unwrap().unwrap().rows(), 4);
        // 2+2 tokens fit, the third pair starts a new pass, the 9-token sequence runs alone.
        assert_eq!(*batches.lock().unwrap(), [2, 1, 1]);
    }

    #[test]
    fn a_panicking_model_fails_only_its_batch() {
        let (batcher, _) = batcher(Duration::ZERO, WIDE);
        let failed = batcher
            .submit(singles(vec![vec![666]]), 0)
            .blocking_recv()
            .unwrap();
        assert_eq!(failed.unwrap_err(), "the model panicked");
        let fine = batcher
            .submit(singles(vec![vec![1]]), 0)
            .blocking_recv()
            .unwrap();
        assert_eq!(fine.unwrap().into_rows(), [vec![1.0, 1.0]]);
    }

    #[test]
    fn drop_finishes_queued_work() {
        let (batcher, _) = batcher(Duration::from_millis(20), WIDE);
        let receivers: Vec<_> = (0..3)
            .map(|i| batcher.submit(singles(vec![vec![i]]), 0))
            .collect();
        drop(batcher);
        for rx in receivers {
            assert!(rx.blocking_recv().unwrap().is_ok());
        }
    }

    #[test]
    fn chunks_respect_the_budget() {
        let chunks = chunks_within_budget(&[1, 2, 2, 3, 10], |&n| n, 6, true);
        assert_eq!(chunks, [vec![1, 2, 2], vec![3], vec![10]]);
        // 2 + 2 + 3 real tokens fit 7, where padded to 3 they would take 9.
        let padded = chunks_within_budget(&[2, 2, 3], |&n| n, 7, true);
        assert_eq!(padded, [vec![2, 2], vec![3]]);
        let packed = chunks_within_budget(&[2, 2, 3], |&n| n, 7, false);
        assert_eq!(packed, [vec![2, 2, 3]]);
    }
}
