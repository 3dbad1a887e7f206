//! Inputs for the property tests of every parser of outside input: arbitrary
//! text, and structured mutations of a valid input (truncation, byte flips,
//! inserted junk, huge numbers, deep nesting, repeated slices).
//!
//! One file shared by the crates' test modules (each includes it with
//! `#[path]`), so every parser is fuzzed with the same mutations. Mutations
//! work on bytes, then the text is rebuilt lossily: the parsers take `&str`
//! (websocket text frames and files read with `read_to_string` are UTF-8
//! checked before they reach them), so invalid UTF-8 ends at that check.
//!
//! Runs are bounded by case count, not time. `PROPTEST_CASES` overrides every
//! test's count for a longer run (see docs/reliability.md).

#![allow(dead_code)]

use proptest::prelude::*;
use proptest::test_runner::Config;

/// `default_cases` cases, unless `PROPTEST_CASES` asks for another count.
/// Failures are not persisted to files: each one found becomes a named test.
pub fn config(default_cases: u32) -> Config {
    let mut config = Config { failure_persistence: None, ..Config::default() };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = default_cases;
    }
    config
}

/// Numbers that break naive parsing: past `u32`, `u64`, `i64` and `f64`,
/// negative where counts are expected, and non-numbers.
const HUGE_NUMBERS: &[&str] = &[
    "4294967296",
    "18446744073709551616",
    "-9223372036854775809",
    "99999999999999999999999999999999999999",
    "1e999",
    "-1e999",
    "-1",
    "0",
    "1.5",
    "NaN",
    "inf",
    "0x7fffffff",
];

/// One change to a valid input. Positions are taken modulo the input's length.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Cut the input at this byte.
    Truncate(usize),
    /// XOR this byte with a mask (may leave invalid UTF-8, replaced lossily).
    Flip(usize, u8),
    /// Insert these bytes here.
    Insert(usize, Vec<u8>),
    /// Replace the n-th run of digits with one of [`HUGE_NUMBERS`].
    HugeNumber(usize, usize),
    /// Insert `depth` opening brackets, and the closing ones unless `open_only`.
    Nest { at: usize, depth: usize, brace: bool, open_only: bool },
    /// Repeat the slice `at..at + len` `times` times in place.
    Repeat { at: usize, len: usize, times: usize },
    /// Delete the byte here.
    Delete(usize),
}

pub fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), 1..=255u8).prop_map(|(at, mask)| Mutation::Flip(at, mask)),
        (any::<usize>(), junk()).prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
        (any::<usize>(), any::<usize>()).prop_map(|(n, k)| Mutation::HugeNumber(n, k)),
        (any::<usize>(), 1..20_000usize, any::<bool>(), any::<bool>()).prop_map(
            |(at, depth, brace, open_only)| Mutation::Nest { at, depth, brace, open_only }
        ),
        (any::<usize>(), 1..64usize, 2..200usize).prop_map(|(at, len, times)| Mutation::Repeat {
            at,
            len,
            times
        }),
        any::<usize>().prop_map(Mutation::Delete),
    ]
}

/// Short byte strings that mean something to one of the formats.
fn junk() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..16),
        prop::sample::select(vec![
            "\"",
            "'",
            "\\",
            "\\u",
            "\\ud800",
            ":",
            ": ",
            "- ",
            "---",
            "\n",
            "\r\n",
            "\t",
            "#",
            "[",
            "]",
            "{",
            "}",
            ",",
            "=",
            "&a",
            "*a",
            "!!binary",
            "<<: *a",
            "? ",
            "|",
            ">",
            "\u{feff}",
            "\u{0}",
            "null",
            "~",
            "%YAML 1.2\n",
            "[[a]]",
            "\"\"\"",
            "'''",
            "é",
            "中文",
            "\u{202e}",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
    ]
}

/// `base` after `mutations`, as text (invalid UTF-8 replaced).
pub fn apply(base: &str, mutations: &[Mutation]) -> String {
    let mut bytes = base.as_bytes().to_vec();
    for mutation in mutations {
        let at =
            |i: usize, bytes: &Vec<u8>| if bytes.is_empty() { 0 } else { i % (bytes.len() + 1) };
        match mutation {
            Mutation::Truncate(i) => {
                let at = at(*i, &bytes);
                bytes.truncate(at);
            }
            Mutation::Flip(i, mask) => {
                if !bytes.is_empty() {
                    let at = i % bytes.len();
                    bytes[at] ^= mask;
                }
            }
            Mutation::Insert(i, junk) => {
                let at = at(*i, &bytes);
                bytes.splice(at..at, junk.iter().copied());
            }
            Mutation::HugeNumber(n, k) => {
                let runs = digit_runs(&bytes);
                if !runs.is_empty() {
                    let (start, end) = runs[n % runs.len()];
                    let number = HUGE_NUMBERS[k % HUGE_NUMBERS.len()];
                    bytes.splice(start..end, number.bytes());
                }
            }
            Mutation::Nest { at: i, depth, brace, open_only } => {
                let at = at(*i, &bytes);
                let (open, close) = if *brace { (b'{', b'}') } else { (b'[', b']') };
                let mut nest = vec![open; *depth];
                if !open_only {
                    nest.extend(std::iter::repeat_n(close, *depth));
                }
                bytes.splice(at..at, nest);
            }
            Mutation::Repeat { at: i, len, times } => {
                let start = at(*i, &bytes);
                let end = (start + len).min(bytes.len());
                let slice = bytes[start..end].to_vec();
                let repeated: Vec<u8> =
                    std::iter::repeat_n(slice.iter().copied(), *times).flatten().collect();
                bytes.splice(start..end, repeated);
            }
            Mutation::Delete(i) => {
                if !bytes.is_empty() {
                    let at = i % bytes.len();
                    bytes.remove(at);
                }
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn digit_runs(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut start = None;
    for (i, b) in bytes.iter().enumerate() {
        match (b.is_ascii_digit(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                runs.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        runs.push((s, bytes.len()));
    }
    runs
}

/// `base` after one to four mutations.
pub fn mutated(base: &'static str) -> impl Strategy<Value = String> {
    prop::collection::vec(mutation(), 1..=4).prop_map(move |mutations| apply(base, &mutations))
}

/// Any text: arbitrary Unicode, or arbitrary bytes read lossily (mostly
/// replacement characters and control bytes).
pub fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        prop::collection::vec(any::<u8>(), 0..512)
            .prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
    ]
}
