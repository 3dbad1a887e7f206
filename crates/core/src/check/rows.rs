//! Row alignment: a quantity the passages state for one case (a row of a
//! table, one item of an "X: …; Y: …" list, the subject of one clause),
//! given in an answer about another case.
//!
//! The fact check finds "€6.95" in the passage and lets it pass; it cannot
//! see that the passage says €6.95 for the EU while the shopper asked about
//! the US. This module cuts the passages into cases, each one quantity
//! with the words that say whom it is for, and cuts the answer the same
//! way. An answer's quantity must come from a case that its own words and
//! the question's fit at least as well as any other case: when another
//! case fits them better and gives a different figure, the answer took the
//! wrong row.
//!
//! # Key design decision
//! Cases are matched on words, weighted by how few cases hold them (a word
//! every case holds tells them apart not at all), with the question's words
//! counting twice an answer's own: the question says what was asked, the
//! answer may copy the wording of the row it took. Only a clearly better
//! fit speaks; a tie leaves the answer alone. Nothing is tuned to one shop:
//! the structure (table cells, list items, clauses) and the language's
//! clause separators are all it reads.

use std::collections::HashSet;
use std::sync::LazyLock;

use regex::Regex;

use super::{check_answer, quantities, AllowedFacts, FactKind};
use crate::answer_rules::words;
use crate::extract::Aliases;
use crate::scan::{fold, regex};

/// One case of a passage: a quantity and the words around it.
#[derive(Debug, Clone)]
pub(crate) struct Case {
    pub(crate) text: String,
    /// Its words without the quantities, with the other names of any name
    /// it uses ("DE" also reads as "Germany").
    terms: HashSet<String>,
    /// Its quantities as written.
    quantities: Vec<String>,
    /// The words of its whole sentence without the quantities: what an
    /// answer's clause is about ("Italy counts as the rest of the EU:
    /// €8.95, 4-7 days").
    sentence: HashSet<String>,
}

/// What kinds of quantity compare: a duration with a range of days, an
/// amount with an amount, a percentage with a percentage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Measure {
    Span,
    Money,
    Share,
}

fn measure(quantity: &str) -> Option<Measure> {
    let kinds = super::fact_kinds(quantity);
    if kinds.contains(&FactKind::Amount) {
        Some(Measure::Money)
    } else if kinds.contains(&FactKind::Percent) {
        Some(Measure::Share)
    } else if kinds.contains(&FactKind::Duration) || kinds.contains(&FactKind::Range) {
        Some(Measure::Span)
    } else {
        None
    }
}

/// The cases of `texts`: table cells (with their row's and column's
/// names), and clauses of prose cut so that each holds a quantity.
pub(crate) fn cases(texts: &[&str], aliases: &Aliases) -> Vec<Case> {
    let mut out = Vec::new();
    for text in texts {
        let (prose, tables) = split_tables(text);
        for cell in tables {
            push_case(&mut out, cell.clone(), &cell, &[], aliases);
        }
        for line in prose {
            let line = LIST_MARKER.replace(&line, "").replace("**", "").replace("__", "");
            // A label opening a line of several cases ("Warranty: …", "保修：
            // …") is said of all of them, so it tells none apart; the label
            // of a line with one case ("EU zone 1: €6.95") names it.
            let unlabelled = LINE_LABEL.replace(&line, "");
            let mut found = read_line(&unlabelled, aliases);
            if found.len() < 2 {
                found = read_line(&line, aliases);
            }
            out.extend(found);
        }
    }
    out
}

fn read_line(line: &str, aliases: &Aliases) -> Vec<Case> {
    let mut out = Vec::new();
    for sentence in SENTENCE_END.split(line) {
        read_sentence(&mut out, sentence, aliases);
    }
    out
}

/// "Standard delivery takes 2-3 days to the UK, 3-5 to the EU and 5-8 to
/// the US." as three cases that share the words of the list.
fn read_sentence(out: &mut Vec<Case>, sentence: &str, aliases: &Aliases) {
    let (parts, tail) = clauses(sentence);
    // Words before a list's first figure say what every case of it is about
    // ("standard delivery takes 2-3 days to the UK, 3-5 to the EU"), for
    // the cases that open with their figure; words before a colon ("运费为：
    // 英国 €4.95；美国 €12.95") and after the last case ("…满 €150，即可享受
    // 免费配送") for all.
    let first = parts.first().cloned().unwrap_or_default();
    let figure = first.find(|c: char| c.is_ascii_digit()).unwrap_or(first.len());
    let colon = first[..figure].rfind([':', '：']);
    let lead = match colon {
        Some(at) => first[..at].to_owned(),
        None => first[..figure].trim_end_matches(['€', '$', '£', '¥']).to_owned(),
    };
    for (i, clause) in parts.into_iter().enumerate() {
        let opens_with_figure = clause
            .trim_start_matches(['€', '$', '£', '¥'])
            .starts_with(|c: char| c.is_ascii_digit());
        let mut shared = vec![tail.as_str()];
        if i > 0 && (opens_with_figure || colon.is_some()) {
            shared.push(lead.as_str());
        }
        push_case(out, clause, sentence, &shared, aliases);
    }
}

