//! [`AnswerStream`]: a generated answer as it arrives, checked when it ends.

use std::sync::Arc;

use shopchat_core::check::{AllowedFacts, CheckOutcome};
use shopchat_core::degenerate::{is_looping, passage_copy_start, Degenerate};
use shopchat_core::extract::{extract_titled_answer, quote_passage, Aliases, Extract};
use shopchat_core::prompt::{cited_passages, PromptTemplate};
use shopchat_core::protocol::{AnswerOutcome, Source};
use shopchat_core::verdict::{judge, AnswerInput, Verdict};
use shopchat_core::{ChatMessage, Language};
use shopchat_inference::{FinishReason, Generation, GenerationEvent, GenerationStats, Stopper};
use shopchat_retrieval::{GateDecision, Passage};

use crate::assistant::{passage_source, refusal_reply, Reply};
use crate::texts::Texts;

pub(crate) struct StreamSetup {
    pub generation: Generation,
    /// The prompt as sent, before the model's chat template.
    pub messages: Vec<ChatMessage>,
    pub passages: Vec<Passage>,
    /// Both rankings put the first passage first (see `AnswerInput::settled`).
    pub first_settled: bool,
    /// The shopper's question, to judge whether the answer answers it.
    pub question: String,
    pub aliases: Arc<Aliases>,
    pub lang: Language,
    pub gate: GateDecision,
    pub model: String,
    pub prompt: Arc<PromptTemplate>,
    pub allowed: AllowedFacts,
    pub texts: Texts,
    pub refusals_in_a_row: u32,
    pub handoff_after_refusals: u32,
}

/// One answer being generated. Read it with [`AnswerStream::next`] until
/// [`StreamEvent::Done`]; stop it with [`AnswerStream::stop`] (or a
/// [`Stopper`]) and keep reading: the end still comes, with what was written
/// so far checked like a finished answer.
pub struct AnswerStream {
    setup: StreamSetup,
    sources: Vec<Source>,
    text: String,
    done: bool,
    /// Stopped by us because the text went wrong (a loop, a copy of the
    /// prompt's passage list), not by the shopper. What the worker writes
    /// after that is dropped, so the text judged does not depend on how
    /// soon the worker saw the stop.
    cut: bool,
}

/// What the stream has next.
#[derive(Debug)]
pub enum StreamEvent {
    /// The model took the request: the prompt's length, and how much of it
    /// was reused from the cache.
    Started { prompt_tokens: usize, reused_tokens: usize },
    /// More text, whole characters.
    Delta(String),
    /// Boxed: it is large, and the deltas are the hot path.
    Done(Box<Finished>),
}

/// How a generated answer ended.
#[derive(Debug)]
pub struct Finished {
    /// The final answer: `text` is what the shopper should see, which is the
    /// streamed text unless the outcome is `Replaced`, `Refused` or `Error`.
    pub reply: Reply,
    /// The text as the model wrote it.
    pub generated: String,
    /// Cut short by a stop (the button, a disconnect) rather than finished.
    pub stopped: bool,
    pub stats: Option<GenerationStats>,
}

impl AnswerStream {
    pub(crate) fn new(setup: StreamSetup) -> Self {
        let sources = setup.passages.iter().map(passage_source).collect();
        Self { setup, sources, text: String::new(), done: false, cut: false }
    }

    /// The passages in the prompt, numbered from 1 as the answer cites them.
    pub fn sources(&self) -> &[Source] {
        &self.sources
    }

    /// Answers ahead of this one when it was queued.
    pub fn queue_position(&self) -> usize {
        self.setup.generation.queue_position
    }

    /// The messages the model was given: system, history, passages and question.
    pub fn prompt_messages(&self) -> &[ChatMessage] {
        &self.setup.messages
    }

    pub fn model(&self) -> &str {
        &self.setup.model
    }

