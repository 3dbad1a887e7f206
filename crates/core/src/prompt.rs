//! Assembling the messages a language model answers a question from.
//!
//! The layout is chosen for the inference worker's cache: the system message
//! holds the instructions only, so it is the same for every question and its
//! computed attention cache is reused across questions and conversations.
//! Everything that changes (the numbered passages and the question) goes
//! into the final user message. Earlier turns are replayed as plain
//! user/assistant messages without their passages, which keeps the prompt
//! short for a small model and keeps old passages from being cited for a
//! new question.
//!
//! Templates are data (`prompts/*.toml`), versioned, so that the version used
//! for each answer can be stored with it and a change of wording can be
//! compared against the last.

use serde::Deserialize;

use crate::{ChatMessage, Language, Role};

/// The prompt shipped with ShopChat (`prompts/default.toml`), compiled in so
/// that the server needs no file to start.
pub const DEFAULT_TEMPLATE_TOML: &str = include_str!("../../../prompts/default.toml");

/// A prompt template, loaded with [`PromptTemplate::from_toml`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptTemplate {
    pub name: String,
    pub version: u32,
    /// The instructions. `{no_answer}` stands for `no_answer.en` and
    /// `{no_answer_zh}` for `no_answer.zh`.
    pub system: String,
    /// One passage; placeholders `{n}` (its number, from 1), `{id}`,
    /// `{title}` and `{text}`.
    pub passage_format: String,
    /// The final user message; placeholders `{passages}` (the formatted
    /// passages, separated by blank lines) and `{question}`.
    #[serde(default = "default_user_format")]
    pub user_format: String,
    /// What to say when the passages do not answer the question.
    pub no_answer: NoAnswer,
    /// How many earlier messages (user and assistant) to replay at most.
    #[serde(default = "default_max_history")]
    pub max_history_messages: usize,
}

/// The "I don't know" reply, per language.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoAnswer {
    pub en: String,
    pub zh: String,
}

impl NoAnswer {
    pub fn text(&self, lang: Language) -> &str {
        match lang {
            Language::En => &self.en,
            Language::Zh => &self.zh,
        }
    }
}

fn default_user_format() -> String {
    "Passages:\n{passages}\n\nQuestion: {question}".to_owned()
}

fn default_max_history() -> usize {
    4
}

/// One retrieved passage as the prompt shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PromptPassage<'a> {
    pub id: &'a str,
    pub title: &'a str,
    pub text: &'a str,
}