static LIST_MARKER: LazyLock<Regex> = LazyLock::new(|| regex(r"^\s*(?:[-*+]|\d{1,2}[.)])\s+"));
static LINE_LABEL: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"^\s*(?:\*\*)?(?:[A-Za-z][\w'-]*(?: [\w'-]+){0,2}|\p{Han}{1,6})(?:\*\*)?\s*[:：]\s*")
});
/// The end of a sentence; a semicolon ends a clause of a list, not the list.
static SENTENCE_END: LazyLock<Regex> = LazyLock::new(|| regex(r"[.!?](?:\s+|$)|[。！？]"));

fn push_case(
    out: &mut Vec<Case>,
    text: String,
    sentence: &str,
    shared: &[&str],
    aliases: &Aliases,
) {
    let quantities: Vec<String> =
        quantities(&text).into_iter().filter(|q| measure(q).is_some()).collect();
    if quantities.is_empty() {
        return;
    }
    let mut terms = terms_of(&text, &quantities, aliases);
    for words in shared {
        terms.extend(terms_of(words, &[], aliases));
    }
    let stated: Vec<String> = self::quantities(sentence);
    let sentence = terms_of(sentence, &stated, aliases);
    out.push(Case { text, terms, quantities, sentence });
}

/// The words of `text` without its quantities and citations, and the words
/// of every other name of a name it uses.
fn terms_of(text: &str, quantities: &[String], aliases: &Aliases) -> HashSet<String> {
    let mut rest = super::CITATION.replace_all(&fold(text), " ").into_owned();
    for quantity in quantities {
        rest = rest.replace(quantity.as_str(), " ");
    }
    let mut terms: HashSet<String> = words(&rest)
        .into_iter()
        .filter(|w| !w.chars().all(|c| c.is_ascii_digit() || c == '.'))
        .collect();
    // Numbers that name a case ("zone 2") stay; figures do not.
    for word in rest.split(|c: char| !c.is_alphanumeric()) {
        if !word.is_empty() && word.len() <= 2 && word.chars().all(|c| c.is_ascii_digit()) {
            terms.insert(word.to_owned());
        }
    }
    for group in aliases.named_in(&rest) {
        for name in group {
            terms.extend(words(name));
        }
    }
    terms
}

/// A passage's prose lines, and its tables' cells written as "row column
/// value" ("EU zone 2 Express 2-3 business days").
fn split_tables(text: &str) -> (Vec<String>, Vec<String>) {
    let mut prose = Vec::new();
    let mut cells = Vec::new();
    let mut header: Option<Vec<String>> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if !trimmed.starts_with('|') {
            header = None;
            if !trimmed.starts_with('#') {
                prose.push(line.to_owned());
            }
            continue;
        }
        let row: Vec<String> = trimmed
            .trim_matches('|')
            .split('|')
            .map(|cell| cell.replace("**", "").trim().to_owned())
            .collect();
        if row.iter().all(|cell| cell.chars().all(|c| matches!(c, '-' | ':' | ' '))) {
            continue;
        }
        match &header {
            None => header = Some(row),
            Some(names) => {
                let label = row.first().cloned().unwrap_or_default();
                for (i, cell) in row.iter().enumerate().skip(1) {
                    let column = names.get(i).map(String::as_str).unwrap_or("");
                    cells.push(format!("{label} {column} {cell}"));
                }
            }
        }
    }
    (prose, cells)
}

