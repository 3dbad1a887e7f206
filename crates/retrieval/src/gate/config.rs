//! The gate's rules per language, with and without sentence vectors: the
//! built-in ones per embedder, and a shop's own in its `gate.toml`.

use super::*;

/// Rules for each language, with and without sentence vectors (BM25-only
/// indexes have no cosine, so they need their own thresholds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateConfig {
    pub hybrid_en: GateRule,
    pub hybrid_zh: GateRule,
    pub bm25_en: GateRule,
    pub bm25_zh: GateRule,
}

/// The file in a shop's folder that holds its own fitted rule.
pub const GATE_FILE: &str = "gate.toml";

/// The English-only embedder whose cosines have built-in rules of their own.
pub(super) const MINILM: &str = "minilm-l6";

/// The embedders an `embedding_model` text names, per language; a text that
/// does not parse names one embedder by that text, as it did before there
/// was one per language.
fn choice_of(text: &str) -> EmbedderChoice {
    EmbedderChoice::parse(text).unwrap_or_else(|_| EmbedderChoice::single(text))
}

/// A shop's `gate.toml` as read for one embedder.
#[derive(Debug, Clone, PartialEq)]
pub struct GateFile {
    pub config: GateConfig,
    /// The embedder the file's hybrid rules were fitted with, when it is not
    /// the one the server runs: those rules were replaced by the built-in
    /// ones, and the shop should fit its rule again.
    pub fitted_for_other_embedder: Option<String>,
}

