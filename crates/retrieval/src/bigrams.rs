//! Chinese character bigrams: a second way to match Chinese text that does
//! not depend on where the word segmenter cuts.
//!
//! jieba cuts a shopper's words and a passage's words independently, and
//! the cuts often disagree: 保修期 in a question against 保修 in the
//! passage, 礼品卡里 cut as 礼品 + 卡里. Overlapping pairs of characters (the
//! usual fallback of Chinese search engines) match whatever the cuts were,
//! so every Chinese passage is also indexed as bigrams and a Chinese query
//! searches both ways.

use std::ops::Range;

use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

/// Whether `c` is a Chinese character (the CJK unified ideographs and their
/// extensions A and B, and the compatibility block).
fn is_han(c: char) -> bool {
    matches!(c as u32,
        0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2A6DF)
}

/// The overlapping character pairs of each run of Chinese characters in
/// `text`, with their byte ranges; a run of one character gives that
/// character. Anything else (Latin words, digits, punctuation) is left to
/// the word fields.
pub(crate) fn han_bigrams(text: &str) -> Vec<(String, Range<usize>)> {
    let mut pairs = Vec::new();
    let mut run: Vec<(usize, char)> = Vec::new();
    let mut flush = |run: &mut Vec<(usize, char)>| {
        match run.as_slice() {
            [] => {}
            [(at, c)] => pairs.push((c.to_string(), *at..at + c.len_utf8())),
            chars => {
                for pair in chars.windows(2) {
                    let ((from, first), (at, second)) = (pair[0], pair[1]);
                    pairs.push((format!("{first}{second}"), from..at + second.len_utf8()));
                }
            }
        }
        run.clear();
    };
    for (at, c) in text.char_indices() {
        if is_han(c) {
            run.push((at, c));
        } else {
            flush(&mut run);
        }
    }
    flush(&mut run);
    pairs
}

/// [`han_bigrams`] as a tantivy tokenizer, for the bigram fields.
#[derive(Debug, Clone, Default)]
pub(crate) struct HanBigramTokenizer;

pub(crate) struct HanBigramStream {
    tokens: Vec<Token>,
    next: usize,
}

impl Tokenizer for HanBigramTokenizer {
    type TokenStream<'a> = HanBigramStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> HanBigramStream {
        let tokens = han_bigrams(text)
            .into_iter()
            .enumerate()
            .map(|(position, (text, span))| Token {
                offset_from: span.start,
                offset_to: span.end,
                position,
                text,
                position_length: 1,
            })
            .collect();
        HanBigramStream { tokens, next: 0 }
    }
}

impl TokenStream for HanBigramStream {
    fn advance(&mut self) -> bool {
        self.next += 1;
        self.next <= self.tokens.len()
    }

    fn token(&self) -> &Token {
        &self.tokens[self.next - 1]
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.next - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(text: &str) -> Vec<String> {
        han_bigrams(text).into_iter().map(|(t, _)| t).collect()
    }

    #[test]
    fn runs_of_chinese_become_overlapping_pairs() {
        assert_eq!(texts("保修期多久"), ["保修", "修期", "期多", "多久"]);
        // Runs end at anything else; a lone character stands for itself.
        assert_eq!(texts("用 Visa 付款吗？好"), ["用", "付款", "款吗", "好"]);
        assert!(texts("How long? 42").is_empty());
        let spans: Vec<Range<usize>> = han_bigrams("a保修期").into_iter().map(|(_, s)| s).collect();
        assert_eq!(spans, [1..7, 4..10]);
    }

    #[test]
    fn the_tokenizer_streams_the_same_pairs() {
        let mut tokenizer = HanBigramTokenizer;
        let mut stream = tokenizer.token_stream("礼品卡里");
        let mut seen = Vec::new();
        while stream.advance() {
            seen.push(stream.token().text.clone());
        }
        assert_eq!(seen, ["礼品", "品卡", "卡里"]);
    }
}
