//! Retrieved passages' attention caches, kept between answers.
//!
//! A knowledge answer's prompt is mostly passages, and popular passages come
//! back answer after answer. Each passage of a prompt is computed after a
//! context (the prompt before it), cut out of the cache and kept here, keyed
//! by that context and its own tokens; the next prompt that holds the same
//! tokens after the same context gets the kept keys and values copied in
//! instead of computing them. How much context a key holds is
//! [`PassageReuse`]:
//!
//! - `Exact` (the default): everything before the passage. The copy is the
//!   very computation it replaces, so answers do not change; what is reused
//!   is a shared run of passages at the start of the prompt (popular
//!   questions retrieve the same passages in the same order).
//! - `Moved`: only the prompt's opening (system turn, the user turn's first
//!   words). A passage is computed after that alone and moved to wherever it
//!   sits (`kv_cache.rs` rotates its keys), so it is reused in any order next
//!   to any passages, but it no longer attends to the passages before it,
//!   which changes answers. A share of its positions, those the passages
//!   before it change most, is then recomputed in place (`model/blend.rs`);
//!   `docs/performance.md` measures what each share costs and wins back.
//!
//! In both, a passage is computed the same way whether or not it is kept,
//! so an answer never depends on which answers came before it. Nothing
//! stale is served: the key is the exact tokens, so a re-indexed passage
//! whose text changed, or another prompt template, simply misses. A cache
//! belongs to one worker and so to one model. Memory is bounded by a byte
//! budget; the least recently used passages go first.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::generate::{PlannedPassage, Sequence};
use crate::kv_cache::PassageKv;
use crate::tokenizer::Tokenizer;

/// Fewest tokens worth keeping: below this a passage is cheaper to compute
/// than to look up, copy and hold.
pub const MIN_PASSAGE_TOKENS: usize = 16;

/// What a kept passage is: the prompt tokens it was computed after (as a
/// 64-bit hash) and its own tokens (in full).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PassageKey {
    context: u64,
    tokens: Vec<u32>,
}

impl PassageKey {
    pub fn new(context: &[u32], tokens: &[u32]) -> Self {
        let mut hasher = DefaultHasher::new();
        context.hash(&mut hasher);
        Self { context: hasher.finish(), tokens: tokens.to_vec() }
    }

    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }
}

struct Kept {
    kv: Arc<PassageKv>,
    bytes: usize,
    last_used: u64,
}

/// Passage caches within a byte budget, least recently used evicted first.
pub struct PassageCache {
    budget_bytes: usize,
    used_bytes: usize,
    kept: HashMap<PassageKey, Kept>,
    clock: u64,
    hits: u64,
    misses: u64,
}

/// Counts for reports and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PassageCacheStats {
    pub passages: usize,
    pub bytes: usize,
    pub budget_bytes: usize,
    pub hits: u64,
    pub misses: u64,
}

impl PassageCache {
    /// A budget of 0 turns the cache off: nothing is kept.
    pub fn new(budget_bytes: usize) -> Self {
        Self { budget_bytes, used_bytes: 0, kept: HashMap::new(), clock: 0, hits: 0, misses: 0 }
    }

    pub fn is_enabled(&self) -> bool {
        self.budget_bytes > 0
    }

    /// The kept cache of `key`, counted as a hit or a miss.
    pub fn get(&mut self, key: &PassageKey) -> Option<Arc<PassageKv>> {
        self.clock += 1;
        match self.kept.get_mut(key) {
            Some(kept) => {
                kept.last_used = self.clock;
                self.hits += 1;
                Some(kept.kv.clone())
            }
            None => {
                self.misses += 1;
                None
            }
        }
    }

    /// Keeps `kv` for `key`, evicting the least recently used passages to
    /// stay within the budget. A passage larger than the whole budget is
    /// not kept.
    pub fn insert(&mut self, key: PassageKey, kv: PassageKv) {
        let bytes = kv.memory_bytes() + key.tokens.len() * 4;
        if bytes > self.budget_bytes || self.kept.contains_key(&key) {
            return;
        }
        while self.used_bytes + bytes > self.budget_bytes {
            let Some(oldest) =
                self.kept.iter().min_by_key(|(_, kept)| kept.last_used).map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(evicted) = self.kept.remove(&oldest) {
                self.used_bytes -= evicted.bytes;
            }
        }
        self.clock += 1;
        self.used_bytes += bytes;
        self.kept.insert(key, Kept { kv: Arc::new(kv), bytes, last_used: self.clock });
    }

    /// Forgets everything (after a fault, when a cache may be half written).
    pub fn clear(&mut self) {
        self.kept.clear();
        self.used_bytes = 0;
    }

