//! The explanation a shopper gets of a return decision, in English and
//! Chinese: the rule that decided and its facts (the window, the dates,
//! the excluded categories), written out.

use std::fmt::Write as _;

use super::{Eligibility, ExcludedItem, RefundTerms, ReturnItem};
use crate::shop::DayKind;
use crate::Language;

impl Eligibility {
    /// A shopper-facing explanation naming the rule that decided, in `lang`.
    pub fn explain(&self, lang: Language) -> String {
        match lang {
            Language::En => self.explain_en(),
            Language::Zh => self.explain_zh(),
        }
    }

    fn explain_en(&self) -> String {
        let mut text = String::new();
        match self {
            Eligibility::NotDelivered {
                order_number,
                status,
                can_cancel,
                cancel_statuses,
                window_days,
            } => {
                let _ = write!(
                    text,
                    "Order {order_number} hasn't been delivered yet (its status is {status}), so it can't be returned yet."
                );
                if !cancel_statuses.is_empty() {
                    let statuses = join_en(
                        cancel_statuses.iter().map(|s| s.as_str().to_owned()).collect(),
                        "or",
                    );
                    if *can_cancel {
                        let _ = write!(text, " Orders can be cancelled while their status is {statuses}, so you can still cancel it.");
                    } else {
                        let _ = write!(text, " Orders can be cancelled only while their status is {statuses}, so this one can no longer be cancelled.");
                    }
                }
                let _ = write!(
                    text,
                    " Once it is delivered, you can return it within {window_days} days."
                );
            }
            Eligibility::Cancelled { order_number, cancelled_on } => {
                let _ = write!(text, "Order {order_number} was cancelled");
                if let Some(date) = cancelled_on {
                    let _ = write!(text, " on {date}");
                }
                text.push_str(", so there is nothing to return.");
            }
            Eligibility::AlreadyReturned { order_number, returned_on } => {
                let _ = write!(text, "Order {order_number} has already been returned");
                if let Some(date) = returned_on {
                    let _ = write!(text, " (on {date})");
                }
                text.push_str(", so it can't be returned again.");
            }
            Eligibility::DeliveryDateUnknown { order_number } => {
                let _ = write!(
                    text,
                    "Order {order_number} is marked as delivered, but its delivery date isn't on record, so I can't work out its return window. A member of our team can check it for you."
                );
            }
            Eligibility::WindowClosed {
                order_number,
                delivered_on,
                window_days,
                deadline,
                faulty_exception,
            } => {
                let _ = write!(
                    text,
                    "Returns are accepted within {window_days} days of delivery; order {order_number} was delivered on {delivered_on}, so the window closed on {deadline}."
                );
                if *faulty_exception {
                    text.push_str(FAULTY_EN);
                }
            }
            Eligibility::Eligible {
                order_number,
                delivered_on,
                window_days,
                deadline,
                items,
                refund,
            } => {
                let _ = write!(
                    text,
                    "Returns are accepted within {window_days} days of delivery; order {order_number} was delivered on {delivered_on}, so you can return it until {deadline} (inclusive). Items you can return: {}.",
                    items_en(items)
                );
                text.push_str(&refund_en(*refund));
            }
            Eligibility::PartiallyEligible {
                order_number,
                delivered_on,
                window_days,
                deadline,
                returnable,
                excluded,
                refund,
                faulty_exception,
            } => {
                let _ = write!(
                    text,
                    "Returns are accepted within {window_days} days of delivery; order {order_number} was delivered on {delivered_on}, so you can return these items until {deadline} (inclusive): {}.",
                    items_en(returnable)
                );
                let _ = write!(
                    text,
                    " {} can't be returned, because we don't accept returns of {}.",
                    excluded_en(excluded),
                    categories_en(excluded)
                );
                text.push_str(&refund_en(*refund));
                if *faulty_exception {
                    text.push_str(FAULTY_EN);
                }
            }
            Eligibility::NothingReturnable { order_number, excluded, faulty_exception } => {
                let _ = write!(
                    text,
                    "None of the items in order {order_number} can be returned: {} {} in categories we don't accept returns of ({}).",
                    excluded_en(excluded),
                    if excluded.len() == 1 { "is" } else { "are" },
                    categories_en(excluded)
                );
                if *faulty_exception {
                    text.push_str(FAULTY_EN);
                }
            }
        }
        text
    }

