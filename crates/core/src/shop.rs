//! The shop's profile and its order data, typed for the answer pipeline.
//!
//! `faq/shop.toml` describes much more than the pipeline acts on (zones,
//! payment, warranty…); that prose reaches shoppers through the retrieved
//! passages. Only the facts the server itself uses are typed here: who the
//! shop is and how to reach it (for the answer check's allowed facts and for
//! handoff messages) and the rules that decide cancellations and returns.
//! Unknown keys are ignored so that a shop can keep its whole profile in one
//! file. `orders.json` is typed completely, because order facts are rendered
//! from it and never from a model's memory.
//!
//! Both loaders take text, not paths: the caller reads the files, which keeps
//! this crate free of IO. Dates are [`Date`], the `time` crate's calendar
//! narrowed to the dates order data may hold.

use std::fmt;

use serde::{Deserialize, Serialize};

mod date;

pub use date::{Date, DateError};

/// Why shop data could not be loaded. Every variant is a mistake in the
/// shop's files, to be shown to whoever edits them.
#[derive(Debug, thiserror::Error)]
pub enum ShopError {
    #[error("shop profile is not valid TOML of the expected shape: {0}")]
    ProfileSyntax(#[from] toml::de::Error),
    #[error("shop profile: {0}")]
    Profile(String),
    #[error("order data is not valid JSON of the expected shape: {0}")]
    OrdersSyntax(#[from] serde_json::Error),
    #[error("order data: {0}")]
    Orders(String),
}

pub type Result<T, E = ShopError> = std::result::Result<T, E>;

// ---------------------------------------------------------------------------
// The shop profile
// ---------------------------------------------------------------------------

/// What the pipeline needs to know about the shop, from `shop.toml`.
#[derive(Debug, Clone, PartialEq)]
pub struct ShopProfile {
    /// `[shop] name`.
    pub name: String,
    /// `[shop] currency`: the ISO code all amounts are in, such as `EUR`.
    pub currency: String,
    /// `[shop] website`, if given.
    pub website: Option<String>,
    pub support: SupportContact,
    pub rules: ReturnRules,
}

/// How shoppers reach people at the shop (`[support]`). Each field is
/// optional: a shop without a phone line simply has none, and nothing that
/// renders these invents one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SupportContact {
    pub email: Option<String>,
    pub phone: Option<String>,
    /// Opening hours as the shop writes them, such as "Mon-Fri 9:00-17:00 UK time".
    pub hours: Option<String>,
}

/// Whether a count of days includes weekends and holidays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DayKind {
    Calendar,
    Business,
}

/// What a shopper may do with an order after placing it: the `[returns]`
/// rules, plus `[orders] cancel_allowed_statuses`, which decides what a
/// shopper whose order has not arrived yet can do instead of returning it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnRules {
    /// Calendar days after the delivery date during which a return is
    /// accepted; the last day is `delivered + window_days`.
    pub window_days: u32,
    /// Item categories that are never accepted back, lower-cased.
    pub non_returnable_categories: Vec<String>,
    /// Days from receiving a return to issuing the refund.
    pub refund_days: u32,
    /// How `refund_days` are counted: `[returns] refund_days_are`, default
    /// `business` (the convention for refunds, and the demo shop's rule).
    pub refund_day_kind: DayKind,
    /// `[returns] faulty_or_wrong_always_accepted`: faulty, damaged or wrong
    /// items are taken back whatever their category or age. Default false,
    /// so that no explanation promises an exception the shop did not make.
    pub faulty_or_wrong_always_accepted: bool,
    /// Statuses in which a shopper may still cancel an order. Empty when the
    /// profile does not say, and then no explanation offers cancelling.
    pub cancel_allowed_statuses: Vec<OrderStatus>,
}

impl ReturnRules {
    /// Whether items of `category` may be returned (case-insensitive).
    pub fn is_returnable_category(&self, category: &str) -> bool {
        let category = category.trim().to_lowercase();
        !self.non_returnable_categories.contains(&category)
    }
}

#[derive(Deserialize)]
struct RawProfile {
    shop: RawShop,
    #[serde(default)]
    support: RawSupport,
    returns: RawReturns,
    #[serde(default)]
    orders: RawOrders,
}

#[derive(Deserialize)]
struct RawShop {
    name: String,
    currency: String,
    website: Option<String>,
}

