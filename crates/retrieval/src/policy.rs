//! Splitting policy documents into one passage per section.
//!
//! A section's passage keeps its heading path ("Returns and refunds policy >
//! Refunds") and a url anchor. Anchors follow the English document when a
//! translation has the same heading structure, so that a section has the
//! same id in every language (`policy/returns#refunds@en` and `…@zh`), just
//! as an FAQ entry does.

use std::path::PathBuf;

use shopchat_core::Language;

use crate::front_matter::Document;
use crate::passage::{Passage, PassageKind};

/// A passage and the place in its file it came from, for error messages.
pub(crate) struct Located {
    pub passage: Passage,
    pub path: PathBuf,
    pub line: Option<usize>,
}

struct Section {
    level: usize,
    heading: String,
    line: usize,
    body: String,
}

struct Split {
    path: PathBuf,
    doc: Document,
    /// The first `#` heading, or the front-matter title when there is none.
    root: String,
    intro: String,
    sections: Vec<Section>,
    anchors: Vec<String>,
}

/// The passages of every policy document, in the order given.
pub(crate) fn passages(docs: Vec<(PathBuf, Document)>) -> Vec<Located> {
    let mut splits: Vec<Split> = docs.into_iter().map(|(path, doc)| split(path, doc)).collect();
    for i in 0..splits.len() {
        if splits[i].doc.lang == Language::En {
            continue;
        }
        let english = splits.iter().find(|other| {
            other.doc.lang == Language::En
                && other.doc.id == splits[i].doc.id
                && levels(&other.sections) == levels(&splits[i].sections)
        });
        if let Some(english) = english {
            splits[i].anchors = english.anchors.clone();
        }
    }
    splits.into_iter().flat_map(into_passages).collect()
}

fn levels(sections: &[Section]) -> Vec<usize> {
    sections.iter().map(|section| section.level).collect()
}

fn split(path: PathBuf, doc: Document) -> Split {
    let mut intro: Vec<&str> = Vec::new();
    let mut root = None;
    let mut sections: Vec<Section> = Vec::new();
    let mut in_code = false;
    for (offset, line) in doc.body.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        }
        let heading = if in_code { None } else { heading(line) };
        match heading {
            // The first top-level heading, before any other, names the
            // document; its text is the introduction.
            Some((1, text)) if root.is_none() && sections.is_empty() => {
                root = Some(text.to_owned());
            }
            Some((level, text)) => sections.push(Section {
                level,
                heading: text.to_owned(),
                line: doc.body_line + offset,
                body: String::new(),
            }),
            None => match sections.last_mut() {
                Some(section) => {
                    section.body.push_str(line);
                    section.body.push('\n');
                }
                None => intro.push(line),
            },
        }
    }
    let anchors = unique_slugs(&sections);
    Split {
        root: root.unwrap_or_else(|| doc.title.clone()),
        intro: intro.join("\n").trim().to_owned(),
        sections,
        anchors,
        path,
        doc,
    }
}

/// `## Refunds` to `(2, "Refunds")`.
fn heading(line: &str) -> Option<(usize, &str)> {
    let level = line.chars().take_while(|&c| c == '#').count();
    let text = line[level..].strip_prefix(' ')?.trim().trim_end_matches('#').trim();
    ((1..=6).contains(&level) && !text.is_empty()).then_some((level, text))
}

fn into_passages(split: Split) -> Vec<Located> {
    let Split { path, doc, root, intro, sections, anchors } = split;
    let passage = |anchor: Option<&str>, heading_path: Vec<String>, text: String| Passage {
        id: match anchor {
            Some(anchor) => format!("policy/{}#{anchor}@{}", doc.id, doc.lang),
            None => format!("policy/{}@{}", doc.id, doc.lang),
        },
        kind: PassageKind::Policy,
        lang: doc.lang,
        title: heading_path.join(" > "),
        heading_path,
        text,
        url: Some(match anchor {
            Some(anchor) => format!("{}#{anchor}", doc.url),
            None => doc.url.clone(),
        }),
        tags: doc.tags.clone(),
        customer_id: None,
    };

    let mut located = Vec::new();
    if !intro.is_empty() {
        let passage = passage(None, vec![root.clone()], intro);
        located.push(Located { passage, path: path.clone(), line: Some(doc.body_line) });
    }
    // Headings above the current section, as (level, text).
    let mut stack: Vec<(usize, &str)> = Vec::new();
    for (section, anchor) in sections.iter().zip(&anchors) {
        while stack.last().is_some_and(|&(level, _)| level >= section.level) {
            stack.pop();
        }
        stack.push((section.level, &section.heading));
        let text = section.body.trim();
        // A heading that only introduces sub-headings has no text of its own.
        if text.is_empty() {
            continue;
        }
        let heading_path =
            std::iter::once(root.clone()).chain(stack.iter().map(|&(_, h)| h.to_owned())).collect();
        let passage = passage(Some(anchor), heading_path, text.to_owned());
        located.push(Located { passage, path: path.clone(), line: Some(section.line) });
    }
    located
}

