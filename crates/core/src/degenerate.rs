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
    /// Shares no word with its passages ("I'm sorry for the confusion.
    /// I'll make sure to provide the most accurate information.").
    Ungrounded,
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
            Degenerate::Ungrounded => "the answer says nothing its passages hold".into(),
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
    let opens_yes_no = rules.opens_with_yes_or_no(&plain);
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
    let yes_no = rules.is_yes_no_question(context.question);
    // "No, you cannot pay import duty when the parcel reaches Malaysia." for
    // "Will I have to pay import duty when the parcel reaches Malaysia?":
    // a yes or a no and the question's own words says nothing the passage
    // vouches for, and a small model's yes or no is a coin toss (the same
    // question got "Yes, SF Express is free." and "No, SF Express is not
    // always free." from two CPUs' rounding). A hedge ("not always")
    // says that it depends without saying on what. The sentence that
    // answers does better.
    if yes_no && opens_yes_no && answer_kinds.is_empty() {
        let hedges: HashSet<String> = rules.hedge_words.iter().flat_map(|w| words(w)).collect();
        let new_unhedged = content
            .iter()
            .filter(|t| !asked.contains(t.as_str()) && !hedges.contains(t.as_str()))
            .count();
        if new_unhedged * 5 <= content.len() {
            return Some(Degenerate::BareYesNo);
        }
    }
    // Otherwise a yes/no question may be answered without a figure ("No,
    // we don't charge for returns"); only a question asking for one needs it.
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
    // Filler that takes no word from the passages says nothing they vouch
    // for, whatever the question; a fact in it (a number, a name) is the
    // fact check's to judge.
    let held: HashSet<String> = context.passages.iter().flat_map(|p| words(p)).collect();
    if answer_kinds.is_empty() && !content.iter().any(|t| held.contains(t.as_str())) {
        return Some(Degenerate::Ungrounded);
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
    let chinese = han * 2 > text.chars().count();
    // A short run said three times, or a long one said twice: a sentence
    // that ends by restating the one before it word for word ("…, and you
    // can get a refund if you need a company name on the invoice. You can
    // also get a refund if you need a company name on the invoice.") is the
    // model going round, though no sentence is written twice whole.
    let (short, long) = if chinese { (8, 16) } else { (5, 10) };
    for (n, times) in [(short, 3), (long, 2)] {
        let mut counts: HashMap<&[String], usize> = HashMap::new();
        for window in tokens.windows(n) {
            let count = counts.entry(window).or_default();
            *count += 1;
            if *count >= times {
                return true;
            }
        }
    }
    false
}

/// Where the text starts copying the prompt's list of passages: a line
/// that opens with a passage marker (`[4] ...`, `- [2] ...`) after the
/// answer has begun. An answer cites inside its sentences; a line that
/// starts with a marker is the model writing out the next passage of the
/// list it was given, never part of the answer. Returns the byte offset
/// where that line starts, so that the text before it stands as the answer.
pub fn passage_copy_start(text: &str) -> Option<usize> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        if text[..start].trim().is_empty() {
            continue;
        }
        let opening = line.trim_start().trim_start_matches(['-', '*', '•']).trim_start();
        let Some(rest) = opening.strip_prefix('[') else { continue };
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits > 0 && rest[digits..].starts_with(']') {
            return Some(start);
        }
    }
    None
}

