//! Starting a return: the shopper wants to send back something they bought,
//! which is answered from their order and the shop's return rules.
//!
//! Key design decision: a return verb alone is not enough. "How do returns
//! work?", "can I send it back if it doesn't fit?" and "退货要运费吗？" ask
//! about the policy and are knowledge questions; a return starts when the
//! shopper points at their own purchase ("return my order", "我买的耳机",
//! "这个") or says they want one ("I want to return…", "我要退货"), or gives
//! an order number. The purchase is recognised by how it is pointed at, never
//! by product names, so a shop selling chargers reads the same as one
//! selling shirts.

use serde::Deserialize;

use super::clause::{without, Negation};
use super::rules::{Compiler, Patterns, Rules, RulesError};

/// A language's `[returns]` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct ReturnFile {
    ignore: Vec<String>,
    verbs: Vec<String>,
    policy_nouns: Vec<String>,
    info: Vec<String>,
    how: Vec<String>,
    wishes: Vec<String>,
    info_verbs: Vec<String>,
    objects_before: Vec<String>,
    objects_after: Vec<String>,
    objects: Vec<String>,
}

/// The compiled `[returns]` rules of one language.
#[derive(Debug)]
pub(super) struct ReturnRules {
    /// Words that share characters with a return verb ("退订", unsubscribe).
    ignore: Vec<String>,
    /// Returning or asking for a refund.
    verbs: Patterns,
    /// Right after the verb, a noun about the policy ("return policy").
    policy_nouns: Patterns,
    /// Anywhere: the message asks about the terms (cost, time, rules).
    info: Patterns,
    /// Anywhere: the message asks how; a wish then does not count.
    how: Patterns,
    /// Before the verb: the shopper wants to ("I'd like to", "我要")...
    wishes: Patterns,
    /// ...unless what they want is to know ("I want to know how to return").
    info_verbs: Patterns,
    /// The shopper's own purchase, matched against the text before the verb,
    /// after it, and anywhere.
    objects_before: Patterns,
    objects_after: Patterns,
    objects: Patterns,
}

impl ReturnRules {
    pub fn compile(file: ReturnFile, c: &Compiler) -> Result<Self, RulesError> {
        Ok(Self {
            ignore: c.phrases("returns.ignore", &file.ignore)?,
            verbs: c.patterns("returns.verbs", &file.verbs)?,
            policy_nouns: c.patterns("returns.policy_nouns", &file.policy_nouns)?,
            info: c.patterns("returns.info", &file.info)?,
            how: c.patterns("returns.how", &file.how)?,
            wishes: c.patterns("returns.wishes", &file.wishes)?,
            info_verbs: c.patterns("returns.info_verbs", &file.info_verbs)?,
            objects_before: c.patterns("returns.objects_before", &file.objects_before)?,
            objects_after: c.patterns("returns.objects_after", &file.objects_after)?,
            objects: c.patterns("returns.objects", &file.objects)?,
        })
    }

    fn wants(&self, plain: &str, has_number: bool, negation: &Negation) -> bool {
        let text = without(plain, &self.ignore);
        let asks_terms = self.info.is_match(&text);
        let asks_how = self.how.is_match(&text);
        // Bound first: the iterator borrows `text`, which the block drops.
        let wants = self.verbs.find_iter(&text).any(|m| {
            let (before, after) = (&text[..m.start()], &text[m.end()..]);
            if self.policy_nouns.is_match(after) || negation.negates(&text, m.start()) {
                return false;
            }
            if has_number {
                return true;
            }
            if asks_terms {
                return false;
            }
            let wish = !asks_how
                && self
                    .wishes
                    .find_iter(before)
                    .any(|w| !self.info_verbs.is_match(&before[w.start()..]));
            wish || self.objects_before.is_match(before)
                || self.objects_after.is_match(after)
                || self.objects.is_match(&text)
        });
        wants
    }
}

/// Whether the shopper asks to return something of theirs.
pub(super) fn wants_return(plain: &str, has_number: bool, rules: &Rules) -> bool {
    rules.languages.iter().any(|lang| lang.returns.wants(plain, has_number, &lang.negation))
}

#[cfg(test)]
mod tests {
    use super::super::tests::check_intent as check;
    use super::super::Intent::{Question, StartReturn};

    #[test]
    fn asking_how_returns_work_is_a_question() {
        check("can I send it back if it doesn't fit?", Question);
        check("how do returns work?", Question);
        check("Can I return a phone case that was a gift?", Question);
        check("Do I pay for shipping if I send a charger back?", Question);
        check("Is a refund possible on opened earbuds?", Question);
        check("退货要运费吗？", Question);
        check("耳机拆封了还能退吗？", Question);
        check("退款会退到原来的银行卡吗？", Question);
        check("我的问题是怎么退货", Question);
        check("我想退订短信通知", Question);
    }

    #[test]
    fn returning_ones_own_purchase_starts_a_return() {
        check("I want to return my order", StartReturn);
        check("I'd like to send back the charger I bought", StartReturn);
        check("Can I return my headphones?", StartReturn);
        check("Please refund the phone case I ordered", StartReturn);
        check("我要退货", StartReturn);
        check("我想退掉这个充电器", StartReturn);
        check("我买的耳机能退吗？", StartReturn);
        check("我的手机壳可以退吗", StartReturn);
        check("这台音箱怎么退？", StartReturn);
        check("帮我退一下刚收到的数据线", StartReturn);
    }
}
