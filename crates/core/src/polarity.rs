//! Yes/no flips: an answer that says "yes" where its passage says "no".
//!
//! The fact check compares numbers and names; it cannot see that "Yes, you
//! can return earrings" contradicts "Earrings cannot be returned". This
//! module compares the polarity of the two about the question's own words:
//! a negation ("not", "can't", "不", "无法", from the language's rules file)
//! within a few terms before a word the question uses makes that statement
//! negative.
//!
//! # Key design decision
//! The comparison only speaks when both sides are clear: the question is a
//! yes/no question, the passage's sentence about it shares its words, and the
//! answer either opens with yes/no or restates those words. Anything less
//! clear is left alone, because a false alarm replaces a right answer.

use std::collections::HashSet;

use crate::answer_rules::{normalize, words, AnswerRules};
use crate::Language;

/// Terms a negation may stand before the word it negates ("cannot be
/// returned": "be" is a stop word, so "cannot" and "returned" are two apart).
const NEGATION_REACH: usize = 4;

/// How a negation and a denial are marked in a text before it is split into
/// words (a control character no shopper types).
const NEGATION: &str = " \u{1}N ";
const DENIAL: &str = " \u{1}D ";

/// Whether `statement` denies what it says about `topic` terms: `Some(true)`
/// for a negative statement, `Some(false)` for a positive one, `None` when it
/// shares no term with the topic.
pub fn negates(statement: &str, topic: &HashSet<String>, lang: Language) -> Option<bool> {
    let rules = AnswerRules::of(lang);
    // The clause sharing most of the question's words speaks for the
    // statement: "we ship to Germany; we do not ship to Norway" is a yes
    // about Germany.
    let mut best: Option<(usize, bool)> = None;
    // Commas stay: they often only list what the clause says something of
    // ("earrings, underwear and swimwear cannot be returned").
    let text = normalize(statement).replace(" but ", ".").replace("但是", "。");
    // Chinese lists with "、", so its commas do end a clause.
    let ends: &[char] = match lang {
        Language::Zh => &['.', ';', '!', '?', '。', '；', '！', '？', '\n', '，'],
        Language::En => &['.', ';', '!', '?', '。', '；', '！', '？', '\n'],
    };
    for clause in text.split(ends) {
        let tokens = polarity_tokens(clause, rules);
        let mut shared = 0;
        let mut negated = false;
        for (i, token) in tokens.iter().enumerate() {
            if let Token::Term(term) = token {
                if topic.contains(term) {
                    shared += 1;
                    // Near the term, or anywhere before it in a clause that
                    // opens with the denial ("we can't deliver to other
                    // countries, including Switzerland").
                    let start = i.saturating_sub(NEGATION_REACH);
                    let denies = |t: &Token| matches!(t, Token::Negation | Token::Denial);
                    negated |= tokens[start..i].iter().any(denies)
                        || tokens[..i.min(4)].iter().any(denies);
                    // Or after it, where the predicate follows its subject:
                    // "earrings are final sale", "耳环……不接受退货" (a
                    // Chinese clause is short: anywhere after it).
                    let after = &tokens[i + 1..];
                    negated |= match lang {
                        Language::Zh => after.iter().any(denies),
                        Language::En => {
                            after.iter().take(NEGATION_REACH).any(|t| matches!(t, Token::Denial))
                        }
                    };
                }
            }
        }
        if shared > 0 && best.is_none_or(|(most, _)| shared > most) {
            best = Some((shared, negated));
        }
    }
    best.map(|(_, negated)| negated)
}

/// The polarity an answer gives a yes/no question: from its opening word
/// when it has one, else from its statement about the question's terms.
pub fn answer_polarity(answer: &str, topic: &HashSet<String>, lang: Language) -> Option<bool> {
    let rules = AnswerRules::of(lang);
    let text = normalize(answer);
    let text = text.trim_start();
    // An opening "Yes," / "No." / "不可以，" stands apart from the statement
    // that follows it. The statement decides when it speaks of the topic:
    // "No, only one code can be used per order" states one code, and its "no"
    // answers a question worded otherwise ("can I use two codes?").
    let mut opening = None;
    let mut body = text;
    for (words, says_no) in [(&rules.no_words, true), (&rules.yes_words, false)] {
        for word in words.iter() {
            if let Some(rest) = text.strip_prefix(word.as_str()) {
                if rest.starts_with([',', '.', '!', ';', '，', '。', '！', '；', '、']) {
                    opening = Some(says_no);
                    body = rest;
                    break;
                }
            }
        }
        if opening.is_some() {
            break;
        }
    }
    negates(body, topic, lang).or(opening)
}

/// A statement read as topic terms and negations, in order.
#[derive(Debug, PartialEq)]
enum Token {
    Term(String),
    Negation,
    /// A word that denies what it follows too ("final sale").
    Denial,
}

