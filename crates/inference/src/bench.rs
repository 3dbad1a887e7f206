//! Speed figures for one model: the numbers `shopchat bench` prints.
//!
//! Measured on a RAG-shaped prompt (a system turn with instructions, then a
//! user turn with numbered passages and a question) because that is what
//! the chat server sends.
//! Each figure is the median of several runs.

use std::time::Instant;

use serde::Serialize;
use shopchat_core::ChatMessage;

use crate::error::Result;
use crate::generate::{SamplingConfig, Sequence, Step, StepConfig};
use crate::model::KvCache;
use crate::passage_cache::{plan, PassageCache, PassageReuse, PlanSettings};
use crate::LanguageModel;

#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Approximate prompt length in tokens.
    pub prompt_tokens: usize,
    /// Tokens generated to measure decoding.
    pub decode_tokens: usize,
    pub runs: usize,
    /// Share of each moved passage recomputed in the last TTFT case, in
    /// percent ([`PlanSettings::recompute_percent`]).
    pub recompute_percent: u8,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub model: String,
    pub load_s: f64,
    pub prompt_tokens: usize,
    pub prefill_tps: f64,
    pub decode_tokens: usize,
    pub decode_tps: f64,
    /// Whole prompt computed from nothing.
    pub ttft_cold_ms: f64,
    /// System turn taken from the prefix cache; passages and question
    /// computed.
    pub ttft_warm_ms: f64,
    /// A new question on passages kept from an earlier answer, in the same
    /// order ([`PassageReuse::Exact`]): only the question is computed.
    pub ttft_passages_exact_ms: f64,
    /// A new question on kept passages in another order
    /// ([`PassageReuse::Moved`]): the question and the few tokens between
    /// passages are computed.
    pub ttft_passages_moved_ms: f64,
    /// The same with `recompute_percent` % of each moved passage recomputed
    /// after the passages before it.
    pub ttft_passages_moved_recomputed_ms: f64,
    pub recompute_percent: u8,
    pub peak_rss_mb: f64,
    pub threads: usize,
    /// The kernel set chosen (`avx2`, `scalar`) and how many matrices it runs.
    pub kernels: String,
}

const PASSAGES: &[&str] = &[
    "Delivery times. Orders placed before 2 pm on a working day leave our warehouse the same day. Standard delivery takes 2-4 working days within the UK, 3-6 working days to the EU and 5-8 working days to the US. Express delivery arrives the next working day in the UK and within 2 working days in most EU countries.",
    "Returns. You can return most items within 30 days of delivery for a full refund. Items must be unworn, with their tags attached. Underwear, swimwear, earrings, gift cards and personalised items cannot be returned for hygiene or legal reasons. Start a return from your account page or through this chat with your order number and email address.",
    "Refunds. Once your return reaches our warehouse we check it within 2 working days and refund the original payment method. Banks usually show the refund within 5 working days after that. Shipping costs are refunded only when the item was faulty or we sent the wrong item.",
    "Payment. We accept Visa, Mastercard, American Express, PayPal, Apple Pay and Google Pay. Your card is charged when your order is dispatched, not when it is placed. If a payment fails, your order stays on hold for 48 hours so that you can try another method from your account page.",
    "Tracking. As soon as your parcel leaves our warehouse you receive an email with a tracking link. Tracking can take up to 24 hours to show the first scan. If your parcel has not moved for 5 working days, contact us and we will open an investigation with the carrier.",
    "Exchanges. We do not swap items directly. To change a size or a colour, return the item for a refund and place a new order; this is the fastest way to get the item you want while stock lasts. Returns of exchanged sizes are free in the UK and the EU.",
];

const SYSTEM_INSTRUCTIONS: &str = "You are the customer service assistant of an online clothing shop. Answer the shopper's question using only the numbered passages below. Cite the passage you used as [1], [2] and so on. If the passages do not answer the question, say that you do not know and offer to connect the shopper with a person. Keep answers short and friendly.";

const QUESTION: &str = "How long do I have to return a dress, and when will I get my money back?";
const OTHER_QUESTION: &str = "Which cards do you take, and when is my card charged?";

/// Passages enough for a prompt of about `target` tokens, laid out as the
/// chat server sends them: instructions in the system turn, numbered
/// passages and the question in the user turn.
fn rag_passages(model: &LanguageModel, target: usize) -> Result<Vec<String>> {
    let mut passages = Vec::new();
    loop {
        let n = passages.len();
        let text = PASSAGES[n % PASSAGES.len()];
        // Repeats are told apart, as a real shop's passages are.
        passages.push(match n / PASSAGES.len() {
            0 => text.to_owned(),
            round => format!("{text} (Section {}.{}.)", round + 1, n % PASSAGES.len() + 1),
        });
        if model.encode_chat(&rag_conversation(&passages, QUESTION))?.len() >= target || n > 200 {
            return Ok(passages);
        }
    }
}

pub(crate) fn rag_conversation(passages: &[String], question: &str) -> Vec<ChatMessage> {
    let numbered: Vec<String> =
        passages.iter().enumerate().map(|(n, text)| format!("[{}] {text}", n + 1)).collect();
    vec![
        ChatMessage::system(SYSTEM_INSTRUCTIONS),
        ChatMessage::user(format!("Passages:\n{}\n\nQuestion: {question}", numbered.join("\n\n"))),
    ]
}