    pub fn stats(&self) -> PassageCacheStats {
        PassageCacheStats {
            passages: self.kept.len(),
            bytes: self.used_bytes,
            budget_bytes: self.budget_bytes,
            hits: self.hits,
            misses: self.misses,
        }
    }
}

/// When a kept passage cache may stand in for computing the passage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PassageReuse {
    /// Only after exactly the same tokens (the same system prompt, opening
    /// words and earlier passages, in order): the answer is the same as
    /// without the cache, bit for bit. Popular questions, and questions
    /// whose first passages are popular, skip that part of the prefill.
    #[default]
    Exact,
    /// After the same system prompt and opening words, in any order and
    /// next to any other passages: each passage is computed after those
    /// alone and moved to where it sits. Much more is reused, but the
    /// passages no longer attend to each other, which changes answers
    /// (measured in `docs/performance.md`).
    Moved,
}

impl std::str::FromStr for PassageReuse {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, Self::Err> {
        match text {
            "exact" => Ok(Self::Exact),
            "moved" => Ok(Self::Moved),
            other => Err(format!("`{other}` is not a passage reuse (exact, moved)")),
        }
    }
}

/// Most tokens between the system turn and a prompt's first passage for its
/// passages to be moved ([`PassageReuse::Moved`]): more means history, and
/// passages computed after one conversation's history serve no other.
const MAX_PASSAGE_HEADER_TOKENS: usize = 32;

/// How [`plan`] finds and keys a prompt's passages.
#[derive(Debug, Clone, Copy)]
pub struct PlanSettings {
    /// Length of the prompt's system turn; passages are looked for after it.
    pub system_prefix_len: usize,
    pub reuse: PassageReuse,
    /// With [`PassageReuse::Moved`], the share of each moved passage's
    /// positions recomputed after the passages before it, in percent.
    pub recompute_percent: u8,
}

/// Finds `texts` in the sequence's prompt after what its cache already
/// holds, each with the context it is computed after and its kept cache if
/// `cache` has one (see [`PassageReuse`]).
pub fn plan(
    tokenizer: &Tokenizer,
    sequence: &Sequence,
    settings: PlanSettings,
    texts: &[String],
    cache: &mut PassageCache,
) -> Result<Vec<PlannedPassage>> {
    let prompt = sequence.prompt();
    // Each text in the forms it may take inside the prompt, longest first.
    // A passage usually follows a space ("[1] text"), which byte-level
    // tokenizers fold into its first token; and some tokenizers (Qwen's)
    // fold the newlines after it into its last one (".\n\n"), which then
    // belongs to the template words after it and is computed with them.
    const FORMS: usize = 4;
    let mut candidates = Vec::with_capacity(texts.len() * FORMS);
    for text in texts.iter().map(|t| t.trim()).filter(|t| !t.is_empty()) {
        let spaced = tokenizer.encode_untrusted(&format!(" {text}"))?;
        let bare = tokenizer.encode_untrusted(text)?;
        let all_but_last = |tokens: &[u32]| tokens[..tokens.len().saturating_sub(1)].to_vec();
        let shortened = [all_but_last(&spaced), all_but_last(&bare)];
        candidates.extend([spaced, bare]);
        candidates.extend(shortened);
    }
    let prefix_len = settings.system_prefix_len;
    let from = sequence.cache().len().max(prefix_len);
    let mut placed = vec![false; candidates.len() / FORMS];
    let located: Vec<(usize, usize)> = locate(prompt, from, &candidates)
        .into_iter()
        .filter(|&(_, index)| !std::mem::replace(&mut placed[index / FORMS], true))
        .collect();
    let first = located.first().map_or(0, |&(at, _)| at);
    let moved = settings.reuse == PassageReuse::Moved
        && first.saturating_sub(prefix_len) <= MAX_PASSAGE_HEADER_TOKENS;
    let mut span_start = from;
    Ok(located
        .into_iter()
        .map(|(at, index)| {
            let end = at + candidates[index].len();
            // Reused exactly, a passage takes the template words before it
            // ("\n\n[2]") along: they too follow the same tokens, and each
            // small computation between two kept passages costs nearly as
            // much as a decoding step. Moved, they are computed in place:
            // their numbers change with the order.
            let (start, context_len) = if moved { (at, first) } else { (span_start, span_start) };
            span_start = end;
            let key = PassageKey::new(&prompt[..context_len], &prompt[start..end]);
            let kept = cache.get(&key);
            let recompute_percent = if moved { settings.recompute_percent } else { 0 };
            PlannedPassage { at: start, context_len, key, kept, recompute_percent }
        })
        .collect())
}

