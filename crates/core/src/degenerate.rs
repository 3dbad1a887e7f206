//! Generations that must not reach a shopper even when every fact in them
//! checks out: loops, talk about "the passage" or about being an assistant,
//! the question echoed back, a mix of languages, a bare "yes" without the
//! fact, or an answer that leaves out the very fact it was asked for.
//!
//! Small models produce all of these (SmolLM2 answered "The answer to the
//! question is yes." and looped "I'm glad to help!" until its token limit).
//! The pipeline replaces such an answer by the extractive one.
//!
//! # Key design decision
//! Each rule is a cheap test on the text with its patterns in the language's
//! rules file (`rules/answer.<lang>.toml`); none of them knows a shop.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::answer_rules::{normalize, words, AnswerRules};
use crate::check::{fact_kinds, FactKind};
use crate::language::is_cjk;
use crate::Language;

/// Why a generation cannot be shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "detail")]
pub enum Degenerate {
    /// The same words over and over.
    Repetition,
    /// Talks about the prompt or the assistant instead of the shop.
    MetaTalk(String),
    /// Repeats the question instead of answering it.
    EchoesQuestion,
    /// Written partly in another language than the shopper's.
    MixedLanguage,
    /// "Yes." or "No." and nothing else.
    BareYesNo,
    /// The question asks for a duration or amount that the passages state
    /// and the answer leaves out.
    MissingFact,
    /// Says yes where the passage says no, or the reverse.
    Contradicts,
    /// States a quantity the passages give for another case than the one
    /// asked about (another zone, another row).
    WrongRow,
    /// Cites only passages that do not hold its facts.
    WrongCitation,
    /// Answers from another passage than the one settled as answering.
    AnotherPassage,
    /// Says it does not know, although a sentence of its passages holds
    /// most of the question.
    Declined,
}

impl Degenerate {
    pub fn describe(&self) -> String {
        match self {
            Degenerate::Repetition => "the answer repeats itself".into(),
            Degenerate::MetaTalk(words) => format!("the answer talks about {words:?}"),
            Degenerate::EchoesQuestion => "the answer repeats the question".into(),
            Degenerate::MixedLanguage => "the answer mixes languages".into(),
            Degenerate::BareYesNo => "the answer says yes or no without the fact".into(),
            Degenerate::MissingFact => "the answer leaves out the fact asked for".into(),
            Degenerate::Contradicts => "the answer contradicts its passage".into(),
            Degenerate::WrongRow => "the answer takes a number from another case".into(),
            Degenerate::WrongCitation => "the answer cites a passage without its facts".into(),
            Degenerate::AnotherPassage => {
                "the answer comes from another passage than the one that answers".into()
            }
            Degenerate::Declined => "the model said it does not know; a passage answers".into(),
        }
    }
}

/// What the answer was written for.
pub struct AnswerContext<'a> {
    pub question: &'a str,
    pub lang: Language,
    pub passages: &'a [&'a str],
    /// The sentence the extractive answer would quote, if any: when it
    /// states the kind of fact the question asks for, so must the answer.
    pub best_unit: Option<&'a str>,
}

