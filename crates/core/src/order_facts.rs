//! What a verified shopper is told about their order, rendered from the order
//! data by a fixed template.
//!
//! Order facts never pass through a language model: a model asked "where is
//! my parcel?" will happily invent a carrier or a date. The template states
//! only what the data holds; a field that is absent (no tracking number yet,
//! no delivery date) is left out, never guessed or filled with a placeholder.
//!
//! The caller must have verified that the shopper owns the order; nothing
//! here checks identity.

use std::fmt::Write as _;

use crate::shop::{Date, Order, OrderStatus};
use crate::Language;

/// The facts of `order` for its verified owner, in `lang`. Amounts are in
/// `currency`, the shop's ISO code (`EUR` renders as `€39.00`, an unknown code
/// as `39.00 CHF`).
pub fn order_facts(order: &Order, currency: &str, lang: Language) -> String {
    let labels = match lang {
        Language::En => &EN,
        Language::Zh => &ZH,
    };
    let mut text = (labels.headline)(&order.number, order.status);
    text.push('\n');

    let dates: [(&str, Option<Date>); 6] = [
        (labels.placed, Some(order.placed_at)),
        (labels.paid, order.paid_at),
        (labels.shipped, order.shipped_at),
        (labels.delivered, order.delivered_at),
        (labels.cancelled, order.cancelled_at),
        (labels.returned, order.returned_at),
    ];
    for (label, date) in dates {
        if let Some(date) = date {
            let _ = writeln!(text, "- {label}{}{date}", labels.colon);
        }
    }
    if let Some(carrier) = present(&order.carrier) {
        let _ = writeln!(text, "- {}{}{carrier}", labels.carrier, labels.colon);
    }
    if let Some(number) = present(&order.tracking_number) {
        let _ = writeln!(text, "- {}{}{number}", labels.tracking_number, labels.colon);
    }
    if let Some(url) = present(&order.tracking_url) {
        let _ = writeln!(text, "- {}{}{url}", labels.tracking_link, labels.colon);
    }
    let method = present(&order.shipping_method).map(|m| (labels.method)(m));
    let country = present(&order.shipping_country);
    let delivery = match (method, country) {
        (Some(method), Some(country)) => Some((labels.method_to)(&method, country)),
        (Some(method), None) => Some(method),
        (None, Some(country)) => Some((labels.to)(country)),
        (None, None) => None,
    };
    if let Some(delivery) = delivery {
        let _ = writeln!(text, "- {}{}{delivery}", labels.delivery, labels.colon);
    }

    if !order.items.is_empty() {
        let _ = writeln!(text, "{}{}", labels.items, labels.colon.trim_end());
        for item in &order.items {
            let price = format_amount(item.unit_price, currency);
            let line = (labels.item)(item.quantity, item.name.trim(), item.sku.trim(), &price);
            let _ = writeln!(text, "- {line}");
        }
    }
    let total = format_amount(order.total, currency);
    let _ = write!(text, "{}{}{total}", labels.total, labels.colon);
    match order.shipping {
        Some(shipping) => {
            let shipping = format_amount(shipping, currency);
            let _ = write!(
                text,
                "{}{}{}{shipping}{}",
                labels.then, labels.shipping, labels.colon, labels.stop
            );
        }
        None => text.push_str(labels.stop),
    }
    text
}

