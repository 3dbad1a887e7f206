//! The verdict on a model's answer: may it stand, and if not, what replaces
//! it. One function for the pipeline and for `shopchat eval check`, so that
//! the check's measured precision and recall are those of what shoppers get.
//!
//! In order: an "I don't know" in any wording is a refusal; then every fact
//! must be in the passages ([`crate::check`]); then the answer must be fit to
//! show ([`crate::degenerate`]); then it must not flip the passage's yes/no
//! ([`crate::polarity`]), take a number from another row than the one asked
//! about (`crate::check::misaligned`), cite a passage that does not hold
//! its facts, or leave the passage settled as the answering one for another.

use std::collections::HashSet;

use crate::answer_rules::{words, AnswerRules};
use crate::check::{
    check_answer, fact_kinds, invented_chinese_names, AllowedFacts, CheckOutcome, FactKind,
};
use crate::degenerate::{degenerate, AnswerContext, Degenerate};
use crate::extract::{extract_titled_answer, most_covering_unit, units, Aliases, Extract};
use crate::polarity::{answer_polarity, negates};
use crate::Language;

/// What an answer was written from.
pub struct AnswerInput<'a> {
    pub question: &'a str,
    pub lang: Language,
    pub passages: &'a [&'a str],
    /// The passages' titles (an FAQ entry's question), if known.
    pub titles: &'a [&'a str],
    pub allowed: &'a AllowedFacts,
    pub aliases: &'a Aliases,
    /// The first passage is the one that answers, beyond reasonable doubt
    /// (search ranked it first by words and by meaning alike): an answer
    /// drawn from another passage is unfit, and a quote comes from it.
    pub settled: bool,
}

impl AnswerInput<'_> {
    /// The passages and titles a quoted answer may come from.
    pub fn quotable(&self) -> (&[&str], &[&str]) {
        if self.settled && !self.passages.is_empty() {
            (&self.passages[..1], &self.titles[..self.titles.len().min(1)])
        } else {
            (self.passages, self.titles)
        }
    }
}

/// The decision on one answer. `text` is the answer to show when it stands:
/// the model's, without a preamble such as "The answer to the question is:".
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The model said it cannot answer.
    Refusal,
    /// The answer stands (`check.passed`) or must be replaced; `extract` is
    /// the sentence to quote instead, when one answers the question.
    Checked { check: CheckOutcome, extract: Option<Extract>, text: String },
}

/// Judges `answer`; `finished` is false for an answer the shopper stopped,
/// which is checked for facts only (half a sentence is no loop or echo).
pub fn judge(answer: &str, input: &AnswerInput<'_>, finished: bool) -> Verdict {
    let rules = AnswerRules::of(input.lang);
    let mut repaired = rules.without_preamble(answer.trim());
    if repaired.is_empty() {
        // Only a preamble ("The answer to the question in the passage
        // is:", then the copied passage list, cut): the model did not
        // decline, it said nothing. Judged whole, it is the talk about
        // "the passage" that it is, and the sentence that answers is quoted.
        repaired = answer.trim().to_owned();
    }
    let answer = repaired.as_str();
    // In any language: a small model often declines in English whatever
    // the shopper wrote ("抱歉, I don't know the answer to that.").
    let declines = Language::ALL.into_iter().any(|lang| AnswerRules::of(lang).is_refusal(answer));
    if answer.is_empty() || declines {
        return Verdict::Refusal;
    }
    let (quotable, titles) = input.quotable();
    let extract =
        extract_titled_answer(input.question, quotable, titles, input.lang, input.aliases);
    let check = facts_check(answer, input.passages, input);
    if !check.passed || !finished {
        return Verdict::Checked { check, extract, text: repaired };
    }
    let context = AnswerContext {
        question: input.question,
        lang: input.lang,
        passages: input.passages,
        best_unit: extract.as_ref().map(|e| e.text.as_str()),
    };
    // A bare yes or no that also says the opposite of its passage is told
    // as the contradiction: the graver fault, and the one staff can act on.
    let unfit = match degenerate(answer, &context) {
        bare @ Some(Degenerate::BareYesNo) => flipped(answer, input).or(bare),
        other => other.or_else(|| flipped(answer, input)),
    };
    let unfit = unfit
        .or_else(|| {
            crate::check::misaligned(answer, input.question, input.passages, input.aliases)
                .then_some(Degenerate::WrongRow)
        })
        .or_else(|| wrong_sentence(answer, input))
        .or_else(|| miscited(answer, input))
        .or_else(|| strays(answer, input));
    Verdict::Checked { check: check.with_degenerate(unfit), extract, text: repaired }
}

