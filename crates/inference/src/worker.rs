//! The inference worker: the one owner of a loaded model.
//!
//! Requests arrive over a bounded channel; each carries the sender on which
//! its events go back. The worker runs on its own OS thread (the work is CPU
//! bound and must not stall an async runtime) and advances the active
//! generations in turn, one prefill chunk or one token each, so that a long
//! answer never holds back another shopper's first token.
//!
//! It also keeps attention caches between requests: per conversation (a
//! follow-up computes only its new tokens) and per system prompt (a new
//! conversation starts from the already computed system turn).
//!
//! A panic is contained: one inside a generation's step fails that
//! generation alone (`Failed`); one anywhere else in the loop fails the
//! generations in flight, drops every kept cache (it may be half written)
//! and starts the loop again, counted in [`WorkerHandle::restarts`]. While
//! it recovers, and after its thread has ended, [`WorkerHandle::is_running`]
//! is false, which the server's readiness check reports.

use std::collections::{HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use shopchat_core::ChatMessage;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::generate::{FinishReason, SamplingConfig, Sequence, Step, StepConfig};
use crate::model::KvCache;
pub use crate::passage_cache::PassageReuse;
use crate::passage_cache::{plan, PassageCache, PassageCacheStats, PlanSettings};
use crate::LanguageModel;

mod scheduler;

pub use scheduler::spawn_worker;

/// Settings of the worker.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Requests that may wait for a turn; past this, `submit` answers busy.
    pub queue_capacity: usize,
    /// Generations advanced in turn at the same time. More interleave more
    /// shoppers; each one adds its cache to memory and slows the others.
    pub max_active: usize,
    /// Prompt tokens computed per turn before the next generation's turn.
    pub prefill_chunk: usize,
    /// Memory for caches kept between requests; least recently used go first.
    pub cache_budget_bytes: usize,
    /// Memory for retrieved passages' caches reused across answers (see
    /// `passage_cache.rs`); 0 computes every passage every time.
    pub passage_cache_bytes: usize,
    pub passage_reuse: PassageReuse,
    /// With [`PassageReuse::Moved`], the share of each moved passage's
    /// positions recomputed after the passages before it, in percent (0 to
    /// 100; `model/blend.rs`).
    pub passage_recompute_percent: u8,
}

/// The passage cache's default budget per model, in MiB. SmolLM2's f32 keys
/// and values take ~5 MB for a 110-token passage, so this holds about 100
/// kept passages: every one the demo shop's English suite computes (450
/// MiB, each passage kept after the passages before it), where 256 MiB
/// was refilled before the suite came round again. A 10k-passage shop
/// keeps its popular ones and computes the rest when asked
/// (`docs/performance.md`).
pub const DEFAULT_PASSAGE_CACHE_MB: usize = 512;

/// The share of each moved passage recomputed by default, in percent:
/// measured on the eval suites in `docs/performance.md`.
pub const DEFAULT_RECOMPUTE_PERCENT: u8 = 15;

impl WorkerConfig {
    pub fn standard() -> Self {
        Self {
            queue_capacity: 32,
            max_active: 4,
            prefill_chunk: 128,
            cache_budget_bytes: 512 * 1024 * 1024,
            passage_cache_bytes: DEFAULT_PASSAGE_CACHE_MB << 20,
            passage_reuse: PassageReuse::Exact,
            passage_recompute_percent: DEFAULT_RECOMPUTE_PERCENT,
        }
    }
}

/// What to generate from.
#[derive(Debug, Clone)]
pub enum Prompt {
    /// A conversation, rendered with the model's chat template; the oldest
    /// turns are dropped if it does not fit.
    Chat(Vec<ChatMessage>),
    /// Tokens as they are (benchmarks, tests).
    Tokens(Vec<u32>),
}

#[derive(Debug, Clone)]
pub struct GenerationRequest {
    pub prompt: Prompt,
    pub sampling: SamplingConfig,
    /// Keeps this conversation's cache for its next request.
    pub conversation: Option<String>,
    /// Texts the prompt holds word for word (retrieved passages) whose
    /// attention caches may be reused from earlier answers and kept for
    /// later ones. Empty for prompts without passages.
    pub passages: Vec<String>,
}

/// Events of one generation, in order: `Started`, any number of `Text`, then
/// `Finished` or `Failed`.
#[derive(Debug, Clone)]
pub enum GenerationEvent {
    Started { prompt_tokens: usize, reused_tokens: usize, dropped_messages: usize },
    Text(String),
    Finished(GenerationStats),
    Failed { message: String, user_error: bool },
}

