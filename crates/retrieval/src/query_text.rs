//! What a query's text becomes before search: its distinct terms, its
//! Chinese character pairs, and the text left when some words are cut out.

use std::ops::Range;

use crate::bigrams::han_bigrams;

/// The distinct terms of analyzed `tokens`, in their first order.
pub(crate) fn distinct_terms(tokens: &[(String, Range<usize>)]) -> Vec<String> {
    let mut terms: Vec<String> = Vec::new();
    for (term, _) in tokens {
        if !terms.contains(term) {
            terms.push(term.clone());
        }
    }
    terms
}

/// The query's words as the shopper wrote them, each as the distinct terms
/// that stand for it. Jieba's search mode gives a compound together with
/// the words inside it (开发票 → 开发, 发票, 开发票): those are one word of
/// the question, known when any of its terms is, not three words of which
/// two are strange. Terms whose spans overlap form one word; English terms
/// never overlap, so each is a word of its own.
pub(crate) fn words(tokens: &[(String, Range<usize>)]) -> Vec<Vec<String>> {
    let mut sorted: Vec<&(String, Range<usize>)> = tokens.iter().collect();
    sorted.sort_by_key(|(_, span)| (span.start, std::cmp::Reverse(span.end)));
    let mut words: Vec<(Range<usize>, Vec<String>)> = Vec::new();
    for (term, span) in sorted {
        match words.last_mut() {
            Some((stretch, terms)) if span.start < stretch.end => {
                stretch.end = stretch.end.max(span.end);
                if !terms.contains(term) {
                    terms.push(term.clone());
                }
            }
            _ => words.push((span.clone(), vec![term.clone()])),
        }
    }
    // The same word twice ("退货……退货") counts once, as a term did.
    let mut distinct: Vec<Vec<String>> = Vec::new();
    for (_, mut terms) in words {
        terms.sort();
        if !distinct.contains(&terms) {
            distinct.push(terms);
        }
    }
    distinct
}

/// Whether a text whose distinct terms are `terms` says what the query's
/// `words` say, no more and no less: every word has a term among them and
/// every term belongs to a word. Empty queries match nothing.
pub(crate) fn same_words(words: &[Vec<String>], terms: &[String]) -> bool {
    !words.is_empty()
        && words.iter().all(|word| word.iter().any(|term| terms.contains(term)))
        && terms.iter().all(|term| words.iter().any(|word| word.contains(term)))
}

/// The distinct character bigrams of the query's words (its stop words
/// left out): each stretch of text its kept words cover, cut into pairs.
pub(crate) fn query_bigrams(text: &str, tokens: &[(String, Range<usize>)]) -> Vec<String> {
    let mut spans: Vec<Range<usize>> = tokens.iter().map(|(_, s)| s.clone()).collect();
    spans.sort_by_key(|span| span.start);
    let mut stretches: Vec<Range<usize>> = Vec::new();
    for span in spans {
        match stretches.last_mut() {
            Some(last) if span.start <= last.end => last.end = last.end.max(span.end),
            _ => stretches.push(span),
        }
    }
    let mut bigrams: Vec<String> = Vec::new();
    for stretch in stretches {
        for (bigram, _) in han_bigrams(&text[stretch]) {
            if !bigrams.contains(&bigram) {
                bigrams.push(bigram);
            }
        }
    }
    bigrams
}