/// The first reason `answer` cannot be shown, or `None` when it can.
pub fn degenerate(answer: &str, context: &AnswerContext<'_>) -> Option<Degenerate> {
    let rules = AnswerRules::of(context.lang);
    let plain = strip_citations(answer);
    if is_looping(&plain) {
        return Some(Degenerate::Repetition);
    }
    if let Some(words) = rules.meta_talk(&plain) {
        return Some(Degenerate::MetaTalk(words));
    }
    if mixes_languages(&plain, context) {
        return Some(Degenerate::MixedLanguage);
    }
    let terms = words(&plain);
    let opens_yes_no = opens_with_yes_or_no(&plain, rules);
    let content: Vec<&String> = terms.iter().filter(|t| !is_yes_no_word(t, rules)).collect();
    if content.is_empty() {
        return Some(if opens_yes_no { Degenerate::BareYesNo } else { Degenerate::EchoesQuestion });
    }
    let asked: HashSet<String> = words(context.question).into_iter().collect();
    let new_terms = content.iter().filter(|t| !asked.contains(t.as_str())).count();
    let answer_kinds = fact_kinds(&plain);
    let question_kinds = fact_kinds(context.question);
    if !opens_yes_no && new_terms * 5 <= content.len() && answer_kinds.is_subset(&question_kinds) {
        return Some(Degenerate::EchoesQuestion);
    }
    // A yes/no question may be answered without a figure ("No, we don't
    // charge for returns"); only a question asking for one needs it.
    let yes_no = rules.is_yes_no_question(context.question);
    if let Some(best) = context.best_unit.filter(|_| !yes_no) {
        let question = normalize(context.question);
        let best_kinds = fact_kinds(best);
        // Any figure will do: "before 15:00" answers "how soon does it ship".
        let has_figure = answer_kinds.iter().any(|k| {
            !matches!(
                k,
                FactKind::Email | FactKind::Url | FactKind::Phone | FactKind::Code | FactKind::Name
            )
        });
        let asks = |pattern: &regex::Regex, kinds: &[FactKind], answered: bool| {
            pattern.is_match(&question) && kinds.iter().any(|k| best_kinds.contains(k)) && !answered
        };
        let durations = [FactKind::Duration, FactKind::Range];
        // A price needs a price: "3 instalments" does not answer "what is
        // the minimum order", though any time answers "how soon".
        let amounts = [FactKind::Amount, FactKind::Percent];
        let has_amount = answer_kinds.iter().any(|k| amounts.contains(k));
        if asks(&rules.asks_duration, &durations, has_figure)
            || asks(&rules.asks_amount, &amounts, has_amount)
        {
            return Some(Degenerate::MissingFact);
        }
        // An answer with no fact of any kind that takes no word of its own
        // from the sentence that answers ("by visiting the website and
        // following the instructions" for "Account > Orders > Invoice")
        // sounds right but says nothing; the quoted sentence does better.
        let answering: HashSet<String> = words(best).into_iter().collect();
        let takes_from_answer =
            content.iter().any(|t| !asked.contains(t.as_str()) && answering.contains(t.as_str()));
        if answer_kinds.is_empty() && !takes_from_answer {
            return Some(Degenerate::MissingFact);
        }
    }
    None
}

/// Whether the text has fallen into a loop: a sentence written twice, or
/// the same run of words three times. Cheap enough to run on every streamed
/// piece, so that a loop is stopped early instead of running to the limit.
pub fn is_looping(text: &str) -> bool {
    let mut seen_sentences = HashSet::new();
    for sentence in text.split(['.', '!', '?', '。', '！', '？', '\n']) {
        let key = normalize(sentence);
        let key = key.trim();
        if key.chars().count() >= 12 && !seen_sentences.insert(key.to_owned()) {
            return true;
        }
    }
    // Runs of words (Latin) or characters (Chinese).
    let han = text.chars().filter(|&c| is_cjk(c)).count();
    let tokens: Vec<String> = if han * 2 > text.chars().count() {
        text.chars().filter(|c| !c.is_whitespace()).map(|c| c.to_string()).collect()
    } else {
        normalize(text).split_whitespace().map(str::to_owned).collect()
    };
    let n = if han * 2 > text.chars().count() { 8 } else { 5 };
    let mut counts: HashMap<&[String], usize> = HashMap::new();
    for window in tokens.windows(n) {
        let count = counts.entry(window).or_default();
        *count += 1;
        if *count >= 3 {
            return true;
        }
    }
    false
}

fn strip_citations(text: &str) -> String {
    crate::check::CITATION.replace_all(text, "").into_owned()
}

fn opens_with_yes_or_no(text: &str, rules: &AnswerRules) -> bool {
    let text = normalize(text);
    let text = text.trim_start();
    rules.yes_words.iter().chain(&rules.no_words).any(|w| {
        text.starts_with(w.as_str())
            && text[w.len()..].chars().next().is_none_or(|c| !c.is_alphanumeric() || is_cjk(c))
    })
}

fn is_yes_no_word(term: &str, rules: &AnswerRules) -> bool {
    rules.yes_words.iter().chain(&rules.no_words).any(|w| w == term)
        || matches!(term, "answer" | "question" | "correct" | "true" | "false")
}

