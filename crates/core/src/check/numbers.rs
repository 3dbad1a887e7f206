//! Numbers, dates, times, currencies and durations as written in answers
//! and passages (digits, English number words, Chinese numerals), turned
//! into the values the check compares.

use super::facts::{Fact, Unit, Value};

pub(super) fn date(year: Option<regex::Match<'_>>, month: &str, day: &str) -> Option<Vec<Fact>> {
    let year = match year {
        Some(y) => Some(y.as_str().parse().ok()?),
        None => None,
    };
    let month: u32 = month.parse().ok()?;
    let day: u32 = day.parse().ok()?;
    ((1..=12).contains(&month) && (1..=31).contains(&day))
        .then(|| vec![Fact::Date { year, month, day }])
}

pub(super) fn month_date(
    month: &str,
    day: &str,
    year: Option<regex::Match<'_>>,
) -> Option<Vec<Fact>> {
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

pub(super) fn time(hour: u32, minute: u32, meridiem: Option<&str>) -> Option<Vec<Fact>> {
    let hour = match meridiem.map(|m| m.to_lowercase().replace('.', "")) {
        Some(m) if m == "pm" && (1..12).contains(&hour) => hour + 12,
        Some(m) if m == "am" && hour == 12 => 0,
        Some(_) if hour > 12 || hour == 0 => return None,
        _ => hour,
    };
    (hour <= 24 && minute < 60).then(|| vec![Fact::Time(hour * 60 + minute)])
}

pub(super) fn currency_code(text: &str) -> Option<&'static str> {
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

pub(super) fn unit_of(text: &str) -> Option<Unit> {
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

pub(super) fn duration(low: &str, high: Option<&str>, unit: &str) -> Option<Vec<Fact>> {
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
pub(super) fn quantity(text: &str) -> Option<(Value, Value)> {
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
pub(super) fn value(text: &str) -> Option<Value> {
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

pub(super) fn english_number(text: &str) -> Option<Value> {
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

pub(super) fn chinese_number(text: &str) -> Option<(Value, Value)> {
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