/// `text` with the bytes of `cut` removed, except those a `kept` span also
/// covers (jieba's overlapping words: cutting an unknown word must not cut
/// into a known one). Cuts become spaces, so the words either side stay
/// apart.
pub(crate) fn without_spans(
    text: &str,
    cut: impl IntoIterator<Item = Range<usize>>,
    kept: impl IntoIterator<Item = Range<usize>>,
) -> String {
    let mut remove = vec![false; text.len()];
    for span in cut {
        for flag in &mut remove[span.start.min(text.len())..span.end.min(text.len())] {
            *flag = true;
        }
    }
    for span in kept {
        for flag in &mut remove[span.start.min(text.len())..span.end.min(text.len())] {
            *flag = false;
        }
    }
    let mut rest = String::with_capacity(text.len());
    for (at, c) in text.char_indices() {
        if !remove[at] {
            rest.push(c);
        } else if !rest.ends_with(' ') {
            rest.push(' ');
        }
    }
    rest.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether the word at `span` of `text` is written as a name: capitalized
/// ("eBay" aside, shoppers capitalize the shops and brands they name) and
/// not the first word of a sentence, where every word is capitalized.
pub(crate) fn is_written_as_name(text: &str, span: Range<usize>) -> bool {
    let Some(word) = text.get(span.clone()) else { return false };
    // "5GHz", "2TB": a figure with its unit, not a name.
    let starts_with_figure = word.chars().next().is_some_and(|c| c.is_ascii_digit());
    let capitalized = word.chars().next().is_some_and(char::is_uppercase)
        || (!starts_with_figure && word.chars().skip(1).any(char::is_uppercase));
    let before = text[..span.start].trim_end();
    let opens_sentence = before.is_empty() || before.ends_with(['.', '!', '?', ':', '"']);
    capitalized && !opens_sentence
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_terms_are_one_word_and_separate_ones_stay_apart() {
        let tokens = |list: &[(&str, Range<usize>)]| -> Vec<(String, Range<usize>)> {
            list.iter().map(|(t, r)| (t.to_string(), r.clone())).collect()
        };
        // 可以开发票吗: 开发 (6..12), 发票 (9..15), 开发票 (6..15).
        let chinese =
            tokens(&[("可以", 0..6), ("开发", 6..12), ("发票", 9..15), ("开发票", 6..15)]);
        assert_eq!(words(&chinese), [vec!["可以"], vec!["发票", "开发", "开发票"]]);
        let english = tokens(&[("return", 0..6), ("parcel", 9..15), ("return", 20..26)]);
        assert_eq!(words(&english), [vec!["return"], vec!["parcel"]]);
        let the_words = words(&chinese);
        let terms = |list: &[&str]| -> Vec<String> { list.iter().map(|t| t.to_string()).collect() };
        assert!(same_words(&the_words, &terms(&["可以", "发票"])));
        assert!(same_words(&the_words, &terms(&["开发票", "可以"])));
        assert!(!same_words(&the_words, &terms(&["发票"])), "a word of the query is missing");
        assert!(!same_words(&the_words, &terms(&["可以", "发票", "公司"])), "the title says more");
        assert!(!same_words(&[], &[]));
    }

    #[test]
    fn cutting_unknown_words_keeps_the_rest_and_overlapping_known_words() {
        assert_eq!(without_spans("can I swap my trainers?", [6..10, 14..22], []), "can I my ?");
        // 手机号 is unknown, 手机 (bytes 0..6) known: only 号 goes.
        let one = std::iter::once;
        assert_eq!(without_spans("手机号多少", one(0..9), one(0..6)), "手机 多少");
        assert_eq!(without_spans("bitcoin", one(0..7), []), "");
    }

    #[test]
    fn bigrams_come_from_the_kept_words_only() {
        // 怎么 (a stop word) was dropped by the analyzer: its pairs are not
        // asked for, and the two kept stretches are paired apart.
        let text = "怎么查礼品卡余额";
        let tokens =
            [("查".to_owned(), 6..9), ("礼品卡".to_owned(), 9..18), ("余额".to_owned(), 18..24)];
        assert_eq!(query_bigrams(text, &tokens), ["查礼", "礼品", "品卡", "卡余", "余额"]);
        let apart = [("礼品".to_owned(), 9..15), ("余额".to_owned(), 18..24)];
        assert_eq!(query_bigrams(text, &apart), ["礼品", "余额"]);
        assert_eq!(distinct_terms(&[("a".into(), 0..1), ("a".into(), 2..3)]), ["a"]);
    }

    #[test]
    fn a_capitalized_word_inside_a_sentence_is_written_as_a_name() {
        let text = "Where is the H&M shop? Returns to eBay or Tesla, like before on 5GHz";
        let span = |word: &str| {
            let start = text.find(word).unwrap();
            start..start + word.len()
        };
        assert!(is_written_as_name(text, span("H&M")));
        assert!(is_written_as_name(text, span("eBay")));
        assert!(is_written_as_name(text, span("Tesla")));
        // Sentence openers and lower-case words are not.
        assert!(!is_written_as_name(text, span("Where")));
        assert!(!is_written_as_name(text, span("Returns")));
        assert!(!is_written_as_name(text, span("like")));
        assert!(!is_written_as_name(text, span("5GHz")));
        assert!(!is_written_as_name(text, 100..104));
    }
}