/// Milliseconds to the first token of `messages`, starting from the cached
/// system turn and with the passages planned against `kept`; the passages
/// computed go into `kept`.
pub(crate) fn first_token_ms(
    model: &LanguageModel,
    messages: &[ChatMessage],
    passages: &[String],
    system: &KvCache,
    (reuse, recompute_percent, kept): (PassageReuse, u8, &mut PassageCache),
) -> Result<f64> {
    let started = Instant::now();
    let fitted = model.fit_chat(messages, 1)?;
    let mut sequence = Sequence::new(fitted.tokens, system.fork()?, SamplingConfig::greedy(1))?;
    let settings =
        PlanSettings { system_prefix_len: fitted.system_prefix_len, reuse, recompute_percent };
    let planned = plan(&model.tokenizer, &sequence, settings, passages, kept)?;
    sequence.plan_passages(planned);
    let config = StepConfig { prefill_chunk: 128, ignore_stop_tokens: true };
    while matches!(sequence.step(model, config)?, Step::Prefilled) {}
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    for (key, kv) in sequence.take_computed_passages() {
        kept.insert(key, kv);
    }
    Ok(ms)
}

pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// Runs the benchmark. Takes a few seconds per run for the small model.
pub fn run(model: &LanguageModel, name: &str, config: &BenchConfig) -> Result<BenchReport> {
    let passages = rag_passages(model, config.prompt_tokens)?;
    let messages = rag_conversation(&passages, QUESTION);
    let fitted = model.fit_chat(&messages, config.decode_tokens)?;
    // The same passages for another question, and in reverse order.
    let same_passages = rag_conversation(&passages, OTHER_QUESTION);
    let reversed: Vec<String> = passages.iter().rev().cloned().collect();
    let moved_passages = rag_conversation(&reversed, OTHER_QUESTION);
    let prompt = fitted.tokens;
    let whole_prompt = StepConfig { prefill_chunk: prompt.len(), ignore_stop_tokens: true };
    let sampling = SamplingConfig::greedy(config.decode_tokens);

    let (mut cold, mut warm, mut prefill, mut decode) = (vec![], vec![], vec![], vec![]);
    let (mut exact, mut moved, mut recomputed) = (vec![], vec![], vec![]);
    // One untimed run first: page in the weights, allocate buffers.
    for run in 0..=config.runs {
        // Cold: the whole prompt, then decode.
        let started = Instant::now();
        let mut sequence =
            Sequence::new(prompt.clone(), model.transformer.new_cache(), sampling.clone())?;
        let mut step = sequence.step(model, whole_prompt)?;
        let first = started.elapsed().as_secs_f64();
        let decode_started = Instant::now();
        while matches!(step, Step::Token { .. } | Step::Prefilled) {
            step = sequence.step(model, whole_prompt)?;
        }
        let decoded = sequence.generated().len().saturating_sub(1);
        let decode_s = decode_started.elapsed().as_secs_f64();

        // Warm: the system turn comes from a cache computed once.
        let mut prefix = model.transformer.new_cache();
        model.transformer.forward(&prompt[..fitted.system_prefix_len.max(1)], &mut prefix)?;
        let started = Instant::now();
        let mut sequence =
            Sequence::new(prompt.clone(), prefix.fork()?, SamplingConfig::greedy(1))?;
        sequence.step(model, whole_prompt)?;
        let warm_s = started.elapsed().as_secs_f64();

        // Passages kept from an answer to another question: the same order
        // (exact reuse), or reversed (moved reuse).
        prefix.truncate(fitted.system_prefix_len);
        let mut kept = PassageCache::new(usize::MAX);
        let exact_reuse = (PassageReuse::Exact, 0, &mut kept);
        first_token_ms(model, &messages, &passages, &prefix, exact_reuse)?;
        let exact_reuse = (PassageReuse::Exact, 0, &mut kept);
        let exact_ms = first_token_ms(model, &same_passages, &passages, &prefix, exact_reuse)?;
        let mut kept = PassageCache::new(usize::MAX);
        first_token_ms(model, &messages, &passages, &prefix, (PassageReuse::Moved, 0, &mut kept))?;
        let moved_reuse = (PassageReuse::Moved, 0, &mut kept);
        let moved_ms = first_token_ms(model, &moved_passages, &passages, &prefix, moved_reuse)?;
        let blended_reuse = (PassageReuse::Moved, config.recompute_percent, &mut kept);
        let recomputed_ms =
            first_token_ms(model, &moved_passages, &passages, &prefix, blended_reuse)?;

        if run > 0 {
            cold.push(first * 1000.0);
            prefill.push(prompt.len() as f64 / first);
            decode.push(decoded as f64 / decode_s);
            warm.push(warm_s * 1000.0);
            exact.push(exact_ms);
            moved.push(moved_ms);
            recomputed.push(recomputed_ms);
        }
    }
    Ok(BenchReport {
        model: name.to_owned(),
        load_s: model.load_time().as_secs_f64(),
        prompt_tokens: prompt.len(),
        prefill_tps: median(prefill),
        decode_tokens: config.decode_tokens,
        decode_tps: median(decode),
        ttft_cold_ms: median(cold),
        ttft_warm_ms: median(warm),
        ttft_passages_exact_ms: median(exact),
        ttft_passages_moved_ms: median(moved),
        ttft_passages_moved_recomputed_ms: median(recomputed),
        recompute_percent: config.recompute_percent,
        peak_rss_mb: peak_rss_mb(),
        threads: candle_core::utils::get_num_threads(),
        kernels: model.transformer().kernels().to_string(),
    })
}

/// The process's peak resident memory, from the kernel's accounting.
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                line.strip_prefix("VmHWM:")
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            })
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}
