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
//!
//! # Layout
//! - this file: what the check reports ([`CheckOutcome`]), what it may
//!   accept beyond the passages ([`AllowedFacts`]), and [`check_answer`].
//! - `facts`: the normalized facts and what the passages support
//!   (`Support`): how a paraphrase of a duration, a price or a phone number
//!   is matched.
//! - `read`: reading the facts of a text, pattern by pattern, most specific
//!   first.
//! - `numbers`: numbers, dates, times, currencies and durations written in
//!   digits, English words or Chinese numerals, turned into values.
//! - `names`: proper names, and the capitalized words that are not names
//!   (data in `rules/answer.en.toml`).
//! - `rows`: row alignment, a quantity taken from another case (table row,
//!   list item, clause) than the one asked about; used by the verdict.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::shop::ShopProfile;

mod facts;
mod names;
mod numbers;
mod read;
mod rows;
#[cfg(test)]
mod rows_tests;
#[cfg(test)]
mod tests;

pub use names::invented_chinese_names;

use facts::Support;
pub(crate) use read::CITATION;
use read::{extract, Names};
pub(crate) use rows::misaligned;
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
        for text in
            [&profile.website, &contact.email, &contact.phone, &contact.hours].into_iter().flatten()
        {
            allowed = allowed.with_text(text);
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

/// The quantities `text` states (durations, amounts, ranges, percentages),
/// each as written: what a row of a list says about its case.
pub fn quantities(text: &str) -> Vec<String> {
    let kinds = [FactKind::Duration, FactKind::Amount, FactKind::Range, FactKind::Percent];
    extract(text, Names::Skip)
        .into_iter()
        .filter(|found| kinds.contains(&found.fact.kind()))
        .map(|found| found.text)
        .collect()
}

/// The kinds of checkable facts `text` states (names not included): tells
/// the extractive answer which sentence holds a duration or an amount.
pub fn fact_kinds(text: &str) -> HashSet<FactKind> {
    extract(text, Names::Skip).into_iter().map(|found| found.fact.kind()).collect()
}

/// "3-5" of "3-5 business days", "9.95" of "€9.95".
pub(crate) fn figures_of(text: &str) -> String {
    let kept: String = text
        .chars()
        .map(|c| if c.is_ascii_digit() || matches!(c, '.' | '-' | ',') { c } else { ' ' })
        .collect();
    kept.split_whitespace()
        .filter(|piece| piece.chars().any(|c| c.is_ascii_digit()))
        .collect::<Vec<_>>()
        .join(" ")
}

// ---------------------------------------------------------------------------