#[derive(Deserialize, Default)]
struct RawSupport {
    email: Option<String>,
    phone: Option<String>,
    hours: Option<String>,
}

#[derive(Deserialize)]
struct RawReturns {
    window_days: u32,
    #[serde(default)]
    non_returnable_categories: Vec<String>,
    refund_days: u32,
    refund_days_are: Option<DayKind>,
    #[serde(default)]
    faulty_or_wrong_always_accepted: bool,
}

#[derive(Deserialize, Default)]
struct RawOrders {
    #[serde(default)]
    cancel_allowed_statuses: Vec<OrderStatus>,
}

impl ShopProfile {
    /// Parses the text of `shop.toml`.
    pub fn from_toml(text: &str) -> Result<Self> {
        let raw: RawProfile = toml::from_str(text)?;
        let name = non_empty(raw.shop.name, "[shop] name is empty")?;
        let currency = non_empty(raw.shop.currency, "[shop] currency is empty")?.to_uppercase();
        let mut non_returnable = Vec::new();
        for category in raw.returns.non_returnable_categories {
            let category = category.trim().to_lowercase();
            if category.is_empty() {
                return Err(ShopError::Profile(
                    "[returns] non_returnable_categories holds an empty name".to_owned(),
                ));
            }
            non_returnable.push(category);
        }
        Ok(Self {
            name,
            currency,
            website: optional(raw.shop.website),
            support: SupportContact {
                email: optional(raw.support.email),
                phone: optional(raw.support.phone),
                hours: optional(raw.support.hours),
            },
            rules: ReturnRules {
                window_days: raw.returns.window_days,
                non_returnable_categories: non_returnable,
                refund_days: raw.returns.refund_days,
                refund_day_kind: raw.returns.refund_days_are.unwrap_or(DayKind::Business),
                faulty_or_wrong_always_accepted: raw.returns.faulty_or_wrong_always_accepted,
                cancel_allowed_statuses: raw.orders.cancel_allowed_statuses,
            },
        })
    }
}

fn non_empty(text: String, error: &str) -> Result<String> {
    let text = text.trim();
    if text.is_empty() {
        Err(ShopError::Profile(error.to_owned()))
    } else {
        Ok(text.to_owned())
    }
}

/// A blank optional field is the same as an absent one.
fn optional(text: Option<String>) -> Option<String> {
    text.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty())
}

// ---------------------------------------------------------------------------
// Orders
// ---------------------------------------------------------------------------

/// Where an order is in its life. The first four follow each other; an order
/// leaves the sequence by being cancelled (before shipping) or returned
/// (after delivery).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    Placed,
    Paid,
    Shipped,
    Delivered,
    Cancelled,
    Returned,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 6] = [
        OrderStatus::Placed,
        OrderStatus::Paid,
        OrderStatus::Shipped,
        OrderStatus::Delivered,
        OrderStatus::Cancelled,
        OrderStatus::Returned,
    ];

    /// The name used in the data files.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Placed => "placed",
            OrderStatus::Paid => "paid",
            OrderStatus::Shipped => "shipped",
            OrderStatus::Delivered => "delivered",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Returned => "returned",
        }
    }

    /// The status as a shopper reads it in Chinese.
    pub fn label_zh(self) -> &'static str {
        match self {
            OrderStatus::Placed => "已下单",
            OrderStatus::Paid => "已付款",
            OrderStatus::Shipped => "已发货",
            OrderStatus::Delivered => "已送达",
            OrderStatus::Cancelled => "已取消",
            OrderStatus::Returned => "已退货",
        }
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A shop customer. `Debug` masks the e-mail address, because customers end
/// up in log lines.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    pub id: String,
    pub name: String,
    pub email: String,
}

impl fmt::Debug for Customer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Customer")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("email", &crate::mask::mask_pii(&self.email))
            .finish()
    }
}

/// One order. Date fields are present only when they apply to the status
/// (a shipped order has no `delivered_at`); nothing derived from an order may
/// fill them in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub number: String,
    pub customer_id: String,
    pub status: OrderStatus,
    pub placed_at: Date,
    pub paid_at: Option<Date>,
    pub shipped_at: Option<Date>,
    pub delivered_at: Option<Date>,
    pub cancelled_at: Option<Date>,
    pub returned_at: Option<Date>,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    pub tracking_url: Option<String>,
    /// ISO country code of the delivery address, such as `GB`.
    pub shipping_country: Option<String>,
    /// `standard` or `express` in the demo shop; kept as text for other shops.
    pub shipping_method: Option<String>,
    pub items: Vec<OrderItem>,
    /// Sum of `quantity * unit_price`, in the shop currency.
    pub total: f64,
    /// Shipping charged on top of `total`.
    pub shipping: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderItem {
    pub sku: String,
    pub name: String,
    /// Matches `non_returnable_categories` / `returnable_categories`.
    pub category: String,
    pub quantity: u32,
    pub unit_price: f64,
}