impl GateConfig {
    /// Reads a shop's `gate.toml` (the format [`GateConfig::to_toml`]
    /// writes) for a server that embeds with `embedding_model`. A rule
    /// missing from the file keeps its built-in default. Cosines of one
    /// embedder mean nothing on another's scale, so when the file says it
    /// was fitted with a different embedder its hybrid rules are replaced by
    /// the built-in ones ([`GateFile::fitted_for_other_embedder`] says so,
    /// for the caller to warn).
    pub fn from_toml(
        text: &str,
        embedding_model: Option<&str>,
    ) -> Result<GateFile, toml::de::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            embedding_model: Option<String>,
            hybrid_en: Option<GateRule>,
            hybrid_zh: Option<GateRule>,
            bm25_en: Option<GateRule>,
            bm25_zh: Option<GateRule>,
        }
        let file: File = toml::from_str(text)?;
        let defaults = Self::built_in(embedding_model);
        // Per language: the file's hybrid rule holds only for the embedder
        // it was fitted with.
        let fitted = file.embedding_model.as_deref().map(choice_of);
        let running = embedding_model.map(choice_of);
        let other_for = |lang: Language| match (&fitted, &running) {
            (Some(fitted), Some(running)) => {
                running.get(lang).is_some() && fitted.get(lang) != running.get(lang)
            }
            _ => false,
        };
        let hybrid = |lang: Language, rule: Option<GateRule>, default: GateRule| {
            if other_for(lang) {
                default
            } else {
                rule.unwrap_or(default)
            }
        };
        let other_embedder = Language::ALL
            .iter()
            .any(|&lang| other_for(lang))
            .then(|| file.embedding_model.clone())
            .flatten();
        Ok(GateFile {
            config: Self {
                hybrid_en: hybrid(Language::En, file.hybrid_en, defaults.hybrid_en),
                hybrid_zh: hybrid(Language::Zh, file.hybrid_zh, defaults.hybrid_zh),
                bm25_en: file.bm25_en.unwrap_or(defaults.bm25_en),
                bm25_zh: file.bm25_zh.unwrap_or(defaults.bm25_zh),
            },
            fitted_for_other_embedder: other_embedder,
        })
    }

    /// The shop's `gate.toml`, with a header saying where it came from.
    /// `embedding_model` names the embedder whose cosines the hybrid rules
    /// were fitted on (`None` for an index without vectors).
    pub fn to_toml(&self, header: &str, embedding_model: Option<&str>) -> String {
        let mut text: String = header.lines().map(|line| format!("# {line}\n")).collect();
        if let Some(name) = embedding_model {
            text.push_str(&format!("\nembedding_model = \"{name}\"\n"));
        }
        let rules = [
            ("hybrid_en", self.hybrid_en),
            ("hybrid_zh", self.hybrid_zh),
            ("bm25_en", self.bm25_en),
            ("bm25_zh", self.bm25_zh),
        ];
        // Written by hand: f32 through serde would print 0.9399999976158142.
        // A grid rule's steps are 0.01, so two decimals hold it; a logistic
        // rule's weights are not rounded to a grid, so they keep four.
        for (name, rule) in rules {
            text.push_str(&format!("\n[{name}]\n"));
            if rule.cosine_weight == 1.0
                && rule.margin_weight == 0.0
                && rule.unknown_weight == 0.0
                && rule.unknown_gain_weight == 0.0
            {
                text.push_str(&format!(
                    "coverage_weight = {:.2}\nthreshold = {:.2}\nmax_unknown_share = {:.2}\n",
                    rule.coverage_weight, rule.threshold, rule.max_unknown_share
                ));
            } else {
                text.push_str(&format!(
                    "cosine_weight = {:.4}\ncoverage_weight = {:.4}\nmargin_weight = {:.4}\n\
                     unknown_weight = {:.4}\nunknown_gain_weight = {:.4}\nthreshold = {:.4}\n\
                     max_unknown_share = {:.2}\n",
                    rule.cosine_weight,
                    rule.coverage_weight,
                    rule.margin_weight,
                    rule.unknown_weight,
                    rule.unknown_gain_weight,
                    rule.threshold,
                    rule.max_unknown_share
                ));
            }
            if let Some(gain) = rule.casual_unknown_gain {
                text.push_str(&format!("casual_unknown_gain = {gain:.3}\n"));
            }
        }
        text
    }

    /// The rule used for a shop that has not fitted its own (no
    /// `gate.toml`), for the sentence embedder the server runs. The hybrid
    /// rules are fitted by `eval gate --calibrate --fit logistic` on the demo
    /// shop's questions (`tests/gate/questions.jsonl`) and chosen because
    /// they hold on a shop they were not fitted on: on the second test shop
    /// (`tests/shops/qinghe`) they keep precision 0.97 / recall 0.92 /
    /// out-of-scope refused 0.97 in English and 0.87 / 0.98 / 0.85 in
    /// Chinese, with the contact-detail vetoes (`docs/quality.md`). MiniLM's
    /// cosines sit on another scale, so it keeps its own grid rules, the
    /// English one with the veto's lift for casual words (on Qinghe 0.89 /
    /// 0.95 / 0.88, on the demo shop 0.98 / 0.78 / 0.98); an embedder
    /// without rules of its own gets multilingual-e5-small's, and a shop
    /// should fit its own with `eval gate --calibrate --write`. With one
    /// embedder per language, each language gets its embedder's rule.
    pub fn built_in(embedding_model: Option<&str>) -> Self {
        // Each language's hybrid rule follows the embedder that serves it
        // (`en=minilm-l6,zh=multilingual-e5-small` gets MiniLM's English
        // rule and e5's Chinese one).
        let choice = embedding_model.map(choice_of);
        let minilm = |lang| choice.as_ref().and_then(|c| c.get(lang)) == Some(MINILM);
        let hybrid_en = if minilm(Language::En) {
            GateRule {
                casual_unknown_gain: Some(CASUAL_GAIN_FLOOR),
                ..GateRule::grid(1.5, 0.94, 0.4)
            }
        } else {
            GateRule {
                cosine_weight: 29.285,
                coverage_weight: 3.089,
                margin_weight: 22.151,
                unknown_weight: -3.7171,
                unknown_gain_weight: 0.0,
                threshold: 25.971,
                max_unknown_share: 1.01,
                casual_unknown_gain: None,
            }
        };
        let hybrid_zh = if minilm(Language::Zh) {
            GateRule::grid(0.5, 0.71, 0.8)
        } else {
            GateRule {
                cosine_weight: 45.8487,
                coverage_weight: 4.4630,
                margin_weight: -44.1937,
                unknown_weight: -1.7908,
                unknown_gain_weight: 59.9437,
                threshold: 40.7209,
                max_unknown_share: 1.01,
                casual_unknown_gain: None,
            }
        };
        Self {
            hybrid_en,
            hybrid_zh,
            bm25_en: GateRule::grid(0.0, 0.0, 0.3),
            bm25_zh: GateRule::grid(1.5, 0.25, 0.8),
        }
    }

    pub fn rule(&self, lang: Language, hybrid: bool) -> GateRule {
        match (lang, hybrid) {
            (Language::En, true) => self.hybrid_en,
            (Language::Zh, true) => self.hybrid_zh,
            (Language::En, false) => self.bm25_en,
            (Language::Zh, false) => self.bm25_zh,
        }
    }

    pub fn set_rule(&mut self, lang: Language, hybrid: bool, rule: GateRule) {
        let slot = match (lang, hybrid) {
            (Language::En, true) => &mut self.hybrid_en,
            (Language::Zh, true) => &mut self.hybrid_zh,
            (Language::En, false) => &mut self.bm25_en,
            (Language::Zh, false) => &mut self.bm25_zh,
        };
        *slot = rule;
    }

    /// Which costlier query signals the rules of `lang` weigh: a rule that
    /// gives the unknown words' gain no weight need not pay for the extra
    /// embedding it takes.
    pub fn signals_wanted(&self, lang: Language) -> SignalsWanted {
        let rule = self.rule(lang, true);
        SignalsWanted {
            cosine_without_unknown: rule.unknown_gain_weight != 0.0
                || rule.casual_unknown_gain.is_some(),
        }
    }

    /// Decides for the hits of one search.
    pub fn decide(&self, lang: Language, query: &QuerySignals, hits: &[Hit]) -> GateDecision {
        let signals = GateSignals::of(query, hits);
        let rule = self.rule(lang, signals.cosine.is_some());
        let score = rule.score(&signals);
        GateDecision { covered: !hits.is_empty() && rule.covers(&signals), score, signals }
    }
}