/// The fact check against `passages`, where a name the shop's texts give
/// another name for ("Germany" for "DE") counts as held.
fn facts_check(answer: &str, passages: &[&str], input: &AnswerInput<'_>) -> CheckOutcome {
    let mut check = check_answer(answer, passages, input.allowed);
    check.unsupported.retain(|fact| {
        fact.kind != FactKind::Name || !input.aliases.known_by_another_name(&fact.text, passages)
    });
    for fact in invented_chinese_names(answer, input.lang, passages, input.question) {
        if !check.unsupported.contains(&fact) {
            check.unsupported.push(fact);
        }
    }
    check.passed = check.unsupported.is_empty();
    check
}

/// A yes/no answer whose polarity is the opposite of the sentence that
/// answers the question.
fn flipped(answer: &str, input: &AnswerInput<'_>) -> Option<Degenerate> {
    let rules = AnswerRules::of(input.lang);
    if !rules.is_yes_no_question(input.question) {
        return None;
    }
    let topic: HashSet<String> = words(input.question).into_iter().collect();
    if opposed(answer, input, &topic) {
        return answer_polarity(answer, &topic, input.lang)
            .is_some_and(|no| !no)
            .then_some(Degenerate::Contradicts);
    }
    // Compared only with a sentence that clearly is about the question.
    let (unit, coverage) =
        most_covering_unit(input.question, input.passages, input.lang, input.aliases)?;
    if coverage < 0.5 {
        return None;
    }
    // Only a "yes" against a passage's "no": a passage often denies without
    // a negation word ("mattresses are final sale"), so an answer's "no"
    // against a passage read as "yes" is too often right to stop.
    let passage_says_no = negates(&unit.text, &topic, input.lang)?;
    let answer_says_no = answer_polarity(answer, &topic, input.lang)?;
    (passage_says_no && !answer_says_no).then_some(Degenerate::Contradicts)
}

/// Whether a passage sentence says the opposite of a word the question asks
/// about ("express delivery is always charged" for "is express free?"),
/// about a term of the question that the answer uses and that no sentence
/// holding the word itself has (so the sentence is about the case asked,
/// not a neighbour: "standard delivery is free" does not clear "express").
fn opposed(answer: &str, input: &AnswerInput<'_>, topic: &HashSet<String>) -> bool {
    let rules = AnswerRules::of(input.lang);
    let sentences: Vec<String> = units(input.passages).into_iter().map(|u| u.text).collect();
    let has = |text: &str, word: &str| match input.lang {
        Language::Zh => text.contains(word),
        Language::En => words(text).iter().any(|w| words(word).contains(w)),
    };
    let answer_terms: HashSet<String> = words(answer).into_iter().collect();
    rules.opposites.iter().any(|[a, b]| {
        [(a, b), (b, a)].into_iter().any(|(asked, opposite)| {
            if !has(input.question, asked) || has(answer, opposite) {
                return false;
            }
            // Sentences that affirm the asked word ("… is never free" denies it).
            let asked_terms: HashSet<String> = words(asked).into_iter().collect();
            let with_asked: Vec<&String> = sentences
                .iter()
                .filter(|s| has(s, asked) && negates(s, &asked_terms, input.lang) != Some(true))
                .collect();
            sentences.iter().filter(|s| has(s, opposite) && !has(s, asked)).any(|s| {
                words(s).into_iter().any(|term| {
                    topic.contains(&term)
                        && answer_terms.contains(&term)
                        && !has(asked, &term)
                        && !with_asked.iter().any(|w| words(w).contains(&term))
                })
            })
        })
    })
}

