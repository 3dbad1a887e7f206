//! Tests of the fact check: paraphrases it must let pass and invented facts
//! it must catch.

use super::facts::{Fact, Unit};
use super::read::{extract, Names};
use super::*;

const SHIPPING: &str = "Orders whose payment is confirmed **before 14:00 UK time** on a business day are dispatched the same day.\n\n| Zone | Standard | Express |\n|---|---|---|\n| United Kingdom | 2-3 business days (Royal Mail Tracked 48) | Next business day (DPD Next Day) |\n| EU zone 1 | 3-5 business days (DPD Classic) | 1-2 business days (DHL Express) |";
const PRICES: &str = "| Zone | Standard | Express | Free standard delivery from |\n|---|---|---|---|\n| United Kingdom | €4.95 | €9.95 | €60 |\n| EU zone 1 | €6.95 | €14.95 | €75 |\nUK prices include 20% UK VAT.";
const CONTACT: &str = "Email support@northwind-threads.example, and we'll reply within 1 business day, or call +44 20 7946 0321, Monday to Friday 9:00-17:00 UK time. Our postal address is Northwind Threads, 12 Harbour Lane, Bristol BS1 4XX, United Kingdom.";
const SHIPPING_LIST: &str = "Orders paid before 14:00 UK time on a business day are dispatched the same day. After dispatch, standard delivery takes 2-3 business days to the UK, 3-5 to EU zone 1 and 5-8 to the US. Express delivery takes 1 business day to the UK, 1-2 to EU zone 1 and 2-4 to the US.";
const REFUNDS: &str = "We refund within 5 business days of receiving your return at our Bristol warehouse. Your bank or card provider may need another 3-5 business days to show it.";
const WINDOW: &str = "You have 30 days from the date your order was delivered to start a return. For example, an order delivered on 2 November can be returned until 2 December. Start at https://northwind-threads.example/returns.";
const SHIPPING_ZH: &str = "工作日英国时间 14:00 前付款的订单会在当天发货。标准配送到英国需 2-3 个工作日，到欧盟一区需 3-5 个工作日。";
const RETURNS_ZH: &str =
    "您可以在**签收日起 30 天内**退货。我们会在 **5 个工作日内**完成退款。快递一般需要一两天。";

fn allowed() -> AllowedFacts {
    AllowedFacts::new()
        .with_text("Northwind Threads")
        .with_text("support@northwind-threads.example")
        .with_currency("EUR")
}

/// One case: the answer, the passages it was written from, and the facts
/// expected to be unsupported ("kind text"); none means it must pass.
fn check(answer: &str, passages: &[&str], expected: &[&str]) {
    let outcome = check_answer(answer, passages, &allowed());
    let got: Vec<String> = outcome
        .unsupported
        .iter()
        .map(|f| format!("{} {}", serde_json::to_value(f.kind).unwrap().as_str().unwrap(), f.text))
        .collect();
    assert_eq!(got, expected, "{answer}");
    assert_eq!(outcome.passed, expected.is_empty(), "{answer}");
}

#[test]
fn faithful_paraphrases_pass() {
    check("Standard delivery to the UK takes 2-3 business days [1].", &[SHIPPING], &[]);
    check("UK orders arrive in 2 to 3 working days.", &[SHIPPING], &[]);
    check("Express to EU zone 1 takes between 1 and 2 business days.", &[SHIPPING], &[]);
    check("Pay before 2pm and your order ships the same day.", &[SHIPPING], &[]);
    check(
        "Royal Mail delivers UK orders; DHL Express handles express orders to EU zone 1.",
        &[SHIPPING],
        &[],
    );
    check("Standard shipping to the UK costs €4.95, and it's free from €60.", &[PRICES], &[]);
    check("UK standard delivery is 4.95 euros (EUR 9.95 for express).", &[PRICES], &[]);
    check("**Free** standard delivery from **€75** in EU zone 1.", &[PRICES], &[]);
    check("Prices include 20 percent VAT.", &[PRICES], &[]);
    check("Call us on 020 7946 0321, Monday to Friday, 9am to 5pm UK time.", &[CONTACT], &[]);
    check(
        "Email **support@northwind-threads.example**; we reply within 1 business day.",
        &[CONTACT],
        &[],
    );
    check("Northwind Threads is based at 12 Harbour Lane, Bristol BS1 4XX.", &[CONTACT], &[]);
    check(
        "Refunds take up to 5 business days, and your bank may need another 3-5 business days.",
        &[REFUNDS],
        &[],
    );
    check("You can return items within thirty days of delivery.", &[WINDOW], &[]);
    check(
        "You have a 30-day window, e.g. delivered on 2 November, returnable until 2 December.",
        &[WINDOW],
        &[],
    );
    check("Start your return at https://northwind-threads.example/returns.", &[WINDOW], &[]);
    check("See northwind-threads.example for details.", &[WINDOW], &[]);
    check("Yes. I can help with that: please contact our team on Monday.", &[WINDOW], &[]);
    check("1. Go to the returns page.\n2. Enter your order number [1][2].", &[WINDOW], &[]);
    check("标准配送到英国需要 2-3 个工作日 [1]。", &[SHIPPING_ZH], &[]);
    check("工作日下午2点前付款的订单当天发货。", &[SHIPPING_ZH], &[]);
    check("您可以在签收后三十天内退货，退款会在五个工作日内完成。", &[RETURNS_ZH], &[]);
    check("快递通常需要1-2天。", &[RETURNS_ZH], &[]);
    check("Returns: **30 days**.", &["Returns are accepted for 30 days."], &[]);
    // The passage writes the unit once for a list of ranges.
    check("Standard delivery to EU zone 1 takes 3-5 business days.", &[SHIPPING_LIST], &[]);
    check("Express delivery to the US takes 2-4 business days.", &[SHIPPING_LIST], &[]);
    check("Orders paid on a business day before 14:00 ship that day.", &[SHIPPING_LIST], &[]);
    check(
        "Parcels may take a day or two longer around Christmas.",
        &["During busy periods, such as before Christmas, parcels may take a day or two longer."],
        &[],
    );
}