/// The customers and orders of `orders.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderData {
    pub customers: Vec<Customer>,
    pub orders: Vec<Order>,
}

impl OrderData {
    /// Parses the text of `orders.json` and checks that order numbers and
    /// customer ids are unique and that every order names a known customer:
    /// an ambiguous order number could show one customer another's order.
    pub fn from_json(text: &str) -> Result<Self> {
        let data: OrderData = serde_json::from_str(text)?;
        let mut ids = std::collections::HashSet::new();
        for customer in &data.customers {
            if customer.id.trim().is_empty() {
                return Err(ShopError::Orders("a customer has an empty id".to_owned()));
            }
            if !ids.insert(customer.id.as_str()) {
                return Err(ShopError::Orders(format!(
                    "customer id `{}` is used twice",
                    customer.id
                )));
            }
        }
        let mut numbers = std::collections::HashSet::new();
        for order in &data.orders {
            let number = normalize_order_number(&order.number);
            if number.is_empty() {
                return Err(ShopError::Orders("an order has an empty number".to_owned()));
            }
            if !numbers.insert(number) {
                return Err(ShopError::Orders(format!(
                    "order number {} is used twice",
                    order.number
                )));
            }
            if !ids.contains(order.customer_id.as_str()) {
                return Err(ShopError::Orders(format!(
                    "order {} names unknown customer `{}`",
                    order.number, order.customer_id
                )));
            }
        }
        Ok(data)
    }

    /// The order with this number; case and surrounding spaces are ignored,
    /// since shoppers type numbers by hand.
    pub fn order(&self, number: &str) -> Option<&Order> {
        let number = normalize_order_number(number);
        self.orders.iter().find(|order| normalize_order_number(&order.number) == number)
    }

    pub fn customer(&self, id: &str) -> Option<&Customer> {
        self.customers.iter().find(|customer| customer.id == id)
    }

    /// Every order of one customer, in file order.
    pub fn orders_of<'a>(&'a self, customer_id: &'a str) -> impl Iterator<Item = &'a Order> + 'a {
        self.orders.iter().filter(move |order| order.customer_id == customer_id)
    }
}

