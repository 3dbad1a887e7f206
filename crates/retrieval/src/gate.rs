//! The relevance gate: does the knowledge base cover a question at all?
//!
//! Small models answer anything, so the chat asks the gate first and, when
//! the answer is no, refuses and offers a person instead of calling the
//! model. The decision is a threshold on a score built from the best of the
//! top hits: cosine similarity (meaning) plus weighted coverage (the share
//! of the question's rare words the passage contains), with a veto when
//! much of the question rests on words the knowledge base never uses ("the
//! CEO's phone number": phone numbers are covered, the CEO is not). A rule
//! fitted by logistic regression also weighs what those unknown words do to
//! the match: cut out, casual words ("swap my trainers") leave the best
//! cosine where it was, while an uncovered subject ("bitcoin") had pulled
//! it down ([`GateSignals::unknown_gain`]).
//!
//! The weights and thresholds are calibrated per language, and per sentence
//! embedder (cosines of two models are on different scales), on labelled
//! questions with `shopchat eval gate --calibrate`; a shop's own fit lives
//! in its `gate.toml`. The built-in defaults (`gate/config.rs`) come from
//! the demo shop's set and were checked on a shop they were not fitted on;
//! the procedure is in `docs/quality.md`.

use serde::{Deserialize, Serialize};
use shopchat_core::check::fact_kinds;
use shopchat_core::{EmbedderChoice, Language};

use crate::{Hit, QuerySignals, SignalsWanted};

mod config;

#[cfg(test)]
use config::MINILM;
pub use config::{GateConfig, GateFile, GATE_FILE};

/// How many of the top hits the gate looks at.
const CONSIDERED_HITS: usize = 3;

/// One language's rule: covered when the weighted sum of the signals
/// reaches `threshold` and words unknown to the knowledge base carry less
/// than `max_unknown_share` of the question. A grid-fitted rule weighs the
/// cosine 1 and only coverage besides; a rule fitted by logistic regression
/// ([`crate::gate_fit::calibrate_logistic`]) weighs every signal.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GateRule {
    #[serde(default = "one")]
    pub cosine_weight: f32,
    pub coverage_weight: f32,
    #[serde(default)]
    pub margin_weight: f32,
    #[serde(default)]
    pub unknown_weight: f32,
    #[serde(default)]
    pub unknown_gain_weight: f32,
    pub threshold: f32,
    pub max_unknown_share: f32,
    /// Lifts the `max_unknown_share` veto for casual wording: a question
    /// whose unknown words name nothing ([`GateSignals::unknown_names`]),
    /// leave it some known words (a share below [`CASUAL_UNKNOWN_CAP`]),
    /// and take nothing from its best cosine (an unknown-words gain of at
    /// least this) is judged by its score alone. "how many days do I get to
    /// send stuff back if I just don't like it?" is vetoed for "like" and
    /// "many" in a shop whose FAQ never uses them; "What's the return policy
    /// at H&M?" stays vetoed. `None`: the veto always holds.
    #[serde(default)]
    pub casual_unknown_gain: Option<f32>,
}

/// Above this share of unknown words a question is never taken for casual
/// wording: too little of it is left to judge by.
pub const CASUAL_UNKNOWN_CAP: f32 = 0.8;

/// The unknown-words gain from which MiniLM's built-in English rule takes
/// them for casual wording. Chosen on both test shops' gate sets: from 0
/// down to -0.1 it refuses the same out-of-scope questions, and recall
/// rises until -0.03 (`docs/quality.md`).
pub const CASUAL_GAIN_FLOOR: f32 = -0.03;

fn one() -> f32 {
    1.0
}

impl GateRule {
    /// The rule of the grid search: `cosine + coverage_weight * coverage`.
    pub fn grid(coverage_weight: f32, threshold: f32, max_unknown_share: f32) -> Self {
        Self {
            cosine_weight: 1.0,
            coverage_weight,
            margin_weight: 0.0,
            unknown_weight: 0.0,
            unknown_gain_weight: 0.0,
            threshold,
            max_unknown_share,
            casual_unknown_gain: None,
        }
    }

    pub fn score(&self, signals: &GateSignals) -> f32 {
        self.cosine_weight * signals.cosine.unwrap_or(0.0)
            + self.coverage_weight * signals.coverage
            + self.margin_weight * signals.margin.unwrap_or(0.0)
            + self.unknown_weight * signals.unknown_share
            + self.unknown_gain_weight * signals.unknown_gain.unwrap_or(0.0)
    }