    /// The text generated so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn stop(&self) {
        self.setup.generation.stop();
    }

    pub fn stopper(&self) -> Stopper {
        self.setup.generation.stopper()
    }

    /// The next event; after `Done`, `None`.
    pub async fn next(&mut self) -> Option<StreamEvent> {
        if self.done {
            return None;
        }
        let finished = loop {
            let event = self.setup.generation.events.recv().await;
            match event {
                Some(GenerationEvent::Started { prompt_tokens, reused_tokens, .. }) => {
                    return Some(StreamEvent::Started { prompt_tokens, reused_tokens });
                }
                Some(GenerationEvent::Text(_)) if self.cut => continue,
                Some(GenerationEvent::Text(delta)) => return Some(self.take_delta(delta)),
                Some(GenerationEvent::Finished(stats)) => {
                    let stopped = stats.finish_reason == FinishReason::Cancelled && !self.cut;
                    break self.finish(Some(stats), stopped);
                }
                Some(GenerationEvent::Failed { message, .. }) => {
                    tracing::error!(%message, "generation failed");
                    break self.failed();
                }
                // The worker went away without a word: as good as failed.
                None => break self.failed(),
            }
        };
        self.done = true;
        Some(StreamEvent::Done(Box::new(finished)))
    }

    /// Adds a piece of generated text, and stops the generation where the
    /// text goes wrong.
    fn take_delta(&mut self, delta: String) -> StreamEvent {
        let before = self.text.len();
        self.text.push_str(&delta);
        // The answer is over once the model starts writing out the next
        // passage of its prompt: what came before it stands.
        if let Some(start) = passage_copy_start(&self.text) {
            self.text.truncate(start);
            self.cut = true;
            self.setup.generation.stop();
            let kept = delta[..start.saturating_sub(before).min(delta.len())].to_owned();
            return StreamEvent::Delta(kept);
        }
        // A loop never recovers: stop it now rather than stream it to the
        // token limit; the end replaces it.
        if is_looping(&self.text) {
            self.cut = true;
            self.setup.generation.stop();
        }
        StreamEvent::Delta(delta)
    }

    fn failed(&self) -> Finished {
        let setup = &self.setup;
        let mut reply = self.reply(setup.texts.generation_failed(setup.lang), AnswerOutcome::Error);
        reply.sources.clear();
        Finished { reply, generated: self.text.clone(), stopped: false, stats: None }
    }

    /// The refusal (or the hand-off it leads to after refusals in a row).
    fn refused(&self) -> Reply {
        let setup = &self.setup;
        let mut reply = refusal_reply(
            &setup.texts,
            &setup.prompt,
            setup.lang,
            setup.refusals_in_a_row,
            setup.handoff_after_refusals,
        );
        reply.gate = Some(setup.gate);
        reply.model = Some(setup.model.clone());
        reply.prompt_version = Some(setup.prompt.id());
        reply
    }

    /// Checks the finished (or stopped) text against the passages.
    fn finish(&self, stats: Option<GenerationStats>, stopped: bool) -> Finished {
        let setup = &self.setup;
        let generated = self.text.trim().to_owned();
        let finished = |reply| Finished { reply, generated: self.text.clone(), stopped, stats };

        if generated.is_empty() && stopped {
            // Stopped before a word: nothing to check or show, and nothing
            // answered.
            return finished(self.reply(String::new(), AnswerOutcome::Stopped));
        }
        let texts: Vec<&str> = setup.passages.iter().map(|p| p.text.as_str()).collect();
        let titles: Vec<&str> = setup.passages.iter().map(|p| p.title.as_str()).collect();
        let input = AnswerInput {
            question: &setup.question,
            lang: setup.lang,
            passages: &texts,
            titles: &titles,
            allowed: &setup.allowed,
            aliases: &setup.aliases,
            settled: setup.first_settled,
        };
        // The prompt's own "I don't know" sentence, in whatever words a
        // custom prompt gives it, is a refusal like the built-in wordings.
        let verdict = if setup.prompt.is_no_answer(&generated) {
            Verdict::Refusal
        } else {
            judge(&generated, &input, !stopped)
        };
        let (check, extract, shown) = match verdict {
            Verdict::Checked { check, extract, text } => (check, extract, text),
            // "I don't know" in any wording is a refusal, never an answer.
            // A small model says it often, though the gate let the question
            // through and one sentence of the passages holds most of its
            // words: then the shopper gets that sentence, quoted and cited,
            // as when no model writes the language (`replaced`).
            Verdict::Refusal if !stopped => match quotable(&input, &setup.gate) {
                Some(extract) => {
                    tracing::info!(
                        coverage = extract.coverage,
                        "the model declined; its passage's sentence is quoted"
                    );
                    let mut reply = self.extractive_reply(&extract);
                    reply.check = Some(CheckOutcome {
                        passed: false,
                        unsupported: Vec::new(),
                        degenerate: Some(Degenerate::Declined),
                    });
                    return finished(reply);
                }
                None => return finished(self.refused()),
            },
            Verdict::Refusal => return finished(self.refused()),
        };
        let cited = cited_passages(&generated, setup.passages.len());
        if check.passed {
            let mut reply = self.reply(shown, AnswerOutcome::Answered);
            if !cited.is_empty() {
                // The sources become the cited passages, so the answer's
                // `[n]` are renumbered to count in that list.
                reply.sources = cited.iter().map(|&n| self.sources[n - 1].clone()).collect();
                reply.text = renumber_citations(&reply.text, &cited);
            }
            reply.check = Some(check);
            return finished(reply);
        }

        // Never leave an unsupported or unfit answer standing: quote the
        // sentence that answers the question, else the passage the answer
        // leaned on (the first it cited, else the best hit) as it is.
        tracing::info!(reason = ?check.reason(), "answer replaced");
        let mut reply = match extract {
            Some(extract) => self.extractive_reply(&extract),
            None => {
                let best = cited.first().map_or(0, |&n| n - 1);
                let mut reply =
                    self.reply(setup.passages[best].text.clone(), AnswerOutcome::Replaced);
                reply.sources = vec![self.sources[best].clone()];
                reply
            }
        };
        reply.check = Some(check);
        finished(reply)
    }

    /// The quoted sentence with its citation.
    fn extractive_reply(&self, extract: &Extract) -> Reply {
        // Its one source is its [1] (`answer_end.sources` tells the client).
        let text = cite(&extract.text, 1);
        let mut reply = self.reply(text, AnswerOutcome::Replaced);
        reply.sources = vec![self.sources[extract.passage].clone()];
        reply
    }

    fn reply(&self, text: String, outcome: AnswerOutcome) -> Reply {
        let setup = &self.setup;
        Reply {
            text,
            outcome,
            lang: setup.lang,
            sources: self.sources.clone(),
            gate: Some(setup.gate),
            check: None,
            model: Some(setup.model.clone()),
            prompt_version: Some(setup.prompt.id()),
            effect: None,
        }
    }
}

