//! [`Conversation`]: the rules of one conversation, with no IO.
//!
//! The chat server and the CLI harness both hold one per conversation and
//! feed it what happens ([`Event`]: a shopper's message, a verification, a
//! return, stop, a request for a person, and the results of what it asked
//! for); it answers with what to do ([`Action`]: run this check, answer
//! this turn, send this reply, hand over). It owns the conversation's
//! language, its verified customer, the history the model sees, the
//! "don't know" answers in a row and the handoff state, and does nothing
//! itself: the callers store, send and run the model's stream. So both
//! decide alike by construction, and these rules are tested without a
//! socket, a database or a model (like quinn-proto's connection state
//! machine, which its callers drive with packets and timers).

use shopchat_core::intent::{understand, IntentConfig, Understanding};
use shopchat_core::protocol::AnswerOutcome;
use shopchat_core::{ChatMessage, Language};
use shopchat_retrieval::VerifiedCustomer;

use crate::assistant::{Effect, Reply, Turn};
use crate::texts::Texts;

/// What the rules read a message with: the shop's intent patterns and its
/// fixed sentences. [`crate::Assistant::rules`] gives the loaded shop's.
#[derive(Debug, Clone)]
pub struct Rules {
    pub intents: IntentConfig,
    pub texts: Texts,
}

/// Something that happened in the conversation.
#[derive(Debug, Clone)]
pub enum Event<'a> {
    /// A shopper's message, stored (a resent one is not an event again).
    Message(&'a str),
    /// The shopper sent an order number and e-mail address to verify.
    VerifyOrder { order_number: &'a str, email: &'a str },
    /// The shop's page vouched for a customer (a signed identity).
    Identity { customer_id: &'a str, signature: &'a str },
    /// The result of the [`Action::Verify`] asked for last.
    Checked(Checked),
    /// The shopper asked to start a return.
    StartReturn { order_number: &'a str, skus: Option<&'a [String]> },
    /// The shopper pressed stop.
    Stop,
    /// The shopper asked for a person.
    Handoff,
    /// Staff resolved the handoff; the assistant answers again.
    HandoffResolved,
    /// An answer went out (from [`Action::Respond`], [`Action::Reply`] or a
    /// return): the reply as stored.
    Answered(&'a Reply),
}

/// How a verification the caller ran came out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    Verified(VerifiedCustomer),
    Failed,
    /// Too many failed attempts; the check was not run.
    RateLimited,
}

/// A verification to run (rate-limited, on a blocking thread).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// [`crate::Assistant::verify_order`].
    Order { order_number: String, email: String },
    /// [`crate::Assistant::verify_identity`].
    Identity { customer_id: String, signature: String },
}

/// What the caller does next, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Run this check and report it with [`Event::Checked`].
    Verify(Check),
    /// Record the customer with the conversation and tell the client.
    Verified(VerifiedCustomer),
    /// A verification asked for by its own frame failed: tell the client
    /// (no answer; a message's failed verification is a [`Action::Reply`]).
    NotVerified { rate_limited: bool },
    /// Answer the message: [`crate::Assistant::respond`] with
    /// [`TurnRequest::turn`], streaming it if it streams, then report the
    /// final reply with [`Event::Answered`].
    Respond(TurnRequest),
    /// Store and send this reply, then report it with [`Event::Answered`].
    Reply(Reply),
    /// Check and start this return ([`crate::Assistant::approve_return`]
    /// for this customer, in this language), then report the reply sent.
    StartReturn {
        customer: Option<VerifiedCustomer>,
        order_number: String,
        skus: Option<Vec<String>>,
        lang: Language,
    },
    /// Stop the answer being generated; it ends as it ends.
    StopAnswer,
    /// Mark the conversation for staff and tell the client.
    Handoff { reason: String },
}

/// One turn to answer, owned, so that it can go to a blocking thread.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnRequest {
    pub text: String,
    pub lang: Option<Language>,
    pub history: Vec<ChatMessage>,
    pub customer: Option<VerifiedCustomer>,
    pub conversation: String,
    pub refusals_in_a_row: u32,
}

impl TurnRequest {
    pub fn turn(&self) -> Turn<'_> {
        Turn {
            text: &self.text,
            lang: self.lang,
            history: &self.history,
            customer: self.customer.as_ref(),
            conversation: Some(&self.conversation),
            refusals_in_a_row: self.refusals_in_a_row,
        }
    }
}

/// What a resumed conversation starts from (its stored state).
#[derive(Debug, Clone, Default)]
pub struct Resumed {
    pub lang: Option<Language>,
    pub customer: Option<VerifiedCustomer>,
    pub handed_over: bool,
    /// Shopper and assistant messages, oldest first.
    pub history: Vec<ChatMessage>,
}

/// One conversation's state and rules. See the module's header.
#[derive(Debug, Clone)]
pub struct Conversation {
    /// Keys the model's cache of this conversation.
    key: String,
    lang: Option<Language>,
    customer: Option<VerifiedCustomer>,
    history: Vec<ChatMessage>,
    refusals_in_a_row: u32,
    handed_over: bool,
    /// The message waiting for the verification it carried.
    waiting: Option<String>,
}

impl Conversation {
    /// A new conversation, in `lang` when the client said which.
    pub fn new(key: impl Into<String>, lang: Option<Language>) -> Self {
        Self::resume(key, Resumed { lang, ..Resumed::default() })
    }

    pub fn resume(key: impl Into<String>, resumed: Resumed) -> Self {
        Self {
            key: key.into(),
            lang: resumed.lang,
            customer: resumed.customer,
            history: resumed.history,
            refusals_in_a_row: 0,
            handed_over: resumed.handed_over,
            waiting: None,
        }
    }

