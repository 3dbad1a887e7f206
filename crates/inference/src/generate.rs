//! Token-by-token generation: sampling settings and one sequence's state.
//!
//! A [`Sequence`] advances one step at a time (a prefill chunk or one new
//! token), so that the worker can interleave many conversations fairly.

use candle_transformers::generation::{LogitsProcessor, Sampling};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::kv_cache::PassageKv;
use crate::model::KvCache;
use crate::passage_cache::PassageKey;
use crate::tokenizer::Utf8Stream;
use crate::LanguageModel;

/// How to pick tokens. `temperature == 0` is greedy decoding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplingConfig {
    pub temperature: f64,
    pub top_k: Option<usize>,
    pub top_p: Option<f64>,
    /// Divides the logits of recently generated tokens; 1.0 turns it off.
    pub repetition_penalty: f32,
    /// How many of the latest tokens the penalty looks at.
    pub repetition_window: usize,
    pub seed: u64,
    pub max_tokens: usize,
}

impl SamplingConfig {
    pub fn greedy(max_tokens: usize) -> Self {
        Self {
            temperature: 0.0,
            top_k: None,
            top_p: None,
            repetition_penalty: 1.0,
            repetition_window: 64,
            seed: 0,
            max_tokens,
        }
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::InvalidSettings(m.into()));
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return bad("temperature must be a finite number >= 0");
        }
        if matches!(self.top_p, Some(p) if !(p > 0.0 && p <= 1.0)) {
            return bad("top_p must be in (0, 1]");
        }
        if self.top_k == Some(0) {
            return bad("top_k must be at least 1");
        }
        if !(self.repetition_penalty >= 1.0 && self.repetition_penalty.is_finite()) {
            return bad("repetition_penalty must be >= 1.0");
        }
        if self.max_tokens == 0 {
            return bad("max_tokens must be at least 1");
        }
        Ok(())
    }

    fn sampling(&self) -> Sampling {
        let temperature = self.temperature;
        if temperature == 0.0 {
            return Sampling::ArgMax;
        }
        match (self.top_k, self.top_p) {
            (None, None) => Sampling::All { temperature },
            (Some(k), None) => Sampling::TopK { k, temperature },
            (None, Some(p)) => Sampling::TopP { p, temperature },
            (Some(k), Some(p)) => Sampling::TopKThenTopP { k, p, temperature },
        }
    }
}

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model ended its turn.
    Stop,
    /// `max_tokens` was reached.
    Length,
    /// The reader went away or pressed stop.
    Cancelled,
}

/// The outcome of one [`Sequence::step`].
#[derive(Debug, PartialEq)]
pub enum Step {
    /// Part of the prompt went into the cache; no token yet.
    Prefilled,
    /// A token was generated; `text` is what became readable (possibly empty
    /// while a multi-byte character is incomplete).
    Token { text: String },
    /// Generation ended; `text` flushes what was held back.
    Finished { reason: FinishReason, text: String },
}

/// Settings of how a sequence feeds its prompt.
#[derive(Debug, Clone, Copy)]
pub struct StepConfig {
    /// Largest number of prompt tokens computed in one step. Smaller chunks
    /// let other conversations get their tokens out in between.
    pub prefill_chunk: usize,
    /// Generate exactly `max_tokens` (benchmarks measure fixed lengths).
    pub ignore_stop_tokens: bool,
}

/// One generation in progress.
pub struct Sequence {
    prompt: Vec<u32>,
    cache: KvCache,
    generated: Vec<u32>,
    /// The token sampled last and not yet fed to the model.
    pending: Option<u32>,
    sampler: LogitsProcessor,
    config: SamplingConfig,
    utf8: Utf8Stream,
    /// Prompt positions that came from a cache instead of being computed.
    reused: usize,
    /// Ask the sequence to cut its next prefill chunk here (to snapshot a
    /// shared prefix).
    stop_prefill_at: Option<usize>,
    /// Passages in the prompt still ahead of the cache, in prompt order.
    passages: std::collections::VecDeque<PlannedPassage>,
    /// Passages computed by this sequence, cut out for the passage cache.
    computed_passages: Vec<(PassageKey, PassageKv)>,
    /// Passage positions copied from the passage cache.
    passage_tokens_reused: usize,
}

