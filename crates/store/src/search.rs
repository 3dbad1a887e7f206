//! Turning a staff member's search text into a full-text query.
//!
//! Messages are indexed twice (see `schema`): by words, with English
//! stemming, and by trigrams. Word search cannot find Chinese: the unicode61
//! tokenizer splits on spaces and punctuation, so a Chinese sentence is one
//! long "word" and `退货` inside `我想退货` never matches. Text that contains
//! Chinese is therefore searched as substrings, through the trigram index.
//!
//! Staff type plain text, not FTS5 syntax: every term is quoted, so `AND`,
//! `*`, `"` or `-` in the text are searched for rather than obeyed.

use shopchat_core::language::is_cjk;

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TextQuery {
    /// An FTS5 expression for the word index: every term must occur.
    Words(String),
    /// `LIKE` patterns for the trigram index: every one must match.
    Substrings(Vec<String>),
}

/// The query for `text`, or `None` if it has nothing to search for.
pub(crate) fn parse(text: &str) -> Option<TextQuery> {
    if text.chars().any(is_cjk) {
        // `%` and `_` are LIKE wildcards. Splitting at them, rather than
        // escaping them, keeps the patterns free of an ESCAPE clause, which
        // would stop SQLite from using the trigram index.
        let patterns: Vec<String> = text
            .split(|c: char| c.is_whitespace() || c == '%' || c == '_')
            .filter(|term| !term.is_empty())
            .map(|term| format!("%{term}%"))
            .collect();
        return (!patterns.is_empty()).then_some(TextQuery::Substrings(patterns));
    }
    // A term without letters or digits has no tokens, and an empty phrase is
    // an FTS5 syntax error.
    let phrases: Vec<String> = text
        .split_whitespace()
        .filter(|term| term.chars().any(char::is_alphanumeric))
        .map(|term| format!("\"{}\"", term.replace('"', "\"\"")))
        .collect();
    (!phrases.is_empty()).then(|| TextQuery::Words(phrases.join(" ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_text_becomes_a_safe_query() {
        let words = |q: &str| Some(TextQuery::Words(q.to_owned()));
        let substrings =
            |p: &[&str]| Some(TextQuery::Substrings(p.iter().map(|s| s.to_string()).collect()));
        let check =
            |text: &str, expected: Option<TextQuery>| assert_eq!(parse(text), expected, "{text}");
        check("refund", words("\"refund\""));
        check("  late   parcel ", words("\"late\" \"parcel\""));
        check("refund OR *", words("\"refund\" \"OR\""));
        check("say \"hi\"", words("\"say\" \"\"\"hi\"\"\""));
        check("NW-100231", words("\"NW-100231\""));
        check("退货", substrings(&["%退货%"]));
        check("订单 NW-100231", substrings(&["%订单%", "%NW-100231%"]));
        check("退货%政策", substrings(&["%退货%", "%政策%"]));
        check("   ", None);
        check("- * ?", None);
    }
}