    /// The conversation's language so far (English until one is known).
    pub fn lang(&self) -> Language {
        self.lang.unwrap_or(Language::En)
    }

    pub fn customer(&self) -> Option<&VerifiedCustomer> {
        self.customer.as_ref()
    }

    pub fn handed_over(&self) -> bool {
        self.handed_over
    }

    pub fn history(&self) -> &[ChatMessage] {
        &self.history
    }

    pub fn refusals_in_a_row(&self) -> u32 {
        self.refusals_in_a_row
    }

    /// Takes one event; returns what to do about it, in order.
    pub fn handle(&mut self, rules: &Rules, event: Event<'_>) -> Vec<Action> {
        match event {
            Event::Message(text) => self.on_message(rules, text),
            Event::VerifyOrder { order_number, email } => {
                self.waiting = None;
                vec![Action::Verify(Check::Order {
                    order_number: order_number.to_owned(),
                    email: email.to_owned(),
                })]
            }
            Event::Identity { customer_id, signature } => {
                self.waiting = None;
                vec![Action::Verify(Check::Identity {
                    customer_id: customer_id.to_owned(),
                    signature: signature.to_owned(),
                })]
            }
            Event::Checked(checked) => self.on_checked(rules, checked),
            Event::StartReturn { order_number, skus } => vec![Action::StartReturn {
                customer: self.customer.clone(),
                order_number: order_number.to_owned(),
                skus: skus.map(<[String]>::to_vec),
                lang: self.lang(),
            }],
            Event::Stop => vec![Action::StopAnswer],
            Event::Handoff => self.hand_over("the shopper asked for a person".into()),
            Event::HandoffResolved => {
                self.handed_over = false;
                self.refusals_in_a_row = 0;
                Vec::new()
            }
            Event::Answered(reply) => self.on_answered(reply),
        }
    }

    fn on_message(&mut self, rules: &Rules, text: &str) -> Vec<Action> {
        self.history.push(ChatMessage::user(text));
        if self.handed_over {
            // A person has the conversation; the assistant keeps out of it.
            return Vec::new();
        }
        let understanding = understand(text, &rules.intents);
        if text.chars().any(char::is_alphabetic) {
            self.lang = Some(message_language(self.lang, text, &understanding));
        }
        // A message with an order number and an e-mail address counts as
        // `verify_order`; it is answered once the check is in.
        if self.customer.is_none() {
            if let (Some(order_number), Some(email)) =
                (understanding.order_number, understanding.email)
            {
                self.waiting = Some(text.to_owned());
                return vec![Action::Verify(Check::Order { order_number, email })];
            }
        }
        vec![Action::Respond(self.turn_request(text))]
    }

    fn on_checked(&mut self, rules: &Rules, checked: Checked) -> Vec<Action> {
        let waiting = self.waiting.take();
        match (checked, waiting) {
            (Checked::Verified(customer), waiting) => {
                self.customer = Some(customer.clone());
                let mut actions = vec![Action::Verified(customer)];
                if let Some(text) = waiting {
                    actions.push(Action::Respond(self.turn_request(&text)));
                }
                actions
            }
            // The message was only its order number and e-mail address (or
            // asked about that order): say the check failed, and offer the
            // order form, rather than answer as if it had not been sent.
            (failed, Some(_)) => {
                let lang = self.lang();
                let text = match failed {
                    Checked::RateLimited => rules.texts.verify_rate_limited(lang),
                    _ => rules.texts.not_verified(lang),
                };
                let mut reply = Reply::fixed(text, AnswerOutcome::Answered, lang);
                reply.effect = Some(Effect::AskForVerification);
                vec![Action::Reply(reply)]
            }
            (failed, None) => {
                vec![Action::NotVerified { rate_limited: failed == Checked::RateLimited }]
            }
        }
    }

    /// Bookkeeping after an answer: history, the "don't know" count, handoff.
    fn on_answered(&mut self, reply: &Reply) -> Vec<Action> {
        if !reply.text.is_empty() {
            self.history.push(ChatMessage::assistant(reply.text.clone()));
        }
        match reply.outcome {
            AnswerOutcome::Refused => self.refusals_in_a_row += 1,
            AnswerOutcome::Answered | AnswerOutcome::Replaced => self.refusals_in_a_row = 0,
            AnswerOutcome::Handoff | AnswerOutcome::Error | AnswerOutcome::Stopped => {}
        }
        match &reply.effect {
            Some(Effect::Handoff { reason }) => self.hand_over(reason.clone()),
            _ => Vec::new(),
        }
    }

    fn hand_over(&mut self, reason: String) -> Vec<Action> {
        self.refusals_in_a_row = 0;
        self.handed_over = true;
        vec![Action::Handoff { reason }]
    }

    /// The turn for `text`, the last message in the history.
    fn turn_request(&self, text: &str) -> TurnRequest {
        let earlier = self.history.len().saturating_sub(1);
        TurnRequest {
            text: text.to_owned(),
            lang: self.lang,
            history: self.history[..earlier].to_vec(),
            customer: self.customer.clone(),
            conversation: self.key.clone(),
            refusals_in_a_row: self.refusals_in_a_row,
        }
    }
}

/// The message's language, or the conversation's when the message has no
/// words to tell by (an order number, an e-mail address).
pub(crate) fn message_language(
    conversation: Option<Language>,
    text: &str,
    understanding: &Understanding,
) -> Language {
    let has_words = text.chars().any(char::is_alphabetic)
        && understanding.order_number.is_none()
        && understanding.email.is_none();
    match conversation {
        Some(lang) if !has_words => lang,
        _ => understanding.lang,
    }
}

#[cfg(test)]
#[path = "conversation_tests.rs"]
mod tests;