/// GitHub-style anchors: lower case, letters and digits kept (Chinese too),
/// spaces to `-`, other punctuation dropped; a repeated anchor gets `-1`,
/// `-2`.
fn unique_slugs(sections: &[Section]) -> Vec<String> {
    let mut slugs: Vec<String> = Vec::with_capacity(sections.len());
    for (i, section) in sections.iter().enumerate() {
        let mut slug = String::new();
        for c in section.heading.chars().flat_map(char::to_lowercase) {
            if c.is_alphanumeric() {
                slug.push(c);
            } else if (c.is_whitespace() || c == '-') && !slug.is_empty() && !slug.ends_with('-') {
                slug.push('-');
            }
        }
        let mut slug = slug.trim_end_matches('-').to_owned();
        if slug.is_empty() {
            slug = format!("section-{}", i + 1);
        }
        let base = slug.clone();
        let mut n = 0;
        while slugs.contains(&slug) {
            n += 1;
            slug = format!("{base}-{n}");
        }
        slugs.push(slug);
    }
    slugs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(lang: Language, title: &str, body: &str) -> (PathBuf, Document) {
        let path = PathBuf::from(format!("policies/returns.{lang}.md"));
        let doc = Document {
            id: "returns".into(),
            title: title.into(),
            lang,
            tags: vec!["returns".into()],
            url: format!("https://e.example/returns?lang={lang}"),
            body: body.into(),
            body_line: 8,
        };
        (path, doc)
    }

    #[test]
    fn sections_keep_heading_paths_and_share_anchors_across_languages() {
        let en = "# Returns policy\n\nIntro.\n\n## How to return\n\n### Step 1: Register\n\nGo to the portal.\n\n## Refunds\n\nWithin 5 days.\n\n```\n## not a heading\n```\n";
        let zh = "# 退货政策\n\n简介。\n\n## 如何退货\n\n### 第 1 步：登记\n\n前往门户。\n\n## 退款\n\n5 天内。\n";
        let passages =
            passages(vec![doc(Language::En, "Returns", en), doc(Language::Zh, "退货", zh)]);
        let summary: Vec<(String, String, usize)> = passages
            .iter()
            .map(|l| (l.passage.id.clone(), l.passage.title.clone(), l.line.unwrap()))
            .collect();
        let expected = [
            ("policy/returns@en", "Returns policy", 8),
            (
                "policy/returns#step-1-register@en",
                "Returns policy > How to return > Step 1: Register",
                14,
            ),
            ("policy/returns#refunds@en", "Returns policy > Refunds", 18),
            ("policy/returns@zh", "退货政策", 8),
            ("policy/returns#step-1-register@zh", "退货政策 > 如何退货 > 第 1 步：登记", 14),
            ("policy/returns#refunds@zh", "退货政策 > 退款", 18),
        ];
        let expected: Vec<(String, String, usize)> =
            expected.iter().map(|&(id, title, line)| (id.into(), title.into(), line)).collect();
        assert_eq!(summary, expected);
        assert_eq!(
            passages[2].passage.url.as_deref(),
            Some("https://e.example/returns?lang=en#refunds")
        );
        assert!(passages[2].passage.text.contains("## not a heading"));
    }

    #[test]
    fn a_translation_with_other_headings_gets_its_own_anchors() {
        let passages = passages(vec![
            doc(Language::En, "Returns", "## Refunds\n\nText.\n"),
            doc(Language::Zh, "退货", "## 退款\n\n文字。\n\n## 换货\n\n文字。\n"),
        ]);
        let ids: Vec<&str> = passages.iter().map(|l| l.passage.id.as_str()).collect();
        assert_eq!(
            ids,
            ["policy/returns#refunds@en", "policy/returns#退款@zh", "policy/returns#换货@zh"]
        );
    }
}
