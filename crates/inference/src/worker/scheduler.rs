//! The worker's thread: it takes jobs from the queue and advances the
//! active generations in turn, keeping conversation, system-prompt and
//! passage caches between them, and recovers from a panic.

use super::*;

/// Starts the worker thread. It ends when every handle has been dropped and
/// the last generation has finished.
pub fn spawn_worker(model: Arc<LanguageModel>, config: WorkerConfig) -> Result<WorkerHandle> {
    if config.queue_capacity == 0 || config.max_active == 0 || config.prefill_chunk == 0 {
        return Err(Error::InvalidSettings(
            "queue_capacity, max_active and prefill_chunk must be at least 1".into(),
        ));
    }
    let (jobs, receiver) = mpsc::channel(config.queue_capacity);
    let health = Arc::new(Health { running: AtomicBool::new(true), ..Health::default() });
    let handle = WorkerHandle {
        jobs,
        waiting: Arc::new(AtomicUsize::new(0)),
        active: Arc::new(AtomicUsize::new(0)),
        health: health.clone(),
        model: model.clone(),
    };
    let worker = Worker {
        model,
        receiver,
        waiting: handle.waiting.clone(),
        active_count: handle.active.clone(),
        health,
        active: VecDeque::new(),
        conversations: HashMap::new(),
        prefixes: Vec::new(),
        passage_cache: PassageCache::new(config.passage_cache_bytes),
        config,
        clock: 0,
    };
    std::thread::Builder::new()
        .name("inference".into())
        .spawn(move || worker.run())
        .map_err(Error::io("cannot start the inference thread"))?;
    Ok(handle)
}

struct Active {
    job: Job,
    sequence: Sequence,
    system_prefix: Option<Vec<u32>>,
    started: Instant,
    first_token: Option<Instant>,
    prefill_done: Option<Instant>,
}

struct CachedConversation {
    cache: KvCache,
    tokens: Vec<u32>,
    last_used: u64,
}

struct CachedPrefix {
    tokens: Vec<u32>,
    cache: KvCache,
    last_used: u64,
}

/// System prompts whose computed caches are kept.
const MAX_PREFIXES: usize = 4;

struct Worker {
    model: Arc<LanguageModel>,
    config: WorkerConfig,
    receiver: mpsc::Receiver<Job>,
    waiting: Arc<AtomicUsize>,
    active_count: Arc<AtomicUsize>,
    health: Arc<Health>,
    active: VecDeque<Active>,
    conversations: HashMap<String, CachedConversation>,
    prefixes: Vec<CachedPrefix>,
    passage_cache: PassageCache,
    /// Logical time for least-recently-used eviction.
    clock: u64,
}

impl Worker {
    /// The thread's body: the loop, started again after a panic.
    fn run(mut self) {
        let _running = RunningGuard(self.health.clone());
        loop {
            match catch_unwind(AssertUnwindSafe(|| self.serve())) {
                Ok(()) => return,
                Err(panic) => self.recover(panic_message(&*panic)),
            }
        }
    }

    /// After a panic in the loop: what was in flight failed, and the kept
    /// caches may be half written, so all of it goes.
    fn recover(&mut self, message: String) {
        self.health.running.store(false, Ordering::SeqCst);
        tracing::error!(%message, "the inference worker panicked; starting it again");
        let in_flight: Vec<Active> = self.active.drain(..).collect();
        self.conversations.clear();
        self.prefixes.clear();
        self.passage_cache.clear();
        self.publish_passage_stats();
        self.active_count.store(0, Ordering::SeqCst);
        self.health.restarts.fetch_add(1, Ordering::SeqCst);
        self.health.running.store(true, Ordering::SeqCst);
        // Told last, so that whoever hears of the failure sees the worker back.
        for active in in_flight {
            let _ = active.job.events.send(internal_failure());
        }
    }