    fn explain_zh(&self) -> String {
        let mut text = String::new();
        match self {
            Eligibility::NotDelivered {
                order_number,
                status,
                can_cancel,
                cancel_statuses,
                window_days,
            } => {
                let _ = write!(
                    text,
                    "订单 {order_number} 尚未送达（当前状态：{}），因此暂时不能退货。",
                    status.label_zh()
                );
                if !cancel_statuses.is_empty() {
                    let statuses: Vec<&str> =
                        cancel_statuses.iter().map(|s| s.label_zh()).collect();
                    let statuses = statuses.join("或");
                    if *can_cancel {
                        let _ = write!(
                            text,
                            "状态为{statuses}的订单可以取消，所以您仍然可以取消此订单。"
                        );
                    } else {
                        let _ = write!(
                            text,
                            "只有状态为{statuses}的订单才可以取消，所以此订单已无法取消。"
                        );
                    }
                }
                let _ = write!(text, "订单送达后，您可以在 {window_days} 天内退货。");
            }
            Eligibility::Cancelled { order_number, cancelled_on } => {
                match cancelled_on {
                    Some(date) => {
                        let _ = write!(text, "订单 {order_number} 已于 {date} 取消");
                    }
                    None => {
                        let _ = write!(text, "订单 {order_number} 已取消");
                    }
                }
                text.push_str("，没有可以退货的商品。");
            }
            Eligibility::AlreadyReturned { order_number, returned_on } => {
                match returned_on {
                    Some(date) => {
                        let _ = write!(text, "订单 {order_number} 已于 {date} 退货");
                    }
                    None => {
                        let _ = write!(text, "订单 {order_number} 已经退货");
                    }
                }
                text.push_str("，不能再次退货。");
            }
            Eligibility::DeliveryDateUnknown { order_number } => {
                let _ = write!(
                    text,
                    "订单 {order_number} 显示已送达，但系统中没有签收日期，因此无法计算退货期限。我们的客服人员可以为您核实。"
                );
            }
            Eligibility::WindowClosed {
                order_number,
                delivered_on,
                window_days,
                deadline,
                faulty_exception,
            } => {
                let _ = write!(
                    text,
                    "退货须在签收后 {window_days} 天内办理；订单 {order_number} 于 {delivered_on} 签收，退货期限已于 {deadline} 截止。"
                );
                if *faulty_exception {
                    text.push_str(FAULTY_ZH);
                }
            }
            Eligibility::Eligible {
                order_number,
                delivered_on,
                window_days,
                deadline,
                items,
                refund,
            } => {
                let _ = write!(
                    text,
                    "退货须在签收后 {window_days} 天内办理；订单 {order_number} 于 {delivered_on} 签收，您可以在 {deadline}（含当天）之前退货。可退货的商品：{}。",
                    items_zh(items)
                );
                text.push_str(&refund_zh(*refund));
            }
            Eligibility::PartiallyEligible {
                order_number,
                delivered_on,
                window_days,
                deadline,
                returnable,
                excluded,
                refund,
                faulty_exception,
            } => {
                let _ = write!(
                    text,
                    "退货须在签收后 {window_days} 天内办理；订单 {order_number} 于 {delivered_on} 签收，以下商品可以在 {deadline}（含当天）之前退货：{}。",
                    items_zh(returnable)
                );
                let _ = write!(
                    text,
                    "以下商品属于不接受退货的品类，无法退货：{}。",
                    excluded_zh(excluded)
                );
                text.push_str(&refund_zh(*refund));
                if *faulty_exception {
                    text.push_str(FAULTY_ZH);
                }
            }
            Eligibility::NothingReturnable { order_number, excluded, faulty_exception } => {
                let _ = write!(
                    text,
                    "订单 {order_number} 中的商品都属于不接受退货的品类，无法退货：{}。",
                    excluded_zh(excluded)
                );
                if *faulty_exception {
                    text.push_str(FAULTY_ZH);
                }
            }
        }
        text
    }
}

const FAULTY_EN: &str =
    " This doesn't apply to items that arrived damaged, faulty or wrong: for those, please contact our team.";
const FAULTY_ZH: &str =
    "如果商品到货时破损、有质量问题或发错货，不受此限制，请联系我们的客服团队。";

fn join_en(parts: Vec<String>, conjunction: &str) -> String {
    match parts.len() {
        0 => String::new(),
        1 => parts[0].clone(),
        n => format!("{} {conjunction} {}", parts[..n - 1].join(", "), parts[n - 1]),
    }
}

fn items_en(items: &[ReturnItem]) -> String {
    join_en(
        items.iter().map(|i| format!("{} × {} ({})", i.quantity, i.name, i.sku)).collect(),
        "and",
    )
}

fn excluded_en(items: &[ExcludedItem]) -> String {
    join_en(items.iter().map(|i| format!("{} ({})", i.name, i.sku)).collect(), "and")
}

/// The distinct categories of the excluded items, in order of appearance.
fn categories(items: &[ExcludedItem]) -> Vec<String> {
    let mut seen = Vec::new();
    for item in items {
        if !seen.contains(&item.category) {
            seen.push(item.category.clone());
        }
    }
    seen
}

/// Category ids read as words in English ("gift-card" as "gift card").
fn categories_en(items: &[ExcludedItem]) -> String {
    join_en(categories(items).iter().map(|c| c.replace(['-', '_'], " ")).collect(), "or")
}

fn refund_en(refund: RefundTerms) -> String {
    let kind = match refund.day_kind {
        DayKind::Business => "business ",
        DayKind::Calendar => "",
    };
    let unit = if refund.days == 1 { "day" } else { "days" };
    format!(" Once we receive your return, we refund it within {} {kind}{unit}.", refund.days)
}

fn items_zh(items: &[ReturnItem]) -> String {
    let parts: Vec<String> =
        items.iter().map(|i| format!("{}（{}）× {}", i.name, i.sku, i.quantity)).collect();
    parts.join("、")
}

fn excluded_zh(items: &[ExcludedItem]) -> String {
    let parts: Vec<String> =
        items.iter().map(|i| format!("{}（{}，品类：{}）", i.name, i.sku, i.category)).collect();
    parts.join("、")
}

fn refund_zh(refund: RefundTerms) -> String {
    let unit = match refund.day_kind {
        DayKind::Business => "个工作日",
        DayKind::Calendar => "天",
    };
    format!("我们收到退货后，会在 {} {unit}内退款。", refund.days)
}
