//! Property tests of the parsers of outside input that live in this crate:
//! the websocket frame decoder ([`parse_client_frame`]), `shop.toml`
//! ([`ShopProfile::from_toml`]), `orders.json` ([`OrderData::from_json`])
//! and its dates. For any text and for mutations of valid inputs, each must
//! return a value or its typed error, never panic; valid frames, order data
//! and dates round-trip; and whatever a parser accepts can be used by the
//! code that reads it (order facts, return eligibility) without a panic.
//! Case counts keep the set to a few seconds in release; `PROPTEST_CASES`
//! raises them (docs/reliability.md).

use proptest::prelude::*;

use crate::mutations::{any_text, apply, config, mutated, mutation};
use crate::order_facts::order_facts;
use crate::policy::return_eligibility;
use crate::protocol::{parse_client_frame, ClientFrame, FrameLimits, Rating};
use crate::shop::{Customer, Date, Order, OrderData, OrderItem, OrderStatus, ShopProfile};
use crate::Language;

const PROFILE: &str = include_str!("../../../faq/shop.toml");
const ORDERS: &str = include_str!("../../../faq/orders.json");

/// No limit but the parser's own: deep nesting and long texts get through
/// the size check and reach the JSON parser.
const UNLIMITED: FrameLimits =
    FrameLimits { max_frame_bytes: usize::MAX, max_message_chars: usize::MAX };

fn visible_text(max: usize) -> impl Strategy<Value = String> {
    prop::string::string_regex(&format!("\\PC{{0,{max}}}[a-z中]\\PC{{0,{max}}}")).unwrap()
}

fn rating() -> impl Strategy<Value = Rating> {
    prop_oneof![Just(Rating::Up), Just(Rating::Down)]
}

/// Every client frame the parser must accept as it is.
fn client_frame() -> impl Strategy<Value = ClientFrame> {
    let text = || any::<String>();
    prop_oneof![
        (
            any::<u32>(),
            proptest::option::of(text()),
            any::<Option<u64>>(),
            proptest::option::of(text())
        )
            .prop_map(|(v, session, last_seq, lang)| ClientFrame::Hello {
                v,
                session,
                last_seq,
                lang
            }),
        ("[A-Za-z0-9-]{1,64}", visible_text(100))
            .prop_map(|(client_id, text)| ClientFrame::Message { client_id, text }),
        Just(ClientFrame::Stop),
        (any::<u64>(), rating(), proptest::option::of(visible_text(100))).prop_map(
            |(message_seq, rating, comment)| ClientFrame::Feedback { message_seq, rating, comment }
        ),
        (text(), text())
            .prop_map(|(order_number, email)| ClientFrame::VerifyOrder { order_number, email }),
        (text(), text())
            .prop_map(|(customer_id, signature)| ClientFrame::Identity { customer_id, signature }),
        (text(), proptest::option::of(prop::collection::vec(text(), 0..4)))
            .prop_map(|(order_number, skus)| ClientFrame::StartReturn { order_number, skus }),
        Just(ClientFrame::Handoff),
        Just(ClientFrame::Ping),
    ]
}

/// A frame's text and the mutations to make of it.
fn mutated_frame() -> impl Strategy<Value = String> {
    (client_frame(), prop::collection::vec(mutation(), 1..=4)).prop_map(|(frame, mutations)| {
        apply(&serde_json::to_string(&frame).expect("frames serialize"), &mutations)
    })
}

/// Parses `text` under `limits`: an accepted frame parses again to itself
/// from its own JSON, and a rejected one has an error frame to send.
fn check_frame(text: &str, limits: &FrameLimits) -> Result<(), TestCaseError> {
    match parse_client_frame(text, limits) {
        Ok(frame) => {
            let again = serde_json::to_string(&frame).expect("frames serialize");
            prop_assert_eq!(parse_client_frame(&again, limits), Ok(frame));
        }
        Err(error) => {
            prop_assert!(!error.to_string().is_empty());
            serde_json::to_string(&error.to_frame()).expect("error frames serialize");
        }
    }
    Ok(())
}

fn date() -> impl Strategy<Value = Date> {
    (1..=9999i32, 1..=12u8, 1..=31u8)
        .prop_filter_map("a real date", |(y, m, d)| Date::new(y, m, d).ok())
}

fn status() -> impl Strategy<Value = OrderStatus> {
    prop::sample::select(OrderStatus::ALL.to_vec())
}

/// An amount in cents, as shops write prices.
fn amount() -> impl Strategy<Value = f64> {
    (0..100_000_000i64).prop_map(|cents| cents as f64 / 100.0)
}

fn item() -> impl Strategy<Value = OrderItem> {
    (any::<String>(), any::<String>(), any::<String>(), any::<u32>(), amount()).prop_map(
        |(sku, name, category, quantity, unit_price)| OrderItem {
            sku,
            name,
            category,
            quantity,
            unit_price,
        },
    )
}

