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

#[cfg(test)]
mod tests {
    use super::*;

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
}
