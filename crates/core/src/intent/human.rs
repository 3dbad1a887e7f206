//! Asking for a person: the conversation is handed over to staff.
//!
//! Key design decision: a request names a person *and* asks to reach one
//! ("talk to a human", "转人工"); a question about the service ("is live chat
//! open on weekends?", "客服几点下班？") names it too, but asks for
//! information the knowledge base holds. So a message that asks about the
//! service's hours or days stays a question unless it also says plainly that
//! the shopper wants someone ("I want to talk to someone, are you open?").

use serde::Deserialize;

use super::clause::{affirmed, without, words_only, Negation};
use super::rules::{Compiler, Patterns, Rules, RulesError};

/// A language's `[human]` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct HumanFile {
    ignore: Vec<String>,
    alone: Vec<String>,
    requests: Vec<String>,
    contact: Vec<String>,
    how: Vec<String>,
    schedule: Vec<String>,
    wish: Vec<String>,
    wish_for_info: Vec<String>,
}

/// The compiled `[human]` rules of one language.
#[derive(Debug)]
pub(super) struct HumanRules {
    /// Phrases that share words with a request but are not one.
    ignore: Vec<String>,
    /// The whole message (as bare words) names a person: "agent".
    alone: Patterns,
    /// Asking to be put through to a person, unless negated.
    requests: Patterns,
    /// Contacting the service: a request unless the shopper asks `how`.
    contact: Patterns,
    how: Patterns,
    /// Asking when the service is there: a question, not a request...
    schedule: Patterns,
    /// ...unless the shopper also says they want someone,
    wish: Patterns,
    /// ...and not just to know something (matched right after the wish).
    wish_for_info: Patterns,
}

impl HumanRules {
    pub fn compile(file: HumanFile, c: &Compiler) -> Result<Self, RulesError> {
        Ok(Self {
            ignore: c.phrases("human.ignore", &file.ignore)?,
            alone: c.patterns("human.alone", &file.alone)?,
            requests: c.patterns("human.requests", &file.requests)?,
            contact: c.patterns("human.contact", &file.contact)?,
            how: c.patterns("human.how", &file.how)?,
            schedule: c.patterns("human.schedule", &file.schedule)?,
            wish: c.patterns("human.wish", &file.wish)?,
            wish_for_info: c.patterns("human.wish_for_info", &file.wish_for_info)?,
        })
    }

    fn wants(&self, plain: &str, words: &str, negation: &Negation) -> bool {
        if self.alone.is_match(words) {
            return true;
        }
        let text = without(plain, &self.ignore);
        let wishes = self.wish.find_iter(&text).any(|m| {
            !self.wish_for_info.is_match(&text[m.end()..]) && !negation.negates(&text, m.start())
        });
        if self.schedule.is_match(&text) && !wishes {
            return false;
        }
        affirmed(&self.requests, &text, negation)
            || (affirmed(&self.contact, &text, negation) && !self.how.is_match(&text))
    }
}

/// Whether the shopper asks to talk to a person, in any language's words.
pub(super) fn wants_human(plain: &str, rules: &Rules) -> bool {
    let words = words_only(plain);
    rules.languages.iter().any(|lang| lang.human.wants(plain, &words, &lang.negation))
}

#[cfg(test)]
mod tests {
    use super::super::tests::check_intent as check;
    use super::super::Intent::{Human, Question};

    /// Questions about the service's channels and hours are answered from the
    /// knowledge base; only asking for a person hands the conversation over.
    #[test]
    fn asking_about_the_service_is_not_asking_for_a_person() {
        check("Is live chat open on weekends?", Question);
        check("What are your customer service hours?", Question);
        check("When is support available?", Question);
        check("Do you have live chat?", Question);
        check("Is there someone to talk to on Sundays?", Question);
        check("What time does your support team close?", Question);
        check("Does customer support work on bank holidays?", Question);
        check("客服几点下班？", Question);
        check("在线客服周末有人吗？", Question);
        check("人工客服的工作时间是？", Question);
        check("节假日有客服吗", Question);
        check("我想知道人工客服什么时候上班", Question);
    }

    #[test]
    fn asking_for_a_person_is() {
        check("can I talk to a human", Human);
        check("agent please", Human);
        check("live chat please", Human);
        check("Could you put me through to a colleague?", Human);
        check("I want to talk to someone now, are you open?", Human);
        check("I need a real person, this bot can't help with my headphones", Human);
        check("转人工", Human);
        check("我要找人工客服", Human);
        check("帮我转接客服", Human);
        check("我要人工，周末也行", Human);
        check("不用转人工，耳机的保修期多久？", Question);
    }
}
