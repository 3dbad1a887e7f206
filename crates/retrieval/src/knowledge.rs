//! Everything the shop knows, read from the `faq/` directory and imports.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use shopchat_core::Language;

use crate::front_matter;
use crate::orders::{self, OrderBook, VerifiedCustomer};
use crate::passage::{Passage, PassageKind};
use crate::policy::{self, Located};
use crate::{Error, Result};

/// The passages to index, and the order book that verifies shoppers.
#[derive(Debug, Clone, Default)]
pub struct KnowledgeBase {
    passages: Vec<Passage>,
    ids: HashSet<String>,
    orders: OrderBook,
}

impl KnowledgeBase {
    /// Reads `faq/<lang>/*.md`, `policies/*.md` and `orders.json` under
    /// `dir` (the layout of `faq/README.md`). Each part is optional, so a
    /// shop without orders or policies still loads; a part that exists must
    /// be well-formed.
    pub fn load(dir: &Path) -> Result<KnowledgeBase> {
        if !dir.is_dir() {
            return Err(Error::NoKnowledgeBase { path: dir.to_owned() });
        }
        let mut kb = KnowledgeBase::default();

        let lang_dirs = entries(&dir.join("faq"))?.into_iter().filter(|path| path.is_dir());
        for lang_dir in lang_dirs {
            let lang = lang_dir
                .file_name()
                .and_then(|name| name.to_str())
                .and_then(|name| Language::ALL.into_iter().find(|l| l.code() == name))
                .ok_or_else(|| {
                    Error::malformed(&lang_dir, None, "expected a language directory: en or zh")
                })?;
            for path in markdown_files(&lang_dir)? {
                let doc = front_matter::parse(&path, &read(&path)?)?;
                let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
                if doc.id != stem {
                    let reason = format!("`id: {}` differs from the file name", doc.id);
                    return Err(Error::malformed(&path, None, reason));
                }
                if doc.lang != lang {
                    let reason = format!("`lang: {}` in the `{lang}` directory", doc.lang);
                    return Err(Error::malformed(&path, None, reason));
                }
                let passage = faq_passage(&doc.id, doc.lang, doc.title, doc.body, Some(doc.url));
                let passage = Passage { tags: doc.tags, ..passage };
                kb.add(vec![Located { passage, path: path.clone(), line: Some(doc.body_line) }])?;
            }
        }

        let mut policies = Vec::new();
        for path in markdown_files(&dir.join("policies"))? {
            let doc = front_matter::parse(&path, &read(&path)?)?;
            // `returns.en.md` must hold `id: returns` and `lang: en`.
            let expected = format!("{}.{}.md", doc.id, doc.lang);
            if path.file_name().and_then(|n| n.to_str()) != Some(expected.as_str()) {
                let reason = format!(
                    "a policy with `id: {}` and `lang: {}` belongs in {expected}",
                    doc.id, doc.lang
                );
                return Err(Error::malformed(&path, None, reason));
            }
            policies.push((path, doc));
        }
        kb.add(policy::passages(policies))?;

        let orders_path = dir.join("orders.json");
        if orders_path.exists() {
            let (book, passages) = orders::load(&orders_path)?;
            kb.orders = book;
            let located = passages
                .into_iter()
                .map(|passage| Located { passage, path: orders_path.clone(), line: None })
                .collect();
            kb.add(located)?;
        }
        Ok(kb)
    }

    /// Adds a shop's own FAQ from JSONL (`{"id", "question", "answer",
    /// "lang"?}` per line) or CSV (header `id,question,answer[,lang]`),
    /// chosen by the file extension. A missing language is detected from the
    /// text. All or nothing: on any error no entry is added. Returns how many
    /// entries were added.
    pub fn import_faq(&mut self, path: &Path) -> Result<usize> {
        let extension = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        let records = match extension.as_deref() {
            Some("jsonl") => read_jsonl(path)?,
            Some("csv") => read_csv(path)?,
            _ => return Err(Error::UnsupportedImport { path: path.to_owned() }),
        };
        let mut located = Vec::with_capacity(records.len());
        for (line, record) in records {
            let malformed = |reason: String| Error::malformed(path, Some(line), reason);
            let id = record.id.trim();
            if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return Err(malformed(format!("`{id}` is not an id: use letters, digits, - _ .")));
            }
            let question = record.question.trim();
            let answer = record.answer.trim();
            if question.is_empty() || answer.is_empty() {
                return Err(malformed("the question or the answer is empty".into()));
            }
            let lang = match record.lang.as_deref().map(str::trim).filter(|l| !l.is_empty()) {
                Some(tag) => Language::from_tag(tag)
                    .ok_or_else(|| malformed(format!("unsupported language `{tag}`")))?,
                None => Language::detect(&format!("{question}\n{answer}")),
            };
            let passage = faq_passage(id, lang, question.to_owned(), answer.to_owned(), None);
            located.push(Located { passage, path: path.to_owned(), line: Some(line) });
        }
        let added = located.len();
        self.add(located)?;
        Ok(added)
    }

    pub fn passages(&self) -> &[Passage] {
        &self.passages
    }

    /// The customer who placed order `number`, if `email` is their address
    /// (case and surrounding spaces ignored). This is how a shopper in a chat
    /// proves who they are before seeing an order.
    pub fn verify_order(&self, number: &str, email: &str) -> Option<VerifiedCustomer> {
        self.orders.verify(number, email)
    }

    /// Adds passages if none of their ids is taken; otherwise adds none.
    fn add(&mut self, located: Vec<Located>) -> Result<()> {
        let mut new_ids = HashSet::new();
        for Located { passage, path, line } in &located {
            if self.ids.contains(&passage.id) || !new_ids.insert(passage.id.clone()) {
                let (id, path, line) = (passage.id.clone(), path.clone(), *line);
                return Err(Error::DuplicateId { id, path, line });
            }
        }
        self.ids.extend(new_ids);
        self.passages.extend(located.into_iter().map(|located| located.passage));
        Ok(())
    }
}

