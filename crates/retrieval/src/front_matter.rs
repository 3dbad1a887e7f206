//! Markdown files with a front-matter block, as `faq/README.md` describes.
//!
//! The block holds plain `key: value` lines and `[a, b]` lists, nothing
//! more, so it is parsed by hand: a YAML parser would accept (and silently
//! reinterpret) far more than shops are told to write, such as a title
//! starting with `no:` or `@`.

use std::path::Path;

use shopchat_core::Language;

use crate::{Error, Result};

/// A parsed FAQ entry or policy document.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Document {
    pub id: String,
    pub title: String,
    pub lang: Language,
    pub tags: Vec<String>,
    pub url: String,
    pub body: String,
    /// The 1-based line number of the body's first line, so that errors
    /// found later in the body can name their line.
    pub body_line: usize,
}

const FENCE: &str = "---";

pub(crate) fn parse(path: &Path, source: &str) -> Result<Document> {
    let source = source.strip_prefix('\u{feff}').unwrap_or(source);
    let mut lines = source.lines().enumerate().map(|(i, line)| (i + 1, line));
    match lines.next() {
        Some((_, first)) if first.trim_end() == FENCE => {}
        _ => return Err(Error::malformed(path, Some(1), "expected a `---` front-matter line")),
    }

    let mut id = None;
    let mut title = None;
    let mut lang = None;
    let mut tags = None;
    let mut url = None;
    let mut closed_at = None;
    for (number, line) in lines.by_ref() {
        let line = line.trim();
        if line == FENCE {
            closed_at = Some(number);
            break;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let malformed = |reason: String| Error::malformed(path, Some(number), reason);
        let Some((key, value)) = line.split_once(':') else {
            return Err(malformed(format!("expected `key: value`, found `{line}`")));
        };
        let key = key.trim();
        let value = unquote(value.trim());
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            return Err(malformed(format!("`{key}` is not a front-matter key")));
        }
        let slot = match key {
            "id" => &mut id,
            "title" => &mut title,
            "url" => &mut url,
            "lang" => {
                let parsed = Language::from_tag(value)
                    .ok_or_else(|| malformed(format!("unsupported language `{value}`")))?;
                if lang.replace(parsed).is_some() {
                    return Err(malformed("`lang` is given twice".into()));
                }
                continue;
            }
            "tags" => {
                if tags.replace(parse_list(value).map_err(malformed)?).is_some() {
                    return Err(malformed("`tags` is given twice".into()));
                }
                continue;
            }
            // Keys we do not use are allowed, so that shops can keep their
            // own bookkeeping (an author, a review date) in the same block.
            _ => continue,
        };
        if value.is_empty() {
            return Err(malformed(format!("`{key}` is empty")));
        }
        if slot.replace(value.to_owned()).is_some() {
            return Err(malformed(format!("`{key}` is given twice")));
        }
    }

    let Some(closed_at) = closed_at else {
        return Err(Error::malformed(path, None, "the front matter has no closing `---` line"));
    };
    let missing =
        |key: &str| Error::malformed(path, Some(1), format!("front matter lacks `{key}`"));
    let body: Vec<&str> = lines.map(|(_, line)| line).collect();
    let body = body.join("\n").trim().to_owned();
    if body.is_empty() {
        return Err(Error::malformed(
            path,
            Some(closed_at + 1),
            "the text after the front matter is empty",
        ));
    }
    Ok(Document {
        id: id.ok_or_else(|| missing("id"))?,
        title: title.ok_or_else(|| missing("title"))?,
        lang: lang.ok_or_else(|| missing("lang"))?,
        tags: tags.unwrap_or_default(),
        url: url.ok_or_else(|| missing("url"))?,
        body,
        body_line: closed_at + 1,
    })
}

/// `[a, b]` to `["a", "b"]`.
fn parse_list(value: &str) -> std::result::Result<Vec<String>, String> {
    let inner = value
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .ok_or_else(|| format!("expected a list like `[a, b]`, found `{value}`"))?;
    Ok(inner
        .split(',')
        .map(|item| unquote(item.trim()).to_owned())
        .filter(|item| !item.is_empty())
        .collect())
}

/// Titles are documented as unquoted, but a quoted one means the same text.
fn unquote(value: &str) -> &str {
    for quote in ['"', '\''] {
        if value.len() >= 2 && value.starts_with(quote) && value.ends_with(quote) {
            return &value[1..value.len() - 1];
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(source: &str) -> Result<Document> {
        parse(Path::new("faq/en/x.md"), source)
    }

    #[test]
    fn parses_keys_lists_and_colons_in_values() {
        let doc = parse_str(
            "---\nid: x\ntitle: What's a 14:00 cut-off: really?\nlang: en\ntags: [a, b ,]\nurl: https://e.example/x\nauthor: me\n---\n\nThe answer.\n",
        )
        .unwrap();
        assert_eq!(doc.title, "What's a 14:00 cut-off: really?");
        assert_eq!(doc.tags, ["a", "b"]);
        assert_eq!(doc.url, "https://e.example/x");
        assert_eq!(doc.body, "The answer.");
        assert_eq!(doc.body_line, 9);
    }

    #[test]
    fn malformed_files_name_their_line() {
        let check = |source: &str, expected: &str| {
            let error = parse_str(source).unwrap_err().to_string();
            assert!(error.contains(expected), "{error:?} should contain {expected:?}");
        };
        check("id: x\n", "faq/en/x.md:1: expected a `---`");
        check("---\nid: x\njust text\n---\nbody", "faq/en/x.md:3: expected `key: value`");
        check("---\nid: x\nlang: fr\n---\nbody", "faq/en/x.md:3: unsupported language `fr`");
        check("---\nid: x\ntags: a, b\n---\nbody", "faq/en/x.md:3: expected a list");
        check("---\nid: x\nid: y\n---\nbody", "faq/en/x.md:3: `id` is given twice");
        check("---\nid: x\n", "faq/en/x.md: the front matter has no closing");
        check(
            "---\nid: x\nlang: en\nurl: u\n---\nbody",
            "faq/en/x.md:1: front matter lacks `title`",
        );
        check("---\nid: x\ntitle: t\nlang: en\nurl: u\n---\n\n", "faq/en/x.md:7: the text after");
    }
}