    /// A fault injected for this turn, taken so that it fires once.
    fn take_fault(&self, fault: Fault) -> bool {
        self.health
            .fault
            .compare_exchange(fault as u8, 0, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    /// Takes requests and advances generations until every handle is gone.
    fn serve(&mut self) {
        loop {
            if self.take_fault(Fault::PanicInLoop) {
                panic!("injected fault: a panic in the worker's loop");
            }
            while self.active.len() < self.config.max_active {
                let job = if self.active.is_empty() {
                    match self.receiver.blocking_recv() {
                        Some(job) => job,
                        None => return,
                    }
                } else {
                    match self.receiver.try_recv() {
                        Ok(job) => job,
                        Err(_) => break,
                    }
                };
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                self.start(job);
                self.active_count.store(self.active.len(), Ordering::SeqCst);
            }
            if let Some(active) = self.active.pop_front() {
                if let Some(active) = self.advance(active) {
                    self.active.push_back(active);
                }
            }
            self.active_count.store(self.active.len(), Ordering::SeqCst);
        }
    }

    fn start(&mut self, job: Job) {
        self.clock += 1;
        let started = Instant::now();
        match self.prepare(&job) {
            Ok((sequence, system_prefix, dropped)) => {
                let _ = job.events.send(GenerationEvent::Started {
                    prompt_tokens: sequence.prompt().len(),
                    reused_tokens: sequence.reused_tokens(),
                    dropped_messages: dropped,
                });
                self.active.push_back(Active {
                    job,
                    sequence,
                    system_prefix,
                    started,
                    first_token: None,
                    prefill_done: None,
                });
            }
            Err(error) => {
                let _ = job.events.send(GenerationEvent::Failed {
                    user_error: error.is_user_error(),
                    message: error.to_string(),
                });
            }
        }
    }

    /// Tokenizes the request and picks the cache that saves the most work.
    fn prepare(&mut self, job: &Job) -> Result<(Sequence, Option<Vec<u32>>, usize)> {
        let request = &job.request;
        let mut sampling = request.sampling.clone();
        let (tokens, prefix_len, dropped) = match &request.prompt {
            Prompt::Chat(messages) => {
                let fitted = self.model.fit_chat(messages, sampling.max_tokens)?;
                sampling.max_tokens = fitted.max_tokens;
                (fitted.tokens, fitted.system_prefix_len, fitted.dropped_messages)
            }
            Prompt::Tokens(tokens) => {
                let limit = self.model.context_length();
                if tokens.len() >= limit {
                    return Err(Error::ContextOverflow { needed: tokens.len() + 1, limit });
                }
                sampling.max_tokens = sampling.max_tokens.min(limit - tokens.len());
                (tokens.clone(), 0, 0)
            }
        };

        let conversation =
            request.conversation.as_ref().and_then(|key| self.conversations.remove(key)).map(|c| {
                let common = common_prefix(&c.tokens, &tokens);
                let mut cache = c.cache;
                cache.truncate(common);
                cache
            });
        let system_prefix = (prefix_len > 0).then(|| tokens[..prefix_len].to_vec());
        let clock = self.clock;
        let prefix = system_prefix.as_ref().and_then(|prefix| {
            let found = self.prefixes.iter_mut().find(|p| &p.tokens == prefix)?;
            found.last_used = clock;
            Some(found)
        });
        let cache = match (conversation, prefix) {
            (Some(cache), Some(prefix)) if prefix.tokens.len() > cache.len() => {
                prefix.cache.fork()?
            }
            (Some(cache), _) => cache,
            (None, Some(prefix)) => prefix.cache.fork()?,
            (None, None) => self.model.transformer.new_cache(),
        };
        let mut sequence = Sequence::new(tokens, cache, sampling)?;
        let needs_prefix_snapshot = system_prefix.as_ref().is_some_and(|prefix| {
            sequence.cache().len() < prefix.len()
                && !self.prefixes.iter().any(|p| &p.tokens == prefix)
        });
        if needs_prefix_snapshot {
            sequence.set_prefill_boundary(prefix_len);
        }
        // With the cache on, prefill chunks end at passage boundaries, so a
        // hit or a miss never changes the arithmetic of an answer; with it
        // off, the prompt is computed as it always was.
        if prefix_len > 0 && self.passage_cache.is_enabled() && !request.passages.is_empty() {
            let planned = plan(
                &self.model.tokenizer,
                &sequence,
                PlanSettings {
                    system_prefix_len: prefix_len,
                    reuse: self.config.passage_reuse,
                    recompute_percent: self.config.passage_recompute_percent,
                },
                &request.passages,
                &mut self.passage_cache,
            )?;
            sequence.plan_passages(planned);
            self.publish_passage_stats();
        }
        Ok((sequence, system_prefix.filter(|_| needs_prefix_snapshot), dropped))
    }

    fn publish_passage_stats(&self) {
        // A std mutex held for a copy, never across anything else.
        let stats = self.passage_cache.stats();
        *self.health.passage_cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = stats;
    }

    /// Runs one step of a generation; returns it if it is not finished.
    fn advance(&mut self, mut active: Active) -> Option<Active> {
        let cancelled = active.job.stop.load(Ordering::Relaxed) || active.job.events.is_closed();
        let step = if cancelled {
            Ok(Step::Finished { reason: FinishReason::Cancelled, text: String::new() })
        } else {
            let inject = self.take_fault(Fault::PanicInStep);
            let (model, config) = (
                &self.model,
                StepConfig { prefill_chunk: self.config.prefill_chunk, ignore_stop_tokens: false },
            );
            // A panic here fails this generation only; its cache goes with it.
            let stepped = catch_unwind(AssertUnwindSafe(|| {
                if inject {
                    panic!("injected fault: a panic in a generation's step");
                }
                active.sequence.step(model, config)
            }));
            match stepped {
                Ok(step) => step,
                Err(panic) => {
                    tracing::error!(message = %panic_message(&*panic), "a generation panicked");
                    let _ = active.job.events.send(internal_failure());
                    return None;
                }
            }
        };
        let step = match step {
            Ok(step) => step,
            Err(error) => {
                let _ = active.job.events.send(GenerationEvent::Failed {
                    user_error: error.is_user_error(),
                    message: error.to_string(),
                });
                return None;
            }
        };
        let computed = active.sequence.take_computed_passages();
        if !computed.is_empty() {
            for (key, kv) in computed {
                self.passage_cache.insert(key, kv);
            }
            self.publish_passage_stats();
        }
        if let Some(prefix) = &active.system_prefix {
            if active.sequence.cache().len() >= prefix.len() {
                self.remember_prefix(prefix.clone(), &active.sequence);
                active.system_prefix = None;
            }
        }
        if active.prefill_done.is_none() && !active.sequence.is_prefilling() {
            active.prefill_done = Some(Instant::now());
        }
        match step {
            Step::Prefilled => Some(active),
            Step::Token { text } => {
                active.first_token.get_or_insert_with(Instant::now);
                if !text.is_empty() {
                    let _ = active.job.events.send(GenerationEvent::Text(text));
                }
                Some(active)
            }
            Step::Finished { reason, text } => {
                if reason != FinishReason::Cancelled {
                    active.first_token.get_or_insert_with(Instant::now);
                }
                if !text.is_empty() {
                    let _ = active.job.events.send(GenerationEvent::Text(text));
                }
                let stats = stats(&active, reason);
                let _ = active.job.events.send(GenerationEvent::Finished(stats));
                self.keep_conversation(active);
                None
            }
        }
    }

    fn remember_prefix(&mut self, tokens: Vec<u32>, sequence: &Sequence) {
        let Ok(mut cache) = sequence.cache().fork() else { return };
        cache.truncate(tokens.len());
        if self.prefixes.len() >= MAX_PREFIXES {
            if let Some(oldest) =
                self.prefixes.iter().enumerate().min_by_key(|(_, p)| p.last_used).map(|(i, _)| i)
            {
                self.prefixes.swap_remove(oldest);
            }
        }
        self.prefixes.push(CachedPrefix { tokens, cache, last_used: self.clock });
    }

    fn keep_conversation(&mut self, active: Active) {
        let Some(key) = active.job.request.conversation.clone() else { return };
        let (cache, tokens) = active.sequence.into_cache();
        self.conversations.insert(key, CachedConversation { cache, tokens, last_used: self.clock });
        // Evict least recently used conversations over the memory budget.
        loop {
            let used: usize = self.conversations.values().map(|c| c.cache.memory_bytes()).sum();
            if used <= self.config.cache_budget_bytes {
                break;
            }
            let Some(oldest) =
                self.conversations.iter().min_by_key(|(_, c)| c.last_used).map(|(k, _)| k.clone())
            else {
                break;
            };
            self.conversations.remove(&oldest);
        }
    }
}

fn stats(active: &Active, reason: FinishReason) -> GenerationStats {
    let now = Instant::now();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let prefill_end = active.prefill_done.unwrap_or(now);
    let generated = active.sequence.generated().len();
    let decode = now.saturating_duration_since(prefill_end);
    GenerationStats {
        finish_reason: reason,
        prompt_tokens: active.sequence.prompt().len(),
        reused_tokens: active.sequence.reused_tokens(),
        passage_tokens_reused: active.sequence.passage_tokens_reused(),
        generated_tokens: generated,
        queued_ms: ms(active.started.saturating_duration_since(active.job.submitted)),
        ttft_ms: active
            .first_token
            .map(|t| ms(t.saturating_duration_since(active.job.submitted)))
            .unwrap_or(0.0),
        prefill_ms: ms(prefill_end.saturating_duration_since(active.started)),
        decode_ms: ms(decode),
        decode_tokens_per_s: if generated > 1 && decode.as_secs_f64() > 0.0 {
            (generated - 1) as f64 / decode.as_secs_f64()
        } else {
            0.0
        },
    }
}

/// What a generation lost to a panic reports: no details, which are logged.
fn internal_failure() -> GenerationEvent {
    GenerationEvent::Failed {
        message: "the model failed on this request (an internal error)".into(),
        user_error: false,
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(text), _) => (*text).to_owned(),
        (_, Some(text)) => text.clone(),
        _ => "a panic without a message".to_owned(),
    }
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}