/// Order numbers compare without case or surrounding spaces.
pub fn normalize_order_number(number: &str) -> String {
    number.trim().to_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(text: &str) -> Date {
        text.parse().unwrap()
    }

    const PROFILE: &str = include_str!("../../../faq/shop.toml");

    #[test]
    fn loads_the_demo_shop_profile() {
        let profile = ShopProfile::from_toml(PROFILE).unwrap();
        assert_eq!(profile.name, "Northwind Threads");
        assert_eq!(profile.currency, "EUR");
        assert_eq!(profile.website.as_deref(), Some("https://northwind-threads.example"));
        assert_eq!(profile.support.email.as_deref(), Some("support@northwind-threads.example"));
        assert_eq!(profile.support.phone.as_deref(), Some("+44 20 7946 0321"));
        assert_eq!(profile.support.hours.as_deref(), Some("Mon-Fri 9:00-17:00 UK time"));
        let rules = &profile.rules;
        assert_eq!(rules.window_days, 30);
        assert_eq!(rules.refund_days, 5);
        assert_eq!(rules.refund_day_kind, DayKind::Business);
        assert!(rules.faulty_or_wrong_always_accepted);
        assert_eq!(
            rules.non_returnable_categories,
            ["underwear", "swimwear", "earrings", "gift-card", "personalised"]
        );
        assert_eq!(rules.cancel_allowed_statuses, [OrderStatus::Placed, OrderStatus::Paid]);
        assert!(!rules.is_returnable_category(" Swimwear "));
        assert!(rules.is_returnable_category("tops"));
    }

    #[test]
    fn a_minimal_profile_of_another_shop_loads_and_a_broken_one_does_not() {
        let minimal = r#"
            [shop]
            name = "Tiny Tea"
            currency = "gbp"
            [support]
            email = " "
            [returns]
            window_days = 14
            refund_days = 10
            refund_days_are = "calendar"
            unknown_key = [1, 2]
        "#;
        let profile = ShopProfile::from_toml(minimal).unwrap();
        assert_eq!(profile.currency, "GBP");
        assert_eq!(profile.support, SupportContact::default());
        assert_eq!(profile.rules.refund_day_kind, DayKind::Calendar);
        assert!(profile.rules.non_returnable_categories.is_empty());
        assert!(profile.rules.cancel_allowed_statuses.is_empty());
        assert!(!profile.rules.faulty_or_wrong_always_accepted);

        let check_error = |text: &str| assert!(ShopProfile::from_toml(text).is_err(), "{text}");
        check_error("[shop]\nname = \"A\"\ncurrency = \"EUR\"\n");
        check_error("[shop]\nname = \"\"\ncurrency = \"EUR\"\n[returns]\nwindow_days = 1\nrefund_days = 1\n");
        check_error("[shop]\nname = \"A\"\ncurrency = \"EUR\"\n[returns]\nwindow_days = -1\nrefund_days = 1\n");
        check_error("[shop]\nname = \"A\"\ncurrency = \"EUR\"\n[returns]\nwindow_days = 1\nrefund_days = 1\n[orders]\ncancel_allowed_statuses = [\"lost\"]\n");
        check_error("not toml at all = = =");
    }

    const ORDERS: &str = include_str!("../../../faq/orders.json");

    #[test]
    fn loads_the_demo_orders() {
        let data = OrderData::from_json(ORDERS).unwrap();
        assert!(data.orders.len() >= 50);
        let order = data.order(" nw-100231 ").unwrap();
        assert_eq!(order.status, OrderStatus::Delivered);
        assert_eq!(order.delivered_at, Some(date("2026-08-05")));
        assert_eq!(order.customer_id, "C1001");
        assert_eq!(data.customer("C1001").unwrap().name, "Emma Clarke");
        assert!(data.orders_of("C1001").any(|o| o.number == "NW-100231"));
        assert!(data.order("NW-999999").is_none());
        // Every status of the data set is represented, so the policy tests
        // that use these orders cover each branch.
        for status in OrderStatus::ALL {
            assert!(data.orders.iter().any(|o| o.status == status), "{status}");
        }
        let shipped = data.orders.iter().find(|o| o.status == OrderStatus::Shipped).unwrap();
        assert_eq!(shipped.delivered_at, None);
    }

    #[test]
    fn rejects_inconsistent_order_data() {
        let check_error = |text: &str, expected: &str| {
            let error = OrderData::from_json(text).unwrap_err().to_string();
            assert!(error.contains(expected), "{error}");
        };
        let customer = r#"{"id": "C1", "name": "Ann", "email": "ann@example.com"}"#;
        let order = |number: &str, customer: &str| {
            format!(
                r#"{{"number": "{number}", "customer_id": "{customer}", "status": "placed",
                    "placed_at": "2026-01-01", "items": [], "total": 0.0}}"#
            )
        };
        check_error(
            &format!(
                r#"{{"customers": [{customer}], "orders": [{}, {}]}}"#,
                order("NW-1", "C1"),
                order("nw-1", "C1")
            ),
            "used twice",
        );
        check_error(
            &format!(r#"{{"customers": [{customer}], "orders": [{}]}}"#, order("NW-1", "C9")),
            "unknown customer",
        );
        check_error(
            &format!(r#"{{"customers": [{customer}, {customer}], "orders": []}}"#),
            "used twice",
        );
        check_error(r#"{"customers": [], "orders": [{"number": "NW-1"}]}"#, "JSON");
        check_error(
            &format!(
                r#"{{"customers": [{customer}], "orders": [{}]}}"#,
                order("NW-1", "C1").replace("2026-01-01", "2026-02-30")
            ),
            "2026-02-30",
        );
    }

    #[test]
    fn customer_debug_output_masks_the_email() {
        let customer = Customer {
            id: "C1".to_owned(),
            name: "Ann".to_owned(),
            email: "ann.smith@example.com".to_owned(),
        };
        let debug = format!("{customer:?}");
        assert!(!debug.contains("ann.smith@"), "{debug}");
        assert!(debug.contains("a***@example.com"), "{debug}");
    }
}
