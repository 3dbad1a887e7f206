//! The answer check: every fact in a model's answer must come from its
//! passages.
//!
//! Small models invent: asked for a phone number the passages do not hold,
//! they produce one ("123-456-7890"); asked who they are, they become
//! "Ethan". The pipeline therefore never lets a generated answer stand
//! unchecked. This module extracts the checkable facts of an answer (numbers
//! and ranges, amounts, percentages, times, dates, durations with their
//! units, e-mail addresses, URLs, phone numbers, codes such as order or
//! tracking numbers, and proper names) and looks for each in the passages
//! the model was given, or in facts the shop allows anywhere (its name and
//! contact details). One unsupported fact fails the answer.
//!
//! The comparison is on normalized facts, not on text: "2 to 3 business
//! days" matches "2-3 working days", "€60" matches "60.00 EUR", "5pm"
//! matches "17:00", "thirty days" and "三十天" match "30 days", and phone
//! numbers compare by their digits. Markdown (bold, tables) and spacing in
//! either text do not matter. A paraphrase without new facts passes; the
//! check cannot judge reasoning ("yes, you can" where the passage says no),
//! which is why decisions such as return eligibility are computed, not
//! generated.
//!
//! Never put the shopper's own message into [`AllowedFacts`]: a shopper who
//! writes "is your number 555-0100?" would otherwise make the model's "yes,
//! call 555-0100" pass.

use std::collections::HashSet;
use std::sync::LazyLock;

use regex::{Captures, Regex};
use serde::{Deserialize, Serialize};

use crate::scan::{fold, phone_spans, regex, EMAIL};
use crate::shop::ShopProfile;

/// Facts an answer may state even when no passage holds them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedFacts {
    texts: Vec<String>,
    currency: Option<String>,
}

impl AllowedFacts {
    /// Nothing allowed beyond the passages.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also allows every fact in `text`, such as "Northwind Threads" or a
    /// support e-mail address.
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.texts.push(text.into());
        self
    }

    /// The shop's currency (an ISO code such as `EUR`): a bare number in a
    /// passage (a price in the order data) supports an amount in this
    /// currency in the answer.
    pub fn with_currency(mut self, code: &str) -> Self {
        self.currency = Some(code.trim().to_uppercase());
        self
    }

    /// The shop's name, website, support e-mail, phone and hours, and its
    /// currency.
    pub fn for_shop(profile: &ShopProfile) -> Self {
        let mut allowed = Self::new().with_text(&profile.name).with_currency(&profile.currency);
        let contact = &profile.support;
        for text in [&profile.website, &contact.email, &contact.phone, &contact.hours] {
            if let Some(text) = text {
                allowed = allowed.with_text(text);
            }
        }
        allowed
    }
}

/// The kinds of facts the check compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FactKind {
    Number,
    Range,
    Amount,
    Percent,
    Time,
    Date,
    Duration,
    Email,
    Url,
    Phone,
    Code,
    Name,
}

/// A fact of the answer that no passage supports, as the answer wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnsupportedFact {
    pub kind: FactKind,
    pub text: String,
}

/// The verdict on one answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckOutcome {
    pub passed: bool,
    pub unsupported: Vec<UnsupportedFact>,
    /// Set when the facts held but the answer still cannot be shown (a
    /// loop, talk about "the passage", a bare "yes"): see [`crate::degenerate`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub degenerate: Option<crate::degenerate::Degenerate>,
}

