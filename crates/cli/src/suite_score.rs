//! The figures of a suite run beyond pass and fail: answers by outcome, the
//! resolution rate, and the share of answers the model wrote itself.
//!
//! Resolution is what a shop pays for: a knowledge question (a turn that
//! expects a citation) counts as resolved when it was answered (by the model
//! or by the quoted sentence that replaced it), cites the expected passage
//! and states the expected fact. It is comparable with the "resolution
//! rate" the hosted products publish.

use std::collections::BTreeMap;

use serde::Serialize;
use shopchat_core::protocol::AnswerOutcome;
use shopchat_pipeline::Reply;

use crate::harness::outcome_name;
use crate::suite_spec::{Expect, Floors};

/// Counts for one suite in one run.
#[derive(Debug, Default, Serialize)]
pub struct Tally {
    /// Answers by outcome name.
    pub outcomes: BTreeMap<&'static str, usize>,
    pub knowledge_questions: usize,
    pub resolved: usize,
    pub resolution: Option<f64>,
    /// Turns marked `by_model`, and those the model's own answer stood for.
    pub by_model_turns: usize,
    pub by_model_answered: usize,
    pub by_model: Option<f64>,
}

impl Tally {
    /// Counts one answer; `failed` are the assertions it failed.
    pub fn count(&mut self, expect: &Expect, reply: &Reply, failed: &[String]) {
        *self.outcomes.entry(outcome_name(reply.outcome)).or_default() += 1;
        if expect.cites.is_some() {
            self.knowledge_questions += 1;
            let answered =
                matches!(reply.outcome, AnswerOutcome::Answered | AnswerOutcome::Replaced);
            // Only the citation and the fact decide; a wording assertion
            // (not_contains, max_tokens) is the case's business.
            let fact_or_source_missed = failed
                .iter()
                .any(|f| f.starts_with("contains none of") || f.starts_with("does not cite"));
            if answered && !fact_or_source_missed {
                self.resolved += 1;
            }
        }
        if expect.by_model {
            self.by_model_turns += 1;
            if reply.outcome == AnswerOutcome::Answered && reply.model.is_some() {
                self.by_model_answered += 1;
            }
        }
    }

    pub fn finish(&mut self) {
        let share = |part: usize, whole: usize| (whole > 0).then(|| part as f64 / whole as f64);
        self.resolution = share(self.resolved, self.knowledge_questions);
        self.by_model = share(self.by_model_answered, self.by_model_turns);
    }

    /// The floors this run missed, described.
    pub fn below(&self, floors: &Floors) -> Vec<String> {
        let mut missed = Vec::new();
        if let (Some(floor), Some(value)) = (floors.resolution, self.resolution) {
            if value < floor {
                missed.push(format!(
                    "resolution {value:.2} ({} of {}) is below {floor:.2}",
                    self.resolved, self.knowledge_questions
                ));
            }
        }
        if let (Some(floor), Some(value)) = (floors.by_model, self.by_model) {
            if value < floor {
                missed.push(format!(
                    "the model's own answer stood for {value:.2} ({} of {}) of the `by_model` turns, below {floor:.2}",
                    self.by_model_answered, self.by_model_turns
                ));
            }
        }
        missed
    }
}