#[derive(Debug, Clone, Serialize)]
pub struct GenerationStats {
    pub finish_reason: FinishReason,
    pub prompt_tokens: usize,
    pub reused_tokens: usize,
    /// Prompt positions whose keys and values came from the passage cache.
    pub passage_tokens_reused: usize,
    pub generated_tokens: usize,
    /// Waiting for a turn before the worker took the request.
    pub queued_ms: f64,
    /// From submission to the first generated token.
    pub ttft_ms: f64,
    pub prefill_ms: f64,
    pub decode_ms: f64,
    pub decode_tokens_per_s: f64,
}

/// The caller's side of one generation. Dropping it stops the generation at
/// its next step.
pub struct Generation {
    pub events: mpsc::UnboundedReceiver<GenerationEvent>,
    /// Requests ahead of this one when it was queued.
    pub queue_position: usize,
    stop: Arc<AtomicBool>,
}

impl Generation {
    /// Asks the worker to stop this generation (the stop button). It ends
    /// with `Finished` and `FinishReason::Cancelled`.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// A handle that can stop the generation from elsewhere.
    pub fn stopper(&self) -> Stopper {
        Stopper(self.stop.clone())
    }
}

#[derive(Clone)]
pub struct Stopper(Arc<AtomicBool>);

impl Stopper {
    pub fn stop(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

struct Job {
    request: GenerationRequest,
    events: mpsc::UnboundedSender<GenerationEvent>,
    stop: Arc<AtomicBool>,
    submitted: Instant,
}

/// Cheap to clone; every clone submits to the same worker.
#[derive(Clone)]
pub struct WorkerHandle {
    jobs: mpsc::Sender<Job>,
    /// Requests submitted and not yet taken by the worker.
    waiting: Arc<AtomicUsize>,
    /// Generations the worker is advancing now.
    active: Arc<AtomicUsize>,
    health: Arc<Health>,
    model: Arc<LanguageModel>,
}

/// What the worker thread says about itself.
#[derive(Debug, Default)]
struct Health {
    running: AtomicBool,
    restarts: AtomicU64,
    /// The passage cache's figures, as the worker last published them.
    passage_cache: std::sync::Mutex<PassageCacheStats>,
    /// A [`Fault`] to inject, as its number; 0 for none.
    fault: AtomicU8,
}

/// A failure to provoke on purpose, for fault tests: the worker's next turn
/// panics at this point.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Fault {
    /// Inside a generation's step (as a kernel or a tensor shape bug would).
    PanicInStep = 1,
    /// In the worker's own loop, outside any generation.
    PanicInLoop = 2,
}

/// Marks the worker not running when its thread ends, however it ends.
struct RunningGuard(Arc<Health>);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.running.store(false, Ordering::SeqCst);
    }
}

impl WorkerHandle {
    /// Queues a request. A full queue is an immediate `Error::Busy`, so
    /// memory never grows with load.
    pub fn submit(&self, request: GenerationRequest) -> Result<Generation> {
        request.sampling.validate()?;
        let (events, receiver) = mpsc::unbounded_channel();
        // Unbounded is safe here: a job sends at most `max_tokens + 2`
        // events, so the buffer is bounded by the request itself.
        let stop = Arc::new(AtomicBool::new(false));
        let position = self.waiting.fetch_add(1, Ordering::SeqCst);
        let job = Job { request, events, stop: stop.clone(), submitted: Instant::now() };
        match self.jobs.try_send(job) {
            Ok(()) => Ok(Generation { events: receiver, queue_position: position, stop }),
            Err(mpsc::error::TrySendError::Full(_)) => {
                let queued = self.waiting.fetch_sub(1, Ordering::SeqCst) - 1;
                Err(Error::Busy { queued })
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                Err(Error::WorkerStopped)
            }
        }
    }

    /// Requests waiting for a turn.
    pub fn queue_depth(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    pub fn active_generations(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    pub fn model(&self) -> &Arc<LanguageModel> {
        &self.model
    }

    /// Whether the worker takes requests: false while it recovers from a
    /// panic in its loop, and for good once its thread has ended.
    pub fn is_running(&self) -> bool {
        self.health.running.load(Ordering::SeqCst)
    }

    /// How often the worker's loop was started again after a panic.
    pub fn restarts(&self) -> u64 {
        self.health.restarts.load(Ordering::SeqCst)
    }

    /// Passages kept, their bytes, and look-ups that hit or missed.
    pub fn passage_cache_stats(&self) -> PassageCacheStats {
        *self.health.passage_cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes the worker's next turn panic at `fault` (fault tests only).
    #[doc(hidden)]
    pub fn inject_fault(&self, fault: Fault) {
        self.health.fault.store(fault as u8, Ordering::SeqCst);
    }
}