/// A text field that holds something; blank counts as absent.
fn present(field: &Option<String>) -> Option<&str> {
    field.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// An amount with two decimals and the currency's symbol where it has a
/// well-known one.
pub fn format_amount(amount: f64, currency: &str) -> String {
    let code = currency.trim().to_uppercase();
    match code.as_str() {
        "EUR" => format!("€{amount:.2}"),
        "GBP" => format!("£{amount:.2}"),
        "USD" => format!("${amount:.2}"),
        _ => format!("{amount:.2} {code}"),
    }
}

/// The words of the template in one language.
struct Labels {
    headline: fn(&str, OrderStatus) -> String,
    colon: &'static str,
    stop: &'static str,
    then: &'static str,
    placed: &'static str,
    paid: &'static str,
    shipped: &'static str,
    delivered: &'static str,
    cancelled: &'static str,
    returned: &'static str,
    carrier: &'static str,
    tracking_number: &'static str,
    tracking_link: &'static str,
    delivery: &'static str,
    method: fn(&str) -> String,
    method_to: fn(&str, &str) -> String,
    to: fn(&str) -> String,
    items: &'static str,
    item: fn(u32, &str, &str, &str) -> String,
    total: &'static str,
    shipping: &'static str,
}

const EN: Labels = Labels {
    headline: |number, status| {
        let state = match status {
            OrderStatus::Placed => "has been placed",
            OrderStatus::Paid => "has been paid and hasn't shipped yet",
            OrderStatus::Shipped => "has shipped and is on its way",
            OrderStatus::Delivered => "has been delivered",
            OrderStatus::Cancelled => "has been cancelled",
            OrderStatus::Returned => "has been returned",
        };
        format!("Order {number} {state}.")
    },
    colon: ": ",
    stop: ".",
    then: ". ",
    placed: "Placed",
    paid: "Paid",
    shipped: "Shipped",
    delivered: "Delivered",
    cancelled: "Cancelled",
    returned: "Returned",
    carrier: "Carrier",
    tracking_number: "Tracking number",
    tracking_link: "Tracking link",
    delivery: "Delivery",
    method: |method| match method.to_lowercase().as_str() {
        "standard" => "standard delivery".to_owned(),
        "express" => "express delivery".to_owned(),
        _ => method.to_owned(),
    },
    method_to: |method, country| format!("{method} to {country}"),
    to: |country| format!("to {country}"),
    items: "Items",
    item: |quantity, name, sku, price| format!("{quantity} × {name} ({sku}), {price} each"),
    total: "Items total",
    shipping: "Shipping",
};

const ZH: Labels = Labels {
    headline: |number, status| {
        let state = match status {
            OrderStatus::Placed => "已下单",
            OrderStatus::Paid => "已付款，尚未发货",
            OrderStatus::Shipped => "已发货，正在配送途中",
            OrderStatus::Delivered => "已送达",
            OrderStatus::Cancelled => "已取消",
            OrderStatus::Returned => "已退货",
        };
        format!("订单 {number} {state}。")
    },
    colon: "：",
    stop: "。",
    then: "；",
    placed: "下单日期",
    paid: "付款日期",
    shipped: "发货日期",
    delivered: "送达日期",
    cancelled: "取消日期",
    returned: "退货日期",
    carrier: "承运商",
    tracking_number: "物流单号",
    tracking_link: "物流查询",
    delivery: "配送方式",
    method: |method| match method.to_lowercase().as_str() {
        "standard" => "标准配送".to_owned(),
        "express" => "快速配送".to_owned(),
        _ => method.to_owned(),
    },
    method_to: |method, country| format!("{method}，寄往 {country}"),
    to: |country| format!("寄往 {country}"),
    items: "商品",
    item: |quantity, name, sku, price| format!("{name}（{sku}）× {quantity}，单价 {price}"),
    total: "商品合计",
    shipping: "运费",
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shop::{OrderData, OrderItem};

    fn orders() -> OrderData {
        OrderData::from_json(include_str!("../../../faq/orders.json")).unwrap()
    }

    #[test]
    fn renders_a_delivered_order_in_both_languages() {
        let data = orders();
        let order = data.order("NW-100231").unwrap();
        let check = |lang: Language, expected: &str| {
            assert_eq!(order_facts(order, "EUR", lang), expected, "{lang}");
        };
        check(
            Language::En,
            "Order NW-100231 has been delivered.
- Placed: 2026-08-03
- Paid: 2026-08-03
- Shipped: 2026-08-03
- Delivered: 2026-08-05
- Carrier: Royal Mail
- Tracking number: RM003710149GB
- Tracking link: https://northwind-threads.example/track/RM003710149GB
- Delivery: standard delivery to GB
Items:
- 1 × Breton Striped Top (TP-101), €39.00 each
- 1 × Tapered Cotton Chinos (TR-201), €59.00 each
Items total: €98.00. Shipping: €0.00.",
        );
        check(
            Language::Zh,
            "订单 NW-100231 已送达。
- 下单日期：2026-08-03
- 付款日期：2026-08-03
- 发货日期：2026-08-03
- 送达日期：2026-08-05
- 承运商：Royal Mail
- 物流单号：RM003710149GB
- 物流查询：https://northwind-threads.example/track/RM003710149GB
- 配送方式：标准配送，寄往 GB
商品：
- Breton Striped Top（TP-101）× 1，单价 €39.00
- Tapered Cotton Chinos（TR-201）× 1，单价 €59.00
商品合计：€98.00；运费：€0.00。",
        );
    }

    #[test]
    fn leaves_out_what_the_data_does_not_hold() {
        let order = Order {
            number: "X-7".to_owned(),
            customer_id: "C1".to_owned(),
            status: OrderStatus::Paid,
            placed_at: "2026-11-20".parse().unwrap(),
            paid_at: None,
            shipped_at: None,
            delivered_at: None,
            cancelled_at: None,
            returned_at: None,
            carrier: Some("  ".to_owned()),
            tracking_number: None,
            tracking_url: None,
            shipping_country: None,
            shipping_method: Some("pigeon".to_owned()),
            items: vec![OrderItem {
                sku: "T-1".to_owned(),
                name: "Tea".to_owned(),
                category: "tea".to_owned(),
                quantity: 3,
                unit_price: 4.5,
            }],
            total: 13.5,
            shipping: None,
        };
        let check = |lang: Language, currency: &str, expected: &str| {
            assert_eq!(order_facts(&order, currency, lang), expected, "{lang}");
        };
        check(
            Language::En,
            "CHF",
            "Order X-7 has been paid and hasn't shipped yet.
- Placed: 2026-11-20
- Delivery: pigeon
Items:
- 3 × Tea (T-1), 4.50 CHF each
Items total: 13.50 CHF.",
        );
        check(
            Language::Zh,
            "gbp",
            "订单 X-7 已付款，尚未发货。
- 下单日期：2026-11-20
- 配送方式：pigeon
商品：
- Tea（T-1）× 3，单价 £4.50
商品合计：£13.50。",
        );
    }

    #[test]
    fn every_demo_order_renders_only_its_own_data() {
        let data = orders();
        for order in &data.orders {
            for lang in Language::ALL {
                let text = order_facts(order, "EUR", lang);
                assert!(text.contains(&order.number));
                assert!(!text.contains("None") && !text.contains("null"), "{text}");
                // A shipped order that has not arrived shows no delivery date.
                let delivered_label =
                    if lang == Language::En { "Delivered:" } else { "送达日期" };
                assert_eq!(text.contains(delivered_label), order.delivered_at.is_some(), "{text}");
                let tracking_label =
                    if lang == Language::En { "Tracking number" } else { "物流单号" };
                assert_eq!(
                    text.contains(tracking_label),
                    order.tracking_number.is_some(),
                    "{text}"
                );
            }
        }
    }
}