fn polarity_tokens(text: &str, rules: &AnswerRules) -> Vec<Token> {
    let text = normalize(text);
    // Mark negations first (they are mostly stop words and would vanish),
    // longest first so that "不可以" is one negation, not "不" + "可以".
    let mut negations: Vec<(&String, &str)> = rules
        .negations
        .iter()
        .map(|n| (n, NEGATION))
        .chain(rules.denials.iter().map(|d| (d, DENIAL)))
        .collect();
    negations.sort_by_key(|(n, _)| std::cmp::Reverse(n.chars().count()));
    let mut marked = String::with_capacity(text.len());
    let mut rest = text.as_str();
    'outer: while !rest.is_empty() {
        // A word that only contains a negation ("无理由" is "no reason
        // needed", "无线" is "wireless") stays a word.
        for kept in &rules.negation_exceptions {
            if let Some(after) = rest.strip_prefix(kept.as_str()) {
                marked.push_str(kept);
                rest = after;
                continue 'outer;
            }
        }
        for (negation, mark) in &negations {
            if let Some(after) = rest.strip_prefix(negation.as_str()) {
                let latin = negation.is_ascii();
                let starts_word = marked.chars().last().is_none_or(|c| !c.is_alphanumeric());
                let ends_word = after.chars().next().is_none_or(|c| !c.is_alphanumeric());
                if !latin || (starts_word && ends_word) {
                    marked.push_str(mark);
                    rest = after;
                    continue 'outer;
                }
            }
        }
        let c = rest.chars().next().unwrap_or(' ');
        marked.push(c);
        rest = &rest[c.len_utf8()..];
    }
    // Each mark is "\u{1}" and a letter; the text after it runs to the next.
    let mut tokens = Vec::new();
    for (i, piece) in marked.split('\u{1}').enumerate() {
        let text = if i == 0 {
            piece
        } else if let Some(rest) = piece.strip_prefix('D') {
            tokens.push(Token::Denial);
            rest
        } else {
            tokens.push(Token::Negation);
            piece.strip_prefix('N').unwrap_or(piece)
        };
        tokens.extend(words(text).into_iter().map(Token::Term));
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(question: &str) -> HashSet<String> {
        words(question).into_iter().collect()
    }

    #[test]
    fn english_negations_about_the_question() {
        let t = topic("Can I return earrings?");
        assert_eq!(
            negates("Earrings cannot be returned for hygiene reasons.", &t, Language::En),
            Some(true)
        );
        assert_eq!(
            negates("You can return earrings within 30 days.", &t, Language::En),
            Some(false)
        );
        assert_eq!(negates("Gift cards are valid for two years.", &t, Language::En), None);
        assert_eq!(answer_polarity("Yes, you can.", &t, Language::En), Some(false));
        assert_eq!(answer_polarity("No.", &t, Language::En), Some(true));
        assert_eq!(
            answer_polarity("No, only earrings bought as a set can be returned.", &t, Language::En),
            Some(false)
        );
        assert_eq!(
            answer_polarity("No, earrings can't be returned [1].", &t, Language::En),
            Some(true)
        );
        assert_eq!(
            answer_polarity(
                "Earrings are not returnable [1].",
                &topic("Are earrings returnable?"),
                Language::En
            ),
            Some(true)
        );
    }

    #[test]
    fn chinese_negations_about_the_question() {
        let t = topic("耳环可以退货吗？");
        assert_eq!(negates("出于卫生原因，耳环不能退货。", &t, Language::Zh), Some(true));
        assert_eq!(negates("耳环可以在 30 天内退货。", &t, Language::Zh), Some(false));
        assert_eq!(answer_polarity("不可以，耳环不能退货。", &t, Language::Zh), Some(true));
        assert_eq!(answer_polarity("可以，30 天内退货。", &t, Language::Zh), Some(false));
        assert_eq!(answer_polarity("不能退货，耳环属于例外。", &t, Language::Zh), Some(true));
    }

    #[test]
    fn a_negation_far_from_the_topic_does_not_count() {
        let t = topic("Do you ship to Germany?");
        let text =
            "We ship to Germany in 3-5 days; we do not ship to Switzerland, Norway or Canada.";
        assert_eq!(negates(text, &t, Language::En), Some(false));
    }

    #[test]
    fn a_denial_after_its_subject_counts() {
        let t = topic("Can I return a mattress?");
        assert_eq!(negates("Mattresses are final sale.", &t, Language::En), Some(true));
        assert_eq!(
            negates("Mattresses can be returned within 100 nights.", &t, Language::En),
            Some(false)
        );
        // A plain negation after the subject belongs to another verb.
        let t = topic("Can I use two discount codes on one order?");
        assert_eq!(
            negates(
                "Only one discount code can be used per order, and codes can't buy gift cards.",
                &t,
                Language::En
            ),
            Some(false)
        );
    }

    #[test]
    fn a_chinese_negation_after_its_subject_counts() {
        let t = topic("耳环可以退吗？");
        assert_eq!(
            negates("出于卫生原因，内衣、耳环和礼品卡不接受退货。", &t, Language::Zh),
            Some(true)
        );
        assert_eq!(negates("耳环在签收后 30 天内可以退货。", &t, Language::Zh), Some(false));
    }

    #[test]
    fn words_that_only_hold_a_negation_do_not_negate() {
        let t = topic("手机激活了还能无理由退货吗");
        assert_eq!(
            answer_polarity("可以，激活的手机也支持无理由退货 [1]。", &t, Language::Zh),
            Some(false)
        );
        assert_eq!(negates("已激活的手机不支持无理由退货。", &t, Language::Zh), Some(true));
    }
}