fn faq_passage(
    id: &str,
    lang: Language,
    question: String,
    answer: String,
    url: Option<String>,
) -> Passage {
    Passage {
        id: format!("faq/{id}@{lang}"),
        kind: PassageKind::Faq,
        lang,
        title: question,
        heading_path: Vec::new(),
        text: answer,
        url,
        tags: Vec::new(),
        customer_id: None,
    }
}

#[derive(Deserialize)]
struct ImportRecord {
    id: String,
    question: String,
    answer: String,
    lang: Option<String>,
}

fn read_jsonl(path: &Path) -> Result<Vec<(usize, ImportRecord)>> {
    let mut records = Vec::new();
    for (index, line) in read(path)?.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let record = serde_json::from_str(line).map_err(|e| {
            Error::malformed(path, Some(index + 1), format!("not a FAQ entry: {e}"))
        })?;
        records.push((index + 1, record));
    }
    Ok(records)
}

fn read_csv(path: &Path) -> Result<Vec<(usize, ImportRecord)>> {
    let csv_error = |e: csv::Error| {
        let line = e.position().map(|p| p.line() as usize);
        Error::malformed(path, line, e.to_string())
    };
    let mut reader = csv::Reader::from_path(path).map_err(csv_error)?;
    let headers = reader.headers().map_err(csv_error)?.clone();
    let column =
        |name: &str| headers.iter().position(|h| h.trim_start_matches('\u{feff}').trim() == name);
    let missing = |name: &str| {
        Error::malformed(path, Some(1), format!("the header lacks the `{name}` column"))
    };
    let id = column("id").ok_or_else(|| missing("id"))?;
    let question = column("question").ok_or_else(|| missing("question"))?;
    let answer = column("answer").ok_or_else(|| missing("answer"))?;
    let lang = column("lang");

    let mut records = Vec::new();
    for record in reader.records() {
        let record = record.map_err(csv_error)?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        let field = |i: usize| record.get(i).unwrap_or_default().to_owned();
        records.push((
            line,
            ImportRecord {
                id: field(id),
                question: field(question),
                answer: field(answer),
                lang: lang.map(field),
            },
        ));
    }
    Ok(records)
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(Error::io(format!("cannot read {}", path.display())))
}

/// The entries of `dir` in name order, or none if it does not exist.
fn entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let listing = match std::fs::read_dir(dir) {
        Ok(listing) => listing,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("cannot list {}", dir.display()))(e)),
    };
    let mut paths = Vec::new();
    for entry in listing {
        paths.push(entry.map_err(Error::io(format!("cannot list {}", dir.display())))?.path());
    }
    paths.sort();
    Ok(paths)
}

/// The `.md` files of `dir`; other files (a README, editor backups) are not
/// content.
fn markdown_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = entries(dir)?;
    files.retain(|path| path.is_file() && path.extension().is_some_and(|e| e == "md"));
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn import(name: &str, content: &str) -> (KnowledgeBase, Result<usize>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        let mut kb = KnowledgeBase::default();
        let result = kb.import_faq(&path);
        (kb, result)
    }

    #[test]
    fn imports_csv_with_quoting_and_detects_missing_languages() {
        let csv = "id,question,answer\n\
                   gift-wrap,\"Do you gift-wrap, too?\",\"Yes, for \"\"free\"\".\nAsk at checkout.\"\n\
                   gift-wrap-zh,可以礼品包装吗？,可以，免费。\n";
        let (kb, result) = import("faq.csv", csv);
        assert_eq!(result.unwrap(), 2);
        let passages = kb.passages();
        assert_eq!(passages[0].id, "faq/gift-wrap@en");
        assert_eq!(passages[0].title, "Do you gift-wrap, too?");
        assert_eq!(passages[0].text, "Yes, for \"free\".\nAsk at checkout.");
        assert_eq!(passages[1].id, "faq/gift-wrap-zh@zh");
    }

    #[test]
    fn a_bad_import_adds_nothing_and_names_the_line() {
        let check = |name: &str, content: &str, expected: &str| {
            let (kb, result) = import(name, content);
            let error = result.unwrap_err();
            assert!(error.is_user_error(), "{error}");
            let message = error.to_string();
            assert!(message.contains(expected), "{message:?} should contain {expected:?}");
            assert!(kb.passages().is_empty());
        };
        let good = r#"{"id": "a", "question": "Q?", "answer": "A."}"#;
        check("f.jsonl", &format!("{good}\n\n{{\"id\": \"b\"}}\n"), "f.jsonl:3: not a FAQ entry");
        check(
            "f.jsonl",
            &format!("{good}\n{good}\n"),
            "f.jsonl:2: passage id `faq/a@en` is used twice",
        );
        check(
            "f.jsonl",
            r#"{"id": "a b", "question": "Q", "answer": "A"}"#,
            "f.jsonl:1: `a b` is not an id",
        );
        check(
            "f.jsonl",
            r#"{"id": "a", "question": "Q", "answer": "A", "lang": "fr"}"#,
            "unsupported language `fr`",
        );
        check("f.csv", "id,question\na,Q\n", "f.csv:1: the header lacks the `answer` column");
        check("f.csv", "id,question,answer\na,Q,A\nb,Q\n", "f.csv:3:");
        check(
            "f.csv",
            "id,question,answer,lang\na,Q,,en\n",
            "f.csv:2: the question or the answer is empty",
        );
        check("f.txt", "", "must end in .jsonl or .csv");
    }
}