/// Order data that passes every check: unique customer ids and order
/// numbers, every order naming a customer of the file.
fn order_data() -> impl Strategy<Value = OrderData> {
    let customer = (any::<String>(), any::<String>());
    let order = (
        (
            any::<usize>(),
            status(),
            date(),
            proptest::option::of(date()),
            proptest::option::of(date()),
        ),
        (proptest::option::of(date()), proptest::option::of(any::<String>())),
        (prop::collection::vec(item(), 0..3), amount(), proptest::option::of(amount())),
    );
    (prop::collection::vec(customer, 1..4), prop::collection::vec(order, 0..5)).prop_map(
        |(customers, orders)| {
            let customers: Vec<Customer> = customers
                .into_iter()
                .enumerate()
                .map(|(i, (name, email))| Customer { id: format!("C{i}"), name, email })
                .collect();
            let orders = orders
                .into_iter()
                .enumerate()
                .map(
                    |(
                        i,
                        (
                            (owner, status, placed_at, paid_at, delivered_at),
                            (returned_at, carrier),
                            (items, total, shipping),
                        ),
                    )| Order {
                        number: format!("NW-{i}"),
                        customer_id: customers[owner % customers.len()].id.clone(),
                        status,
                        placed_at,
                        paid_at,
                        shipped_at: None,
                        delivered_at,
                        cancelled_at: None,
                        returned_at,
                        carrier,
                        tracking_number: None,
                        tracking_url: None,
                        shipping_country: Some("GB".to_owned()),
                        shipping_method: None,
                        items,
                        total,
                        shipping,
                    },
                )
                .collect();
            OrderData { customers, orders }
        },
    )
}

/// What the pipeline does with accepted order data: the order facts in
/// every language and the return decision, explained.
fn use_orders(data: &OrderData, profile: &ShopProfile, today: Date) {
    for order in &data.orders {
        for lang in Language::ALL {
            order_facts(order, &profile.currency, lang);
            return_eligibility(order, today, &profile.rules).explain(lang);
        }
    }
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn any_text_is_a_frame_or_a_typed_error(text in any_text()) {
        check_frame(&text, &FrameLimits::DEFAULT)?;
        check_frame(&text, &UNLIMITED)?;
    }

    #[test]
    fn mutated_frames_are_frames_or_typed_errors(text in mutated_frame()) {
        check_frame(&text, &FrameLimits::DEFAULT)?;
        check_frame(&text, &UNLIMITED)?;
    }

    #[test]
    fn valid_frames_round_trip(frame in client_frame()) {
        let text = serde_json::to_string(&frame).unwrap();
        prop_assert_eq!(parse_client_frame(&text, &FrameLimits::DEFAULT), Ok(frame));
    }

    #[test]
    fn any_text_is_a_date_or_a_typed_error(text in any_text()) {
        if let Ok(date) = text.parse::<Date>() {
            prop_assert_eq!(date.to_string(), text);
        }
    }

    #[test]
    fn dates_round_trip_and_day_arithmetic_never_panics(date in date(), days in any::<i32>()) {
        prop_assert_eq!(date.to_string().parse::<Date>(), Ok(date));
        let moved = date.add_days(days);
        prop_assert_eq!(moved.to_string().parse::<Date>(), Ok(moved));
        let (first, last) = (Date::new(1, 1, 1).unwrap(), Date::new(9999, 12, 31).unwrap());
        if moved != first && moved != last {
            prop_assert_eq!(date.days_until(moved), i64::from(days));
        }
    }
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn any_text_is_a_profile_or_a_typed_error(text in any_text()) {
        if let Ok(profile) = ShopProfile::from_toml(&text) {
            prop_assert!(!profile.name.is_empty() && !profile.currency.is_empty());
        }
    }

    #[test]
    fn a_mutated_profile_is_a_profile_or_a_typed_error(text in mutated(PROFILE), today in date()) {
        if let Ok(profile) = ShopProfile::from_toml(&text) {
            use_orders(&OrderData::from_json(ORDERS).unwrap(), &profile, today);
        }
    }

    #[test]
    fn any_text_is_order_data_or_a_typed_error(text in any_text()) {
        let _ = OrderData::from_json(&text);
    }

    #[test]
    fn mutated_order_data_is_order_data_or_a_typed_error(text in mutated(ORDERS), today in date()) {
        if let Ok(data) = OrderData::from_json(&text) {
            use_orders(&data, &ShopProfile::from_toml(PROFILE).unwrap(), today);
        }
    }

    #[test]
    fn valid_order_data_round_trips(data in order_data(), today in date()) {
        let text = serde_json::to_string(&data).unwrap();
        let parsed = OrderData::from_json(&text).unwrap();
        use_orders(&parsed, &ShopProfile::from_toml(PROFILE).unwrap(), today);
        prop_assert_eq!(parsed, data);
    }
}
