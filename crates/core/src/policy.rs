//! Whether an order can be returned, decided by the shop's rules and never by
//! a language model.
//!
//! Measured small models flip their answer to "can I return this?" when the
//! prompt changes, so the decision is computed here from [`ReturnRules`] and
//! the order data. Each outcome carries the facts of the rule that decided it
//! (the window, the delivery date, the deadline, the excluded categories), so
//! the shopper is told *why*, and staff reading a transcript can check it.

use crate::shop::{Date, DayKind, Order, OrderItem, OrderStatus, ReturnRules};

/// An item that can go back, as the shopper would pick it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnItem {
    pub sku: String,
    pub name: String,
    pub quantity: u32,
}

/// An item that cannot go back because its category is listed in
/// `non_returnable_categories`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExcludedItem {
    pub sku: String,
    pub name: String,
    pub category: String,
}

/// The rule that decided an [`Eligibility`], for logs and transcripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecidingRule {
    /// The order's status (not delivered, cancelled, already returned).
    Status,
    /// The return window counted from the delivery date.
    ReturnWindow,
    /// The list of non-returnable categories (with the window open).
    NonReturnableCategories,
    /// Missing data: a person has to decide.
    MissingData,
}

/// Facts about refunds repeated in the explanation of a possible return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefundTerms {
    pub days: u32,
    pub day_kind: DayKind,
}

/// What a shopper can do about returning one order, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Eligibility {
    /// Placed, paid or shipped: nothing to return yet. `can_cancel` says
    /// whether the status still allows cancelling; `cancel_statuses` are the
    /// statuses that do (empty when the shop's profile does not say).
    NotDelivered {
        order_number: String,
        status: OrderStatus,
        can_cancel: bool,
        cancel_statuses: Vec<OrderStatus>,
        window_days: u32,
    },
    Cancelled {
        order_number: String,
        cancelled_on: Option<Date>,
    },
    AlreadyReturned {
        order_number: String,
        returned_on: Option<Date>,
    },
    /// Delivered, but the delivery date is not in the data, so the window
    /// cannot be computed; a person must look.
    DeliveryDateUnknown {
        order_number: String,
    },
    /// `delivered_on + window_days < today`.
    WindowClosed {
        order_number: String,
        delivered_on: Date,
        window_days: u32,
        /// The last day a return was accepted.
        deadline: Date,
        faulty_exception: bool,
    },
    /// Every item can be returned until `deadline` (inclusive).
    Eligible {
        order_number: String,
        delivered_on: Date,
        window_days: u32,
        deadline: Date,
        items: Vec<ReturnItem>,
        refund: RefundTerms,
    },
    /// Some items can be returned until `deadline`; the others are excluded
    /// by their category.
    PartiallyEligible {
        order_number: String,
        delivered_on: Date,
        window_days: u32,
        deadline: Date,
        returnable: Vec<ReturnItem>,
        excluded: Vec<ExcludedItem>,
        refund: RefundTerms,
        faulty_exception: bool,
    },
    /// The window is open but every item's category is non-returnable.
    NothingReturnable {
        order_number: String,
        excluded: Vec<ExcludedItem>,
        faulty_exception: bool,
    },
}