fn strip_citations(text: &str) -> String {
    crate::check::CITATION.replace_all(text, "").into_owned()
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
        assert_eq!(degenerate("Yes, it takes 3-5 business days to Germany [1].", &ctx), None);
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
        // Asking the shopper for the question they just asked.
        assert!(matches!(
            degenerate("I'm ready to help. What's your question?", &ctx),
            Some(Degenerate::MetaTalk(_))
        ));
        assert!(matches!(
            degenerate("As a customer service assistant, I can only assist with orders.", &ctx),
            Some(Degenerate::MetaTalk(_))
        ));
        // An apology for a confusion nobody had, whatever words follow it.
        assert!(matches!(
            degenerate("I'm sorry for the confusion. Delivery takes a while.", &ctx),
            Some(Degenerate::MetaTalk(_))
        ));
        assert_eq!(
            degenerate("Delivery to Germany takes a while [1].", &ctx),
            Some(Degenerate::MissingFact)
        );
        let ctx = context("Do you ship to Germany?", Language::En, &passages);
        assert_eq!(degenerate("Yes.", &ctx), Some(Degenerate::BareYesNo));
        assert_eq!(degenerate("Yes, we ship to Germany [1].", &ctx), Some(Degenerate::BareYesNo));
        // Filler with no word from the passage, where no fact kind is asked.
        let filler = "I'll make sure to give you accurate information.";
        assert_eq!(degenerate(filler, &ctx), Some(Degenerate::Ungrounded));
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
    fn a_yes_or_no_that_adds_nothing_to_the_question_is_bare() {
        let duty = ["Duties and taxes for Malaysia are paid at checkout; there is nothing more to pay on delivery."];
        let ctx = context(
            "Will I have to pay import duty when the parcel reaches Malaysia?",
            Language::En,
            &duty,
        );
        assert_eq!(
            degenerate("No, you cannot pay import duty when the parcel reaches Malaysia.", &ctx),
            Some(Degenerate::BareYesNo)
        );
        assert_eq!(degenerate("No, duties are paid at checkout [1].", &ctx), None);
        let sf = ["SF Express is free on mainland orders of ¥1,999 or more."];
        let ctx = context("Is SF Express ever free?", Language::En, &sf);
        assert_eq!(
            degenerate("No, SF Express is not always free.", &ctx),
            Some(Degenerate::BareYesNo)
        );
        assert_eq!(degenerate("Yes, on orders of ¥1,999 or more [1].", &ctx), None);
        let returns = ["Returns are free from every country we ship to."];
        let ctx = context("Do you charge for returns?", Language::En, &returns);
        assert_eq!(degenerate("No, returns are free from every country [1].", &ctx), None);
    }

    #[test]
    fn a_long_run_said_twice_is_a_loop() {
        assert!(is_looping(
            "You can download the invoice, and you can get a refund if you need a company \
             name or VAT number on the invoice. You can also get a refund if you need a \
             company name or VAT number on the invoice."
        ));
        // Two sentences about two cases share short runs, not long ones.
        assert!(!is_looping(
            "Standard delivery to the UK takes 2-3 business days [1]. Standard delivery to \
             Ireland takes 3-5 business days [1]."
        ));
        assert!(is_looping("退货运费由我们承担，退款会在七天内退回原支付方式。另外退货运费由我们承担，退款会在七天内退回原支付方式。"));
        assert!(!is_looping("寄到香港需要 2-4 个工作日，寄到新加坡需要 3-6 个工作日。"));
    }

    #[test]
    fn a_line_opening_with_a_passage_marker_after_the_answer_is_a_copy_of_the_list() {
        let text = "Yes, exchanges are free of charge [1].\n\n[4] - You can exchange an item";
        let start = passage_copy_start(text).unwrap();
        assert_eq!(text[..start].trim(), "Yes, exchanges are free of charge [1].");
        assert!(passage_copy_start("Free [2].\n- [3] Returns are").is_some());
        assert!(passage_copy_start("可以免费换货 [1]。\n[2] 退货").is_some());
        // Citations inside sentences, a marker opening the answer itself and
        // a numbered list are answers, not copies.
        assert_eq!(passage_copy_start("[1] says delivery takes 3 days."), None);
        assert_eq!(passage_copy_start("Delivery takes 3 days [1].\nReturns: 30 days [2]."), None);
        assert_eq!(passage_copy_start("Steps:\n1. Log in\n2. Open orders"), None);
        assert_eq!(passage_copy_start("\n\n[2] Returns are free."), None);
    }

    #[test]
    fn citations_are_not_words() {
        assert_eq!(strip_citations("Yes [1], see 【2】 and [a]."), "Yes , see  and [a].");
    }
}
