//! Customers and orders from `orders.json`, and proving who a shopper is.
//!
//! **Invariant:** an order passage reaches a shopper only through
//! [`crate::Generation::find_orders`], which takes a [`VerifiedCustomer`] and
//! returns that customer's orders and no one else's. A `VerifiedCustomer` is
//! made only by [`crate::KnowledgeBase::verify_order`] (an order number and
//! the e-mail address it was placed with) or by the server after it checked
//! the signature of an identity it issued itself.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use shopchat_core::shop::{normalize_order_number, Order, OrderData, ShopError};
use shopchat_core::Language;

use crate::passage::{Passage, PassageKind};
use crate::{Error, Result};

/// A customer whose identity has been checked. Deliberately neither
/// `Deserialize` nor `From<String>`: no text a shopper sends can become one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCustomer {
    customer_id: String,
}

impl VerifiedCustomer {
    /// For the server only, and only after it has verified the HMAC of an
    /// identity token it issued itself (for example when a signed-in shop
    /// account opens the chat). Never call this with an id taken from a
    /// shopper's message or from an unsigned request field: that would let
    /// anyone read anyone's orders.
    pub fn from_signed_identity(customer_id: impl Into<String>) -> Self {
        Self { customer_id: customer_id.into() }
    }

    pub(crate) fn verified_by_order(customer_id: &str) -> Self {
        Self { customer_id: customer_id.to_owned() }
    }

    pub fn customer_id(&self) -> &str {
        &self.customer_id
    }
}

/// Who placed which order, and with which e-mail address.
#[derive(Debug, Clone, Default)]
pub(crate) struct OrderBook {
    /// Customer id to lower-cased e-mail address.
    emails: HashMap<String, String>,
    /// Normalized order number to customer id.
    owners: HashMap<String, String>,
}

impl OrderBook {
    /// The customer who placed order `number`, if `email` is the address on
    /// that customer's account. Case and surrounding spaces are ignored in
    /// both, since shoppers type them by hand.
    pub fn verify(&self, number: &str, email: &str) -> Option<VerifiedCustomer> {
        let email = email.trim().to_lowercase();
        if email.is_empty() {
            return None;
        }
        let customer_id = self.owners.get(&normalize_order_number(number))?;
        (self.emails.get(customer_id)? == &email)
            .then(|| VerifiedCustomer::verified_by_order(customer_id))
    }
}

/// Reads `orders.json` into the order book and one passage per order. The
/// file is parsed and checked (unique numbers and ids, known customers) by
/// the shared [`OrderData`], so the chat's order facts and the index read it
/// the same way.
pub(crate) fn load(path: &Path) -> Result<(OrderBook, Vec<Passage>)> {
    let source = std::fs::read_to_string(path)
        .map_err(Error::io(format!("cannot read {}", path.display())))?;
    parse(path, &source)
}

/// [`load`] without the reading: `source` is the text of the file at `path`.
pub(crate) fn parse(path: &Path, source: &str) -> Result<(OrderBook, Vec<Passage>)> {
    let data = OrderData::from_json(source).map_err(|error| match &error {
        ShopError::OrdersSyntax(json) => {
            Error::malformed(path, Some(json.line()), error.to_string())
        }
        _ => Error::malformed(path, None, error.to_string()),
    })?;

    let mut book = OrderBook::default();
    for customer in &data.customers {
        let email = customer.email.trim().to_lowercase();
        if email.is_empty() {
            return Err(Error::malformed(path, None, "a customer has an empty email"));
        }
        book.emails.insert(customer.id.clone(), email);
    }
    let mut passages = Vec::with_capacity(data.orders.len());
    for order in &data.orders {
        book.owners.insert(normalize_order_number(&order.number), order.customer_id.clone());
        passages.push(passage(order));
    }
    Ok((book, passages))
}