/// Decides whether `order` can be returned on `today` (the shop's local
/// date). The status decides first, then the window, then the categories:
/// the window applies to the whole order, so a shopper past it is told so
/// rather than being given a list of items that would not matter anyway.
pub fn return_eligibility(order: &Order, today: Date, rules: &ReturnRules) -> Eligibility {
    let order_number = order.number.clone();
    let faulty_exception = rules.faulty_or_wrong_always_accepted;
    match order.status {
        OrderStatus::Placed | OrderStatus::Paid | OrderStatus::Shipped => {
            return Eligibility::NotDelivered {
                order_number,
                status: order.status,
                can_cancel: rules.cancel_allowed_statuses.contains(&order.status),
                cancel_statuses: rules.cancel_allowed_statuses.clone(),
                window_days: rules.window_days,
            };
        }
        OrderStatus::Cancelled => {
            return Eligibility::Cancelled { order_number, cancelled_on: order.cancelled_at };
        }
        OrderStatus::Returned => {
            return Eligibility::AlreadyReturned { order_number, returned_on: order.returned_at };
        }
        OrderStatus::Delivered => {}
    }
    let Some(delivered_on) = order.delivered_at else {
        return Eligibility::DeliveryDateUnknown { order_number };
    };
    let window_days = rules.window_days;
    let deadline = delivered_on.add_days(i32::try_from(window_days).unwrap_or(i32::MAX));
    if today > deadline {
        return Eligibility::WindowClosed {
            order_number,
            delivered_on,
            window_days,
            deadline,
            faulty_exception,
        };
    }
    let (returnable, excluded): (Vec<&OrderItem>, Vec<&OrderItem>) = order
        .items
        .iter()
        .filter(|item| item.quantity > 0)
        .partition(|item| rules.is_returnable_category(&item.category));
    let returnable: Vec<ReturnItem> = returnable
        .into_iter()
        .map(|item| ReturnItem {
            sku: item.sku.clone(),
            name: item.name.clone(),
            quantity: item.quantity,
        })
        .collect();
    let excluded: Vec<ExcludedItem> = excluded
        .into_iter()
        .map(|item| ExcludedItem {
            sku: item.sku.clone(),
            name: item.name.clone(),
            category: item.category.clone(),
        })
        .collect();
    let refund = RefundTerms { days: rules.refund_days, day_kind: rules.refund_day_kind };
    match (returnable.is_empty(), excluded.is_empty()) {
        (true, _) => Eligibility::NothingReturnable { order_number, excluded, faulty_exception },
        (false, true) => Eligibility::Eligible {
            order_number,
            delivered_on,
            window_days,
            deadline,
            items: returnable,
            refund,
        },
        (false, false) => Eligibility::PartiallyEligible {
            order_number,
            delivered_on,
            window_days,
            deadline,
            returnable,
            excluded,
            refund,
            faulty_exception,
        },
    }
}

impl Eligibility {
    pub fn order_number(&self) -> &str {
        match self {
            Eligibility::NotDelivered { order_number, .. }
            | Eligibility::Cancelled { order_number, .. }
            | Eligibility::AlreadyReturned { order_number, .. }
            | Eligibility::DeliveryDateUnknown { order_number }
            | Eligibility::WindowClosed { order_number, .. }
            | Eligibility::Eligible { order_number, .. }
            | Eligibility::PartiallyEligible { order_number, .. }
            | Eligibility::NothingReturnable { order_number, .. } => order_number,
        }
    }

    pub fn deciding_rule(&self) -> DecidingRule {
        match self {
            Eligibility::NotDelivered { .. }
            | Eligibility::Cancelled { .. }
            | Eligibility::AlreadyReturned { .. } => DecidingRule::Status,
            Eligibility::DeliveryDateUnknown { .. } => DecidingRule::MissingData,
            Eligibility::WindowClosed { .. } | Eligibility::Eligible { .. } => {
                DecidingRule::ReturnWindow
            }
            Eligibility::PartiallyEligible { .. } | Eligibility::NothingReturnable { .. } => {
                DecidingRule::NonReturnableCategories
            }
        }
    }

    /// The items a return may include; empty when no return can be started.
    /// The server checks a shopper's `start_return` against this list.
    pub fn returnable_items(&self) -> &[ReturnItem] {
        match self {
            Eligibility::Eligible { items, .. } => items,
            Eligibility::PartiallyEligible { returnable, .. } => returnable,
            _ => &[],
        }
    }

    pub fn can_start_return(&self) -> bool {
        !self.returnable_items().is_empty()
    }
}