/// A Chinese answer with several Latin words that its passages do not use
/// (brand names and codes from the passages are fine), or an English answer
/// with Chinese characters its passages do not hold.
fn mixes_languages(answer: &str, context: &AnswerContext<'_>) -> bool {
    let passages = normalize(&context.passages.join("\n"));
    match context.lang {
        Language::Zh => {
            let foreign = normalize(answer)
                .split(|c: char| !c.is_ascii_alphabetic())
                .filter(|w| w.len() >= 2 && !passages.contains(w))
                .count();
            foreign >= 3
        }
        Language::En => answer
            .chars()
            .filter(|&c| is_cjk(c) && c.is_alphabetic())
            .any(|c| !passages.contains(c)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context<'a>(
        question: &'a str,
        lang: Language,
        passages: &'a [&'a str],
    ) -> AnswerContext<'a> {
        AnswerContext { question, lang, passages, best_unit: passages.first().copied() }
    }

    const TIMES: &str = "Standard delivery takes 3-5 business days to EU zone 1.";

    #[test]
    fn good_answers_pass() {
        let passages = [TIMES];
        let ctx = context("How long does delivery to Germany take?", Language::En, &passages);
        assert_eq!(degenerate("Delivery to Germany takes 3-5 business days [1].", &ctx), None);
        let ctx = context("Do you ship to Germany?", Language::En, &passages);
        assert_eq!(degenerate("Yes, we ship to Germany [1].", &ctx), None);
        let zh = ["礼品卡自购买之日起 24 个月内有效。"];
        let ctx = context("礼品卡会过期吗？", Language::Zh, &zh);
        assert_eq!(degenerate("礼品卡自购买之日起 24 个月内有效 [1]。", &ctx), None);
    }

    #[test]
    fn what_small_models_write_is_caught() {
        let passages = [TIMES];
        let ctx = context("How long does delivery to Germany take?", Language::En, &passages);
        assert_eq!(
            degenerate("I'm glad to help! I'm glad to help! I'm glad to help!", &ctx),
            Some(Degenerate::Repetition)
        );
        assert!(matches!(
            degenerate("The passage provides a detailed explanation [1].", &ctx),
            Some(Degenerate::MetaTalk(_))
        ));
        assert!(matches!(
            degenerate("I'm just a customer service assistant.", &ctx),
            Some(Degenerate::MetaTalk(_))
        ));
        assert_eq!(
            degenerate("Delivery to Germany takes a while [1].", &ctx),
            Some(Degenerate::MissingFact)
        );
        let ctx = context("Do you ship to Germany?", Language::En, &passages);
        assert_eq!(degenerate("Yes.", &ctx), Some(Degenerate::BareYesNo));
        assert!(degenerate("The answer to the question is yes.", &ctx).is_some());
        let zh = ["退款会在 14 天内退回原支付方式。"];
        let ctx = context("寄到德国要几天？", Language::Zh, &zh);
        assert_eq!(degenerate("根据[1]，寄到德国要几天？", &ctx), Some(Degenerate::EchoesQuestion));
        assert_eq!(
            degenerate("抱歉, I don't know the answer to that.", &ctx),
            Some(Degenerate::MixedLanguage)
        );
    }

    #[test]
    fn an_answer_with_nothing_from_the_answering_sentence_misses_the_fact() {
        let invoices =
            ["Account holders can download it as a PDF under Account > Orders > Invoice."];
        let ctx = context("How do I get a VAT invoice?", Language::En, &invoices);
        assert_eq!(
            degenerate(
                "You can get a VAT invoice by visiting the [1] website and following the instructions.",
                &ctx
            ),
            Some(Degenerate::MissingFact)
        );
        // A paraphrase that keeps the answer's own words stands.
        assert_eq!(degenerate("Download the PDF from your account's order page [1].", &ctx), None);
        let zh = ["会员可以在“我的订单”页面下载电子发票。"];
        let ctx = context("怎么开发票？", Language::Zh, &zh);
        assert_eq!(
            degenerate("请联系我们的团队获取帮助 [1]。", &ctx),
            Some(Degenerate::MissingFact)
        );
        assert_eq!(degenerate("在“我的订单”页面可以下载电子发票 [1]。", &ctx), None);
    }

    #[test]
    fn a_price_question_needs_a_price_not_just_a_number() {
        let huabei = ["Orders of ¥300 or more can be split into 3, 6 or 12 Huabei instalments."];
        let ctx = context("What's the minimum order to pay with Huabei?", Language::En, &huabei);
        assert_eq!(
            degenerate(
                "The minimum order to split the payment with Huabei is 3 instalments.",
                &ctx
            ),
            Some(Degenerate::MissingFact)
        );
        assert_eq!(degenerate("Orders from ¥300 can use Huabei [1].", &ctx), None);
        // A duration is still answered by any figure: a time will do.
        let dispatch = ["Orders paid before 16:00 leave the same day; others within 24 hours."];
        let ctx = context("How soon does my order ship?", Language::En, &dispatch);
        assert_eq!(degenerate("If you pay before 16:00 it leaves today [1].", &ctx), None);
    }

    #[test]
    fn loops_are_seen_early() {
        assert!(is_looping("We ship fast. We ship to many places. We ship fast."));
        assert!(!is_looping("Standard delivery takes 3-5 days. Express takes 1-2 days."));
        assert!(is_looping("我们很乐意帮助您我们很乐意帮助您我们很乐意帮助您"));
    }

    #[test]
    fn citations_are_not_words() {
        assert_eq!(strip_citations("Yes [1], see 【2】 and [a]."), "Yes , see  and [a].");
    }
}
