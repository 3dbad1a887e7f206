//! The facts the check compares, normalized, and what a set of passages
//! supports.
//!
//! Facts are compared as values, not as text, so that a paraphrase passes:
//! "2 to 3 working days" is the duration 2-3 business days, "€60" and
//! "60.00 EUR" are one amount. `Support` also accepts the forms a faithful
//! answer takes of what a passage says: a duration without its qualifier
//! ("2-3 days" for "2-3 business days"), the upper bound of a range
//! ("within 5 business days" for "3-5 business days"), the same span in
//! another unit ("one hour" for "60 minutes"), a unit written once for a
//! list of ranges, a phone number in international form.

use std::collections::HashSet;

use super::read::{extract, Names};
use super::FactKind;
use crate::scan::fold;

/// values compare exactly.
pub(super) type Value = i64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Unit {
    Day,
    BusinessDay,
    Week,
    Month,
    Year,
    Hour,
    Minute,
    Second,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Fact {
    Number(Value),
    Range(Value, Value),
    Amount {
        currency: &'static str,
        value: Value,
    },
    Percent(Value),
    /// Minutes after midnight.
    Time(u32),
    Date {
        year: Option<u32>,
        month: u32,
        day: u32,
    },
    Duration {
        low: Value,
        high: Value,
        unit: Unit,
    },
    Email(String),
    Url(String),
    Phone(String),
    Code(String),
    Name(String),
}

impl Fact {
    pub(super) fn kind(&self) -> FactKind {
        match self {
            Fact::Number(_) => FactKind::Number,
            Fact::Range(..) => FactKind::Range,
            Fact::Amount { .. } => FactKind::Amount,
            Fact::Percent(_) => FactKind::Percent,
            Fact::Time(_) => FactKind::Time,
            Fact::Date { .. } => FactKind::Date,
            Fact::Duration { .. } => FactKind::Duration,
            Fact::Email(_) => FactKind::Email,
            Fact::Url(_) => FactKind::Url,
            Fact::Phone(_) => FactKind::Phone,
            Fact::Code(_) => FactKind::Code,
            Fact::Name(_) => FactKind::Name,
        }
    }
}

/// A fact and the text it was read from.
pub(super) struct Found {
    pub(super) fact: Fact,
    pub(super) text: String,
}

/// Everything the passages and allowed texts say, normalized for lookup.
#[derive(Default)]
pub(super) struct Support {
    facts: HashSet<Fact>,
    /// Every number mentioned in any form (a bound of a range, the value of
    /// an amount or a duration): a bare number in an answer needs only this.
    values: HashSet<Value>,
    /// Every word, lower-cased, for proper names.
    words: HashSet<String>,
    /// The texts lower-cased with all whitespace removed, to find codes and
    /// URLs written in forms the extractor does not recognize.
    squeezed: String,
    /// Per passage: its bare numbers and ranges, and the units of its
    /// durations. A passage that lists "2-3 business days to the UK, 3-5 to
    /// EU zone 1" supports "3-5 business days" although it never writes them
    /// together.
    passages: Vec<Quantities>,
}

#[derive(Default)]
pub(super) struct Quantities {
    values: HashSet<Value>,
    ranges: HashSet<(Value, Value)>,
    units: HashSet<Unit>,
}

impl Support {
    pub(super) fn add(&mut self, text: &str) {
        let mut quantities = Quantities::default();
        for found in extract(text, Names::Skip) {
            match &found.fact {
                Fact::Number(v) | Fact::Percent(v) | Fact::Amount { value: v, .. } => {
                    self.values.insert(*v);
                    if let Fact::Number(v) = &found.fact {
                        quantities.values.insert(*v);
                    }
                }
                Fact::Range(low, high) | Fact::Duration { low, high, .. } => {
                    self.values.insert(*low);
                    self.values.insert(*high);
                    if low != high {
                        self.facts.insert(Fact::Range(*low, *high));
                    }
                    if let Fact::Duration { unit, .. } = &found.fact {
                        quantities.units.insert(*unit);
                    } else {
                        quantities.ranges.insert((*low, *high));
                    }
                }
                _ => {}
            }
            self.facts.insert(found.fact);
        }
        self.passages.push(quantities);
        let folded = fold(text).to_lowercase();
        for word in folded.split(|c: char| !c.is_alphanumeric()) {
            if !word.is_empty() {
                self.words.insert(word.to_owned());
            }
        }
        self.squeezed.extend(folded.chars().filter(|c| !c.is_whitespace()));
        self.squeezed.push('\n');
    }

    pub(super) fn supports(&self, fact: &Fact, currency: Option<&str>) -> bool {
        if self.facts.contains(fact) {
            return true;
        }
        // The same span in another unit: "one hour" for "60 minutes".
        if let Fact::Duration { low, high, unit } = fact {
            let same_span = self.facts.iter().any(|f| match f {
                Fact::Duration { low: l, high: h, unit: u } if u != unit => {
                    match (
                        in_minutes(*low, *unit),
                        in_minutes(*l, *u),
                        in_minutes(*high, *unit),
                        in_minutes(*h, *u),
                    ) {
                        (Some(a), Some(b), Some(c), Some(d)) => a == b && c == d,
                        _ => false,
                    }
                }
                _ => false,
            });
            if same_span {
                return true;
            }
        }
        match fact {
            Fact::Number(v) => self.values.contains(v),
            // A bare price in the data is in the shop's currency.
            Fact::Amount { currency: c, value } => {
                currency == Some(*c) && self.values.contains(value)
            }
            // "2-3 days" for "2-3 business days" drops a qualifier the
            // shopper does not need; the reverse would add one.
            // Only the same figures: "within 2 days" is no paraphrase of
            // "1-2 business days".
            Fact::Duration { low, high, unit: Unit::Day }
                if self.facts.contains(&Fact::Duration {
                    low: *low,
                    high: *high,
                    unit: Unit::BusinessDay,
                }) || (low != high
                    && self.passages.iter().any(|p| {
                        p.units.contains(&Unit::BusinessDay) && p.ranges.contains(&(*low, *high))
                    })) =>
            {
                true
            }
            Fact::Duration { low, high, unit } => {
                // "within 5 business days" is supported by "3-5 business days"
                // (the most it takes); "3 business days" is not.
                let bound = low == high
                    && self.facts.iter().any(|f| {
                        matches!(f, Fact::Duration { high: h, unit: u, .. } if u == unit && h == low)
                    });
                // The unit was written once for a list of ranges.
                let elided = self.passages.iter().any(|p| {
                    p.units.contains(unit)
                        && if low == high {
                            p.values.contains(low)
                        } else {
                            p.ranges.contains(&(*low, *high))
                        }
                });
                bound || elided
            }
            Fact::Date { year, month, day } => self.facts.iter().any(|f| {
                matches!(f, Fact::Date { year: y, month: m, day: d }
                    if m == month && d == day && (y.is_none() || year.is_none() || y == year))
            }),
            Fact::Phone(digits) => self.facts.iter().any(|f| match f {
                Fact::Phone(other) => same_phone(digits, other),
                _ => false,
            }),
            Fact::Url(url) => {
                self.facts.iter().any(|f| match f {
                    // A parent page of a page the passages link to exists too.
                    Fact::Url(other) => other.starts_with(&format!("{url}/")),
                    _ => false,
                }) || self.squeezed.contains(url.as_str())
            }
            Fact::Code(code) => self.squeezed.contains(code.as_str()),
            Fact::Name(name) => {
                name.split(['-', '\'']).all(|part| part.is_empty() || self.words.contains(part))
            }
            _ => false,
        }
    }
}

/// A duration in minutes, for units of a fixed length (not business days
/// or months, whose length varies).
pub(super) fn in_minutes(value: Value, unit: Unit) -> Option<i64> {
    let minutes = match unit {
        Unit::Minute => 1,
        Unit::Hour => 60,
        Unit::Day => 24 * 60,
        Unit::Week => 7 * 24 * 60,
        _ => return None,
    };
    Some(value * minutes)
}

/// The same number in national and international form: one digit string
/// ends with the other, which is at least seven digits long, and the extra
/// digits are few enough to be a country code.
pub(super) fn same_phone(a: &str, b: &str) -> bool {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    let (long, short) = if a.len() >= b.len() { (a, b) } else { (b, a) };
    short.len() >= crate::scan::MIN_PHONE_DIGITS
        && long.ends_with(short)
        && long.len() - short.len() <= 3
}

// ---------------------------------------------------------------------------
// Extraction
// ---------------------------------------------------------------------------