mod explain;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shop::{OrderData, ShopProfile};
    use crate::Language;

    fn date(text: &str) -> Date {
        text.parse().unwrap()
    }

    fn rules() -> ReturnRules {
        ShopProfile::from_toml(include_str!("../../../faq/shop.toml")).unwrap().rules
    }

    fn orders() -> OrderData {
        OrderData::from_json(include_str!("../../../faq/orders.json")).unwrap()
    }

    /// One line that says which variant was chosen and with which facts, so
    /// that a table of cases reads like the rules themselves.
    fn summarize(eligibility: &Eligibility) -> String {
        let skus = |items: &[ReturnItem]| -> String {
            items.iter().map(|i| i.sku.as_str()).collect::<Vec<_>>().join(", ")
        };
        let excluded_skus = |items: &[ExcludedItem]| -> String {
            items.iter().map(|i| i.sku.as_str()).collect::<Vec<_>>().join(", ")
        };
        match eligibility {
            Eligibility::NotDelivered { can_cancel: true, .. } => {
                "not delivered, can cancel".to_owned()
            }
            Eligibility::NotDelivered { can_cancel: false, .. } => {
                "not delivered, cannot cancel".to_owned()
            }
            Eligibility::Cancelled { .. } => "cancelled".to_owned(),
            Eligibility::AlreadyReturned { .. } => "already returned".to_owned(),
            Eligibility::DeliveryDateUnknown { .. } => "delivery date unknown".to_owned(),
            Eligibility::WindowClosed { deadline, .. } => format!("window closed on {deadline}"),
            Eligibility::Eligible { deadline, items, .. } => {
                format!("eligible until {deadline}: {}", skus(items))
            }
            Eligibility::PartiallyEligible { deadline, returnable, excluded, .. } => format!(
                "partially until {deadline}: {}; excluded: {}",
                skus(returnable),
                excluded_skus(excluded)
            ),
            Eligibility::NothingReturnable { excluded, .. } => {
                format!("nothing returnable; excluded: {}", excluded_skus(excluded))
            }
        }
    }

    #[test]
    fn decides_demo_orders_by_the_rules() {
        let data = orders();
        let rules = rules();
        let check = |number: &str, today: &str, expected: &str| {
            let order = data.order(number).unwrap();
            let got = return_eligibility(order, date(today), &rules);
            assert_eq!(summarize(&got), expected, "{number} on {today}");
        };
        // Delivered 2026-08-05; 30 days later, 2026-09-04, is the last day.
        check("NW-100231", "2026-08-05", "eligible until 2026-09-04: TP-101, TR-201");
        check("NW-100231", "2026-09-03", "eligible until 2026-09-04: TP-101, TR-201");
        check("NW-100231", "2026-09-04", "eligible until 2026-09-04: TP-101, TR-201");
        check("NW-100231", "2026-09-05", "window closed on 2026-09-04");
        check("NW-100231", "2026-11-28", "window closed on 2026-09-04");
        // A dress and swimwear: the swimwear stays.
        check("NW-100344", "2026-09-01", "partially until 2026-09-19: DR-301; excluded: SW-911");
        check("NW-100344", "2026-09-20", "window closed on 2026-09-19");
        check("NW-100538", "2026-09-25", "nothing returnable; excluded: UW-901, UW-903");
        // A bag, earrings and a gift card.
        check(
            "NW-101147",
            "2026-11-28",
            "partially until 2026-12-13: BG-502; excluded: ER-921, GC-932",
        );
        check("NW-101276", "2026-11-28", "nothing returnable; excluded: PS-941");
        check("NW-101296", "2026-11-28", "eligible until 2026-12-23: SH-404");
        check("NW-101701", "2026-11-28", "not delivered, can cancel");
        check("NW-101647", "2026-11-28", "not delivered, can cancel");
        check("NW-101001", "2026-11-28", "not delivered, cannot cancel");
        check("NW-100274", "2026-11-28", "cancelled");
        check("NW-100324", "2026-11-28", "already returned");
    }

    fn order_with(status: OrderStatus, delivered: Option<&str>, items: &[(&str, &str)]) -> Order {
        Order {
            number: "X-1".to_owned(),
            customer_id: "C1".to_owned(),
            status,
            placed_at: date("2026-01-01"),
            paid_at: None,
            shipped_at: None,
            delivered_at: delivered.map(date),
            cancelled_at: None,
            returned_at: None,
            carrier: None,
            tracking_number: None,
            tracking_url: None,
            shipping_country: None,
            shipping_method: None,
            items: items
                .iter()
                .map(|(sku, category)| OrderItem {
                    sku: (*sku).to_owned(),
                    name: format!("Item {sku}"),
                    category: (*category).to_owned(),
                    quantity: 1,
                    unit_price: 10.0,
                })
                .collect(),
            total: 10.0,
            shipping: None,
        }
    }

    #[test]
    fn decides_edge_cases_of_other_shops() {
        let check = |order: Order, today: &str, rules: &ReturnRules, expected: &str| {
            let got = return_eligibility(&order, date(today), rules);
            assert_eq!(summarize(&got), expected, "{order:?} on {today}");
        };
        let mut strict = rules();
        strict.window_days = 0;
        strict.cancel_allowed_statuses.clear();
        strict.non_returnable_categories = vec!["tops".to_owned()];
        let tops = [("A", "Tops")];
        let shoes = [("B", "shoes")];
        let delivered = |day: &str, items: &[(&str, &str)]| {
            order_with(OrderStatus::Delivered, Some(day), items)
        };
        // With a zero-day window the delivery day itself is the last day.
        check(
            delivered("2026-03-01", &shoes),
            "2026-03-01",
            &strict,
            "eligible until 2026-03-01: B",
        );
        check(
            delivered("2026-03-01", &shoes),
            "2026-03-02",
            &strict,
            "window closed on 2026-03-01",
        );
        // Categories compare without case.
        check(
            delivered("2026-03-01", &tops),
            "2026-03-01",
            &strict,
            "nothing returnable; excluded: A",
        );
        // The window is checked before the categories.
        check(delivered("2026-03-01", &tops), "2026-04-01", &strict, "window closed on 2026-03-01");
        check(
            order_with(OrderStatus::Delivered, None, &shoes),
            "2026-03-01",
            &strict,
            "delivery date unknown",
        );
        // A shop whose profile lists no cancellable status never offers one.
        check(
            order_with(OrderStatus::Placed, None, &shoes),
            "2026-03-01",
            &strict,
            "not delivered, cannot cancel",
        );
        // A window across a leap day.
        let mut leap = rules();
        leap.window_days = 30;
        check(delivered("2028-02-10", &shoes), "2028-03-11", &leap, "eligible until 2028-03-11: B");
        check(delivered("2028-02-10", &shoes), "2028-03-12", &leap, "window closed on 2028-03-11");
        // A delivery date after "today" (clock skew, data typed ahead) is inside the window.
        check(delivered("2026-03-10", &shoes), "2026-03-01", &leap, "eligible until 2026-04-09: B");
    }

    #[test]
    fn explanations_name_the_rule_in_both_languages() {
        let data = orders();
        let rules = rules();
        let check = |number: &str, today: &str, lang: Language, expected: &str| {
            let got = return_eligibility(data.order(number).unwrap(), date(today), &rules);
            assert_eq!(got.explain(lang), expected, "{number} on {today}");
        };
        check("NW-100231", "2026-11-28", Language::En,
            "Returns are accepted within 30 days of delivery; order NW-100231 was delivered on 2026-08-05, so the window closed on 2026-09-04. This doesn't apply to items that arrived damaged, faulty or wrong: for those, please contact our team.");
        check("NW-100231", "2026-11-28", Language::Zh,
            "退货须在签收后 30 天内办理；订单 NW-100231 于 2026-08-05 签收，退货期限已于 2026-09-04 截止。如果商品到货时破损、有质量问题或发错货，不受此限制，请联系我们的客服团队。");
        check("NW-101296", "2026-11-28", Language::En,
            "Returns are accepted within 30 days of delivery; order NW-101296 was delivered on 2026-11-23, so you can return it until 2026-12-23 (inclusive). Items you can return: 1 × Recycled Knit Running Shoes (SH-404). Once we receive your return, we refund it within 5 business days.");
        check("NW-101296", "2026-11-28", Language::Zh,
            "退货须在签收后 30 天内办理；订单 NW-101296 于 2026-11-23 签收，您可以在 2026-12-23（含当天）之前退货。可退货的商品：Recycled Knit Running Shoes（SH-404）× 1。我们收到退货后，会在 5 个工作日内退款。");
        check("NW-101147", "2026-11-28", Language::En,
            "Returns are accepted within 30 days of delivery; order NW-101147 was delivered on 2026-11-13, so you can return these items until 2026-12-13 (inclusive): 1 × Leather Crossbody Bag (BG-502). Sterling Silver Hoop Earrings (ER-921) and Digital Gift Card €50 (GC-932) can't be returned, because we don't accept returns of earrings or gift card. Once we receive your return, we refund it within 5 business days. This doesn't apply to items that arrived damaged, faulty or wrong: for those, please contact our team.");
        check("NW-100538", "2026-09-25", Language::En,
            "None of the items in order NW-100538 can be returned: Organic Cotton Briefs (3-Pack) (UW-901) and Seamless Bralette (UW-903) are in categories we don't accept returns of (underwear). This doesn't apply to items that arrived damaged, faulty or wrong: for those, please contact our team.");
        check("NW-100538", "2026-09-25", Language::Zh,
            "订单 NW-100538 中的商品都属于不接受退货的品类，无法退货：Organic Cotton Briefs (3-Pack)（UW-901，品类：underwear）、Seamless Bralette（UW-903，品类：underwear）。如果商品到货时破损、有质量问题或发错货，不受此限制，请联系我们的客服团队。");
        check("NW-101701", "2026-11-28", Language::En,
            "Order NW-101701 hasn't been delivered yet (its status is placed), so it can't be returned yet. Orders can be cancelled while their status is placed or paid, so you can still cancel it. Once it is delivered, you can return it within 30 days.");
        check("NW-101001", "2026-11-28", Language::Zh,
            "订单 NW-101001 尚未送达（当前状态：已发货），因此暂时不能退货。只有状态为已下单或已付款的订单才可以取消，所以此订单已无法取消。订单送达后，您可以在 30 天内退货。");
        check(
            "NW-100274",
            "2026-11-28",
            Language::En,
            &format!(
                "Order NW-100274 was cancelled on {}, so there is nothing to return.",
                data.order("NW-100274").unwrap().cancelled_at.unwrap()
            ),
        );
        check(
            "NW-100324",
            "2026-11-28",
            Language::Zh,
            &format!(
                "订单 NW-100324 已于 {} 退货，不能再次退货。",
                data.order("NW-100324").unwrap().returned_at.unwrap()
            ),
        );
    }

    #[test]
    fn only_eligible_outcomes_offer_items_to_return() {
        let data = orders();
        let rules = rules();
        let today = date("2026-11-28");
        for order in &data.orders {
            let eligibility = return_eligibility(order, today, &rules);
            let offered = eligibility.returnable_items();
            for item in offered {
                let category = &order.items.iter().find(|i| i.sku == item.sku).unwrap().category;
                assert!(rules.is_returnable_category(category), "{}: {}", order.number, item.sku);
            }
            assert_eq!(
                eligibility.can_start_return(),
                matches!(
                    eligibility,
                    Eligibility::Eligible { .. } | Eligibility::PartiallyEligible { .. }
                ),
                "{}",
                order.number
            );
            // Every explanation names the order it is about.
            for lang in Language::ALL {
                assert!(eligibility.explain(lang).contains(&order.number));
            }
        }
    }
}
