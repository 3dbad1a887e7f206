//! Property tests of the parsers of the shop's files in this crate: FAQ and
//! policy front matter ([`front_matter::parse`], then the policy split by
//! heading) and `orders.json` ([`orders::parse`]). For any text and for
//! mutations of the demo shop's files, each returns passages or a
//! `MalformedFile` error naming a line of the file, never a panic; a valid
//! front-matter block round-trips. `PROPTEST_CASES` raises the counts
//! (docs/reliability.md).

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use shopchat_core::Language;

use crate::front_matter::{self, Document};
use crate::mutations::{any_text, config, mutated};
use crate::{orders, policy, Error};

const FAQ: &str = include_str!("../../../faq/faq/en/discount-code.md");
const FAQ_ZH: &str = include_str!("../../../faq/faq/zh/cancel-order.md");
const POLICY: &str = include_str!("../../../faq/policies/returns.en.md");
const ORDERS: &str = include_str!("../../../faq/orders.json");

/// A malformed file's error names this file, and a line no later than the
/// one after its last.
fn check_error(error: &Error, path: &Path, source: &str) -> Result<(), TestCaseError> {
    match error {
        Error::MalformedFile { path: named, line, reason } => {
            prop_assert_eq!(named.as_path(), path);
            prop_assert!(!reason.is_empty());
            if let Some(line) = line {
                prop_assert!(*line >= 1 && *line <= source.lines().count() + 1, "line {}", line);
            }
        }
        other => prop_assert!(false, "unexpected error {other:?}"),
    }
    Ok(())
}

/// Parses a document and, if it stands, splits it as a policy.
fn check_document(source: &str) -> Result<(), TestCaseError> {
    let path = Path::new("faq/policies/x.en.md");
    match front_matter::parse(path, source) {
        Ok(doc) => {
            prop_assert!(!doc.body.is_empty());
            policy::passages(vec![(path.to_owned(), doc)]);
        }
        Err(error) => check_error(&error, path, source)?,
    }
    Ok(())
}

fn check_orders(source: &str) -> Result<(), TestCaseError> {
    let path = Path::new("faq/orders.json");
    if let Err(error) = orders::parse(path, source) {
        check_error(&error, path, source)?;
    }
    Ok(())
}

/// A front-matter block as `faq/README.md` tells shops to write it.
fn document() -> impl Strategy<Value = Document> {
    (
        "[a-z0-9][a-z0-9-]{0,20}",
        "[A-Za-z0-9中][A-Za-z0-9?,.:'# 中-]{0,30}[A-Za-z0-9?中]",
        prop_oneof![Just(Language::En), Just(Language::Zh)],
        prop::collection::vec("[a-z][a-z-]{0,10}", 0..4),
        "https://[a-z]{1,10}\\.example/[a-z-]{0,10}",
        prop::collection::vec("[A-Za-z0-9#.,:中-][A-Za-z0-9#.,:中 -]{0,40}", 1..6),
    )
        .prop_map(|(id, title, lang, tags, url, lines)| Document {
            id,
            title,
            lang,
            tags,
            url,
            body: lines.join("\n").trim().to_owned(),
            body_line: 8,
        })
}

fn render(doc: &Document) -> String {
    format!(
        "---\nid: {}\ntitle: {}\nlang: {}\ntags: [{}]\nurl: {}\n---\n{}\n",
        doc.id,
        doc.title,
        doc.lang.code(),
        doc.tags.join(", "),
        doc.url,
        doc.body
    )
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn any_text_is_a_document_or_a_malformed_file(text in any_text()) {
        check_document(&text)?;
        check_document(&format!("---\n{text}"))?;
        check_document(&format!("---\nid: x\ntitle: t\nlang: en\nurl: u\n---\n{text}"))?;
    }

    #[test]
    fn mutated_faqs_are_documents_or_malformed_files(
        text in prop_oneof![mutated(FAQ), mutated(FAQ_ZH), mutated(POLICY)]
    ) {
        check_document(&text)?;
    }

    #[test]
    fn valid_front_matter_round_trips(doc in document()) {
        let parsed = front_matter::parse(Path::new("faq/faq/en/x.md"), &render(&doc));
        prop_assert_eq!(parsed.map_err(|e| e.to_string()), Ok(doc));
    }

    #[test]
    fn any_text_is_orders_or_a_malformed_file(text in any_text()) {
        check_orders(&text)?;
    }
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn mutated_orders_are_orders_or_a_malformed_file(text in mutated(ORDERS)) {
        check_orders(&text)?;
    }
}

#[test]
fn the_demo_files_parse() {
    for source in [FAQ, FAQ_ZH, POLICY] {
        front_matter::parse(&PathBuf::from("x.md"), source).unwrap();
    }
    orders::parse(Path::new("orders.json"), ORDERS).unwrap();
}