/// The share of the question's words a sentence must hold to be quoted
/// when the model declined to answer: at least half of them, so that a
/// question the passages only touch on is still refused.
const QUOTE_AFTER_DECLINE: f32 = 0.5;

/// The share of the question's weight (its rare words weigh most) the best
/// hit must cover, as the gate measured it, before a declined answer is
/// replaced by a quote. The gate lets through some questions it barely
/// covers ("is now a good time to buy tech stocks?" matching "now" and
/// "buy"), and there the model's "I don't know" is right. On both test
/// shops' gate sets 0.4 keeps 63-83 % of the in-scope questions and 3-18 %
/// of the out-of-scope ones (before the gate's own refusals).
const GATE_COVERAGE_TO_QUOTE: f32 = 0.4;

/// The gate coverage above which a declined answer quotes the settled
/// first passage (first by words and by meaning, `AnswerInput::settled`)
/// as it is, as when no model writes the language. Being first in both
/// rankings is itself evidence, so less coverage is asked than of an
/// unsettled quote. On both test shops' gate sets, before the gate's own
/// refusals, 0.3 finds a settled first passage for 33-58 % of the in-scope
/// questions and 2-7 % of the out-of-scope ones (docs/quality.md).
const GATE_COVERAGE_TO_QUOTE_SETTLED: f32 = 0.3;

/// What to quote when the model declined: the settled first passage if
/// the gate found the question covered enough, else one sentence that
/// holds enough of a well covered question; `None` keeps the refusal.
fn quotable(input: &AnswerInput<'_>, gate: &GateDecision) -> Option<Extract> {
    let coverage = gate.signals.coverage;
    if input.settled && coverage >= GATE_COVERAGE_TO_QUOTE_SETTLED {
        if let Some(first) = input.passages.first() {
            let text = quote_passage(input.question, first, input.lang, input.aliases);
            return Some(Extract { passage: 0, text, coverage });
        }
    }
    if coverage < GATE_COVERAGE_TO_QUOTE {
        return None;
    }
    let (passages, titles) = input.quotable();
    extract_titled_answer(input.question, passages, titles, input.lang, input.aliases)
        .filter(|extract| extract.coverage >= QUOTE_AFTER_DECLINE)
}