#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("prompt template is not valid TOML of the expected shape: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("prompt template: `{0}` is empty")]
    Empty(&'static str),
    #[error("prompt template: version must be at least 1")]
    Version,
    #[error("prompt template: `{field}` uses unknown placeholder `{{{name}}}`")]
    UnknownPlaceholder { field: &'static str, name: String },
    #[error("prompt template: `{field}` must contain `{{{name}}}`")]
    MissingPlaceholder { field: &'static str, name: &'static str },
    #[error("prompt template: `{field}` has an unmatched brace (write `{{{{` or `}}}}` for a literal one)")]
    UnmatchedBrace { field: &'static str },
}

impl PromptTemplate {
    /// Parses and validates a template: every placeholder must be known and
    /// the required ones present, so a typo fails at start-up rather than
    /// producing a prompt with `{qestion}` in it.
    pub fn from_toml(text: &str) -> Result<Self, PromptError> {
        let template: PromptTemplate = toml::from_str(text)?;
        let fields: [(&'static str, &str); 5] = [
            ("name", &template.name),
            ("system", &template.system),
            ("passage_format", &template.passage_format),
            ("no_answer.en", &template.no_answer.en),
            ("no_answer.zh", &template.no_answer.zh),
        ];
        for (field, value) in fields {
            if value.trim().is_empty() {
                return Err(PromptError::Empty(field));
            }
        }
        if template.version == 0 {
            return Err(PromptError::Version);
        }
        validate("system", &template.system, &["no_answer", "no_answer_zh"], &[])?;
        validate(
            "passage_format",
            &template.passage_format,
            &["n", "id", "title", "text"],
            &["text"],
        )?;
        validate(
            "user_format",
            &template.user_format,
            &["passages", "question"],
            &["passages", "question"],
        )?;
        Ok(template)
    }

    /// The shipped default template.
    pub fn builtin_default() -> Result<Self, PromptError> {
        Self::from_toml(DEFAULT_TEMPLATE_TOML)
    }

    /// `name@version`, as stored with each answer.
    pub fn id(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }

    /// The system message: the same for every question.
    pub fn system_message(&self) -> ChatMessage {
        ChatMessage::system(render(&self.system, |name| match name {
            "no_answer" => Some(self.no_answer.en.as_str().into()),
            "no_answer_zh" => Some(self.no_answer.zh.as_str().into()),
            _ => None,
        }))
    }

    /// The final user message: the numbered passages, then the question.
    pub fn user_message(&self, passages: &[PromptPassage<'_>], question: &str) -> String {
        let formatted: Vec<String> = passages
            .iter()
            .enumerate()
            .map(|(i, passage)| {
                render(&self.passage_format, |name| match name {
                    "n" => Some((i + 1).to_string().into()),
                    "id" => Some(passage.id.into()),
                    "title" => Some(passage.title.trim().into()),
                    "text" => Some(passage.text.trim().into()),
                    _ => None,
                })
            })
            .collect();
        let passages = formatted.join("\n\n");
        render(&self.user_format, |name| match name {
            "passages" => Some(passages.as_str().into()),
            "question" => Some(question.trim().into()),
            _ => None,
        })
    }

    /// Whether a generated answer is the template's "I don't know" reply
    /// (in either language, ignoring case, spacing and punctuation), which
    /// the server counts toward offering a person.
    pub fn is_no_answer(&self, answer: &str) -> bool {
        let answer = squeeze(answer);
        !answer.is_empty()
            && [&self.no_answer.en, &self.no_answer.zh].iter().any(|text| {
                let text = squeeze(text);
                !text.is_empty() && answer.contains(&text)
            })
    }
}

/// Lower-case letters and digits only.
fn squeeze(text: &str) -> String {
    text.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
}

/// The messages for one question: the system message, the last
/// `max_history_messages` user and assistant messages of `history` (system
/// messages in the history are dropped: instructions come only from the
/// template), and a user message with the numbered passages and the
/// question. Passage `[n]` is `passages[n - 1]`, which is how the server maps
/// citations in the answer back to sources.
pub fn assemble(
    template: &PromptTemplate,
    passages: &[PromptPassage<'_>],
    history: &[ChatMessage],
    question: &str,
) -> Vec<ChatMessage> {
    let turns: Vec<&ChatMessage> =
        history.iter().filter(|m| matches!(m.role, Role::User | Role::Assistant)).collect();
    let mut recent = &turns[turns.len().saturating_sub(template.max_history_messages)..];
    // Start the replayed history with the shopper's turn, as a conversation does.
    while recent.first().is_some_and(|m| m.role == Role::Assistant) {
        recent = &recent[1..];
    }
    let mut messages = Vec::with_capacity(recent.len() + 2);
    messages.push(template.system_message());
    messages.extend(recent.iter().map(|m| (*m).clone()));
    messages.push(ChatMessage::user(template.user_message(passages, question)));
    messages
}

/// The passage numbers an answer cites (`[2]`, `[1][3]`, `[1, 2]`), in order
/// of first citation, keeping only those in `1..=passage_count`.
pub fn cited_passages(answer: &str, passage_count: usize) -> Vec<usize> {
    let mut cited = Vec::new();
    let mut rest = answer;
    while let Some(open) = rest.find('[') {
        rest = &rest[open + 1..];
        let Some(close) = rest.find(']') else { break };
        for part in rest[..close].split(',') {
            if let Ok(n) = part.trim().parse::<usize>() {
                if (1..=passage_count).contains(&n) && !cited.contains(&n) {
                    cited.push(n);
                }
            }
        }
    }
    cited
}

/// Placeholders of a format string, or the first brace error.
fn placeholders(format: &str) -> Result<Vec<&str>, ()> {
    let mut names = Vec::new();
    let mut rest = format;
    while let Some(i) = rest.find(['{', '}']) {
        let (brace, after) = (&rest[i..i + 1], &rest[i + 1..]);
        if after.starts_with(brace) {
            rest = &after[1..];
        } else if brace == "{" {
            let end = after.find('}').ok_or(())?;
            let name = &after[..end];
            if name.contains('{') {
                return Err(());
            }
            names.push(name);
            rest = &after[end + 1..];
        } else {
            return Err(());
        }
    }
    Ok(names)
}

fn validate(
    field: &'static str,
    format: &str,
    known: &[&str],
    required: &[&'static str],
) -> Result<(), PromptError> {
    let names = placeholders(format).map_err(|()| PromptError::UnmatchedBrace { field })?;
    if let Some(unknown) = names.iter().find(|name| !known.contains(name)) {
        return Err(PromptError::UnknownPlaceholder { field, name: (*unknown).to_owned() });
    }
    if let Some(missing) = required.iter().find(|name| !names.contains(name)) {
        return Err(PromptError::MissingPlaceholder { field, name: missing });
    }
    Ok(())
}

/// Fills placeholders in one pass, so that braces inside the inserted text
/// (a shopper typing `{question}`) are never expanded. Unknown placeholders
/// and stray braces, which validation rejects, are kept as written.
fn render<'v>(format: &str, value: impl Fn(&str) -> Option<std::borrow::Cow<'v, str>>) -> String {
    let mut out = String::with_capacity(format.len());
    let mut rest = format;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let (brace, after) = (&rest[i..i + 1], &rest[i + 1..]);
        if after.starts_with(brace) {
            out.push_str(brace);
            rest = &after[1..];
            continue;
        }
        if brace == "{" {
            if let Some(end) = after.find('}') {
                if let Some(v) = value(&after[..end]) {
                    out.push_str(&v);
                    rest = &after[end + 1..];
                    continue;
                }
            }
        }
        out.push_str(brace);
        rest = after;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template() -> PromptTemplate {
        PromptTemplate::builtin_default().unwrap()
    }

    const PASSAGES: [PromptPassage<'static>; 2] = [
        PromptPassage {
            id: "faq/shipping-times@en",
            title: "How long does delivery take?",
            text: "Standard delivery takes 2-3 business days to the UK.\n",
        },
        PromptPassage {
            id: "faq/free-shipping@en",
            title: "Is shipping free?",
            text: "Standard delivery to the UK is free from €60.",
        },
    ];

    #[test]
    fn the_default_template_loads() {
        let template = template();
        assert_eq!(template.name, "default");
        assert_eq!(template.version, 1);
        assert_eq!(template.id(), "default@1");
        let system = template.system_message().content;
        assert!(system.contains(&template.no_answer.en), "{system}");
        assert!(!system.contains('{'), "{system}");
    }

    #[test]
    fn assembles_instructions_history_and_passages_apart() {
        let template = template();
        let history = [
            ChatMessage::system("an old system message"),
            ChatMessage::user("Hi"),
            ChatMessage::assistant("Hello! How can I help?"),
            ChatMessage::user("Do you ship to France?"),
            ChatMessage::assistant("Yes, France is in EU zone 1 [1]."),
        ];
        let messages =
            assemble(&template, &PASSAGES, &history, "  How long does UK delivery take? ");
        let roles: Vec<Role> = messages.iter().map(|m| m.role).collect();
        assert_eq!(
            roles,
            [Role::System, Role::User, Role::Assistant, Role::User, Role::Assistant, Role::User]
        );
        assert_eq!(messages[0], template.system_message());
        assert_eq!(messages[1].content, "Hi");
        assert_eq!(
            messages[5].content,
            "Passages:\n[1] Standard delivery takes 2-3 business days to the UK.\n\n[2] Standard delivery to the UK is free from €60.\n\nQuestion: How long does UK delivery take?"
        );
        // The system message does not depend on the question or passages,
        // so its attention cache can be shared.
        let other = assemble(&template, &PASSAGES[..1], &[], "Where is my parcel?");
        assert_eq!(other[0], messages[0]);
        assert_eq!(other.len(), 2);
    }

    #[test]
    fn history_is_trimmed_to_whole_recent_turns() {
        let mut template = template();
        template.max_history_messages = 3;
        let history = [
            ChatMessage::user("q1"),
            ChatMessage::assistant("a1"),
            ChatMessage::user("q2"),
            ChatMessage::assistant("a2"),
        ];
        let messages = assemble(&template, &PASSAGES, &history, "q3");
        let contents: Vec<&str> =
            messages[1..messages.len() - 1].iter().map(|m| m.content.as_str()).collect();
        // The last three are a1, q2, a2; the replay starts at the user's q2.
        assert_eq!(contents, ["q2", "a2"]);
        template.max_history_messages = 0;
        assert_eq!(assemble(&template, &PASSAGES, &history, "q3").len(), 2);
    }

    #[test]
    fn shopper_text_is_inserted_literally() {
        let template = template();
        let question = "What is {passages}? {{x}} }{";
        let message = template.user_message(&PASSAGES[..1], question);
        assert!(message.ends_with("Question: What is {passages}? {{x}} }{"), "{message}");
        let mut titled = template.clone();
        titled.passage_format = "[{n}] {title} ({id})\n{text}".to_owned();
        let passage = PromptPassage { id: "{id}", title: "{title}", text: "{text} [1]" };
        let message = titled.user_message(&[passage], "q");
        assert!(message.contains("[1] {title} ({id})\n{text} [1]"), "{message}");
    }

    #[test]
    fn rejects_broken_templates() {
        let check = |text: &str, expected: &str| {
            let error = PromptTemplate::from_toml(text).unwrap_err().to_string();
            assert!(error.contains(expected), "{error}");
        };
        let base = |system: &str, passage: &str, user: &str| {
            format!(
                "name = \"t\"\nversion = 2\nsystem = \"{system}\"\npassage_format = \"{passage}\"\nuser_format = \"{user}\"\n[no_answer]\nen = \"No.\"\nzh = \"不知道。\"\n"
            )
        };
        let ok = base("Answer. Else say {no_answer}", "[{n}] {text}", "{passages} Q: {question}");
        let template = PromptTemplate::from_toml(&ok).unwrap();
        assert_eq!(template.system_message().content, "Answer. Else say No.");
        assert_eq!(template.max_history_messages, 4);
        check(&base("Hi {nope}", "{text}", "{passages}{question}"), "unknown placeholder `{nope}`");
        check(&base("Hi", "{title}", "{passages}{question}"), "must contain `{text}`");
        check(&base("Hi", "{text}", "{passages}"), "must contain `{question}`");
        check(&base("Hi {", "{text}", "{passages}{question}"), "unmatched brace");
        check(&base("", "{text}", "{passages}{question}"), "`system` is empty");
        check(&ok.replace("version = 2", "version = 0"), "version");
        check(&ok.replace("name = \"t\"", "name = \"t\"\nmax_histroy = 3"), "unknown field");
        check("name = 1", "TOML");
    }

    #[test]
    fn recognizes_no_answer_replies_and_citations() {
        let template = template();
        let check = |answer: &str, expected: bool| {
            assert_eq!(template.is_no_answer(answer), expected, "{answer}");
        };
        check(&template.no_answer.en.to_uppercase(), true);
        check(&format!("  {} ", template.no_answer.zh), true);
        check(&format!("{} You can ask a person.", template.no_answer.en), true);
        check("Standard delivery takes 2-3 business days [1].", false);
        check("", false);

        assert_eq!(cited_passages("Yes [2]. Also [1][2], and [1, 3].", 3), [2, 1, 3]);
        assert_eq!(cited_passages("See [4] and [0] and [x].", 3), Vec::<usize>::new());
    }
}
