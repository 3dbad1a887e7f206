//! Reading the checkable facts of a text.
//!
//! Patterns run from the most specific to the most general (e-mail
//! addresses and URLs, dates, phone numbers, times, amounts, percentages,
//! durations, codes, ranges, bare numbers), and each blanks what it took, so
//! that the digits of a phone number are not read again as a number and a
//! price is not read again as a count.

use std::sync::LazyLock;

use regex::{Captures, Regex};

use super::facts::{Fact, Found, Unit};
use super::names::find_names;
use super::numbers::{
    chinese_number, currency_code, date, duration, english_number, month_date, quantity, time,
    unit_of, value,
};
use crate::answer_rules::AnswerRules;
use crate::scan::{fold, phone_spans, regex, EMAIL};
use crate::Language;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Names {
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
/// A URL with a scheme or "www.", or a bare domain ending in one of the
/// endings listed in `rules/answer.en.toml` (`url_endings`): "shop.example"
/// is an address, "e.g." is not.
static URL: LazyLock<Regex> = LazyLock::new(|| {
    let endings = AnswerRules::of(Language::En).url_endings.join("|");
    regex(&format!(
        r#"(?i)\b(?:https?://|www\.)[^\s<>()\[\]{{}}"'|\p{{Han}}\x{{3000}}-\x{{303F}}\x{{FF00}}-\x{{FFEF}}]+|\b[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*\.(?:{endings})\b(?:/[^\s<>()\[\]{{}}"'|\p{{Han}}\x{{3000}}-\x{{303F}}\x{{FF00}}-\x{{FFEF}}]*)?"#,
    ))
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
/// "半年", "半个月", "半小时": half of a unit, written as the whole number
/// of the next smaller unit ("半年" is 6 months, "半个月" 15 days), as a
/// passage would write it.
static DURATION_HALF_ZH: LazyLock<Regex> =
    LazyLock::new(|| regex(r"半\s*(年|个月|天|个小时|小时)"));
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

/// Reads every checkable fact of `text`. Patterns run from the most specific
/// to the most general, each blanking what it took.
pub(crate) fn extract(text: &str, names: Names) -> Vec<Found> {
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
    s.take(&DURATION_HALF_ZH, |caps| {
        let (half, unit) = match &caps[1] {
            "年" => (6, Unit::Month),
            "个月" => (15, Unit::Day),
            "天" => (12, Unit::Hour),
            _ => (30, Unit::Minute),
        };
        Some(vec![Fact::Duration { low: half * 1000, high: half * 1000, unit }])
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
        let found = find_names(&s.text);
        s.found.extend(found);
    }
    s.found
}

fn normalize_url(raw: &str) -> String {
    let lower = raw.to_lowercase();
    let rest =
        lower.strip_prefix("https://").or_else(|| lower.strip_prefix("http://")).unwrap_or(&lower);
    let rest = rest.strip_prefix("www.").unwrap_or(rest);
    rest.trim_end_matches('/').to_owned()
}