/// A passage found in the prompt at `at`: copied in from the passage cache
/// (`kept`), or computed after the first `context_len` prompt positions and
/// then kept. With `context_len == at` it is computed in place, after
/// everything before it; with less, after that shorter context alone, and
/// moved to `at`, where `recompute_percent` % of its positions are then
/// recomputed after everything before them (`model/blend.rs`).
pub struct PlannedPassage {
    pub at: usize,
    pub context_len: usize,
    pub key: PassageKey,
    pub kept: Option<std::sync::Arc<PassageKv>>,
    pub recompute_percent: u8,
}

impl Sequence {
    /// `cache` may already hold a prefix of `prompt`; only the rest is
    /// computed. A cache holding anything else is cut back to the common part.
    pub fn new(prompt: Vec<u32>, mut cache: KvCache, config: SamplingConfig) -> Result<Self> {
        config.validate()?;
        if prompt.is_empty() {
            return Err(Error::InvalidSettings("the prompt is empty".into()));
        }
        // Keep at least one prompt token to compute: its logits pick the
        // first new token.
        if cache.len() >= prompt.len() {
            cache.truncate(prompt.len() - 1);
        }
        let reused = cache.len();
        let sampler = LogitsProcessor::from_sampling(config.seed, config.sampling());
        Ok(Self {
            prompt,
            cache,
            generated: Vec::new(),
            pending: None,
            sampler,
            config,
            utf8: Utf8Stream::new(),
            reused,
            stop_prefill_at: None,
            passages: Default::default(),
            computed_passages: Vec::new(),
            passage_tokens_reused: 0,
        })
    }

    /// The passages of the prompt, by position. Each is copied in from its
    /// kept cache, or computed after its context and then kept. A passage
    /// that does not sit in the prompt at its position, starts inside the
    /// cache already held or runs into the prompt's last token is computed
    /// in place like the rest of the prompt, and not kept.
    pub fn plan_passages(&mut self, mut planned: Vec<PlannedPassage>) {
        planned.sort_by_key(|p| p.at);
        let mut end = self.cache.len();
        for passage in planned {
            let len = passage.key.tokens().len();
            let fits = passage.at >= end
                && passage.context_len <= passage.at
                && passage.at + len < self.prompt.len()
                && self.prompt[passage.at..passage.at + len] == *passage.key.tokens();
            if fits {
                end = passage.at + len;
                self.passages.push_back(passage);
            }
        }
    }

    /// Passages this sequence computed since the last call, for the cache.
    pub fn take_computed_passages(&mut self) -> Vec<(PassageKey, PassageKv)> {
        std::mem::take(&mut self.computed_passages)
    }

    /// Prompt positions copied from the passage cache.
    pub fn passage_tokens_reused(&self) -> usize {
        self.passage_tokens_reused
    }

    /// Puts the passage that starts where the cache ends into it when that
    /// takes no computing in place: from its kept cache, or computed after
    /// a shorter context alone (one step's work). Returns whether it did.
    fn add_passage(&mut self, model: &LanguageModel) -> Result<bool> {
        let Some(next) = self.passages.front() else { return Ok(false) };
        let in_place = next.kept.is_none() && next.context_len == next.at;
        if next.at != self.cache.len() || in_place {
            return Ok(false);
        }
        let passage = self.passages.pop_front().expect("the front passage");
        let rope = model.transformer.rope_shift();
        let tokens = passage.key.tokens().to_vec();
        match passage.kept {
            Some(kept) => {
                self.cache.append_moved(&kept, rope);
                self.passage_tokens_reused += kept.len();
            }
            None => {
                let context = passage.context_len;
                let mut alone = self.cache.prefix(context);
                model.transformer.forward(&tokens, &mut alone)?;
                let computed = alone.cut(context, tokens.len());
                self.cache.append_moved(&computed, rope);
                self.computed_passages.push((passage.key, computed));
            }
        }
        if passage.context_len < passage.at {
            // What is kept stays as computed alone; only this prompt's copy
            // learns what came before it.
            let percent = passage.recompute_percent;
            model.transformer.recompute_moved(&tokens, passage.at, &mut self.cache, percent)?;
        }
        Ok(true)
    }

    /// Cuts out the passage computed in place once the cache holds all of it.
    fn keep_passage_computed_in_place(&mut self) {
        let Some(next) = self.passages.front() else { return };
        let len = next.key.tokens().len();
        if next.kept.is_none() && next.context_len == next.at && next.at + len <= self.cache.len() {
            let computed = self.cache.cut(next.at, len);
            let passage = self.passages.pop_front().expect("the front passage");
            self.computed_passages.push((passage.key, computed));
        }
    }