#[test]
fn invented_facts_fail() {
    check("You can return items within 30 weeks.", &[WINDOW], &["duration 30 weeks"]);
    check("The manager's phone number is 123-456-7890.", &[CONTACT], &["phone 123-456-7890"]);
    check("Standard UK shipping costs €5.95.", &[PRICES], &["amount €5.95"]);
    check("Standard UK shipping costs $4.95.", &[PRICES], &["amount $4.95"]);
    check("Refunds take 10 business days.", &[REFUNDS], &["duration 10 business days"]);
    check("My name is Ethan and I'm happy to help.", &[CONTACT], &["name Ethan"]);
    check("Our founder is John Smith.", &[CONTACT], &["name John", "name Smith"]);
    check("Our CEO can help.", &[CONTACT], &["name CEO"]);
    check(
        "Email help@northwind-threads.example for help.",
        &[CONTACT],
        &["email help@northwind-threads.example"],
    );
    check(
        "Track refunds at https://northwind-threads.example/refund-status.",
        &[WINDOW],
        &["url https://northwind-threads.example/refund-status"],
    );
    check("The phone line is open until 18:00.", &[CONTACT], &["time 18:00"]);
    check("Members get 15% off.", &[PRICES], &["percent 15%"]);
    check("UK delivery takes 2-4 business days.", &[SHIPPING], &["duration 2-4 business days"]);
    check("UK orders ship within 2 days.", &[SHIPPING], &["duration 2 days"]);
    check("UK delivery takes 4 business days.", &[SHIPPING], &["duration 4 business days"]);
    check(
        "Standard delivery to the UK takes 2 business days.",
        &[SHIPPING_LIST],
        &["duration 2 business days"],
    );
    check("Delivery takes one week.", &[SHIPPING], &["duration one week"]);
    check("Delivery takes about a week.", &[SHIPPING], &["duration about a week"]);
    check(
        "Standard delivery to EU zone 1 takes 3-5 weeks.",
        &[SHIPPING_LIST],
        &["duration 3-5 weeks"],
    );
    check("We have twelve stores.", &[SHIPPING], &["number twelve"]);
    check("The answer is 42.", &[SHIPPING], &["number 42"]);
    check("Your tracking number is RM123456789GB.", &[SHIPPING], &["code RM123456789GB"]);
    check("Returns are accepted until 3 December.", &[WINDOW], &["date 3 December"]);
    check("退款会在 7 个工作日内完成。", &[RETURNS_ZH], &["duration 7 个工作日"]);
    check("您可以在签收后四十天内退货。", &[RETURNS_ZH], &["duration 四十天"]);
    check("请拨打 400-820-8820 联系我们。", &[RETURNS_ZH], &["phone 400-820-8820"]);
    check("运费是 50 欧元。", &[SHIPPING_ZH], &["amount 50 欧元"]);
    // With no passages at all, any fact fails.
    check("Shipping takes 3 days.", &[], &["duration 3 days"]);
}