/// A sentence cut at commas, semicolons, "、" and "and", inside brackets
/// too, then mended so that each clause holds a quantity: a piece without
/// one joins the clause after it (a list of subjects before their verb:
/// "headphones, speakers and watches have a 1-year warranty"), or the one
/// before it when it stands inside a bracket that clause opened ("EU zone
/// 1 (AT, BE, DE)"). Pieces after the last quantity are returned apart:
/// they say something of every case of the list.
fn clauses(sentence: &str) -> (Vec<String>, String) {
    let mut pieces: Vec<(String, bool)> = Vec::new();
    let mut depth = 0i32;
    let mut current = String::new();
    let mut started_inside = false;
    let mut rest = sentence;
    while let Some(c) = rest.chars().next() {
        let separator = matches!(c, ';' | '；' | '，' | '、')
            || (c == ',' && !rest[1..].starts_with(|d: char| d.is_ascii_digit()));
        let word = rest.starts_with(" and ");
        if separator || word {
            pieces.push((std::mem::take(&mut current), started_inside));
            started_inside = depth > 0;
            rest = &rest[if word { 5 } else { c.len_utf8() }..];
            continue;
        }
        match c {
            '(' | '（' | '[' => depth += 1,
            ')' | '）' | ']' => depth -= 1,
            _ => {}
        }
        current.push(c);
        rest = &rest[c.len_utf8()..];
    }
    pieces.push((current, started_inside));
    let has_quantity = |text: &str| quantities(text).iter().any(|q| measure(q).is_some());
    let flags: Vec<bool> = pieces.iter().map(|(p, _)| has_quantity(p)).collect();
    let mut out: Vec<String> = Vec::new();
    let mut pending = String::new();
    let mut tail = String::new();
    for (i, (piece, inside)) in pieces.iter().enumerate() {
        let piece = piece.trim();
        if piece.is_empty() {
            continue;
        }
        if flags[i] {
            // What stands before the first case ("After dispatch, …") is
            // said of the whole list.
            if out.is_empty() && !pending.is_empty() {
                tail.push_str(&pending);
            }
            out.push(format!("{pending} {piece}").trim().to_owned());
            pending.clear();
            continue;
        }
        let later = flags[i + 1..].iter().any(|&f| f);
        match out.last_mut() {
            Some(last) if *inside && pending.is_empty() => {
                last.push(' ');
                last.push_str(piece);
            }
            Some(_) if !later => {
                tail.push(' ');
                tail.push_str(piece);
            }
            _ => {
                pending.push(' ');
                pending.push_str(piece);
            }
        }
    }
    // One case: what follows it is its own.
    if out.len() == 1 && !tail.is_empty() {
        out[0].push_str(&tail);
        tail.clear();
    }
    (out, tail)
}

/// Whether a quantity of the answer is taken from another case than the one
/// its words and the question's fit best.
pub(crate) fn misaligned(
    answer: &str,
    question: &str,
    passages: &[&str],
    aliases: &Aliases,
) -> bool {
    let all = cases(passages, aliases);
    if all.len() < 2 {
        return false;
    }
    let asked = terms_of(question, &quantities(question), aliases);
    cases(&[answer], aliases).iter().any(|part| {
        part.quantities.iter().any(|quantity| {
            let taken = Taken { answer, part, quantity, asked: &asked };
            taken.belongs_to_another_case(&all)
        })
    })
}

/// One quantity of an answer, with what the answer and question say it is
/// for.
struct Taken<'a> {
    answer: &'a str,
    part: &'a Case,
    quantity: &'a str,
    asked: &'a HashSet<String>,
}

impl Taken<'_> {
    fn belongs_to_another_case(&self, all: &[Case]) -> bool {
        let Some(kind) = measure(self.quantity) else { return false };
        let list: Vec<&Case> =
            all.iter().filter(|c| c.quantities.iter().any(|q| measure(q) == Some(kind))).collect();
        if !list.iter().any(|c| self.held_by(c)) {
            return false;
        }
        let fit = |case: &Case| self.fit(case, &list);
        let held = list.iter().filter(|c| self.held_by(c)).map(|c| fit(c)).fold(0.0, f32::max);
        // A case that fits clearly better, whose figure the answer does not
        // give: an answer that gives it too reasons from the list ("Italy
        // is in the EU, so €4.50") or states a second fact.
        let allowed = AllowedFacts::new();
        list.iter().filter(|c| fit(c) > held + MARGIN).any(|case| {
            !self.held_by(case)
                && !case.quantities.iter().any(|q| {
                    measure(q) == Some(kind) && check_answer(q, &[self.answer], &allowed).passed
                })
        })
    }

    /// Whether `case` states the quantity ("3-5 to EU zone 1" states "3-5
    /// business days" of its list).
    fn held_by(&self, case: &Case) -> bool {
        let allowed = AllowedFacts::new();
        let text = [case.text.as_str()];
        check_answer(self.quantity, &text, &allowed).passed
            || (self.quantity.contains('-')
                && check_answer(&super::figures_of(self.quantity), &text, &allowed).passed)
    }

    /// How well `case` fits what the question and the answer say the
    /// quantity is for: the rare words they share with it.
    fn fit(&self, case: &Case, list: &[&Case]) -> f32 {
        let n = list.len() as f32;
        let wanted: HashSet<&String> =
            self.part.terms.iter().chain(&self.part.sentence).chain(self.asked).collect();
        wanted
            .into_iter()
            .filter(|term| case.terms.contains(*term))
            .map(|term| {
                let df = list.iter().filter(|c| c.terms.contains(term)).count();
                if df == list.len() {
                    return 0.0;
                }
                let rarity = (1.0 + n / df as f32).ln();
                if self.asked.contains(term) {
                    rarity
                } else if self.part.terms.contains(term) {
                    ANSWER_WEIGHT * rarity
                } else {
                    SENTENCE_WEIGHT * rarity
                }
            })
            .sum()
    }
}

/// How much better another case must fit to speak: a tie is no evidence.
const MARGIN: f32 = 0.2;
/// The answer's own words next to the quantity count half the question's
/// (it may copy the wording of the row it took), the rest of its sentence
/// a quarter.
const ANSWER_WEIGHT: f32 = 0.5;
const SENTENCE_WEIGHT: f32 = 0.25;
