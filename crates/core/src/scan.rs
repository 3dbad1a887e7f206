//! Finding e-mail addresses and phone numbers in free text, shared by the
//! answer check, the log masker and intent detection so that all three agree
//! on what counts as one.

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

/// Compiles a pattern written in this crate. The patterns are constants
/// covered by the tests, so a failure here is a bug in the source, not bad
/// input; it fails on first use in every test run.
pub(crate) fn regex(pattern: &str) -> Regex {
    match Regex::new(pattern) {
        Ok(regex) => regex,
        Err(error) => panic!("invalid built-in pattern {pattern:?}: {error}"),
    }
}

/// An e-mail address: a pragmatic pattern, not RFC 5322. The domain needs a
/// dot and a top-level part of two letters or more, so "@3pm" or "a@b" are
/// not taken for addresses.
pub(crate) static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"[A-Za-z0-9][A-Za-z0-9._%+\-]*@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}",
    )
});

/// A run of digits with the separators phone numbers are written with.
static PHONE_CANDIDATE: LazyLock<Regex> =
    LazyLock::new(|| regex(r"\+?\(?\d(?:[ .\-/]?\(?\d\)?)*\d\)?"));

/// Dates whose digits would otherwise read as a phone number.
static DATE_LIKE: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"\b(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4})\b")
});

/// Fewer digits than this is a quantity, a price or a short code, not a phone.
pub(crate) const MIN_PHONE_DIGITS: usize = 7;

/// Byte ranges of phone numbers in `text`: runs of at least seven digits with
/// phone separators, that are not dates and not part of a longer code such as
/// a tracking number ("RM003710149GB") or an order number ("ORD-12345678").
pub(crate) fn phone_spans(text: &str) -> Vec<Range<usize>> {
    // Blank out dates with a same-length filler so that byte offsets hold.
    let mut blanked = text.to_owned();
    for m in DATE_LIKE.find_iter(text) {
        blanked.replace_range(m.range(), &"x".repeat(m.len()));
    }
    let bytes = text.as_bytes();
    let attached = |i: usize, step_back: bool| -> bool {
        // Is the character at the edge of the match part of a word, either
        // directly or across one hyphen or slash ("NW-1234567")?
        let at = |j: usize| bytes.get(j).copied();
        let (near, far) = if step_back {
            (i.checked_sub(1).and_then(at), i.checked_sub(2).and_then(at))
        } else {
            (at(i), at(i + 1))
        };
        match near {
            Some(c) if c.is_ascii_alphanumeric() || c == b'_' => true,
            Some(b'-' | b'/') => far.is_some_and(|c| c.is_ascii_alphabetic()),
            _ => false,
        }
    };
    PHONE_CANDIDATE
        .find_iter(&blanked)
        .filter(|m| m.as_str().bytes().filter(u8::is_ascii_digit).count() >= MIN_PHONE_DIGITS)
        .filter(|m| !attached(m.start(), true) && !attached(m.end(), false))
        .map(|m| m.range())
        .collect()
}

/// Folds full-width ASCII forms (ＮＷ－１００２３１, common in Chinese input
/// methods) and the ideographic space to their ASCII equivalents, and the
/// dashes and quotes word processors substitute back to plain ones.
pub(crate) fn fold(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '\u{3000}' | '\u{00A0}' | '\u{2009}' | '\u{202F}' => ' ',
            '\u{2010}'..='\u{2015}' | '\u{2212}' => '-',
            '\u{2018}' | '\u{2019}' | '\u{02BC}' => '\'',
            '\u{201C}' | '\u{201D}' => '"',
            _ => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_phone_numbers_but_not_dates_codes_or_prices() {
        let check = |text: &str, expected: &[&str]| {
            let got: Vec<&str> = phone_spans(text).into_iter().map(|r| &text[r]).collect();
            assert_eq!(got, expected, "{text}");
        };
        check("Call +44 20 7946 0321 today", &["+44 20 7946 0321"]);
        check("call 020-7946-0321.", &["020-7946-0321"]);
        check("(555) 123-4567", &["(555) 123-4567"]);
        check("123-456-7890", &["123-456-7890"]);
        check("on 2026-08-05 and 2026-09-04", &[]);
        check("on 05/08/2026", &[]);
        check("tracking RM003710149GB", &[]);
        check("order ORD-12345678", &[]);
        check("order NW-100231", &[]);
        check("€4.95 or €9.95, 3-5 days, 9:00-17:00", &[]);
        check("电话：+44 20 7946 0321。", &["+44 20 7946 0321"]);
    }

    #[test]
    fn folds_full_width_and_typographic_forms() {
        assert_eq!(fold("ＮＷ－１００２３１"), "NW-100231");
        assert_eq!(fold("3–5 days, it’s"), "3-5 days, it's");
        assert_eq!(fold("你好，世界？"), "你好,世界?");
    }
}
