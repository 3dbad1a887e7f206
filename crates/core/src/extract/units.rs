//! Passages cut into quotable units: sentences of prose, list items, and
//! table rows written out with their column names.

use std::sync::LazyLock;

use regex::Regex;

use crate::scan::regex;

/// One quotable piece of a passage.
#[derive(Debug, Clone, PartialEq)]
pub struct Unit {
    /// Index of its passage.
    pub passage: usize,
    /// A table row: one case already, never cut into clauses.
    pub table_row: bool,
    /// The text to show: a sentence, a list item, or a table row with its
    /// column names.
    pub text: String,
}

static SENTENCE_END_EN: LazyLock<Regex> = LazyLock::new(|| regex(r"[.!?](?:\s+|$)"));
static SENTENCE_END_ZH: LazyLock<Regex> = LazyLock::new(|| regex(r"[。！？；]"));
static LIST_ITEM: LazyLock<Regex> = LazyLock::new(|| regex(r"^\s*(?:[-*+]|\d{1,2}[.)])\s+"));
static EMPHASIS: LazyLock<Regex> = LazyLock::new(|| regex(r"\*\*|__|`"));
static TABLE_RULE: LazyLock<Regex> = LazyLock::new(|| regex(r"^\s*\|?\s*:?-{3,}"));

/// Splits passages into quotable units: sentences of prose, list items,
/// and table rows written out with their column names. Headings are dropped
/// (they are questions or titles, not answers).
pub fn units(passages: &[&str]) -> Vec<Unit> {
    let mut units = Vec::new();
    for (index, text) in passages.iter().enumerate() {
        let mut header: Option<Vec<String>> = None;
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || TABLE_RULE.is_match(line) {
                continue;
            }
            if line.starts_with('|') {
                let cells: Vec<String> = line
                    .trim_matches('|')
                    .split('|')
                    .map(|cell| EMPHASIS.replace_all(cell.trim(), "").into_owned())
                    .collect();
                match &header {
                    None => header = Some(cells),
                    Some(names) => units.push(Unit {
                        passage: index,
                        table_row: true,
                        text: table_row(names, &cells),
                    }),
                }
                continue;
            }
            header = None;
            let line = LIST_ITEM.replace(line, "");
            let line = EMPHASIS.replace_all(&line, "");
            for sentence in sentences(&line) {
                units.push(Unit { passage: index, table_row: false, text: sentence });
            }
        }
    }
    units
}

/// "United Kingdom: Standard €4.95, Express €9.95" from a header and a row.
fn table_row(names: &[String], cells: &[String]) -> String {
    let mut parts = Vec::new();
    for (i, cell) in cells.iter().enumerate().skip(1) {
        match names.get(i) {
            Some(name) if !name.is_empty() => parts.push(format!("{name} {cell}")),
            _ => parts.push(cell.clone()),
        }
    }
    let first = cells.first().cloned().unwrap_or_default();
    format!("{first}: {}.", parts.join(", "))
}

fn sentences(line: &str) -> Vec<String> {
    let zh = line.chars().any(crate::language::is_cjk);
    let pattern = if zh { &*SENTENCE_END_ZH } else { &*SENTENCE_END_EN };
    let mut out = Vec::new();
    let mut start = 0;
    for m in pattern.find_iter(line) {
        let piece = line[start..m.end()].trim();
        // "e.g." and "approx." are not the end of a sentence.
        if !zh && piece.len() > 1 && ends_with_abbreviation(piece) {
            continue;
        }
        if !piece.is_empty() {
            out.push(piece.to_owned());
        }
        start = m.end();
    }
    let rest = line[start..].trim();
    if !rest.is_empty() {
        out.push(rest.to_owned());
    }
    out
}

fn ends_with_abbreviation(piece: &str) -> bool {
    let last = piece.trim_end_matches(['.', ' ']).rsplit(' ').next().unwrap_or("");
    matches!(
        last.to_lowercase().as_str(),
        "e.g" | "i.e" | "etc" | "approx" | "incl" | "no" | "vs" | "mr" | "mrs" | "dr" | "st"
    ) || (last.len() == 1 && last.chars().all(|c| c.is_ascii_uppercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abbreviations_do_not_end_sentences() {
        assert_eq!(sentences("Pay by card, e.g. Visa. Then wait.").len(), 2);
    }
}