impl CheckOutcome {
    /// A one-line reason for transcripts, such as
    /// `unsupported phone "123-456-7890"; unsupported name "Ethan"`.
    pub fn reason(&self) -> Option<String> {
        if self.unsupported.is_empty() {
            return self.degenerate.as_ref().map(|d| d.describe());
        }
        let parts: Vec<String> = self
            .unsupported
            .iter()
            .map(|fact| {
                let kind = serde_json::to_value(fact.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                format!("unsupported {kind} {:?}", fact.text)
            })
            .collect();
        Some(parts.join("; "))
    }
}

impl CheckOutcome {
    /// Marks an answer whose facts held as unfit to show all the same.
    pub fn with_degenerate(mut self, degenerate: Option<crate::degenerate::Degenerate>) -> Self {
        if degenerate.is_some() {
            self.passed = false;
        }
        self.degenerate = degenerate;
        self
    }
}

/// Checks `answer` against the `passages` it was generated from.
pub fn check_answer(answer: &str, passages: &[&str], allowed: &AllowedFacts) -> CheckOutcome {
    let mut support = Support::default();
    for text in passages.iter().copied().chain(allowed.texts.iter().map(String::as_str)) {
        support.add(text);
    }
    let mut unsupported: Vec<UnsupportedFact> = Vec::new();
    let extracted = extract(answer, Names::Extract);
    for found in extracted {
        if !support.supports(&found.fact, allowed.currency.as_deref()) {
            let fact = UnsupportedFact { kind: found.fact.kind(), text: found.text };
            if !unsupported.contains(&fact) {
                unsupported.push(fact);
            }
        }
    }
    CheckOutcome { passed: unsupported.is_empty(), unsupported, degenerate: None }
}

/// The kinds of checkable facts `text` states (names not included): tells
/// the extractive answer which sentence holds a duration or an amount.
pub fn fact_kinds(text: &str) -> HashSet<FactKind> {
    extract(text, Names::Skip).into_iter().map(|found| found.fact.kind()).collect()
}

// ---------------------------------------------------------------------------
// Facts
// ---------------------------------------------------------------------------

/// A quantity in thousandths, so that 60, 60.0 and 60.00 are equal and
/// values compare exactly.
type Value = i64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Unit {
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
enum Fact {
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
    fn kind(&self) -> FactKind {
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
struct Found {
    fact: Fact,
    text: String,
}

/// Everything the passages and allowed texts say, normalized for lookup.
#[derive(Default)]
struct Support {
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
struct Quantities {
    values: HashSet<Value>,
    ranges: HashSet<(Value, Value)>,
    units: HashSet<Unit>,
}

impl Support {
    fn add(&mut self, text: &str) {
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

    fn supports(&self, fact: &Fact, currency: Option<&str>) -> bool {
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
fn in_minutes(value: Value, unit: Unit) -> Option<i64> {
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
fn same_phone(a: &str, b: &str) -> bool {
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

#[derive(Clone, Copy, PartialEq, Eq)]
enum Names {
    Extract,
    Skip,
}

/// The text being read: a copy in which every span already taken as a fact
/// is blanked out with spaces (keeping byte offsets), so that the digits of
/// a phone number are not read again as a number.
struct Scanner {
    text: String,
    found: Vec<Found>,
}

impl Scanner {
    /// Runs `pattern` over the remaining text; `read` turns a match into
    /// facts, or `None` to leave the match for later patterns.
    fn take(&mut self, pattern: &Regex, mut read: impl FnMut(&Captures<'_>) -> Option<Vec<Fact>>) {
        let mut taken = Vec::new();
        for caps in pattern.captures_iter(&self.text) {
            let Some(whole) = caps.get(0) else { continue };
            if let Some(facts) = read(&caps) {
                let text = whole.as_str().trim().to_owned();
                taken.push(whole.range());
                self.found.extend(facts.into_iter().map(|fact| Found { fact, text: text.clone() }));
            }
        }
        for range in taken {
            self.blank(range);
        }
    }

    fn blank(&mut self, range: std::ops::Range<usize>) {
        let spaces = " ".repeat(range.len());
        self.text.replace_range(range, &spaces);
    }
}

const NUM: &str = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:[.,]\d+)?";
const WORD_NUM: &str = r"(?:twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)(?:[- ](?:one|two|three|four|five|six|seven|eight|nine))?|(?:one|two|three|four|five|six|seven|eight|nine|a) hundred|zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|hundred";
const CN_NUM: &str = r"[零一二三四五六七八九十两百]+";
const MONTHS: &str = r"january|february|march|april|may|june|july|august|september|october|november|december|jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec";

/// A citation such as `[1]`, `[1, 2]` or `【1】`; also what the verdict strips
/// before reading an answer's words.
pub(crate) static CITATION: LazyLock<Regex> =
    LazyLock::new(|| regex(r"\[\d+(?:\s*[,-]\s*\d+)*\]|【\d+】"));
static MARKUP: LazyLock<Regex> =
    LazyLock::new(|| regex(r"\*+|`+|\|+|~~|__|(?m)^[ \t]*(?:#+|>+)[ \t]*"));
static URL: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r#"(?i)\b(?:https?://|www\.)[^\s<>()\[\]{}"'|\p{Han}\x{3000}-\x{303F}\x{FF00}-\x{FFEF}]+|\b[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*\.(?:com|org|net|io|co|uk|de|fr|nl|eu|ie|es|it|us|cn|info|biz|shop|store|example)\b(?:/[^\s<>()\[\]{}"'|\p{Han}\x{3000}-\x{303F}\x{FF00}-\x{FFEF}]*)?"#,
    )
});
static DATE_ISO: LazyLock<Regex> =
    LazyLock::new(|| regex(r"\b(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})\b"));
static DATE_ZH: LazyLock<Regex> =
    LazyLock::new(|| regex(r"(?:(\d{4})\s*年\s*)?(\d{1,2})\s*月\s*(\d{1,2})\s*[日号]"));
static DATE_DAY_MONTH: LazyLock<Regex> = LazyLock::new(|| {
    regex(&format!(
        r"(?i)\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?({MONTHS})\b(?:,?\s+(\d{{4}})\b)?"
    ))
});
static DATE_MONTH_DAY: LazyLock<Regex> = LazyLock::new(|| {
    regex(&format!(r"(?i)\b({MONTHS})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?\b(?:,?\s+(\d{{4}})\b)?"))
});
static TIME_CLOCK: LazyLock<Regex> =
    LazyLock::new(|| regex(r"(?i)\b(\d{1,2}):(\d{2})\b(?:\s*(am|pm|a\.m\.|p\.m\.))?"));
static TIME_MERIDIEM: LazyLock<Regex> =
    LazyLock::new(|| regex(r"(?i)\b(\d{1,2})\s*(am\b|pm\b|a\.m\.|p\.m\.)"));
static TIME_WORD: LazyLock<Regex> =
    LazyLock::new(|| regex(r"(?i)\b(noon|midday|midnight)\b|(午夜|半夜|正午)"));
static TIME_ZH: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"(上午|早上|中午|下午|晚上)?\s*(\d{1,2})\s*[点點](?:\s*(\d{1,2})\s*分|(半))?")
});
static MONEY_BEFORE: LazyLock<Regex> = LazyLock::new(|| {
    regex(&format!(
        r"(?i)(US\$|[€$£¥]|\b(?:EUR|USD|GBP|CNY|RMB|CHF|JPY|CAD|AUD|SEK|NOK|DKK|PLN)\b)\s*({NUM})(?:\s*(?:-|to)\s*(?:US\$|[€$£¥])?\s*({NUM}))?"
    ))
});
static MONEY_AFTER: LazyLock<Regex> = LazyLock::new(|| {
    regex(&format!(
        r"(?i)({NUM}|{CN_NUM})(?:\s*(?:-|to)\s*({NUM}))?\s*(欧元|美元|英镑|人民币|元|[€£¥]|\b(?:EUR|USD|GBP|CNY|RMB|CHF|JPY|CAD|AUD|SEK|NOK|DKK|PLN|euros?|dollars?|pounds?|yuan)\b)"
    ))
});
static PERCENT: LazyLock<Regex> = LazyLock::new(|| {
    regex(&format!(r"(?i)({NUM})\s*(?:%|\bpercent\b|\bper cent\b)|百分之({CN_NUM}|\d+)"))
});
static DURATION_EN: LazyLock<Regex> = LazyLock::new(|| {
    regex(&format!(
        r"(?i)\b(?:between\s+)?({NUM}|{WORD_NUM})(?:\s*(?:-|to|and|or)\s*({NUM}|{WORD_NUM}))?(?:\s*-\s*|\s+)(?:(?:or more|more|extra|additional|further|full|whole|consecutive|calendar|clear)\s+)?({UNIT_EN})\b|\b({NUM})(h|hr|hrs|d)\b"
    ))
});
const UNIT_EN: &str = r"business days?|working days?|week ?days?|days?|nights?|weeks?|months?|years?|hours?|hrs?|minutes?|mins?|seconds?";
/// "a day or two", with the unit between the bounds.
static DURATION_OR: LazyLock<Regex> = LazyLock::new(|| {
    regex(&format!(r"(?i)\b(an?|one|{NUM})\s+({UNIT_EN})\s+or\s+(two|three|{NUM})\b"))
});
/// "a week" counts as one only after a word that makes it a duration
/// ("within a week", "takes a day"); "on a business day" is no duration.
static DURATION_A: LazyLock<Regex> = LazyLock::new(|| {
    regex(&format!(
        r"(?i)\b(?:within|in|for|after|take|takes|took|up to|about|around|only|than|least|most)\s+(an?)\s+(?:(?:more|extra|additional|further|full|whole|single)\s+)?({UNIT_EN})\b"
    ))
});
static DURATION_ZH: LazyLock<Regex> = LazyLock::new(|| {
    regex(&format!(
        r"({NUM}|{CN_NUM})\s*(?:(?:-|~|至|到|或)\s*({NUM}|{CN_NUM})\s*)?(?:个)?\s*(?:多)?\s*(个工作日|工作日|个月|天|日|周|星期|礼拜|个小时|小时|钟头|分钟|秒|年)"
    ))
});
static COUNTED_WORD: LazyLock<Regex> = LazyLock::new(|| regex(r"\b(\d+(?:\.\d+)?)-[A-Za-z]+\b"));
static ORDINAL: LazyLock<Regex> = LazyLock::new(|| regex(r"(?i)\b(\d+)(?:st|nd|rd|th)\b"));
static CODE: LazyLock<Regex> = LazyLock::new(|| regex(r"\b[A-Za-z0-9]+(?:[-/][A-Za-z0-9]+)*\b"));
static RANGE: LazyLock<Regex> = LazyLock::new(|| {
    regex(&format!(
        r"(?i)\bbetween\s+({NUM})\s+and\s+({NUM})\b|({NUM})\s*(?:-|~|to|至|到)\s*({NUM})"
    ))
});
static LIST_MARKER: LazyLock<Regex> = LazyLock::new(|| regex(r"(?m)^[ \t]*\d{1,2}[.)][ \t]"));
static NUMBER: LazyLock<Regex> = LazyLock::new(|| regex(&format!(r"({NUM})")));
static NUMBER_WORDS: LazyLock<Regex> = LazyLock::new(|| regex(&format!(r"(?i)\b({WORD_NUM})\b")));
static CN_COUNTED: LazyLock<Regex> =
    LazyLock::new(|| regex(&format!(r"({CN_NUM})\s*(件|次|位|条|种|家|个|岁|倍|双|套|份|张)")));
static CAPITALIZED: LazyLock<Regex> =
    LazyLock::new(|| regex(r"\b[A-Z][A-Za-z]*(?:['-][A-Za-z]+)*\b"));

/// Capitalized words that are not names: they may appear in any answer.
const COMMON_WORDS: &[&str] = &[
    "i",
    "i'm",
    "i've",
    "i'll",
    "i'd",
    "ok",
    "okay",
    "yes",
    "no",
    "hi",
    "hello",
    "dear",
    "please",
    "thanks",
    "thank",
    "sorry",
    "note",
    "tip",
    "step",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "mon",
    "tue",
    "tues",
    "wed",
    "thu",
    "thur",
    "thurs",
    "fri",
    "sat",
    "sun",
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
    "jan",
    "feb",
    "mar",
    "apr",
    "jun",
    "jul",
    "aug",
    "sep",
    "sept",
    "oct",
    "nov",
    "dec",
    "am",
    "pm",
    "faq",
    "faqs",
    "mr",
    "mrs",
    "ms",
    "dr",
    "english",
    "chinese",
    "email",
    "e-mail",
    "internet",
    "web",
    "website",
    "online",
    "url",
];

/// Reads every checkable fact of `text`. Patterns run from the most specific
/// to the most general, each blanking what it took.
fn extract(text: &str, names: Names) -> Vec<Found> {
    let prepared = fold(text);
    let prepared = CITATION.replace_all(&prepared, " ");
    let prepared = MARKUP.replace_all(&prepared, " ");
    let mut s = Scanner { text: prepared.into_owned(), found: Vec::new() };

    s.take(&EMAIL, |caps| Some(vec![Fact::Email(caps[0].to_lowercase())]));
    let mut urls = Vec::new();
    for m in URL.find_iter(&s.text) {
        let raw = m.as_str().trim_end_matches(['.', ',', ';', ':', '!', '?', ')', '\'', '"']);
        urls.push((m.start()..m.start() + raw.len(), raw.to_owned()));
    }
    for (range, raw) in urls {
        s.found.push(Found { fact: Fact::Url(normalize_url(&raw)), text: raw });
        s.blank(range);
    }

    s.take(&DATE_ISO, |caps| date(caps.get(1), &caps[2], &caps[3]));
    s.take(&DATE_ZH, |caps| date(caps.get(1), &caps[2], &caps[3]));
    s.take(&DATE_DAY_MONTH, |caps| month_date(&caps[2], &caps[1], caps.get(3)));
    s.take(&DATE_MONTH_DAY, |caps| month_date(&caps[1], &caps[2], caps.get(3)));

    let phones: Vec<_> = phone_spans(&s.text);
    for range in phones {
        let raw = s.text[range.clone()].trim().to_owned();
        let digits = raw.chars().filter(char::is_ascii_digit).collect();
        s.found.push(Found { fact: Fact::Phone(digits), text: raw });
        s.blank(range);
    }

    s.take(&TIME_CLOCK, |caps| {
        let hour: u32 = caps[1].parse().ok()?;
        let minute: u32 = caps[2].parse().ok()?;
        time(hour, minute, caps.get(3).map(|m| m.as_str()))
    });
    s.take(&TIME_MERIDIEM, |caps| time(caps[1].parse().ok()?, 0, Some(&caps[2])));
    s.take(&TIME_WORD, |caps| {
        let word = caps.get(1).or(caps.get(2))?.as_str().to_lowercase();
        let minutes =
            if matches!(word.as_str(), "midnight" | "午夜" | "半夜") { 0 } else { 12 * 60 };
        Some(vec![Fact::Time(minutes)])
    });
    s.take(&TIME_ZH, |caps| {
        let mut hour: u32 = caps[2].parse().ok()?;
        let minute: u32 = match (caps.get(3), caps.get(4)) {
            (Some(m), _) => m.as_str().parse().ok()?,
            (None, Some(_)) => 30,
            (None, None) => 0,
        };
        if matches!(caps.get(1).map(|m| m.as_str()), Some("下午" | "晚上")) && hour < 12 {
            hour += 12;
        }
        time(hour, minute, None)
    });

    s.take(&MONEY_BEFORE, |caps| {
        let currency = currency_code(&caps[1])?;
        let mut facts = vec![Fact::Amount { currency, value: value(&caps[2])? }];
        if let Some(high) = caps.get(3) {
            facts.push(Fact::Amount { currency, value: value(high.as_str())? });
        }
        Some(facts)
    });
    s.take(&MONEY_AFTER, |caps| {
        let currency = currency_code(&caps[3])?;
        let mut facts = vec![Fact::Amount { currency, value: quantity(&caps[1])?.0 }];
        if let Some(high) = caps.get(2) {
            facts.push(Fact::Amount { currency, value: value(high.as_str())? });
        }
        Some(facts)
    });
    s.take(&PERCENT, |caps| {
        let number = caps.get(1).or(caps.get(2))?;
        Some(vec![Fact::Percent(quantity(number.as_str())?.0)])
    });

    s.take(&DURATION_OR, |caps| duration(&caps[1], Some(&caps[3]), &caps[2]));
    s.take(&DURATION_A, |caps| duration(&caps[1], None, &caps[2]));
    s.take(&DURATION_EN, |caps| {
        if let (Some(number), Some(unit)) = (caps.get(4), caps.get(5)) {
            let v = value(number.as_str())?;
            return Some(vec![Fact::Duration { low: v, high: v, unit: unit_of(unit.as_str())? }]);
        }
        duration(&caps[1], caps.get(2).map(|m| m.as_str()), &caps[3])
    });
    s.take(&DURATION_ZH, |caps| {
        let unit = &caps[3];
        // "2026年" is a year, not a duration of two thousand years.
        if unit == "年" && quantity(&caps[1]).is_some_and(|(low, _)| low >= 1000 * 1000) {
            return None;
        }
        duration(&caps[1], caps.get(2).map(|m| m.as_str()), unit)
    });

    s.take(&ORDINAL, |caps| Some(vec![Fact::Number(value(&caps[1])?)]));
    // "16-digit", "3-pack": a count describing a word, not a code.
    s.take(&COUNTED_WORD, |caps| Some(vec![Fact::Number(value(&caps[1])?)]));
    s.take(&CODE, |caps| {
        let token = &caps[0];
        let letters = token.chars().any(|c| c.is_ascii_alphabetic());
        let digits = token.chars().any(|c| c.is_ascii_digit());
        (letters && digits).then(|| vec![Fact::Code(token.to_lowercase())])
    });
    s.take(&RANGE, |caps| {
        let (low, high) = match (caps.get(1), caps.get(2)) {
            (Some(low), Some(high)) => (low.as_str(), high.as_str()),
            _ => (caps.get(3)?.as_str(), caps.get(4)?.as_str()),
        };
        let (low, high) = (value(low)?, value(high)?);
        // "2026-2027" reads as a range; "5-3" does not.
        (low < high).then(|| vec![Fact::Range(low, high)])
    });
    // Numbered list items ("1. Go to…") are layout, not facts.
    s.take(&LIST_MARKER, |_| Some(Vec::new()));
    s.take(&NUMBER, |caps| Some(vec![Fact::Number(value(&caps[1])?)]));
    s.take(&NUMBER_WORDS, |caps| {
        let word = caps[1].to_lowercase();
        // "one" is a pronoun far more often than a count ("the one you
        // ordered"); counted "one day" was taken as a duration above.
        if word == "one" {
            return None;
        }
        Some(vec![Fact::Number(english_number(&word)?)])
    });
    s.take(&CN_COUNTED, |caps| {
        let numeral = &caps[1];
        // "一个" and "一件" are the article "a"; other counts are quantities.
        if numeral == "一" {
            return None;
        }
        let (low, high) = chinese_number(numeral)?;
        Some(vec![if low == high { Fact::Number(low) } else { Fact::Range(low, high) }])
    });

    if names == Names::Extract {
        let candidates: Vec<(usize, String)> =
            CAPITALIZED.find_iter(&s.text).map(|m| (m.start(), m.as_str().to_owned())).collect();
        for (start, word) in candidates {
            if word.chars().count() < 2 || starts_sentence(&s.text[..start]) {
                continue;
            }
            let lower = word.to_lowercase();
            let lower = lower.strip_suffix("'s").unwrap_or(&lower).to_owned();
            if COMMON_WORDS.contains(&lower.as_str()) {
                continue;
            }
            // In "UK-based" only "UK" is a name.
            let name: Vec<&str> = word
                .split('-')
                .zip(lower.split('-'))
                .filter(|(original, _)| original.starts_with(|c: char| c.is_uppercase()))
                .map(|(_, lower)| lower)
                .collect();
            s.found.push(Found { fact: Fact::Name(name.join("-")), text: word });
        }
    }
    s.found
}

/// Whether a word preceded by `before` starts a sentence, a line, a list item
/// or a quotation.
fn starts_sentence(before: &str) -> bool {
    let trimmed = before.trim_end_matches([' ', '\t', '"', '\'', '(', '[', '-', '•', '–']);
    if trimmed.len() < before.len() && before[trimmed.len()..].contains('\n') {
        return true;
    }
    let trimmed = trimmed.trim_end();
    if before[trimmed.len()..].contains('\n') {
        return true;
    }
    match trimmed.chars().next_back() {
        None => true,
        Some(c) => {
            matches!(c, '.' | '!' | '?' | ':' | ';' | '\n' | '。' | '！' | '？' | '：' | '；')
        }
    }
}

fn normalize_url(raw: &str) -> String {
    let lower = raw.to_lowercase();
    let rest =
        lower.strip_prefix("https://").or_else(|| lower.strip_prefix("http://")).unwrap_or(&lower);
    let rest = rest.strip_prefix("www.").unwrap_or(rest);
    rest.trim_end_matches('/').to_owned()
}

fn date(year: Option<regex::Match<'_>>, month: &str, day: &str) -> Option<Vec<Fact>> {
    let year = match year {
        Some(y) => Some(y.as_str().parse().ok()?),
        None => None,
    };
    let month: u32 = month.parse().ok()?;
    let day: u32 = day.parse().ok()?;
    ((1..=12).contains(&month) && (1..=31).contains(&day))
        .then(|| vec![Fact::Date { year, month, day }])
}

fn month_date(month: &str, day: &str, year: Option<regex::Match<'_>>) -> Option<Vec<Fact>> {
    // "may" is far more often the verb; only "May" is the month.
    if month.eq_ignore_ascii_case("may") && month != "May" {
        return None;
    }
    let prefix = month.get(..3)?.to_lowercase();
    let names =
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
    let number = names.iter().position(|n| *n == prefix)? + 1;
    date(year, &number.to_string(), day)
}

fn time(hour: u32, minute: u32, meridiem: Option<&str>) -> Option<Vec<Fact>> {
    let hour = match meridiem.map(|m| m.to_lowercase().replace('.', "")) {
        Some(m) if m == "pm" && (1..12).contains(&hour) => hour + 12,
        Some(m) if m == "am" && hour == 12 => 0,
        Some(_) if hour > 12 || hour == 0 => return None,
        _ => hour,
    };
    (hour <= 24 && minute < 60).then(|| vec![Fact::Time(hour * 60 + minute)])
}

fn currency_code(text: &str) -> Option<&'static str> {
    Some(match text.to_lowercase().as_str() {
        "€" | "eur" | "euro" | "euros" | "欧元" => "EUR",
        "$" | "us$" | "usd" | "dollar" | "dollars" | "美元" => "USD",
        "£" | "gbp" | "pound" | "pounds" | "英镑" => "GBP",
        "¥" | "cny" | "rmb" | "yuan" | "人民币" | "元" => "CNY",
        "chf" => "CHF",
        "jpy" => "JPY",
        "cad" => "CAD",
        "aud" => "AUD",
        "sek" => "SEK",
        "nok" => "NOK",
        "dkk" => "DKK",
        "pln" => "PLN",
        _ => return None,
    })
}

fn unit_of(text: &str) -> Option<Unit> {
    let text = text.to_lowercase();
    let text = text.trim();
    Some(match text {
        "business day" | "business days" | "working day" | "working days" | "weekday"
        | "weekdays" | "week day" | "week days" | "个工作日" | "工作日" => Unit::BusinessDay,
        "day" | "days" | "d" | "night" | "nights" | "天" | "日" => Unit::Day,
        "week" | "weeks" | "周" | "星期" | "礼拜" => Unit::Week,
        "month" | "months" | "个月" => Unit::Month,
        "year" | "years" | "年" => Unit::Year,
        "hour" | "hours" | "hr" | "hrs" | "h" | "小时" | "个小时" | "钟头" => Unit::Hour,
        "minute" | "minutes" | "min" | "mins" | "分钟" => Unit::Minute,
        "second" | "seconds" | "秒" => Unit::Second,
        _ => return None,
    })
}

fn duration(low: &str, high: Option<&str>, unit: &str) -> Option<Vec<Fact>> {
    let unit = unit_of(unit)?;
    let (mut low_value, mut high_value) = quantity(low)?;
    if let Some(high) = high {
        high_value = quantity(high)?.1;
    }
    if high_value < low_value {
        std::mem::swap(&mut low_value, &mut high_value);
    }
    Some(vec![Fact::Duration { low: low_value, high: high_value, unit }])
}

/// A number written in digits, English words or Chinese numerals, as a
/// range (equal bounds for a single number; "一两" is one or two).
fn quantity(text: &str) -> Option<(Value, Value)> {
    let text = text.trim();
    if text.starts_with(|c: char| c.is_ascii_digit()) {
        let v = value(text)?;
        return Some((v, v));
    }
    if text.eq_ignore_ascii_case("a") || text.eq_ignore_ascii_case("an") {
        return Some((1000, 1000));
    }
    if let Some(v) = english_number(&text.to_lowercase()) {
        return Some((v, v));
    }
    chinese_number(text)
}

/// Digits with an optional decimal part: "1,000" is a thousand, "4,95"
/// (two digits after the comma) is the European 4.95.
fn value(text: &str) -> Option<Value> {
    let text = text.trim();
    let normalized = match text.split_once(',') {
        Some((whole, cents)) if !cents.contains(',') && cents.len() <= 2 => {
            format!("{whole}.{cents}")
        }
        _ => text.replace(',', ""),
    };
    let number: f64 = normalized.parse().ok()?;
    let thousandths = (number * 1000.0).round();
    (thousandths.is_finite() && thousandths.abs() < 1e15).then_some(thousandths as Value)
}

fn english_number(text: &str) -> Option<Value> {
    let small = |word: &str| -> Option<i64> {
        let words = [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
        ];
        if let Some(i) = words.iter().position(|w| *w == word) {
            return Some(i as i64);
        }
        let tens = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"];
        tens.iter().position(|w| *w == word).map(|i| (i as i64 + 2) * 10)
    };
    let mut total = 0;
    let mut any = false;
    for word in text.split(['-', ' ']).filter(|w| !w.is_empty()) {
        match word {
            "a" => {}
            "hundred" => total = total.max(1) * 100,
            _ => total += small(word)?,
        }
        any = true;
    }
    any.then_some(total * 1000)
}

fn chinese_number(text: &str) -> Option<(Value, Value)> {
    let digit = |c: char| -> Option<i64> {
        Some(match c {
            '零' => 0,
            '一' => 1,
            '二' | '两' => 2,
            '三' => 3,
            '四' => 4,
            '五' => 5,
            '六' => 6,
            '七' => 7,
            '八' => 8,
            '九' => 9,
            _ => return None,
        })
    };
    let chars: Vec<char> = text.chars().collect();
    // Two neighbouring digits are an approximate range: 一两天, 三五天.
    if let [a, b] = chars[..] {
        if let (Some(a), Some(b)) = (digit(a), digit(b)) {
            return (a < b && a > 0).then_some((a * 1000, b * 1000));
        }
    }
    let mut total = 0;
    let mut current = 0;
    for c in chars {
        match c {
            '十' => {
                total += current.max(1) * 10;
                current = 0;
            }
            '百' => {
                total += current.max(1) * 100;
                current = 0;
            }
            _ => current = digit(c)?,
        }
    }
    let v = (total + current) * 1000;
    Some((v, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPING: &str = "Orders whose payment is confirmed **before 14:00 UK time** on a business day are dispatched the same day.\n\n| Zone | Standard | Express |\n|---|---|---|\n| United Kingdom | 2-3 business days (Royal Mail Tracked 48) | Next business day (DPD Next Day) |\n| EU zone 1 | 3-5 business days (DPD Classic) | 1-2 business days (DHL Express) |";
    const PRICES: &str = "| Zone | Standard | Express | Free standard delivery from |\n|---|---|---|---|\n| United Kingdom | €4.95 | €9.95 | €60 |\n| EU zone 1 | €6.95 | €14.95 | €75 |\nUK prices include 20% UK VAT.";
    const CONTACT: &str = "Email support@northwind-threads.example, and we'll reply within 1 business day, or call +44 20 7946 0321, Monday to Friday 9:00-17:00 UK time. Our postal address is Northwind Threads, 12 Harbour Lane, Bristol BS1 4XX, United Kingdom.";
    const SHIPPING_LIST: &str = "Orders paid before 14:00 UK time on a business day are dispatched the same day. After dispatch, standard delivery takes 2-3 business days to the UK, 3-5 to EU zone 1 and 5-8 to the US. Express delivery takes 1 business day to the UK, 1-2 to EU zone 1 and 2-4 to the US.";
    const REFUNDS: &str = "We refund within 5 business days of receiving your return at our Bristol warehouse. Your bank or card provider may need another 3-5 business days to show it.";
    const WINDOW: &str = "You have 30 days from the date your order was delivered to start a return. For example, an order delivered on 2 November can be returned until 2 December. Start at https://northwind-threads.example/returns.";
    const SHIPPING_ZH: &str = "工作日英国时间 14:00 前付款的订单会在当天发货。标准配送到英国需 2-3 个工作日，到欧盟一区需 3-5 个工作日。";
    const RETURNS_ZH: &str =
        "您可以在**签收日起 30 天内**退货。我们会在 **5 个工作日内**完成退款。快递一般需要一两天。";

    fn allowed() -> AllowedFacts {
        AllowedFacts::new()
            .with_text("Northwind Threads")
            .with_text("support@northwind-threads.example")
            .with_currency("EUR")
    }

    /// One case: the answer, the passages it was written from, and the facts
    /// expected to be unsupported ("kind text"); none means it must pass.
    fn check(answer: &str, passages: &[&str], expected: &[&str]) {
        let outcome = check_answer(answer, passages, &allowed());
        let got: Vec<String> = outcome
            .unsupported
            .iter()
            .map(|f| {
                format!("{} {}", serde_json::to_value(f.kind).unwrap().as_str().unwrap(), f.text)
            })
            .collect();
        assert_eq!(got, expected, "{answer}");
        assert_eq!(outcome.passed, expected.is_empty(), "{answer}");
    }

    #[test]
    fn faithful_paraphrases_pass() {
        check("Standard delivery to the UK takes 2-3 business days [1].", &[SHIPPING], &[]);
        check("UK orders arrive in 2 to 3 working days.", &[SHIPPING], &[]);
        check("Express to EU zone 1 takes between 1 and 2 business days.", &[SHIPPING], &[]);
        check("Pay before 2pm and your order ships the same day.", &[SHIPPING], &[]);
        check(
            "Royal Mail delivers UK orders; DHL Express handles express orders to EU zone 1.",
            &[SHIPPING],
            &[],
        );
        check("Standard shipping to the UK costs €4.95, and it's free from €60.", &[PRICES], &[]);
        check("UK standard delivery is 4.95 euros (EUR 9.95 for express).", &[PRICES], &[]);
        check("**Free** standard delivery from **€75** in EU zone 1.", &[PRICES], &[]);
        check("Prices include 20 percent VAT.", &[PRICES], &[]);
        check("Call us on 020 7946 0321, Monday to Friday, 9am to 5pm UK time.", &[CONTACT], &[]);
        check(
            "Email **support@northwind-threads.example**; we reply within 1 business day.",
            &[CONTACT],
            &[],
        );
        check("Northwind Threads is based at 12 Harbour Lane, Bristol BS1 4XX.", &[CONTACT], &[]);
        check(
            "Refunds take up to 5 business days, and your bank may need another 3-5 business days.",
            &[REFUNDS],
            &[],
        );
        check("You can return items within thirty days of delivery.", &[WINDOW], &[]);
        check(
            "You have a 30-day window, e.g. delivered on 2 November, returnable until 2 December.",
            &[WINDOW],
            &[],
        );
        check("Start your return at https://northwind-threads.example/returns.", &[WINDOW], &[]);
        check("See northwind-threads.example for details.", &[WINDOW], &[]);
        check("Yes. I can help with that: please contact our team on Monday.", &[WINDOW], &[]);
        check("1. Go to the returns page.\n2. Enter your order number [1][2].", &[WINDOW], &[]);
        check("标准配送到英国需要 2-3 个工作日 [1]。", &[SHIPPING_ZH], &[]);
        check("工作日下午2点前付款的订单当天发货。", &[SHIPPING_ZH], &[]);
        check("您可以在签收后三十天内退货，退款会在五个工作日内完成。", &[RETURNS_ZH], &[]);
        check("快递通常需要1-2天。", &[RETURNS_ZH], &[]);
        check("Returns: **30 days**.", &["Returns are accepted for 30 days."], &[]);
        // The passage writes the unit once for a list of ranges.
        check("Standard delivery to EU zone 1 takes 3-5 business days.", &[SHIPPING_LIST], &[]);
        check("Express delivery to the US takes 2-4 business days.", &[SHIPPING_LIST], &[]);
        check("Orders paid on a business day before 14:00 ship that day.", &[SHIPPING_LIST], &[]);
        check("Parcels may take a day or two longer around Christmas.", &["During busy periods, such as before Christmas, parcels may take a day or two longer."], &[]);
    }

    #[test]
    fn invented_facts_fail() {
        check("You can return items within 30 weeks.", &[WINDOW], &["duration 30 weeks"]);
        check("The manager's phone number is 123-456-7890.", &[CONTACT], &["phone 123-456-7890"]);
        check("Standard UK shipping costs €5.95.", &[PRICES], &["amount €5.95"]);
        check("Standard UK shipping costs $4.95.", &[PRICES], &["amount $4.95"]);
        check("Refunds take 10 business days.", &[REFUNDS], &["duration 10 business days"]);
        check("My name is Ethan and I'm happy to help.", &[CONTACT], &["name Ethan"]);
        check("Our founder is John Smith.", &[CONTACT], &["name John", "name Smith"]);
        check("Our CEO can help.", &[CONTACT], &["name CEO"]);
        check(
            "Email help@northwind-threads.example for help.",
            &[CONTACT],
            &["email help@northwind-threads.example"],
        );
        check(
            "Track refunds at https://northwind-threads.example/refund-status.",
            &[WINDOW],
            &["url https://northwind-threads.example/refund-status"],
        );
        check("The phone line is open until 18:00.", &[CONTACT], &["time 18:00"]);
        check("Members get 15% off.", &[PRICES], &["percent 15%"]);
        check("UK delivery takes 2-4 business days.", &[SHIPPING], &["duration 2-4 business days"]);
        check("UK orders ship within 2 days.", &[SHIPPING], &["duration 2 days"]);
        check("UK delivery takes 4 business days.", &[SHIPPING], &["duration 4 business days"]);
        check(
            "Standard delivery to the UK takes 2 business days.",
            &[SHIPPING_LIST],
            &["duration 2 business days"],
        );
        check("Delivery takes one week.", &[SHIPPING], &["duration one week"]);
        check("Delivery takes about a week.", &[SHIPPING], &["duration about a week"]);
        check(
            "Standard delivery to EU zone 1 takes 3-5 weeks.",
            &[SHIPPING_LIST],
            &["duration 3-5 weeks"],
        );
        check("We have twelve stores.", &[SHIPPING], &["number twelve"]);
        check("The answer is 42.", &[SHIPPING], &["number 42"]);
        check("Your tracking number is RM123456789GB.", &[SHIPPING], &["code RM123456789GB"]);
        check("Returns are accepted until 3 December.", &[WINDOW], &["date 3 December"]);
        check("退款会在 7 个工作日内完成。", &[RETURNS_ZH], &["duration 7 个工作日"]);
        check("您可以在签收后四十天内退货。", &[RETURNS_ZH], &["duration 四十天"]);
        check("请拨打 400-820-8820 联系我们。", &[RETURNS_ZH], &["phone 400-820-8820"]);
        check("运费是 50 欧元。", &[SHIPPING_ZH], &["amount 50 欧元"]);
        // With no passages at all, any fact fails.
        check("Shipping takes 3 days.", &[], &["duration 3 days"]);
    }

    #[test]
    fn reads_facts_in_their_normal_forms() {
        let facts = |text: &str| -> Vec<Fact> {
            extract(text, Names::Extract).into_iter().map(|f| f.fact).collect()
        };
        let check = |text: &str, expected: Vec<Fact>| assert_eq!(facts(text), expected, "{text}");
        let days = |low: i64, high: i64, unit: Unit| Fact::Duration {
            low: low * 1000,
            high: high * 1000,
            unit,
        };
        check("3–5 working days", vec![days(3, 5, Unit::BusinessDay)]);
        check("between three and five business days", vec![days(3, 5, Unit::BusinessDay)]);
        check("within a day", vec![days(1, 1, Unit::Day)]);
        check("on a business day", vec![]);
        check("a week or two", vec![days(1, 2, Unit::Week)]);
        check("一个工作日", vec![days(1, 1, Unit::BusinessDay)]);
        check("24h", vec![days(24, 24, Unit::Hour)]);
        check("5 or more business days", vec![days(5, 5, Unit::BusinessDay)]);
        check("两个星期", vec![days(2, 2, Unit::Week)]);
        check("一两天", vec![days(1, 2, Unit::Day)]);
        check("2026年", vec![Fact::Number(2_026_000)]);
        check("1,000 and 4,95", vec![Fact::Number(1_000_000), Fact::Number(4_950)]);
        check("£1,250.50", vec![Fact::Amount { currency: "GBP", value: 1_250_500 }]);
        check("noon", vec![Fact::Time(720)]);
        check("12am", vec![Fact::Time(0)]);
        check("晚上8点半", vec![Fact::Time(20 * 60 + 30)]);
        check("2026-08-05", vec![Fact::Date { year: Some(2026), month: 8, day: 5 }]);
        check("8月5日", vec![Fact::Date { year: None, month: 8, day: 5 }]);
        check("you may 2 times", vec![Fact::Number(2000)]);
        check("the one you ordered", vec![]);
        check("HTTPS://WWW.Example.com/Help/", vec![Fact::Url("example.com/help".to_owned())]);
        check(
            "Ask Emma O'Brien",
            vec![Fact::Name("emma".to_owned()), Fact::Name("o'brien".to_owned())],
        );
        check("a UK-based shop", vec![Fact::Name("uk".to_owned())]);
    }

    /// The shop's own texts are what a failed answer is replaced with, so
    /// each must pass the check against itself.
    #[test]
    fn every_shipped_passage_supports_itself() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../faq");
        let mut checked = 0;
        for dir in ["faq/en", "faq/zh", "policies"] {
            for entry in std::fs::read_dir(root.join(dir)).unwrap() {
                let path = entry.unwrap().path();
                let text = std::fs::read_to_string(&path).unwrap();
                let outcome = check_answer(&text, &[&text], &AllowedFacts::new());
                assert!(outcome.passed, "{}: {:?}", path.display(), outcome.unsupported);
                checked += 1;
            }
        }
        assert!(checked > 100, "{checked}");
    }

    #[test]
    fn allowed_facts_come_from_the_shop_profile() {
        let profile = ShopProfile::from_toml(include_str!("../../../faq/shop.toml")).unwrap();
        let allowed = AllowedFacts::for_shop(&profile);
        let outcome = check_answer(
            "Contact Northwind Threads at support@northwind-threads.example or +44 20 7946 0321 (Mon-Fri 9:00-17:00).",
            &[],
            &allowed,
        );
        assert!(outcome.passed, "{outcome:?}");
        let outcome = check_answer("Call 0800 123 4567.", &[], &allowed);
        assert_eq!(outcome.reason().as_deref(), Some("unsupported phone \"0800 123 4567\""));
    }

    #[test]
    fn order_facts_pass_the_check_against_their_own_data() {
        use crate::order_facts::order_facts;
        use crate::shop::OrderData;
        use crate::Language;
        let data = OrderData::from_json(include_str!("../../../faq/orders.json")).unwrap();
        let allowed = AllowedFacts::new().with_currency("EUR");
        for order in &data.orders {
            let passage = serde_json::to_string(order).unwrap();
            for lang in Language::ALL {
                let facts = order_facts(order, "EUR", lang);
                let outcome = check_answer(&facts, &[&passage], &allowed);
                assert!(outcome.passed, "{facts}\n{outcome:?}");
            }
            // Another order's data does not support this order's facts.
            let other = data.orders.iter().find(|o| o.number != order.number).unwrap();
            let other = serde_json::to_string(other).unwrap();
            let outcome =
                check_answer(&order_facts(order, "EUR", Language::En), &[&other], &allowed);
            assert!(!outcome.passed, "{}", order.number);
        }
    }
}
