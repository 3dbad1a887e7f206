//! Tests of the row alignment: a quantity from another case than the one
//! asked about is caught, the asked case's own quantity passes. Each rule
//! is shown both ways.

use super::misaligned;
use crate::extract::Aliases;

fn taken_from_another_case(question: &str, answer: &str, passages: &[&str]) -> bool {
    let aliases = Aliases::from_texts(passages.iter().copied());
    misaligned(answer, question, passages, &aliases)
}

const TABLE: &str = "| Plan | Per month | Per year |\n|---|---|---|\n| Basic | $9 | $90 |\n| Family | $15 | $150 |\n| Business | $40 | $400 |";

#[test]
fn a_table_cell_belongs_to_its_row_and_column() {
    let q = "how much is the family plan per month";
    assert!(taken_from_another_case(q, "The Family plan costs $9 a month.", &[TABLE]));
    assert!(taken_from_another_case(q, "The Family plan costs $150 a month.", &[TABLE]));
    assert!(!taken_from_another_case(q, "The Family plan costs $15 a month.", &[TABLE]));
}

const ZONES: &str =
    "Delivery takes 1-2 days to the city centre, 2-4 to the suburbs and 5-7 to the islands.";

#[test]
fn a_clause_of_a_list_belongs_to_the_case_it_names() {
    let q = "how long does delivery to the islands take";
    assert!(taken_from_another_case(q, "Delivery to the islands takes 2-4 days.", &[ZONES]));
    assert!(!taken_from_another_case(q, "Delivery to the islands takes 5-7 days.", &[ZONES]));
    // The answer's own words name the case where the question's do not.
    let q = "how long to my holiday cottage on Skye";
    assert!(taken_from_another_case(q, "Skye is one of the islands: 1-2 days.", &[ZONES]));
    assert!(!taken_from_another_case(q, "Skye is one of the islands: 5-7 days.", &[ZONES]));
}

const WARRANTY: &str = "Warranty: Cameras and lenses come with a 2-year warranty. Tripods, straps and bags are covered for 6 months.";

#[test]
fn a_list_of_subjects_shares_its_verb_and_quantity() {
    let q = "how long are straps covered";
    assert!(taken_from_another_case(q, "Straps have a 2-year warranty.", &[WARRANTY]));
    assert!(!taken_from_another_case(q, "Straps are covered for 6 months.", &[WARRANTY]));
}

const FEES: &str = "Collection costs $5 on weekdays and $12 on public holidays; orders over $80 are collected free.";

#[test]
fn the_words_before_and_after_a_list_are_shared_by_its_cases() {
    let q = "what does a collection on a public holiday cost";
    assert!(taken_from_another_case(q, "A holiday collection costs $5.", &[FEES]));
    assert!(!taken_from_another_case(q, "A holiday collection costs $12.", &[FEES]));
}

#[test]
fn an_answer_giving_several_cases_or_reasoning_from_the_list_passes() {
    let q = "what does collection cost";
    assert!(!taken_from_another_case(
        q,
        "Collection costs $5 on weekdays and $12 on public holidays.",
        &[FEES]
    ));
    let q = "how long to my cottage on Skye";
    assert!(!taken_from_another_case(
        q,
        "The islands take 5-7 days; the city centre 1-2 days.",
        &[ZONES]
    ));
}

#[test]
fn a_question_that_names_no_case_leaves_the_answer_alone() {
    // Nothing tells the cases apart: a tie is no evidence.
    assert!(!taken_from_another_case(
        "how long does delivery take",
        "It takes 2-4 days.",
        &[ZONES]
    ));
}

const ZONES_ZH: &str = "配送：市区一般 1-2 天送达，郊县 2-4 天，海岛、山区 5-7 天。";

#[test]
fn chinese_lists_are_cut_at_their_commas() {
    let q = "寄到山区要几天";
    assert!(taken_from_another_case(q, "山区一般 2-4 天送达。", &[ZONES_ZH]));
    assert!(!taken_from_another_case(q, "山区一般 5-7 天送达。", &[ZONES_ZH]));
}

const PRICES_ZH: &str = "会员价：银卡 90 元/年；金卡 180 元/年；钻石卡 300 元/年。";

#[test]
fn the_words_before_a_colon_are_shared_by_the_list() {
    let q = "金卡一年多少钱";
    assert!(taken_from_another_case(q, "金卡会员价为 90 元/年。", &[PRICES_ZH]));
    assert!(!taken_from_another_case(q, "金卡会员价为 180 元/年。", &[PRICES_ZH]));
}

const TIERS: &str = "- **Bronze**: 5% off every order.\n- **Silver**: 10% off every order.\n- **Gold**: 15% off every order and free returns.";

#[test]
fn the_label_of_a_list_item_names_its_case() {
    let q = "what discount do silver members get";
    assert!(taken_from_another_case(q, "Silver members get 15% off.", &[TIERS]));
    assert!(!taken_from_another_case(q, "Silver members get 10% off every order.", &[TIERS]));
}