/// An answer with one quantity, taken from another sentence than the one
/// that answers the question, when that sentence gives its own of the same
/// kind: "Headphones … have a 1-year warranty" answered with the laptops'
/// "2-year": the sentence the question is about, where the row alignment
/// of [`crate::check::misaligned`] finds no clearly better case.
fn wrong_sentence(answer: &str, input: &AnswerInput<'_>) -> Option<Degenerate> {
    let quantities = [FactKind::Duration, FactKind::Amount, FactKind::Range, FactKind::Percent];
    let stated = crate::check::quantities(answer);
    let [quantity] = stated.as_slice() else { return None };
    let (unit, coverage) =
        most_covering_unit(input.question, input.passages, input.lang, input.aliases)?;
    if coverage < 0.5 {
        return None;
    }
    let kinds = fact_kinds(answer);
    let same_kind =
        fact_kinds(&unit.text).iter().any(|k| quantities.contains(k) && kinds.contains(k));
    let best = [unit.text.as_str()];
    let in_best = check_answer(quantity, &best, input.allowed).passed
        || check_answer(&crate::check::figures_of(quantity), &best, input.allowed).passed;
    if !same_kind || in_best {
        return None;
    }
    // The answer must read as about the case asked, not as a statement of
    // the sentence it took the figure from ("No, express is always charged
    // (€9.95)" asked "is express free over €60?").
    let answer_terms: HashSet<String> = words(answer)
        .into_iter()
        .filter(|w| !w.chars().all(|c| c.is_ascii_digit() || c == '.'))
        .collect();
    let overlap = |text: &str| words(text).iter().filter(|w| answer_terms.contains(*w)).count();
    let source = units(input.passages)
        .into_iter()
        .filter(|u| check_answer(quantity, &[u.text.as_str()], input.allowed).passed)
        .map(|u| overlap(&u.text))
        .max()?;
    (source <= overlap(&unit.text)).then_some(Degenerate::WrongRow)
}

/// An answer whose citations all point at passages that do not hold its
/// facts, while another passage does.
fn miscited(answer: &str, input: &AnswerInput<'_>) -> Option<Degenerate> {
    let cited = crate::prompt::cited_passages(answer, input.passages.len());
    if cited.is_empty() || fact_kinds(answer).is_empty() {
        return None;
    }
    let texts: Vec<&str> = cited.iter().map(|&n| input.passages[n - 1]).collect();
    (!facts_check(answer, &texts, input).passed).then_some(Degenerate::WrongCitation)
}

