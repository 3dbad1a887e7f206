//! Asking where an order is: answered from the order data, after the shopper
//! is verified.
//!
//! Key design decision: only a question about the shopper's *own* order is
//! an order-status request. Tracking, delivery and order words also appear
//! in how-to and policy questions ("how does tracking work?", "怎么查看物流信息？"),
//! which the knowledge base answers. So the rules tell three kinds of
//! phrase apart: the shopper's own order ("my parcel", "我买的东西") with a
//! status word, which always asks; phrases that only make sense about one's
//! own parcel ("hasn't arrived", "还没收到"), which always ask; and tracking
//! phrases ("tracking number", "查物流") that ask only when said as a request,
//! not inside a how, where or when question.

use serde::Deserialize;

use super::rules::{Compiler, Patterns, Rules, RulesError};

/// A language's `[status]` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct StatusFile {
    not_status: Vec<String>,
    topics: Vec<String>,
    own: Vec<String>,
    named: Vec<String>,
    words: Vec<String>,
    asks: Vec<String>,
    tracking: Vec<String>,
    how: Vec<String>,
}

/// The compiled `[status]` rules of one language.
#[derive(Debug)]
pub(super) struct StatusRules {
    /// Problems with what arrived and paperwork: their own answers.
    not_status: Patterns,
    /// Right after a phrase, a topic of the shop's policies rather than a
    /// parcel ("my delivery address", "where is my promo code").
    topics: Patterns,
    /// The shopper's own order or purchase...
    own: Patterns,
    /// ...and a word that asks where it is.
    words: Patterns,
    /// One order named by a number the shop's pattern does not know: enough
    /// to make a tracking phrase personal, not to make any word a status
    /// question ("where can I cancel order 1234567?" is not one).
    named: Patterns,
    /// Phrases that only ask about one's own parcel.
    asks: Patterns,
    /// Tracking phrases: a request, unless asked as `how`.
    tracking: Patterns,
    how: Patterns,
}

impl StatusRules {
    pub fn compile(file: StatusFile, c: &Compiler) -> Result<Self, RulesError> {
        Ok(Self {
            not_status: c.patterns("status.not_status", &file.not_status)?,
            topics: c.patterns("status.topics", &file.topics)?,
            own: c.patterns("status.own", &file.own)?,
            words: c.patterns("status.words", &file.words)?,
            named: c.patterns("status.named", &file.named)?,
            asks: c.patterns("status.asks", &file.asks)?,
            tracking: c.patterns("status.tracking", &file.tracking)?,
            how: c.patterns("status.how", &file.how)?,
        })
    }

    /// Whether some match of `patterns` is not followed by a policy topic.
    fn about_a_parcel(&self, patterns: &Patterns, plain: &str) -> bool {
        patterns.find_iter(plain).any(|m| !self.topics.is_match(&plain[m.end()..]))
    }

    fn asks(&self, plain: &str) -> bool {
        let own = self.about_a_parcel(&self.own, plain);
        let personal = own || self.named.is_match(plain) || !self.how.is_match(plain);
        (own && self.words.is_match(plain))
            || self.about_a_parcel(&self.asks, plain)
            || (self.about_a_parcel(&self.tracking, plain) && personal)
    }
}

/// Whether the shopper asks where their order is. An order number in the
/// message is enough: whatever else it says, the order is what they mean.
pub(super) fn asks_order_status(plain: &str, has_number: bool, rules: &Rules) -> bool {
    if has_number {
        return true;
    }
    if rules.languages.iter().any(|lang| lang.status.not_status.is_match(plain)) {
        return false;
    }
    rules.languages.iter().any(|lang| lang.status.asks(plain))
}

#[cfg(test)]
mod tests {
    use super::super::tests::check_intent as check;
    use super::super::{understand, Intent, IntentConfig};
    use Intent::{OrderStatus, Question};

    /// How-to and policy questions that use tracking, delivery or order
    /// words are knowledge questions.
    #[test]
    fn how_to_and_policy_questions_are_questions() {
        check("where in my account do I see tracking?", Question);
        check("where does a promo code go at checkout?", Question);
        check("how does tracking work?", Question);
        check("when will tracking information appear after dispatch?", Question);
        check("can I pre-order?", Question);
        check("Can I pre-order the new earbuds and when do they ship?", Question);
        check("Where do I find the tracking number?", Question);
        check("Do you send a tracking link for every order?", Question);
        check("Can I check order status without an account?", Question);
        check("How long does delivery take to Norway?", Question);
        check("Where is my discount code?", Question);
        check("Can I get an invoice for my order?", Question);
        check("Which payment methods do you accept?", Question);
        check("怎么查看物流信息？", Question);
        check("优惠码在哪里输入？", Question);
        check("物流信息在哪里看？", Question);
        check("可以预订吗？", Question);
        check("我的订单能开发票吗？", Question);
        check("支持货到付款吗？", Question);
        check("我的订单号在哪里看？", Question);
    }

    /// Questions about the shopper's own order, worded for any shop.
    #[test]
    fn own_orders_are_order_status() {
        check("where is my order", OrderStatus);
        check("my parcel hasn't arrived", OrderStatus);
        check("Where are the headphones I ordered?", OrderStatus);
        check("My charger still hasn't shipped", OrderStatus);
        check("It's been a week and it hasn't arrived", OrderStatus);
        check("What's my tracking number?", OrderStatus);
        check("tracking number please", OrderStatus);
        check("When will my delivery arrive?", OrderStatus);
        check("我的订单到哪了", OrderStatus);
        check("我买的东西还没到", OrderStatus);
        check("我买的耳机什么时候到？", OrderStatus);
        check("帮我查一下物流", OrderStatus);
        check("物流信息怎么还没更新？", OrderStatus);
    }

    #[test]
    fn another_shops_order_numbers() {
        let config = IntentConfig::new(r"QH\d{5}").unwrap();
        let got = understand("status of order QH12345 please", &config);
        assert_eq!((got.intent, got.order_number.as_deref()), (OrderStatus, Some("QH12345")));
        let got = understand("订单QH12345发货了吗", &config);
        assert_eq!((got.intent, got.order_number.as_deref()), (OrderStatus, Some("QH12345")));
        // Without a number the wording still asks about a parcel.
        assert_eq!(understand("status of my order please", &config).intent, OrderStatus);
    }
}