/// Where each passage sits in `prompt`, at or after `from`: the first
/// occurrence of its tokens that does not overlap a longer passage's, and
/// that leaves at least one prompt token after it (the last prompt token is
/// always computed: its logits pick the first answer token). Returned in
/// prompt order as `(position, index into passages)`.
pub fn locate(prompt: &[u32], from: usize, passages: &[Vec<u32>]) -> Vec<(usize, usize)> {
    let mut found: Vec<(usize, usize)> = Vec::new();
    // Longest first: a passage that begins another one's text must not
    // take the longer one's place.
    let mut longest_first: Vec<usize> = (0..passages.len()).collect();
    longest_first.sort_by_key(|&i| std::cmp::Reverse(passages[i].len()));
    for index in longest_first {
        let tokens = &passages[index];
        if tokens.len() < MIN_PASSAGE_TOKENS || prompt.len() <= tokens.len() {
            continue;
        }
        let last_start = prompt.len() - tokens.len() - 1;
        let overlaps = |at: usize| {
            found
                .iter()
                .any(|&(other, i)| at < other + passages[i].len() && other < at + tokens.len())
        };
        if let Some(at) = (from..=last_start)
            .find(|&at| prompt[at..at + tokens.len()] == tokens[..] && !overlaps(at))
        {
            found.push((at, index));
        }
    }
    found.sort_unstable();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(range: std::ops::Range<u32>) -> Vec<u32> {
        range.collect()
    }

    #[test]
    fn passages_are_found_in_prompt_order_and_never_at_the_end() {
        let first = tokens(100..120);
        let second = tokens(200..220);
        let mut prompt = vec![1, 2, 3];
        prompt.extend(&second);
        prompt.extend([4, 5]);
        prompt.extend(&first);
        prompt.push(6);
        let found = locate(&prompt, 0, &[first.clone(), second.clone()]);
        assert_eq!(found, vec![(3, 1), (25, 0)]);
        // Not before `from`.
        assert_eq!(locate(&prompt, 4, &[first.clone(), second.clone()]), vec![(25, 0)]);
        // A passage that ends the prompt is left to compute.
        prompt.pop();
        assert_eq!(locate(&prompt, 0, &[first, second]), vec![(3, 1)]);
    }

    /// A cut of `len` positions of a tiny model's cache.
    fn cut(len: usize) -> PassageKv {
        let config = crate::kv_cache::test_config(true);
        let mut cache = crate::model::KvCache::new(&config);
        cache.reserve(len);
        cache.len = len;
        cache.cut(0, len)
    }

    #[test]
    fn the_budget_holds_and_the_least_recently_used_goes_first() {
        let bytes = cut(20).memory_bytes() + 20 * 4;
        let mut cache = PassageCache::new(bytes * 2 + bytes / 2);
        let key = |n: u32| PassageKey::new(&[1, 2], &tokens(n * 100..n * 100 + 20));
        cache.insert(key(1), cut(20));
        cache.insert(key(2), cut(20));
        assert!(cache.get(&key(1)).is_some(), "1 is now the most recently used");
        cache.insert(key(3), cut(20));
        assert!(cache.get(&key(2)).is_none(), "2 was the least recently used");
        assert!(cache.get(&key(1)).is_some() && cache.get(&key(3)).is_some());
        let stats = cache.stats();
        assert_eq!(stats.passages, 2);
        assert!(stats.bytes <= stats.budget_bytes);
        assert_eq!((stats.hits, stats.misses), (3, 1));
    }

    #[test]
    fn another_context_or_a_zero_budget_keeps_nothing_shared() {
        let mut cache = PassageCache::new(1 << 20);
        let passage = tokens(0..20);
        cache.insert(PassageKey::new(&[1], &passage), cut(20));
        assert!(cache.get(&PassageKey::new(&[2], &passage)).is_none());
        assert!(cache.get(&PassageKey::new(&[1], &passage)).is_some());

        let mut off = PassageCache::new(0);
        assert!(!off.is_enabled());
        off.insert(PassageKey::new(&[1], &passage), cut(20));
        assert_eq!(off.stats().passages, 0);
    }

    #[test]
    fn a_passage_that_begins_a_longer_one_does_not_take_its_place() {
        let short = tokens(100..120);
        let mut long = short.clone();
        long.extend(300..310);
        let mut prompt = vec![1];
        prompt.extend(&long);
        prompt.push(2);
        prompt.extend(&short);
        prompt.push(3);
        assert_eq!(locate(&prompt, 0, &[short, long]), vec![(1, 1), (32, 0)]);
    }

    #[test]
    fn short_and_absent_passages_are_skipped() {
        let prompt = tokens(0..100);
        assert!(locate(&prompt, 0, &[tokens(10..14)]).is_empty());
        assert!(locate(&prompt, 0, &[tokens(500..540)]).is_empty());
    }
}
