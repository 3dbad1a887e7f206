//! The passage cache's memory on a large shop: `shopchat bench-passage-cache`.
//!
//! Questions are asked over a corpus of any size (10k passages by default)
//! with the popularity of a shop's traffic: the question of rank `r` comes
//! with probability proportional to `1 / r` (Zipf), so the ten most asked
//! make about 30 % of the traffic and the long tail comes up now and then.
//! A question retrieves the same passages in the same order each time it
//! is asked (its own entry and the two after it). Each answer's passages
//! are planned against one byte-bounded cache, exactly as the worker does,
//! and after every answer the cache's bytes are compared with its budget.
//! The prefill stops at the first token: memory and reuse are what is
//! measured here.

use serde::Serialize;

use crate::bench::{first_token_ms, median, peak_rss_mb, rag_conversation};
use crate::error::Result;
use crate::passage_cache::{PassageCache, PassageReuse};
use crate::LanguageModel;

#[derive(Debug, Clone)]
pub struct PassageMemoryConfig {
    pub budget_bytes: usize,
    pub answers: usize,
    /// Passages per answer.
    pub per_answer: usize,
    pub seed: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PassageMemoryReport {
    pub model: String,
    pub corpus_passages: usize,
    pub answers: usize,
    pub budget_mb: f64,
    /// The most the cache held after any answer.
    pub max_cache_mb: f64,
    pub within_budget: bool,
    pub kept_passages_at_end: usize,
    pub hits: u64,
    pub misses: u64,
    pub hit_rate: f64,
    /// Median first-token time of answers whose passages were all kept, and
    /// of the others.
    pub ttft_all_kept_ms: Option<f64>,
    pub ttft_some_computed_ms: Option<f64>,
    pub peak_rss_mb: f64,
}

/// Draws ranks from `0..n` with probability proportional to `1 / (rank + 1)`.
struct Zipf {
    cumulative: Vec<f64>,
    state: u64,
}

impl Zipf {
    fn new(n: usize, seed: u64) -> Self {
        let mut total = 0.0;
        let cumulative = (1..=n.max(1))
            .map(|rank| {
                total += 1.0 / rank as f64;
                total
            })
            .collect();
        Self { cumulative, state: seed.max(1) }
    }

    fn next(&mut self) -> usize {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        let u = (self.state >> 11) as f64 / (1u64 << 53) as f64;
        let target = u * self.cumulative.last().copied().unwrap_or(0.0);
        self.cumulative.partition_point(|&c| c < target).min(self.cumulative.len() - 1)
    }
}

pub fn run(
    model: &LanguageModel,
    name: &str,
    corpus: &[String],
    config: &PassageMemoryConfig,
) -> Result<PassageMemoryReport> {
    let mut cache = PassageCache::new(config.budget_bytes);
    let mut questions = Zipf::new(corpus.len(), config.seed);
    // The system turn, computed once as the worker keeps it.
    let probe = rag_conversation(&corpus[..1], "?");
    let fitted = model.fit_chat(&probe, 1)?;
    let mut system = model.transformer.new_cache();
    model.transformer.forward(&fitted.tokens[..fitted.system_prefix_len.max(1)], &mut system)?;
    system.truncate(fitted.system_prefix_len);

    let (mut max_bytes, mut all_kept, mut some_computed) = (0usize, Vec::new(), Vec::new());
    for answer in 0..config.answers {
        let asked = questions.next();
        let passages: Vec<String> = (0..config.per_answer.min(corpus.len()))
            .map(|i| corpus[(asked + i) % corpus.len()].clone())
            .collect();
        let messages = rag_conversation(&passages, &format!("Question {answer}: what applies?"));
        let misses_before = cache.stats().misses;
        let ms = first_token_ms(
            model,
            &messages,
            &passages,
            &system,
            (PassageReuse::Exact, 0, &mut cache),
        )?;
        let stats = cache.stats();
        max_bytes = max_bytes.max(stats.bytes);
        if stats.misses == misses_before {
            all_kept.push(ms);
        } else {
            some_computed.push(ms);
        }
    }
    let stats = cache.stats();
    let looked_up = (stats.hits + stats.misses).max(1);
    let mb = |bytes: usize| bytes as f64 / (1024.0 * 1024.0);
    Ok(PassageMemoryReport {
        model: name.to_owned(),
        corpus_passages: corpus.len(),
        answers: config.answers,
        budget_mb: mb(config.budget_bytes),
        max_cache_mb: mb(max_bytes),
        within_budget: max_bytes <= config.budget_bytes,
        kept_passages_at_end: stats.passages,
        hits: stats.hits,
        misses: stats.misses,
        hit_rate: stats.hits as f64 / looked_up as f64,
        ttft_all_kept_ms: (!all_kept.is_empty()).then(|| median(all_kept)),
        ttft_some_computed_ms: (!some_computed.is_empty()).then(|| median(some_computed)),
        peak_rss_mb: peak_rss_mb(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn popular_questions_come_back_and_the_tail_is_reached() {
        let mut zipf = Zipf::new(10_000, 7);
        let picks: Vec<usize> = (0..20_000).map(|_| zipf.next()).collect();
        let top_ten = picks.iter().filter(|&&p| p < 10).count();
        let last_half = picks.iter().filter(|&&p| p >= 5_000).count();
        // 1/r over 10k ranks: H(10) / H(10000) = 0.30, the last half 0.07.
        assert!((5_400..6_600).contains(&top_ten), "{top_ten}");
        assert!((1_000..1_900).contains(&last_half), "{last_half}");
        assert!(picks.iter().all(|&p| p < 10_000));
    }
}