/// An answer drawn from another passage than the settled first one: it
/// cites only others, or shares more of its own words (those not in the
/// question) with another passage than with the first.
fn strays(answer: &str, input: &AnswerInput<'_>) -> Option<Degenerate> {
    if !input.settled || input.passages.len() < 2 {
        return None;
    }
    let cited = crate::prompt::cited_passages(answer, input.passages.len());
    if !cited.is_empty() {
        return (!cited.contains(&1)).then_some(Degenerate::AnotherPassage);
    }
    let asked: HashSet<String> = words(input.question).into_iter().collect();
    let own: HashSet<String> = words(answer).into_iter().filter(|w| !asked.contains(w)).collect();
    let shared = |passage: &str| {
        let terms: HashSet<String> = words(passage).into_iter().collect();
        own.iter().filter(|w| terms.contains(*w)).count()
    };
    let first = shared(input.passages[0]);
    input.passages[1..]
        .iter()
        .any(|passage| shared(passage) > first)
        .then_some(Degenerate::AnotherPassage)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMES: &str = "After dispatch, standard delivery takes 2-3 business days to the UK, 3-5 to EU zone 1 (AT, BE, DE, FR), 4-7 to the rest of the EU and 5-8 to the US.";
    const RETURNS: &str =
        "Earrings, underwear and swimwear cannot be returned for hygiene reasons.";
    const COSTS: &str = "| Zone | Standard | Express |\n|---|---|---|\n| United Kingdom | €4.95 | €9.95 |\n| EU zone 2 | €8.95 | €19.95 |";

    fn judged(question: &str, answer: &str, passages: &[&str]) -> Verdict {
        let allowed = AllowedFacts::new();
        let aliases = Aliases::from_texts(["Germany (DE)"]);
        let lang = Language::detect(question);
        judge(
            answer,
            &AnswerInput {
                question,
                lang,
                passages,
                titles: &[],
                allowed: &allowed,
                aliases: &aliases,
                settled: false,
            },
            true,
        )
    }

    fn passed(verdict: &Verdict) -> bool {
        let ok = matches!(verdict, Verdict::Checked { check, .. } if check.passed);
        if !ok {
            eprintln!("{verdict:?}");
        }
        ok
    }

    #[test]
    fn right_answers_stand() {
        assert!(passed(&judged(
            "How long does delivery to Germany take?",
            "Delivery to Germany takes 3-5 business days [1].",
            &[TIMES]
        )));
        assert!(passed(&judged(
            "How long does UK delivery take?",
            "Standard delivery to the UK takes 2-3 days [1].",
            &[TIMES]
        )));
        assert!(passed(&judged(
            "Can I return earrings?",
            "No, earrings cannot be returned for hygiene reasons [1].",
            &[RETURNS]
        )));
        assert!(passed(&judged(
            "How much is express to the UK?",
            "Express delivery to the UK costs €9.95 [1].",
            &[COSTS]
        )));
    }

    #[test]
    fn wrong_answers_are_caught() {
        let check = |v: Verdict| match v {
            Verdict::Checked { check, .. } => check.degenerate,
            Verdict::Refusal => None,
        };
        assert_eq!(
            check(judged(
                "Can I return earrings?",
                "Yes, you can return earrings [1].",
                &[RETURNS]
            )),
            Some(Degenerate::Contradicts)
        );
        assert_eq!(
            check(judged(
                "How long does delivery to Germany take?",
                "Delivery to Germany takes 5-8 business days [1].",
                &[TIMES]
            )),
            Some(Degenerate::WrongRow)
        );
        assert_eq!(
            check(judged(
                "How much is express to the UK?",
                "Express to the UK costs €8.95 [1].",
                &[COSTS]
            )),
            Some(Degenerate::WrongRow)
        );
        assert_eq!(
            check(judged(
                "How long does delivery to Germany take?",
                "Delivery to Germany takes 3-5 business days [2].",
                &[RETURNS, TIMES,]
            )),
            None,
            "cites the right one"
        );
        assert_eq!(
            check(judged(
                "How long does delivery to Germany take?",
                "Delivery to Germany takes 3-5 business days [1].",
                &[RETURNS, TIMES]
            )),
            Some(Degenerate::WrongCitation)
        );
        assert_eq!(
            judged("Do you sell hats?", "I'm not sure, sorry.", &[RETURNS]),
            Verdict::Refusal
        );
        assert!(matches!(
            check(judged(
                "How long does delivery to Germany take?",
                "The answer to the question in the passage is:",
                &[TIMES]
            )),
            Some(Degenerate::MetaTalk(_))
        ));
        assert_eq!(
            judged(
                "My parcel arrived damaged, what should I do?",
                "1. I'm sorry, I'm not familiar with the product you're referring to.",
                &[RETURNS]
            ),
            Verdict::Refusal
        );
    }

    #[test]
    fn an_answer_must_come_from_a_settled_first_passage() {
        let check = |v: Verdict| match v {
            Verdict::Checked { check, .. } => check.degenerate,
            Verdict::Refusal => None,
        };
        const STUDENTS: &str =
            "Students get 6% off laptops and tablets, up to ¥400 per order, once a year.";
        const CHARGER: &str = "The 65W charger powers phones, tablets and laptops over USB-C.";
        let (allowed, aliases) = (AllowedFacts::new(), Aliases::default());
        let passages = [STUDENTS, CHARGER];
        let question = "any deals for uni students on a new laptop?";
        let settled = |answer: &str, settled: bool| {
            judge(
                answer,
                &AnswerInput {
                    question,
                    lang: Language::En,
                    passages: &passages,
                    titles: &[],
                    allowed: &allowed,
                    aliases: &aliases,
                    settled,
                },
                true,
            )
        };
        let stray = "Yes. The 65W charger powers phones, tablets and laptops over USB-C.";
        assert_eq!(check(settled(stray, true)), Some(Degenerate::AnotherPassage));
        // Its quote comes from the settled passage.
        match settled(stray, true) {
            Verdict::Checked { extract: Some(extract), .. } => assert_eq!(extract.passage, 0),
            other => panic!("{other:?}"),
        }
        let cited = "The 65W charger works with laptops over USB-C [2].";
        assert_eq!(check(settled(cited, true)), Some(Degenerate::AnotherPassage));
        let right = "Students get 6% off laptops, up to ¥400 per order [1].";
        assert!(passed(&settled(right, true)));
        // Unsettled, either passage may answer.
        assert!(passed(&settled(stray, false)));
    }

    #[test]
    fn an_answer_reasoning_from_a_list_is_no_wrong_row() {
        let list = "Standard shipping costs €4.50 to EU countries and €12 to the rest of the world. EU countries we ship to: Austria, Belgium, France and Italy.";
        assert!(passed(&judged(
            "how much to ship to italy",
            "Italy is in the EU, so standard shipping is €4.50 [1].",
            &[list]
        )));
        assert!(!passed(&judged(
            "How long does delivery to Germany take?",
            "Delivery to Germany takes 5-8 business days [1].",
            &[TIMES]
        )));
    }

    #[test]
    fn a_figure_from_another_sentence_than_the_one_asked_about_is_caught() {
        let warranty = "All laptops and tablets come with a 2-year warranty. Headphones, speakers and watches have a 1-year warranty.";
        let check =
            |answer: &str| judged("What's the warranty on my headphones?", answer, &[warranty]);
        assert!(!passed(&check("Headphones are covered by a 2-year warranty [1].")));
        assert!(passed(&check("Headphones have a 1-year warranty [1].")));
        assert!(passed(&check("Headphones have a one-year warranty [1].")));
    }

    #[test]
    fn an_opposite_word_about_the_case_asked_is_a_flip() {
        let fees = "Standard delivery is free on orders over €60. Express delivery is always charged: €9.95.";
        let question = "Is express shipping free over €60?";
        assert!(!passed(&judged(
            question,
            "Yes, express delivery is free over €60 too [1].",
            &[fees]
        )));
        assert!(passed(&judged(
            question,
            "No, express delivery is always charged (€9.95) [1].",
            &[fees]
        )));
        // Standard delivery is the case the free sentence is about.
        assert!(passed(&judged(
            "Is standard shipping free over €60?",
            "Yes, standard delivery is free on orders over €60 [1].",
            &[fees]
        )));
    }

    #[test]
    fn chinese_answers_opening_with_hui_or_xuyao_are_read_as_yes() {
        let refund = "如果包裹无人签收被退回，我们会在 5 个工作日内退还商品金额，原运费不予退还。";
        let question = "包裹无人签收退回了，运费会退吗？";
        assert!(!passed(&judged(
            question,
            "会的，无人签收退回后，商品金额和原运费都会在 5 个工作日内退还 [1]。",
            &[refund]
        )));
        assert!(passed(&judged(
            question,
            "不会，原运费不予退还，商品金额会在 5 个工作日内退还 [1]。",
            &[refund]
        )));
        let label = "换货的退货面单由我们免费提供。";
        let question = "换货的面单要付费吗？";
        assert!(!passed(&judged(question, "需要，换货面单需要付费 [1]。", &[label])));
        assert!(passed(&judged(question, "不需要，换货的退货面单免费提供 [1]。", &[label])));
    }
}