#[test]
fn reads_facts_in_their_normal_forms() {
    let facts = |text: &str| -> Vec<Fact> {
        extract(text, Names::Extract).into_iter().map(|f| f.fact).collect()
    };
    let check = |text: &str, expected: Vec<Fact>| assert_eq!(facts(text), expected, "{text}");
    let days = |low: i64, high: i64, unit: Unit| Fact::Duration {
        low: low * 1000,
        high: high * 1000,
        unit,
    };
    check("3–5 working days", vec![days(3, 5, Unit::BusinessDay)]);
    check("between three and five business days", vec![days(3, 5, Unit::BusinessDay)]);
    check("within a day", vec![days(1, 1, Unit::Day)]);
    check("on a business day", vec![]);
    check("a week or two", vec![days(1, 2, Unit::Week)]);
    check("一个工作日", vec![days(1, 1, Unit::BusinessDay)]);
    check("24h", vec![days(24, 24, Unit::Hour)]);
    check("5 or more business days", vec![days(5, 5, Unit::BusinessDay)]);
    check("两个星期", vec![days(2, 2, Unit::Week)]);
    check("一两天", vec![days(1, 2, Unit::Day)]);
    check("2026年", vec![Fact::Number(2_026_000)]);
    check("1,000 and 4,95", vec![Fact::Number(1_000_000), Fact::Number(4_950)]);
    check("£1,250.50", vec![Fact::Amount { currency: "GBP", value: 1_250_500 }]);
    check("noon", vec![Fact::Time(720)]);
    check("12am", vec![Fact::Time(0)]);
    check("晚上8点半", vec![Fact::Time(20 * 60 + 30)]);
    check("2026-08-05", vec![Fact::Date { year: Some(2026), month: 8, day: 5 }]);
    check("8月5日", vec![Fact::Date { year: None, month: 8, day: 5 }]);
    check("you may 2 times", vec![Fact::Number(2000)]);
    check("the one you ordered", vec![]);
    check("HTTPS://WWW.Example.com/Help/", vec![Fact::Url("example.com/help".to_owned())]);
    check(
        "Ask Emma O'Brien",
        vec![Fact::Name("emma".to_owned()), Fact::Name("o'brien".to_owned())],
    );
    check("a UK-based shop", vec![Fact::Name("uk".to_owned())]);
}

/// The shop's own texts are what a failed answer is replaced with, so
/// each must pass the check against itself.
#[test]
fn every_shipped_passage_supports_itself() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../faq");
    let mut checked = 0;
    for dir in ["faq/en", "faq/zh", "policies"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let outcome = check_answer(&text, &[&text], &AllowedFacts::new());
            assert!(outcome.passed, "{}: {:?}", path.display(), outcome.unsupported);
            checked += 1;
        }
    }
    assert!(checked > 100, "{checked}");
}

#[test]
fn allowed_facts_come_from_the_shop_profile() {
    let profile = ShopProfile::from_toml(include_str!("../../../../faq/shop.toml")).unwrap();
    let allowed = AllowedFacts::for_shop(&profile);
    let outcome = check_answer(
        "Contact Northwind Threads at support@northwind-threads.example or +44 20 7946 0321 (Mon-Fri 9:00-17:00).",
        &[],
        &allowed,
    );
    assert!(outcome.passed, "{outcome:?}");
    let outcome = check_answer("Call 0800 123 4567.", &[], &allowed);
    assert_eq!(outcome.reason().as_deref(), Some("unsupported phone \"0800 123 4567\""));
}

#[test]
fn order_facts_pass_the_check_against_their_own_data() {
    use crate::order_facts::order_facts;
    use crate::shop::OrderData;
    use crate::Language;
    let data = OrderData::from_json(include_str!("../../../../faq/orders.json")).unwrap();
    let allowed = AllowedFacts::new().with_currency("EUR");
    for order in &data.orders {
        let passage = serde_json::to_string(order).unwrap();
        for lang in Language::ALL {
            let facts = order_facts(order, "EUR", lang);
            let outcome = check_answer(&facts, &[&passage], &allowed);
            assert!(outcome.passed, "{facts}\n{outcome:?}");
        }
        // Another order's data does not support this order's facts.
        let other = data.orders.iter().find(|o| o.number != order.number).unwrap();
        let other = serde_json::to_string(other).unwrap();
        let outcome = check_answer(&order_facts(order, "EUR", Language::En), &[&other], &allowed);
        assert!(!outcome.passed, "{}", order.number);
    }
}

#[test]
fn half_a_unit_in_chinese_is_its_smaller_unit() {
    check("耳机保修半年 [1]。", &["耳机保修 6 个月。"], &[]);
    check("镜框收货后半个月内可以退换。", &["镜框可在收货后 15 天内退换。"], &[]);
    check("耳机保修半年 [1]。", &["耳机保修 1 年。"], &["duration 半年"]);
}

#[test]
fn invented_chinese_names_are_caught() {
    let names = |answer: &str, passage: &str| -> Vec<String> {
        invented_chinese_names(answer, crate::Language::Zh, &[passage], "用什么快递？")
            .into_iter()
            .map(|f| f.text)
            .collect()
    };
    let passage = "下单后 24 小时内发货，快递由韵达负责配送。";
    assert_eq!(names("由德邦物流配送 [1]。", passage), ["德邦物流"]);
    assert_eq!(names("您好，我是客服小美。", passage), ["小美"]);
    assert_eq!(names("由韵达快递配送 [1]。", passage), Vec::<String>::new());
    assert_eq!(names("也可以用其他物流寄回。", passage), Vec::<String>::new());
}
