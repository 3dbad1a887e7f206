//! What a shopper's message asks for, decided by rules before any model runs.
//!
//! The pipeline answers some requests from data it owns (order facts, return
//! eligibility, a handoff to staff) and sends only knowledge questions to
//! retrieval and the model, so it must first tell them apart. Rules, not a
//! classifier: they run in microseconds, behave the same every time, and a
//! wrong decision can be traced to one line. Each rule looks for the *shape*
//! of a request ("where is my …", "I want to return …", "talk to a …"), not
//! for a shop's product names, so that it carries over to other shops.
//!
//! Key design decision: the words and patterns are data, one file per
//! language (`rules/intent.<lang>.toml`, compiled once by `rules`), and
//! the decisions are code, one module per concern and the same for every
//! language: `human` (a person), `returns` (starting a return), `status`
//! (where an order is) and `small_talk`, with negation in `clause`. A
//! request must be about the shopper's own order, purchase or
//! conversation; the same words inside a how-to or policy question ("how
//! does tracking work?", "is live chat open on weekends?") leave it a
//! [`Intent::Question`].
//!
//! Misreading a message is never a security problem: an order number or an
//! e-mail address found here is only a claim, and the server shows order
//! data only after verifying it. The cost of a wrong intent is a less
//! helpful reply, so ambiguous messages fall back to [`Intent::Question`],
//! which retrieval and the relevance gate handle safely.

mod clause;
mod human;
mod returns;
mod rules;
mod small_talk;
mod status;
#[cfg(test)]
mod tests;

use regex::Regex;
use serde::{Deserialize, Serialize};

use self::rules::Rules;
pub use self::rules::RulesError;
use crate::language::is_cjk;
use crate::scan::{fold, EMAIL};
use crate::Language;

/// What the shopper wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    /// Anything else: answered from the knowledge base, or refused.
    Question,
    /// Where an order is: answered from the order data after verification.
    OrderStatus,
    /// To return a specific order or item (not how returns work in general).
    StartReturn,
    /// To talk to a person.
    Human,
    /// The whole message is a greeting.
    Greeting,
    /// The whole message is thanks or an acknowledgement.
    Thanks,
    /// The whole message takes leave.
    Goodbye,
}

/// The result of reading one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Understanding {
    pub intent: Intent,
    /// Detected from the text. A message without words (just an order
    /// number) reads as English; the server should then keep the
    /// conversation's language.
    pub lang: Language,
    /// The first order number in the message, upper-cased. A claim, not proof
    /// of ownership.
    pub order_number: Option<String>,
    /// The first e-mail address in the message, as written. A claim too: it
    /// may be someone else's.
    pub email: Option<String>,
}

/// Shop-specific settings of the rules, with the built-in rules they use.
#[derive(Debug, Clone)]
pub struct IntentConfig {
    /// Case-insensitive pattern of the shop's order numbers.
    order_number: Regex,
    rules: &'static Rules,
}

#[derive(Debug, thiserror::Error)]
pub enum IntentError {
    #[error("the order number pattern is not a valid regular expression: {0}")]
    Pattern(#[from] regex::Error),
    #[error("the order number pattern `{0}` matches an empty string")]
    MatchesEmpty(String),
    #[error(transparent)]
    Rules(#[from] RulesError),
}

impl IntentConfig {
    /// The demo shop's order numbers: `NW-` and six digits.
    pub const DEMO_ORDER_NUMBER_PATTERN: &'static str = r"NW-\d{6}";

    /// Rules for a shop whose order numbers match `order_number_pattern`
    /// (a `regex` crate pattern, matched case-insensitively and only as a
    /// whole word, so `NW-\d{6}` does not match inside `NW-1002311`).
    pub fn new(order_number_pattern: &str) -> Result<Self, IntentError> {
        let order_number = Regex::new(&format!("(?i)(?:{order_number_pattern})"))?;
        if order_number.is_match("") {
            return Err(IntentError::MatchesEmpty(order_number_pattern.to_owned()));
        }
        Ok(Self { order_number, rules: rules::built_in()? })
    }

    /// The demo shop's settings.
    pub fn demo() -> Self {
        match Self::new(Self::DEMO_ORDER_NUMBER_PATTERN) {
            Ok(config) => config,
            Err(error) => panic!("the built-in intent settings are invalid: {error}"),
        }
    }

    /// The first order number in `text`, upper-cased, that stands as a word
    /// of its own.
    fn find_order_number(&self, text: &str) -> Option<String> {
        let is_word = |c: char| c.is_alphanumeric() || c == '_';
        self.order_number
            .find_iter(text)
            .find(|m| {
                let before = text[..m.start()].chars().next_back();
                let after = text[m.end()..].chars().next();
                // CJK text runs into numbers without spaces ("订单NW-100231到哪了").
                let free = |c: Option<char>| c.is_none_or(|c| !is_word(c) || is_cjk(c));
                free(before) && free(after)
            })
            .map(|m| m.as_str().to_uppercase())
    }
}

/// Reads one shopper message.
pub fn understand(text: &str, config: &IntentConfig) -> Understanding {
    let folded = fold(text);
    let order_number = config.find_order_number(&folded);
    let email = EMAIL.find(&folded).map(|m| m.as_str().to_owned());

    // The phrase rules read the text with the number and address replaced by
    // placeholders, so that their letters ("agent@…") never read as words.
    let mut plain = EMAIL.replace_all(&folded, " emailaddress ").into_owned();
    plain = config.order_number.replace_all(&plain, " ordernumber ").into_owned();
    let plain = plain.to_lowercase().split_whitespace().collect::<Vec<_>>().join(" ");

    // The first concern that claims the message wins: asking for a person
    // beats everything, and a return beats a status question because "I
    // want to return my order" also names the order.
    let rules = config.rules;
    let has_number = order_number.is_some();
    let intent = if human::wants_human(&plain, rules) {
        Intent::Human
    } else if returns::wants_return(&plain, has_number, rules) {
        Intent::StartReturn
    } else if status::asks_order_status(&plain, has_number, rules) {
        Intent::OrderStatus
    } else if let Some(small_talk) = rules.small_talk.read(&plain) {
        small_talk
    } else {
        Intent::Question
    };
    Understanding { intent, lang: Language::detect(text), order_number, email }
}
