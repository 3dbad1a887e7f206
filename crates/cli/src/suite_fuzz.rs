//! Property tests of the eval-suite parser ([`parse_suite`]): for any text
//! and for mutations of the shipped suites it returns a suite or an error
//! (with the file's name), never panics or hangs; a suite it accepts
//! round-trips through its own YAML. `PROPTEST_CASES` raises the counts
//! (docs/reliability.md).

use std::path::Path;

use proptest::prelude::*;

use crate::mutations::{any_text, config, mutated};
use crate::suite_spec::{parse_suite, Suite};

const SUITES: [&str; 4] = [
    include_str!("../../../tests/eval/demo-shop.en.yaml"),
    include_str!("../../../tests/eval/demo-shop.zh.yaml"),
    include_str!("../../../tests/eval/qinghe.en.yaml"),
    include_str!("../../../tests/eval/qinghe.zh.yaml"),
];

const PATH: &str = "tests/eval/x.yaml";

/// The suite as JSON, to compare two suites (a compiled regex has no `==`).
fn json(suite: &Suite) -> serde_json::Value {
    serde_json::to_value(suite).expect("suites serialize")
}

/// Parses `text`; an accepted suite parses again from its own YAML to the
/// same suite, and an error names the file.
fn check_suite(text: &str) -> Result<(), TestCaseError> {
    match parse_suite(Path::new(PATH), text) {
        Ok(suite) => {
            let yaml = serde_norway::to_string(&suite).expect("suites serialize");
            let again = parse_suite(Path::new(PATH), &yaml);
            prop_assert!(again.is_ok(), "{:?} from\n{}", again.as_ref().err(), yaml);
            prop_assert_eq!(json(&again.unwrap()), json(&suite));
        }
        Err(error) => prop_assert!(error.to_string().starts_with(PATH), "{error}"),
    }
    Ok(())
}

fn mutated_suite() -> impl Strategy<Value = String> {
    prop_oneof![mutated(SUITES[0]), mutated(SUITES[1]), mutated(SUITES[2]), mutated(SUITES[3])]
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn any_text_is_a_suite_or_an_error(text in any_text()) {
        check_suite(&text)?;
        check_suite(&format!("cases:\n  - name: a\n    turns:\n      - say: {text}\n"))?;
    }
}

proptest! {
    #![proptest_config(config(96))]

    #[test]
    fn mutated_suites_are_suites_or_errors(text in mutated_suite()) {
        check_suite(&text)?;
    }
}

#[test]
fn the_shipped_suites_round_trip() {
    for text in SUITES {
        check_suite(text).unwrap();
    }
}

#[test]
fn deep_flow_nesting_is_refused_before_the_quadratic_yaml_scanner() {
    // 100,000 levels of `[` took the YAML scanner 108 s before this check.
    for (open, close) in [("[", "]"), ("{", "}")] {
        let text = format!("cases: {}{}\n", open.repeat(100_000), close.repeat(100_000));
        let error = parse_suite(Path::new(PATH), &text).unwrap_err().to_string();
        assert!(error.contains("nested deeper than 128"), "{error}");
    }
    // Up to the limit, the suite is parsed (and is wrong for its content).
    let text = format!("cases: {}{}\n", "[".repeat(128), "]".repeat(128));
    let error = parse_suite(Path::new(PATH), &text).unwrap_err().to_string();
    assert!(!error.contains("nested deeper"), "{error}");
    // Block nesting is the YAML parser's own business: an error at once.
    let text = format!("cases: {}\n", "- ".repeat(100_000));
    assert!(parse_suite(Path::new(PATH), &text).is_err());
}

#[test]
fn an_alias_bomb_is_an_error_not_a_hang() {
    // Each level repeats the one below ten times: a billion strings if
    // expanded. `contains` (one or many) reads its whole value first, so the
    // aliases are followed rather than refused for an unknown key.
    let mut levels = vec!["&a0 [x, x, x, x, x, x, x, x, x, x]".to_owned()];
    for level in 1..=9 {
        levels.push(format!("&a{level} [{}]", vec![format!("*a{}", level - 1); 10].join(", ")));
    }
    let text = format!(
        "cases:\n  - name: a\n    turns:\n      - say: hi\n        expect:\n          contains: [{}]\n",
        levels.join(", ")
    );
    let error = parse_suite(Path::new(PATH), &text).unwrap_err().to_string();
    assert!(error.contains("repetition limit"), "{error}");
}
