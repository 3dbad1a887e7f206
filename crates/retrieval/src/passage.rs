//! The unit of retrieval: one FAQ answer, one policy section or one order.

use serde::{Deserialize, Serialize};
use shopchat_core::Language;

/// What a passage was made from. Decides who may see it: FAQ and policy
/// passages are public, an order passage only to its verified customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PassageKind {
    Faq,
    Policy,
    Order,
}

impl PassageKind {
    /// The general search returns only these kinds. Listed positively so that
    /// a kind added later stays private until someone decides otherwise.
    pub const PUBLIC: [PassageKind; 2] = [PassageKind::Faq, PassageKind::Policy];

    pub fn as_str(self) -> &'static str {
        match self {
            PassageKind::Faq => "faq",
            PassageKind::Policy => "policy",
            PassageKind::Order => "order",
        }
    }

    pub fn is_public(self) -> bool {
        Self::PUBLIC.contains(&self)
    }
}

/// A piece of text that can answer a shopper's question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Passage {
    /// Unique in a knowledge base: `faq/shipping-times@en`,
    /// `policy/returns#refunds@zh`, `order/NW-100231`.
    pub id: String,
    pub kind: PassageKind,
    pub lang: Language,
    /// The FAQ question, the policy heading path joined with " > ", or
    /// "Order NW-100231".
    pub title: String,
    /// For policy passages, the headings above and including this section,
    /// outermost first (`["Returns and refunds policy", "Refunds"]`); empty
    /// for other kinds.
    pub heading_path: Vec<String>,
    pub text: String,
    /// Where a shopper can read more; imported FAQs and unshipped orders have
    /// none.
    pub url: Option<String>,
    pub tags: Vec<String>,
    /// The customer an order passage belongs to; `None` for public kinds.
    pub customer_id: Option<String>,
}