/// An order as a short English text a language model can quote from. It
/// names no person and no e-mail address: only what the order is and where
/// it stands.
fn passage(order: &Order) -> Passage {
    let mut text = format!("Order {} is {}.", order.number, order.status.as_str());
    let events = [
        ("Placed", Some(&order.placed_at)),
        ("Paid", order.paid_at.as_ref()),
        ("Shipped", order.shipped_at.as_ref()),
        ("Delivered", order.delivered_at.as_ref()),
        ("Cancelled", order.cancelled_at.as_ref()),
        ("Returned", order.returned_at.as_ref()),
    ];
    for (label, date) in events {
        if let Some(date) = date {
            let _ = write!(text, " {label} on {date}.");
        }
    }
    if let Some(method) = &order.shipping_method {
        let _ = write!(text, " Shipping method: {method}");
        if let Some(country) = &order.shipping_country {
            let _ = write!(text, " to {country}");
        }
        text.push('.');
    }
    if let Some(carrier) = &order.carrier {
        let _ = write!(text, " Carrier: {carrier}.");
    }
    if let Some(tracking) = &order.tracking_number {
        let _ = write!(text, " Tracking number: {tracking}.");
    }
    if let Some(url) = &order.tracking_url {
        let _ = write!(text, " Tracking page: {url}.");
    }
    text.push_str("\nItems:");
    for item in &order.items {
        let _ = write!(
            text,
            "\n- {} x {} (SKU {}, category {}, {:.2} each)",
            item.quantity, item.name, item.sku, item.category, item.unit_price
        );
    }
    let _ = write!(text, "\nItems total: {:.2}.", order.total);
    if let Some(shipping) = order.shipping {
        let _ = write!(text, " Shipping charge: {shipping:.2}.");
    }

    Passage {
        id: format!("order/{}", order.number),
        kind: PassageKind::Order,
        lang: Language::En,
        title: format!("Order {}", order.number),
        heading_path: Vec::new(),
        text,
        url: order.tracking_url.clone(),
        tags: vec!["order".to_owned(), order.status.as_str().to_owned()],
        customer_id: Some(order.customer_id.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORDERS: &str = r#"{
      "customers": [{"id": "C1", "name": "Ann", "email": "Ann@Example.com"},
                    {"id": "C2", "name": "Bob", "email": "bob@example.com"}],
      "orders": [{"number": "NW-1", "customer_id": "C1", "status": "shipped",
                  "placed_at": "2026-08-03", "shipped_at": "2026-08-04", "carrier": "DPD",
                  "tracking_number": "T1", "tracking_url": "https://t.example/T1",
                  "items": [{"sku": "TP-1", "name": "Top", "category": "tops",
                             "quantity": 2, "unit_price": 10.0}],
                  "total": 20.0, "shipping": 4.95},
                 {"number": "NW-2", "customer_id": "C2", "status": "placed",
                  "placed_at": "2026-08-05", "items": [], "total": 0.0}]
    }"#;

    fn load_str(source: &str) -> Result<(OrderBook, Vec<Passage>)> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orders.json");
        std::fs::write(&path, source).unwrap();
        load(&path)
    }

    #[test]
    fn verifies_only_the_email_of_the_orders_own_customer() {
        let (book, _) = load_str(ORDERS).unwrap();
        let check = |number: &str, email: &str, expected: Option<&str>| {
            let got = book.verify(number, email);
            assert_eq!(
                got.as_ref().map(VerifiedCustomer::customer_id),
                expected,
                "{number} {email}"
            );
        };
        check("NW-1", "ann@example.com", Some("C1"));
        check(" nw-1 ", "  ANN@example.COM ", Some("C1"));
        check("NW-1", "bob@example.com", None);
        check("NW-2", "ann@example.com", None);
        check("NW-3", "ann@example.com", None);
        check("NW-1", "", None);
        check("NW-1", "ann@example.com.evil", None);
    }

    #[test]
    fn order_passages_read_as_text_and_belong_to_their_customer() {
        let (_, passages) = load_str(ORDERS).unwrap();
        let order = &passages[0];
        assert_eq!(order.id, "order/NW-1");
        assert_eq!(order.customer_id.as_deref(), Some("C1"));
        assert_eq!(order.kind, PassageKind::Order);
        assert_eq!(
            order.text,
            "Order NW-1 is shipped. Placed on 2026-08-03. Shipped on 2026-08-04. Carrier: DPD. \
             Tracking number: T1. Tracking page: https://t.example/T1.\n\
             Items:\n- 2 x Top (SKU TP-1, category tops, 10.00 each)\n\
             Items total: 20.00. Shipping charge: 4.95."
        );
        assert!(!order.text.contains("Ann"));
    }

    #[test]
    fn inconsistent_order_files_are_rejected() {
        let error = load_str(&ORDERS.replace(r#""customer_id": "C2""#, r#""customer_id": "C9""#))
            .unwrap_err();
        assert!(error.to_string().contains("order NW-2 names unknown customer `C9`"), "{error}");
        let error = load_str("{\"customers\": [],\n \"orders\": 3}").unwrap_err();
        assert!(error.is_user_error());
        assert!(error.to_string().contains("orders.json:2:"), "{error}");
    }
}