/// `text` with a citation `[n]` before its final full stop.
pub(crate) fn cite(text: &str, n: usize) -> String {
    let trimmed = text.trim_end();
    match trimmed.char_indices().last() {
        Some((i, c)) if matches!(c, '.' | '。' | '!' | '！' | '?' | '？') => {
            format!("{} [{n}]{c}", trimmed[..i].trim_end())
        }
        _ => format!("{trimmed} [{n}]"),
    }
}

/// `[n]` (and `[n, m]`) rewritten so that `cited[i]` becomes `i + 1`; other
/// brackets are left as they are.
pub(crate) fn renumber_citations(text: &str, cited: &[usize]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find(']') else {
            out.push_str(&rest[open..]);
            return out;
        };
        let inside = &after[..close];
        let numbers: Option<Vec<usize>> =
            inside.split(',').map(|part| part.trim().parse::<usize>().ok()).collect();
        let mapped: Option<Vec<String>> = numbers.and_then(|numbers| {
            numbers
                .iter()
                .map(|n| cited.iter().position(|c| c == n).map(|i| (i + 1).to_string()))
                .collect()
        });
        match mapped {
            Some(mapped) if !mapped.is_empty() => out.push_str(&format!("[{}]", mapped.join(", "))),
            _ => out.push_str(&rest[open..open + 1 + close + 1]),
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn citations_count_in_the_cited_list() {
        assert_eq!(
            renumber_citations("A [2]. B [3, 2]. C [9] [x]", &[2, 3]),
            "A [1]. B [2, 1]. C [9] [x]"
        );
        assert_eq!(renumber_citations("no brackets", &[1]), "no brackets");
        assert_eq!(renumber_citations("open [2", &[2]), "open [2");
        assert_eq!(cite("Gift cards last 24 months.", 1), "Gift cards last 24 months [1].");
        assert_eq!(cite("礼品卡有效期 24 个月。", 1), "礼品卡有效期 24 个月 [1]。");
    }

    #[test]
    fn a_declined_answer_is_quoted_only_from_a_sentence_that_holds_the_question() {
        let passages = [
            "Standard delivery to the UK takes 2-3 business days. Express takes 1 day.",
            "Gift cards can be used online only.",
        ];
        let (allowed, aliases) = (AllowedFacts::default(), Aliases::default());
        let settled_input = |question, settled| AnswerInput {
            question,
            lang: Language::En,
            passages: &passages,
            titles: &[],
            allowed: &allowed,
            aliases: &aliases,
            settled,
        };
        let input = |question| settled_input(question, false);
        let gate = |coverage: f32| GateDecision {
            covered: true,
            score: 1.0,
            signals: shopchat_retrieval::gate::GateSignals { coverage, ..Default::default() },
        };
        let question = "How long does standard delivery to the UK take?";
        let quoted = quotable(&input(question), &gate(0.8)).unwrap();
        assert_eq!(quoted.passage, 0);
        assert!(quoted.text.contains("2-3 business days"), "{quoted:?}");
        // A question the gate barely covered keeps the model's refusal.
        assert!(quotable(&input(question), &gate(0.2)).is_none());
        // The passages touch on the question (delivery) but hold too little
        // of it: the refusal stands.
        let touched = "Do you deliver furniture to Antarctica by drone?";
        assert!(quotable(&input(touched), &gate(0.8)).is_none());

        // A first passage settled by both rankings is quoted whole on less
        // coverage, and no sentence needs to hold half of the question.
        let casual = "my parcel to london, how many days roughly?";
        assert!(quotable(&input(casual), &gate(0.35)).is_none());
        let quoted = quotable(&settled_input(casual, true), &gate(0.35)).unwrap();
        assert_eq!((quoted.passage, quoted.text.as_str()), (0, passages[0]));
        assert!(quotable(&settled_input(casual, true), &gate(0.2)).is_none());
    }
}