    pub fn covers(&self, signals: &GateSignals) -> bool {
        self.score(signals) >= self.threshold
            && (signals.unknown_share < self.max_unknown_share || self.casual(signals))
            && !signals.contact_missing
            && !signals.overrides_instructions
    }

    /// Whether the question's unknown words are casual wording (see
    /// [`GateRule::casual_unknown_gain`]).
    fn casual(&self, signals: &GateSignals) -> bool {
        let Some(floor) = self.casual_unknown_gain else { return false };
        !signals.unknown_names
            && signals.unknown_share < CASUAL_UNKNOWN_CAP
            && signals.unknown_gain.is_some_and(|gain| gain >= floor)
    }
}

/// What the gate measured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct GateSignals {
    /// Best cosine similarity among the top hits; `None` without vectors.
    pub cosine: Option<f32>,
    /// Best coverage among the top hits.
    pub coverage: f32,
    /// How far the best cosine among all the hits stands above the second
    /// best: a question one entry answers tends to stand out, one the shop
    /// does not cover resembles many entries a little. `None` without
    /// vectors or with fewer than two.
    #[serde(default)]
    pub margin: Option<f32>,
    /// See [`QuerySignals::unknown_share`].
    pub unknown_share: f32,
    /// What the query's unknown words add to its best cosine: the best
    /// cosine of the whole query minus that of the query without them
    /// ([`QuerySignals::cosine_without_unknown`]). About zero for casual
    /// words, below zero for a subject the shop does not cover. `None`
    /// without vectors or without unknown words.
    #[serde(default)]
    pub unknown_gain: Option<f32>,
    /// The question asks for a contact detail the shop cannot give: a
    /// phone number or an e-mail address that none of the top hits holds
    /// ("the hotline of the courier" against a delivery FAQ), or a person's
    /// own ("your CEO's mobile number", though the shop's number is at
    /// hand). Every rule refuses then.
    #[serde(default)]
    pub contact_missing: bool,
    /// The message tries to replace the assistant's instructions: every
    /// rule refuses it, whatever the passages score.
    #[serde(default)]
    pub overrides_instructions: bool,
    /// See [`QuerySignals::unknown_names`].
    #[serde(default)]
    pub unknown_names: bool,
}