    pub fn prompt(&self) -> &[u32] {
        &self.prompt
    }

    pub fn generated(&self) -> &[u32] {
        &self.generated
    }

    pub fn reused_tokens(&self) -> usize {
        self.reused
    }

    pub fn is_prefilling(&self) -> bool {
        self.cache.len() < self.prompt.len()
    }

    pub fn cache(&self) -> &KvCache {
        &self.cache
    }

    pub fn set_prefill_boundary(&mut self, position: usize) {
        self.stop_prefill_at = Some(position);
    }

    /// Gives back the cache and the tokens it holds, for reuse by the next
    /// turn of the conversation.
    pub fn into_cache(self) -> (KvCache, Vec<u32>) {
        let mut tokens = self.prompt;
        tokens.extend_from_slice(&self.generated);
        tokens.truncate(self.cache.len());
        (self.cache, tokens)
    }

    /// Does one unit of work: a prefill chunk or one generated token.
    pub fn step(&mut self, model: &LanguageModel, config: StepConfig) -> Result<Step> {
        let logits = if let Some(token) = self.pending.take() {
            model.transformer.forward(&[token], &mut self.cache)?
        } else {
            if self.add_passage(model)? {
                return Ok(Step::Prefilled);
            }
            let start = self.cache.len();
            let mut end = (start + config.prefill_chunk.max(1)).min(self.prompt.len());
            // Chunks end where passages start and end whatever the cache
            // holds, so that a passage computed in place is the same
            // arithmetic as the kept copy that later replaces it.
            let (next_start, next_end) = self
                .passages
                .front()
                .map(|p| (Some(p.at), Some(p.at + p.key.tokens().len())))
                .unwrap_or_default();
            for boundary in [self.stop_prefill_at, next_start, next_end].into_iter().flatten() {
                if boundary > start && boundary < end {
                    end = boundary;
                }
            }
            let logits = model.transformer.forward(&self.prompt[start..end], &mut self.cache)?;
            self.keep_passage_computed_in_place();
            if end < self.prompt.len() {
                return Ok(Step::Prefilled);
            }
            logits
        };
        let window = self.config.repetition_window;
        let penalty = self.config.repetition_penalty;
        let recent = &self.generated[self.generated.len().saturating_sub(window)..];
        let token = self.sampler.sample_f(&logits, |logits| {
            if penalty != 1.0 {
                apply_repetition_penalty(logits, penalty, recent)
            }
        })?;
        if model.is_stop_token(token) && !config.ignore_stop_tokens {
            return Ok(Step::Finished { reason: FinishReason::Stop, text: self.utf8.finish() });
        }
        self.generated.push(token);
        let text = self.utf8.push(model.tokenizer.token_bytes(token));
        if self.generated.len() >= self.config.max_tokens
            || self.cache.len() + 1 >= model.context_length()
        {
            let text = text + &self.utf8.finish();
            return Ok(Step::Finished { reason: FinishReason::Length, text });
        }
        self.pending = Some(token);
        Ok(Step::Token { text })
    }
}

/// Makes recently used tokens less likely, as in the CTRL paper: positive
/// logits are divided by the penalty, negative ones multiplied.
fn apply_repetition_penalty(logits: &mut [f32], penalty: f32, recent: &[u32]) {
    let mut seen = std::collections::HashSet::with_capacity(recent.len());
    for &token in recent {
        if !seen.insert(token) {
            continue;
        }
        if let Some(logit) = logits.get_mut(token as usize) {
            *logit = if *logit >= 0.0 { *logit / penalty } else { *logit * penalty };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repetition_penalty_lowers_seen_tokens_once() {
        let mut logits = vec![2.0, -2.0, 1.0];
        apply_repetition_penalty(&mut logits, 2.0, &[0, 1, 0]);
        assert_eq!(logits, vec![1.0, -4.0, 1.0]);
    }

    #[test]
    fn settings_are_validated() {
        let ok = SamplingConfig::greedy(8);
        assert!(ok.validate().is_ok());
        for bad in [
            SamplingConfig { temperature: -1.0, ..ok.clone() },
            SamplingConfig { top_p: Some(1.5), ..ok.clone() },
            SamplingConfig { top_k: Some(0), ..ok.clone() },
            SamplingConfig { repetition_penalty: 0.5, ..ok.clone() },
            SamplingConfig { max_tokens: 0, ..ok.clone() },
        ] {
            assert!(bad.validate().is_err(), "{bad:?} should be rejected");
        }
    }
}