impl GateSignals {
    pub fn of(query: &QuerySignals, hits: &[Hit]) -> Self {
        let top = &hits[..hits.len().min(CONSIDERED_HITS)];
        let cosine = top.iter().filter_map(|h| h.cosine.map(|c| c.score)).reduce(f32::max);
        let coverage = top.iter().map(|h| h.coverage).fold(0.0, f32::max);
        let mut cosines: Vec<f32> = hits.iter().filter_map(|h| h.cosine.map(|c| c.score)).collect();
        cosines.sort_by(|a, b| b.total_cmp(a));
        let margin = (cosines.len() >= 2).then(|| cosines[0] - cosines[1]);
        let unknown_gain =
            cosines.first().zip(query.cosine_without_unknown).map(|(whole, rest)| whole - rest);
        let contact_missing = query.personal_contact
            || query.asked_contact.is_some_and(|kind| {
                !top.iter().any(|hit| fact_kinds(&hit.passage.text).contains(&kind))
            });
        Self {
            cosine,
            coverage,
            margin,
            unknown_share: query.unknown_share,
            unknown_gain,
            unknown_names: query.unknown_names,
            contact_missing,
            overrides_instructions: query.overrides_instructions,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GateDecision {
    pub covered: bool,
    pub score: f32,
    pub signals: GateSignals,
}

/// Picks the rule that maximises F0.5 of "covered" on labelled examples
/// (signals, in scope) by a grid search over weights and thresholds.
/// F0.5 weighs precision twice as much as recall: letting an out-of-scope
/// question through invites an invented answer, while refusing an
/// in-scope one costs a hand-off to a person.
pub fn calibrate(examples: &[(GateSignals, bool)]) -> GateRule {
    const WEIGHTS: [f32; 8] = [0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0];
    // 1.01 is "no veto": a share never reaches it.
    const VETOES: [f32; 8] = [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.01];
    // With and without the veto's lift for casual wording: the lift needs
    // the unknown-words gain, which only hybrid search measures.
    let lifts = [None, Some(CASUAL_GAIN_FLOOR)];
    let mut best = (GateRule::grid(1.0, 0.5, 1.01), -1.0f32);
    for casual_unknown_gain in lifts {
        for max_unknown_share in VETOES {
            for coverage_weight in WEIGHTS {
                for step in 0..=300 {
                    let threshold = step as f32 / 100.0;
                    let rule = GateRule {
                        casual_unknown_gain,
                        ..GateRule::grid(coverage_weight, threshold, max_unknown_share)
                    };
                    let score = GateCounts::of(&rule, examples).f_beta(0.5);
                    if score > best.1 {
                        best = (rule, score);
                    }
                }
            }
        }
    }
    best.0
}

/// A confusion matrix of the gate's decisions, "covered" being positive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct GateCounts {
    pub true_covered: usize,
    pub false_covered: usize,
    pub true_refused: usize,
    pub false_refused: usize,
}

impl GateCounts {
    pub fn of(rule: &GateRule, examples: &[(GateSignals, bool)]) -> Self {
        let mut counts = Self::default();
        for (signals, in_scope) in examples {
            let covered = rule.covers(signals);
            match (covered, *in_scope) {
                (true, true) => counts.true_covered += 1,
                (true, false) => counts.false_covered += 1,
                (false, false) => counts.true_refused += 1,
                (false, true) => counts.false_refused += 1,
            }
        }
        counts
    }

    /// Of the questions the gate let through, the share in scope.
    pub fn precision(&self) -> f32 {
        ratio(self.true_covered, self.true_covered + self.false_covered)
    }

    /// Of the questions in scope, the share the gate let through.
    pub fn recall(&self) -> f32 {
        ratio(self.true_covered, self.true_covered + self.false_refused)
    }

    /// Of the out-of-scope questions, the share refused.
    pub fn refusal_rate(&self) -> f32 {
        ratio(self.true_refused, self.true_refused + self.false_covered)
    }

    pub fn f1(&self) -> f32 {
        self.f_beta(1.0)
    }

    /// The weighted harmonic mean of precision and recall; `beta < 1`
    /// favours precision.
    pub fn f_beta(&self, beta: f32) -> f32 {
        let (p, r) = (self.precision(), self.recall());
        let b2 = beta * beta;
        if p + r == 0.0 {
            0.0
        } else {
            (1.0 + b2) * p * r / (b2 * p + r)
        }
    }
}

fn ratio(a: usize, b: usize) -> f32 {
    if b == 0 {
        0.0
    } else {
        a as f32 / b as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signals(cosine: f32, coverage: f32) -> GateSignals {
        GateSignals { cosine: Some(cosine), coverage, ..GateSignals::default() }
    }

    /// A hit on an English FAQ entry with `text` and, if given, a cosine.
    fn hit(text: &str, cosine: Option<f32>) -> Hit {
        Hit {
            passage: crate::Passage {
                id: "faq/x@en".into(),
                kind: crate::PassageKind::Faq,
                lang: Language::En,
                title: String::new(),
                heading_path: Vec::new(),
                text: text.into(),
                url: None,
                tags: Vec::new(),
                customer_id: None,
            },
            rank: 1,
            fused: 0.0,
            bm25: None,
            cosine: cosine.map(|score| crate::Ranked { score, rank: 1 }),
            coverage: 0.0,
        }
    }

    #[test]
    fn calibration_separates_separable_examples() {
        let examples = vec![
            (signals(0.7, 0.6), true),
            (signals(0.6, 0.5), true),
            (signals(0.2, 0.1), false),
            (signals(0.3, 0.0), false),
        ];
        let rule = calibrate(&examples);
        let counts = GateCounts::of(&rule, &examples);
        assert_eq!((counts.precision(), counts.recall()), (1.0, 1.0));
    }

    #[test]
    fn a_written_rule_reads_back_the_same() {
        let e5 = Some("multilingual-e5-small");
        let mut config = GateConfig::built_in(e5);
        config.set_rule(Language::Zh, true, GateRule::grid(0.25, 1.07, 1.01));
        let logistic = GateRule {
            cosine_weight: 12.5,
            coverage_weight: 3.25,
            margin_weight: 40.0,
            unknown_weight: -2.5,
            unknown_gain_weight: 6.5,
            threshold: 14.125,
            max_unknown_share: 1.01,
            casual_unknown_gain: Some(-0.01),
        };
        config.set_rule(Language::En, true, logistic);
        let text = config.to_toml("fitted on nothing", e5);
        assert!(text.starts_with("# fitted on nothing\n"), "{text}");
        assert!(text.contains("threshold = 1.07\n"), "{text}");
        let read = GateConfig::from_toml(&text, e5).unwrap();
        assert_eq!(read.fitted_for_other_embedder, None);
        assert_eq!(read.config.rule(Language::Zh, true).threshold, 1.07);
        assert_eq!(read.config.rule(Language::En, true), logistic);
        // A file holding one rule keeps the defaults for the others.
        let partial = GateConfig::from_toml(
            "[bm25_zh]\ncoverage_weight = 1.0\nthreshold = 0.3\nmax_unknown_share = 0.5\n",
            e5,
        )
        .unwrap();
        assert_eq!(partial.config.hybrid_en, GateConfig::built_in(e5).hybrid_en);
        assert!(GateConfig::from_toml("[bm25_zh]\nthreshold = \"x\"\n", e5).is_err());
        assert!(GateConfig::from_toml("embedding_model = 3\n", e5).is_err());
    }

    #[test]
    fn hybrid_rules_fitted_with_another_embedder_give_way_to_the_built_in_ones() {
        let (e5, minilm) = (Some("multilingual-e5-small"), Some("minilm-l6"));
        let mut config = GateConfig::built_in(e5);
        let fitted = GateRule::grid(0.25, 1.07, 1.01);
        config.set_rule(Language::En, true, fitted);
        config.set_rule(Language::En, false, GateRule::grid(0.5, 0.5, 0.5));
        let text = config.to_toml("fitted with e5", e5);
        assert!(text.contains("embedding_model = \"multilingual-e5-small\""), "{text}");

        let read = GateConfig::from_toml(&text, minilm).unwrap();
        assert_eq!(read.fitted_for_other_embedder.as_deref(), Some("multilingual-e5-small"));
        assert_eq!(read.config.hybrid_en, GateConfig::built_in(minilm).hybrid_en);
        // Rules without cosines do not depend on the embedder: they stay.
        assert_eq!(read.config.bm25_en, GateRule::grid(0.5, 0.5, 0.5));
        // The two embedders' built-in rules differ: their cosines do.
        assert_ne!(GateConfig::built_in(minilm).hybrid_en, GateConfig::built_in(e5).hybrid_en);

        // One embedder per language: each language keeps its rule while its
        // own embedder stays, and only that one gives way.
        let per_language = Some("en=minilm-l6,zh=multilingual-e5-small");
        let mut both = GateConfig::built_in(minilm);
        both.set_rule(Language::En, true, fitted);
        both.set_rule(Language::Zh, true, GateRule::grid(0.3, 0.9, 1.01));
        let text = both.to_toml("fitted with MiniLM alone", minilm);
        let read = GateConfig::from_toml(&text, per_language).unwrap();
        assert_eq!(read.config.hybrid_en, fitted);
        assert_eq!(read.config.hybrid_zh, GateConfig::built_in(e5).hybrid_zh);
        assert_eq!(read.fitted_for_other_embedder.as_deref(), Some("minilm-l6"));
        let text = both.to_toml("fitted per language", per_language);
        assert!(text.contains("embedding_model = \"en=minilm-l6,zh=multilingual-e5-small\""));
        let read = GateConfig::from_toml(&text, per_language).unwrap();
        assert_eq!((read.config.hybrid_zh, read.fitted_for_other_embedder), (both.hybrid_zh, None));
        // The built-in rules follow each language's embedder.
        let built_in = GateConfig::built_in(per_language);
        assert_eq!(built_in.hybrid_en, GateConfig::built_in(minilm).hybrid_en);
        assert_eq!(built_in.hybrid_zh, GateConfig::built_in(e5).hybrid_zh);

        // A file that names no embedder (written before files said so) is
        // taken as it is.
        let unnamed = config.to_toml("unnamed", None);
        let read = GateConfig::from_toml(&unnamed, minilm).unwrap();
        assert_eq!((read.config.hybrid_en, read.fitted_for_other_embedder), (fitted, None));
    }

    #[test]
    fn the_unknown_words_gain_is_measured_only_for_a_rule_that_weighs_it() {
        let e5 = Some("multilingual-e5-small");
        let mut config = GateConfig::built_in(e5);
        assert_eq!(config.signals_wanted(Language::En), SignalsWanted::default());
        let weighing = GateRule { unknown_gain_weight: 40.0, ..config.hybrid_en };
        config.set_rule(Language::En, true, weighing);
        assert!(config.signals_wanted(Language::En).cosine_without_unknown);
        // e5's Chinese rule weighs it; MiniLM's (keywords only) does not.
        assert!(config.signals_wanted(Language::Zh).cosine_without_unknown);
        let minilm = GateConfig::built_in(Some(MINILM));
        assert!(!minilm.signals_wanted(Language::Zh).cosine_without_unknown);

        // The gain is the whole query's best cosine over all the hits,
        // less the best cosine without the unknown words.
        let hit = |cosine: f32| hit("", Some(cosine));
        let hits = [hit(0.80), hit(0.84), hit(0.81), hit(0.90)];
        let query = QuerySignals {
            unknown_share: 0.3,
            cosine_without_unknown: Some(0.85),
            asked_contact: None,
            personal_contact: false,
            overrides_instructions: false,
            unknown_names: false,
        };
        let signals = GateSignals::of(&query, &hits);
        assert!((signals.unknown_gain.unwrap() - 0.05).abs() < 1e-6, "{signals:?}");
        let none = QuerySignals { cosine_without_unknown: None, ..query };
        assert_eq!(GateSignals::of(&none, &hits).unknown_gain, None);
        // The weight moves the score by weight × gain.
        let base = config.hybrid_en.score(&signals);
        let plain = GateRule { unknown_gain_weight: 0.0, ..config.hybrid_en }.score(&signals);
        assert!((base - plain - 40.0 * 0.05).abs() < 1e-4);
    }

    #[test]
    fn no_hits_is_never_covered() {
        let query = QuerySignals {
            unknown_share: 0.0,
            cosine_without_unknown: None,
            asked_contact: None,
            personal_contact: false,
            overrides_instructions: false,
            unknown_names: false,
        };
        let decision = GateConfig::built_in(None).decide(Language::En, &query, &[]);
        assert!(!decision.covered);
    }

    #[test]
    fn casual_unknown_words_lift_the_veto_and_names_do_not() {
        let rule = GateRule {
            casual_unknown_gain: Some(CASUAL_GAIN_FLOOR),
            ..GateRule::grid(1.5, 0.94, 0.4)
        };
        let casual =
            GateSignals { unknown_share: 0.6, unknown_gain: Some(0.01), ..signals(0.7, 0.3) };
        assert!(rule.covers(&casual));
        assert!(!GateRule::grid(1.5, 0.94, 0.4).covers(&casual), "no lift, no cover");
        for (why, signals) in [
            ("a name", GateSignals { unknown_names: true, ..casual }),
            ("the match pulled away", GateSignals { unknown_gain: Some(-0.05), ..casual }),
            ("no gain measured", GateSignals { unknown_gain: None, ..casual }),
            ("too little known", GateSignals { unknown_share: CASUAL_UNKNOWN_CAP, ..casual }),
            ("a low score", GateSignals { cosine: Some(0.2), ..casual }),
            ("a contact detail no hit holds", GateSignals { contact_missing: true, ..casual }),
            (
                "told to ignore its instructions",
                GateSignals { overrides_instructions: true, ..casual },
            ),
        ] {
            assert!(!rule.covers(&signals), "{why}");
        }
        // Written and read back with the shop's other rules.
        let mut config = GateConfig::built_in(Some(MINILM));
        config.set_rule(Language::En, false, rule);
        let text = config.to_toml("casual", None);
        assert!(text.contains("casual_unknown_gain = -0.030"), "{text}");
        assert_eq!(GateConfig::from_toml(&text, None).unwrap().config.bm25_en, rule);
        // Only a rule that lifts the veto pays for the second embedding.
        assert!(config.signals_wanted(Language::En).cosine_without_unknown);
        assert!(!GateConfig::built_in(None).signals_wanted(Language::En).cosine_without_unknown);
    }

    #[test]
    fn a_contact_detail_no_hit_holds_is_missing() {
        let hit = |text: &str| hit(text, None);
        let asking = |kind| QuerySignals {
            unknown_share: 0.0,
            cosine_without_unknown: None,
            asked_contact: Some(kind),
            personal_contact: false,
            overrides_instructions: false,
            unknown_names: false,
        };
        let privacy = [hit("We keep your mobile number and e-mail address safe.")];
        let contact = [hit("Call us on +44 20 7946 0321 or write to help@shop.example.")];
        use shopchat_core::check::FactKind::{Email, Phone};
        assert!(GateSignals::of(&asking(Phone), &privacy).contact_missing);
        assert!(GateSignals::of(&asking(Email), &privacy).contact_missing);
        assert!(!GateSignals::of(&asking(Phone), &contact).contact_missing);
        assert!(!GateSignals::of(&asking(Email), &contact).contact_missing);
        // A person's own number is missing even beside the shop's.
        let personal = QuerySignals { personal_contact: true, ..asking(Phone) };
        assert!(GateSignals::of(&personal, &contact).contact_missing);
    }
}
