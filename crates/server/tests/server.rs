//! End-to-end tests of the chat server, as the chat widget and shop staff use it.
//!
//! Everything here is real: each test starts a [`Server`] on a loopback port
//! with the real SmolLM2-135M model (and MiniLM for hybrid search) from
//! `<workspace>/models`, a real tantivy index of the demo shop in `faq/`, and
//! a real SQLite file in a temporary directory. Shoppers are real websocket
//! clients (tokio-tungstenite) speaking the protocol of `docs/protocol.md`
//! with the frame types of `shopchat_core::protocol`; staff use the REST API
//! through the small HTTP/1.1 client at the bottom of this file.
//!
//! What is covered: a streamed grounded answer and its record; refusing what
//! the shop's data does not hold; orders and returns only for a verified
//! shopper, and never someone else's; handing over to a person and their
//! replies; every kind of bad input; rate limits; stopping, disconnecting and
//! resuming mid-conversation; 20 shoppers at once; staff access control,
//! review, search, export and re-indexing; health, readiness and metrics.
//!
//! Qwen is not loaded (it is several times slower): Chinese questions are
//! then answered with the best Chinese passage's own text. The index is
//! built once per test run and copied into each test's own data directory.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use shopchat_core::protocol::{
    AnswerAction, AnswerOutcome, ClientFrame, ErrorCode, HandoffStatus, Rating, ServerFrame,
    Source, Timings, PROTOCOL_VERSION,
};
use shopchat_core::Language;
use shopchat_pipeline::{Assistant, AssistantConfig, IndexStatus};
use shopchat_server::{Server, ServerConfig};
use shopchat_store::{
    ConversationId, Feedback, MessageState, Outcome, Role, Store, StoredMessage, Transcript,
};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

#[path = "../../../tests/fuzz/mutations.rs"]
mod mutations;

// ---------------------------------------------------------------------------
// The demo shop's facts the tests rely on (faq/faq/en, faq/orders.json).
// ---------------------------------------------------------------------------

/// Answered by `faq/shipping-times`: "standard delivery takes 2-3 business days to the UK".
const UK_DELIVERY: &str = "How long does standard delivery to the UK take?";
/// A question whose answer is a long list (`faq/payment-methods`), so that it
/// can be interrupted after its first delta.
const LONG_ANSWER: &str =
    "Which payment methods do you accept? Please list every one of them and explain Klarna.";
/// The longest answer the assistant generates (`AnswerSettings::default`).
const MAX_TOKENS: u64 = 160;

/// Emma Clarke's order that has shipped with DPD.
const EMMA_NAME: &str = "Emma Clarke";
const EMMA_EMAIL: &str = "emma.clarke@example.com";
const EMMA_ORDER: &str = "NW-101574";
const EMMA_TRACKING: &str = "15500003760321";
/// Emma's order delivered on 2026-08-05: its return window has closed.
const EMMA_OLD_ORDER: &str = "NW-100231";

/// Piotr Nowak's shipped order: another customer's, for Emma.
const PIOTR_ORDER: &str = "NW-101260";
const PIOTR_TRACKING: &str = "15500003747223";
const PIOTR_ITEM: &str = "Suede Penny Loafers";
const PIOTR_SKU: &str = "SH-403";

/// Mia Schneider's shoes, delivered 2026-11-23: returnable until 2026-12-23
/// (the demo data is dated 2026-11-28).
const MIA_NAME: &str = "Mia Schneider";
const MIA_EMAIL: &str = "mia.schneider@example.com";
const MIA_ORDER: &str = "NW-101296";
const MIA_CUSTOMER: &str = "C1024";
const MIA_SKU: &str = "SH-404";

/// Aoife Murphy's monogrammed tote, delivered 2026-11-27: personalised items
/// cannot be returned.
const AOIFE_EMAIL: &str = "aoife.murphy@example.com";
const AOIFE_ORDER: &str = "NW-101276";

const STAFF_NAME: &str = "Sam";
const STAFF_PASSWORD: &str = "correct-horse-battery";

// ---------------------------------------------------------------------------
// A knowledge question, streamed
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_knowledge_question_gets_a_streamed_grounded_answer() {
    let server = TestServer::start().await;
    let (mut shopper, welcome) = Shopper::join(server.addr, "en").await;
    assert!(!welcome.resumed);
    assert!(!welcome.session.is_empty() && !welcome.conversation_id.is_empty());

    let answer = shopper.ask("m-1", UK_DELIVERY).await;
    let ack = answer.ack_seq.expect("the message is acknowledged");
    assert!(answer.seq > ack, "the answer is stored after the question: {answer:#?}");
    assert!(
        matches!(answer.outcome, AnswerOutcome::Answered | AnswerOutcome::Replaced),
        "{answer:#?}"
    );

    // Grounded on the shop's own passages, about delivery.
    assert!(!answer.sources.is_empty(), "{answer:#?}");
    for source in &answer.sources {
        assert!(
            source.id.starts_with("faq/") || source.id.starts_with("policy/"),
            "unexpected source {source:?}"
        );
    }
    assert!(
        answer.sources.iter().any(|s| s.id.contains("shipping") || s.id.contains("delivery")),
        "no delivery passage among {:?}",
        answer.sources
    );

    // Streamed by the model.
    assert!(!answer.deltas.is_empty());
    if answer.outcome == AnswerOutcome::Answered {
        assert!(!answer.streamed.trim().is_empty());
    }
    assert!(answer.timings.tokens > 0, "{:?}", answer.timings);
    assert!(answer.timings.ttft_ms.is_some(), "{:?}", answer.timings);
    assert!(answer.timings.tokens <= MAX_TOKENS);

    // The passage says "2-3 business days to the UK".
    let text = answer.text.to_lowercase();
    assert!(
        (text.contains('2') && text.contains('3')) || text.contains("business day"),
        "the answer does not give the delivery time: {text:?}"
    );

    // The transcript holds the question and the answer the shopper saw.
    let transcript = server.transcript(&welcome.conversation_id).await;
    let question = message_at(&transcript, ack);
    assert_eq!(question.role, Role::Shopper);
    assert_eq!(question.text, UK_DELIVERY);
    assert_eq!(question.client_id.as_deref(), Some("m-1"));
    let stored = message_at(&transcript, answer.seq);
    assert_eq!(stored.role, Role::Assistant);
    assert_eq!(stored.state, MessageState::Complete);
    assert_eq!(stored.text.trim(), answer.text.trim());
    let details = stored.answer.as_ref().expect("the answer's details are recorded");
    assert_eq!(details.sources.len(), answer.sources.len());
    assert!(details.model.as_deref().is_some_and(|m| m.contains("smollm2")), "{details:?}");

    // Feedback on the answer is stored; rating again replaces it; rating
    // something that is not an answer is a bad request.
    shopper.send_frame(&feedback(answer.seq, Rating::Up, None)).await;
    shopper.ping().await;
    shopper.send_frame(&feedback(ack, Rating::Down, None)).await;
    shopper.expect_error(ErrorCode::BadRequest).await;
    shopper.send_frame(&feedback(answer.seq, Rating::Down, Some("Too vague"))).await;
    shopper.ping().await;
    let expected =
        Feedback { rating: shopchat_store::Rating::Down, comment: Some("Too vague".to_owned()) };
    let (server_ref, conversation, seq) = (&server, welcome.conversation_id.as_str(), answer.seq);
    let expected = &expected;
    poll("the feedback to be stored", move || async move {
        let transcript = server_ref.transcript(conversation).await;
        (message_at(&transcript, seq).feedback.as_ref() == Some(expected)).then_some(())
    })
    .await;

    drop(shopper);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_question_the_shop_cannot_answer_is_refused_without_inventing_a_number() {
    let server = TestServer::start().await;
    let (mut shopper, _) = Shopper::join(server.addr, "en").await;

    let answer = shopper.ask("m-1", "What is the phone number of your CEO?").await;
    assert!(
        matches!(answer.outcome, AnswerOutcome::Refused | AnswerOutcome::Handoff),
        "{answer:#?}"
    );
    assert!(!answer.text.trim().is_empty());
    assert!(
        longest_digit_run(&answer.text) < 6,
        "the answer contains something like a phone number: {:?}",
        answer.text
    );

    drop(shopper);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chinese_question_is_answered_in_chinese_from_a_chinese_passage() {
    let server = TestServer::start().await;
    let (mut shopper, _) = Shopper::join(server.addr, "zh").await;

    let answer = shopper.ask("m-1", "配送需要多长时间？").await;
    assert_eq!(answer.outcome, AnswerOutcome::Answered, "{answer:#?}");
    assert!(!answer.sources.is_empty());
    for source in &answer.sources {
        assert!(source.id.ends_with("@zh"), "not a Chinese passage: {source:?}");
    }
    assert!(answer.text.chars().any(is_cjk), "not Chinese: {:?}", answer.text);
    assert!(answer.text.contains("工作日"), "no delivery time: {:?}", answer.text);
    // No model wrote it (Qwen is not loaded): the passage's own text.
    assert_eq!(answer.timings.tokens, 0, "{:?}", answer.timings);
    assert_eq!(answer.timings.ttft_ms, None);

    drop(shopper);
    server.shutdown().await;
}

// ---------------------------------------------------------------------------
// Orders and returns
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_shopper_gets_their_order_status_and_an_unverified_one_does_not() {
    let server = TestServer::start().await;

    // Verified: the order's facts, from the order data.
    let (mut shopper, _) = Shopper::join(server.addr, "en").await;
    assert_eq!(shopper.verify(EMMA_ORDER, EMMA_EMAIL).await, EMMA_NAME);
    let answer = shopper.ask("m-1", &format!("Where is my order {EMMA_ORDER}?")).await;
    assert_eq!(answer.outcome, AnswerOutcome::Answered, "{answer:#?}");
    assert!(answer.text.contains(EMMA_TRACKING), "{:?}", answer.text);
    assert!(answer.text.contains("shipped"), "{:?}", answer.text);
    assert_ne!(answer.action, Some(AnswerAction::VerifyOrder));

    // A wrong e-mail address verifies nothing...
    let (mut stranger, _) = Shopper::join(server.addr, "en").await;
    stranger.send_frame(&verify_order(EMMA_ORDER, "someone.else@example.com")).await;
    stranger.expect_error(ErrorCode::NotVerified).await;
    // ...and the same question then gets the order form, not the order.
    let answer = stranger.ask("m-1", &format!("Where is my order {EMMA_ORDER}?")).await;
    assert_eq!(answer.outcome, AnswerOutcome::Answered, "{answer:#?}");
    assert_eq!(answer.action, Some(AnswerAction::VerifyOrder), "{answer:#?}");
    assert!(!answer.text.contains(EMMA_TRACKING), "{:?}", answer.text);
    assert!(!answer.text.contains("shipped"), "{:?}", answer.text);
    assert!(!answer.text.contains("Emma"), "{:?}", answer.text);

    drop((shopper, stranger));
    server.shutdown().await;
}

/// `tests/conversation/same-replies.yaml`, which the CLI's test plays
/// through the eval harness: the server must give the same replies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_gives_the_replies_the_harness_gives() {
    let server = TestServer::start().await;
    let path = workspace().join("tests/conversation/same-replies.yaml");
    let script: serde_norway::Value =
        serde_norway::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let texts = |value: &serde_norway::Value| -> Vec<String> {
        match value {
            serde_norway::Value::String(one) => vec![one.clone()],
            serde_norway::Value::Sequence(many) => {
                many.iter().map(|v| v.as_str().unwrap().to_owned()).collect()
            }
            _ => Vec::new(),
        }
    };
    let cases = script["cases"].as_sequence().unwrap();
    assert!(!cases.is_empty());
    for case in cases {
        let name = case["name"].as_str().unwrap();
        // No `lang` in hello, as the harness starts a conversation.
        let mut shopper = Shopper::connect(server.addr).await;
        let hello =
            ClientFrame::Hello { v: PROTOCOL_VERSION, session: None, last_seq: None, lang: None };
        shopper.hello(hello).await;
        for (n, turn) in case["turns"].as_sequence().unwrap().iter().enumerate() {
            let say = turn["say"].as_str().unwrap();
            let answer = shopper.ask(&format!("m-{n}"), say).await;
            let expect = &turn["expect"];
            let text = answer.text.to_lowercase();
            let what = format!("{name}, turn {}: {answer:#?}", n + 1);
            if let Some(outcome) = expect["outcome"].as_str() {
                assert_eq!(serde_json::to_value(answer.outcome).unwrap(), outcome, "{what}");
            }
            for needle in texts(&expect["contains"]) {
                assert!(text.contains(&needle.to_lowercase()), "no {needle:?} in {what}");
            }
            for needle in texts(&expect["not_contains"]) {
                assert!(!text.contains(&needle.to_lowercase()), "{needle:?} in {what}");
            }
            for cited in texts(&expect["cites"]) {
                assert!(answer.sources.iter().any(|s| s.id == cited), "no {cited} in {what}");
            }
            if let Some(lang) = expect["language"].as_str() {
                assert_eq!(Language::detect(&answer.text).code(), lang, "{what}");
            }
        }
        drop(shopper);
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_shopper_never_sees_another_customers_order() {
    let server = TestServer::start().await;
    let piotrs_details = [PIOTR_TRACKING, PIOTR_ITEM, PIOTR_SKU, "Piotr", "has shipped"];

    // Verified as Emma, asking about Piotr's order.
    let (mut emma, _) = Shopper::join(server.addr, "en").await;
    assert_eq!(emma.verify(EMMA_ORDER, EMMA_EMAIL).await, EMMA_NAME);
    let answer = emma.ask("m-1", &format!("Where is my order {PIOTR_ORDER}?")).await;
    assert_ne!(answer.outcome, AnswerOutcome::Error, "{answer:#?}");
    for detail in piotrs_details {
        assert!(!answer.text.contains(detail), "{detail:?} leaked: {:?}", answer.text);
    }
    // Nor can she return it.
    emma.send_frame(&start_return(PIOTR_ORDER)).await;
    emma.expect_error(ErrorCode::NotVerified).await;

    // Piotr's order number with Emma's e-mail address, in a message, does
    // not verify anyone.
    let (mut stranger, _) = Shopper::join(server.addr, "en").await;
    stranger
        .send_frame(&message(
            "m-1",
            &format!("My order is {PIOTR_ORDER} and my email is {EMMA_EMAIL}"),
        ))
        .await;
    let frames = stranger.settle(Duration::from_secs(3)).await;
    assert!(
        !frames.iter().any(|f| matches!(f, ServerFrame::Verified { .. })),
        "verified with someone else's order: {frames:#?}"
    );
    let everything = serde_json::to_string(&frames).unwrap();
    for detail in piotrs_details {
        assert!(!everything.contains(detail), "{detail:?} leaked: {everything}");
    }
    let answer = stranger.ask("m-2", &format!("Where is my order {PIOTR_ORDER}?")).await;
    assert_eq!(answer.action, Some(AnswerAction::VerifyOrder), "{answer:#?}");
    for detail in piotrs_details {
        assert!(!answer.text.contains(detail), "{detail:?} leaked: {:?}", answer.text);
    }

    drop((emma, stranger));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn returns_are_started_only_when_the_rules_allow_them() {
    let server = TestServer::start().await;

    // Delivered five days ago, shoes: returnable.
    let (mut mia, _) = Shopper::join(server.addr, "en").await;
    assert_eq!(mia.verify(MIA_ORDER, MIA_EMAIL).await, MIA_NAME);
    let answer = mia.ask("m-1", &format!("I want to return my order {MIA_ORDER}")).await;
    assert_eq!(answer.outcome, AnswerOutcome::Answered, "{answer:#?}");
    assert_eq!(
        answer.action,
        Some(AnswerAction::StartReturn { order_number: MIA_ORDER.to_owned() }),
        "{answer:#?}"
    );
    assert!(answer.text.contains("30 days"), "the rule is not stated: {:?}", answer.text);

    mia.send_frame(&start_return(MIA_ORDER)).await;
    let frames = mia.recv_until(|f| matches!(f, ServerFrame::ReturnStarted { .. })).await;
    let Some(ServerFrame::ReturnStarted { return_number, order_number }) = frames.last() else {
        unreachable!()
    };
    assert_eq!(order_number, MIA_ORDER);
    assert!(!return_number.is_empty());
    let returns = server.returns_for_order(MIA_ORDER).await;
    assert_eq!(returns.len(), 1, "{returns:?}");
    assert_eq!(&returns[0].return_number, return_number);
    assert_eq!(returns[0].customer_id, MIA_CUSTOMER);
    assert_eq!(returns[0].items, vec![MIA_SKU.to_owned()]);

    // Only a personalised item: refused, with the rule, and nothing stored.
    let (mut aoife, _) = Shopper::join(server.addr, "en").await;
    aoife.verify(AOIFE_ORDER, AOIFE_EMAIL).await;
    aoife.send_frame(&start_return(AOIFE_ORDER)).await;
    let refusal = aoife.read_answer().await;
    assert_eq!(refusal.outcome, AnswerOutcome::Refused, "{refusal:#?}");
    assert!(refusal.text.contains("personalised"), "{:?}", refusal.text);
    aoife.ping().await; // and no return_started after it
    assert!(server.returns_for_order(AOIFE_ORDER).await.is_empty());

    // Delivered in August: the 30-day window has closed.
    let (mut emma, _) = Shopper::join(server.addr, "en").await;
    emma.verify(EMMA_OLD_ORDER, EMMA_EMAIL).await;
    emma.send_frame(&start_return(EMMA_OLD_ORDER)).await;
    let refusal = emma.read_answer().await;
    assert_eq!(refusal.outcome, AnswerOutcome::Refused, "{refusal:#?}");
    assert!(refusal.text.contains("30 days"), "{:?}", refusal.text);
    emma.ping().await;
    assert!(server.returns_for_order(EMMA_OLD_ORDER).await.is_empty());

    drop((mia, aoife, emma));
    server.shutdown().await;
}

// ---------------------------------------------------------------------------
// A person
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handoff_reaches_staff_and_their_reply_reaches_the_shopper() {
    let server = TestServer::start().await;
    server.add_staff().await;
    let (mut shopper, welcome) = Shopper::join(server.addr, "en").await;
    let id = welcome.conversation_id.clone();
    // Another conversation, which needs no one.
    let (mut other, other_welcome) = Shopper::join(server.addr, "en").await;
    assert_eq!(other.ask("m-1", "hi").await.outcome, AnswerOutcome::Answered);

    shopper.send_frame(&ClientFrame::Handoff).await;
    let frames = shopper.recv_until(|f| matches!(f, ServerFrame::Handoff { .. })).await;
    assert_eq!(frames.last(), Some(&ServerFrame::Handoff { status: HandoffStatus::Requested }));

    let staff = StaffClient::login(server.addr).await;
    let (staff_ref, id_ref) = (&staff, &id);
    let listed = poll("the conversation to be listed for staff", move || async move {
        let listed = listed_ids(&staff_ref.get("/api/conversations?needs_human=true").await);
        listed.contains(id_ref).then_some(listed)
    })
    .await;
    assert!(!listed.contains(&other_welcome.conversation_id), "{listed:?}");

    let transcript = staff.get(&format!("/api/conversations/{id}")).await;
    assert_eq!(transcript.status, 200, "{}", transcript.text());
    let transcript = transcript.json();
    assert_eq!(transcript["conversation"]["id"], id.as_str());
    assert!(!transcript["conversation"]["needs_human"].is_null(), "{transcript}");

    // A staff reply arrives live, under the staff member's name.
    let text = "Hi, I'm Sam from Northwind Threads. How can I help?";
    let reply =
        staff.post(&format!("/api/conversations/{id}/reply"), json!({ "text": text })).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seq = reply.json()["seq"].as_u64().expect("the reply's seq");
    let frames = shopper.recv_until(|f| matches!(f, ServerFrame::StaffMessage { .. })).await;
    assert_eq!(
        frames.last(),
        Some(&ServerFrame::StaffMessage {
            seq,
            author: STAFF_NAME.to_owned(),
            text: text.to_owned()
        })
    );
    let stored = server.transcript(&id).await;
    let stored = message_at(&stored, seq);
    assert_eq!(stored.role, Role::Staff);
    assert_eq!(stored.author.as_deref(), Some(STAFF_NAME));

    // Resolved: the shopper is told, staff no longer see it as waiting, and
    // the assistant answers again.
    let resolved = staff.post(&format!("/api/conversations/{id}/resolve"), Value::Null).await;
    assert_eq!(resolved.status, 204, "{}", resolved.text());
    let frames = shopper.recv_until(|f| matches!(f, ServerFrame::Handoff { .. })).await;
    assert_eq!(frames.last(), Some(&ServerFrame::Handoff { status: HandoffStatus::Resolved }));
    let waiting = listed_ids(&staff.get("/api/conversations?needs_human=true").await);
    assert!(!waiting.contains(&id), "{waiting:?}");
    assert_eq!(shopper.ask("m-2", "hi").await.outcome, AnswerOutcome::Answered);

    drop((shopper, other));
    server.shutdown().await;
}

// ---------------------------------------------------------------------------
// Bad input and limits
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_get_error_frames_and_the_connection_stays_usable() {
    let server = TestServer::start().await;

    // Anything before hello is a bad request; hello still works after it.
    let mut shopper = Shopper::connect(server.addr).await;
    shopper.send_frame(&message("m-0", "hi")).await;
    shopper.expect_error(ErrorCode::BadRequest).await;
    let welcome = shopper.hello(hello("en")).await;
    assert!(!welcome.resumed);

    shopper.send_text(r#"{"type":"message","#).await;
    shopper.expect_error(ErrorCode::InvalidJson).await;
    shopper.ping().await;

    shopper.send(json!({ "type": "shout" })).await;
    shopper.expect_error(ErrorCode::UnknownType).await;
    shopper.ping().await;

    shopper.send(json!(["type", "ping"])).await;
    shopper.expect_error(ErrorCode::BadRequest).await;
    shopper.ping().await;

    shopper.send(json!({ "type": "message", "text": "hi" })).await;
    shopper.expect_error(ErrorCode::BadRequest).await;
    shopper.ping().await;

    shopper.send_frame(&message("m-1", "   ")).await;
    shopper.expect_error(ErrorCode::BadRequest).await;
    shopper.ping().await;

    shopper.send_frame(&message("m-2", &"a".repeat(2001))).await;
    shopper.expect_error(ErrorCode::TooLarge).await;
    shopper.ping().await;

    // Over the 64 KiB frame limit (and under the 1 MiB message limit).
    shopper.send_frame(&message("m-3", &"a".repeat(70_000))).await;
    shopper.expect_error(ErrorCode::TooLarge).await;
    shopper.ping().await;

    shopper.send_ws(Message::binary(vec![0u8, 159, 146, 150])).await;
    shopper.expect_error(ErrorCode::BinaryNotSupported).await;
    shopper.ping().await;

    shopper.send_frame(&feedback(999, Rating::Up, None)).await;
    shopper.expect_error(ErrorCode::BadRequest).await;
    shopper.ping().await;

    // Still a working conversation, and none of the rejected messages was stored.
    assert_eq!(shopper.ask("m-4", "hi").await.outcome, AnswerOutcome::Answered);
    let transcript = server.transcript(&welcome.conversation_id).await;
    let questions: Vec<&str> = transcript
        .messages
        .iter()
        .filter(|m| m.role == Role::Shopper)
        .map(|m| m.text.as_str())
        .collect();
    assert_eq!(questions, vec!["hi"]);

    // A protocol version the server does not speak: an error, then close 1002.
    let mut future_client = Shopper::connect(server.addr).await;
    future_client
        .send_frame(&ClientFrame::Hello { v: 2, session: None, last_seq: None, lang: None })
        .await;
    future_client.expect_error(ErrorCode::BadRequest).await;
    assert_eq!(future_client.close_code().await, Some(1002));

    // A websocket message over 1 MiB closes the connection (1009). The server
    // may close while the message is still being written, so a connection
    // that ends without a close frame is accepted too; one that stays open
    // is not.
    let (mut flooder, _) = Shopper::join(server.addr, "en").await;
    let huge =
        format!(r#"{{"type":"message","client_id":"m-1","text":"{}"}}"#, "a".repeat(1 << 20));
    let _ = flooder.ws.send(Message::text(huge)).await;
    match flooder.next_message().await {
        Some(Message::Close(Some(frame))) => assert_eq!(u16::from(frame.code), 1009),
        Some(Message::Close(None)) | None => {}
        Some(other) => panic!("the connection stayed open: {other:?}"),
    }
    // The server is unharmed.
    let (mut next, _) = Shopper::join(server.addr, "en").await;
    assert_eq!(next.ask("m-1", "hi").await.outcome, AnswerOutcome::Answered);

    drop((shopper, next));
    server.shutdown().await;
}

/// Mutated frames sent over a real socket, so that the decoder is fuzzed
/// where shoppers reach it.
const FUZZED_FRAMES: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzzed_frames_get_their_typed_error_and_only_bad_utf8_closes_the_socket() {
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::TestRunner;
    use shopchat_core::protocol::{parse_client_frame, FrameLimits};
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;

    let server = TestServer::start().await;
    let (mut shopper, _) = Shopper::join(server.addr, "en").await;
    let bases: Vec<String> = [
        hello("en"),
        message("m-1", "How long does delivery take?"),
        feedback(1, Rating::Up, Some("thanks")),
        verify_order(EMMA_ORDER, EMMA_EMAIL),
        start_return(EMMA_ORDER),
        ClientFrame::Ping,
    ]
    .iter()
    .map(|frame| serde_json::to_string(frame).unwrap())
    .collect();
    let frames =
        (proptest::sample::select(bases), proptest::collection::vec(mutations::mutation(), 1..=4))
            .prop_map(|(base, mutations)| mutations::apply(&base, &mutations));
    // The same frames every run: a failure here can be replayed.
    let mut runner = TestRunner::deterministic();
    let mut sent = 0;
    while sent < FUZZED_FRAMES {
        let text = frames.new_tree(&mut runner).unwrap().current();
        // Frames the decoder accepts would start answers; they are the
        // round-trip tests' business (crates/core/src/fuzz.rs).
        let Err(problem) = parse_client_frame(&text, &FrameLimits::DEFAULT) else { continue };
        shopper.send_text(&text).await;
        shopper.expect_error(problem.code()).await;
        sent += 1;
        if sent % 50 == 0 {
            shopper.ping().await;
        }
    }
    for bytes in [vec![], vec![0xff; 3], b"{\"type\":\"ping\"}".to_vec()] {
        shopper.send_ws(Message::binary(bytes)).await;
        shopper.expect_error(ErrorCode::BinaryNotSupported).await;
    }
    shopper.ping().await;

    // A text frame that is not UTF-8 breaks the websocket protocol itself:
    // that connection ends, and the server goes on.
    let invalid = Frame::message(
        b"{\"type\":\"ping\",\"x\":\"\xc3\x28\"}".to_vec(),
        OpCode::Data(Data::Text),
        true,
    );
    shopper.send_ws(Message::Frame(invalid)).await;
    match shopper.next_message().await {
        Some(Message::Close(_)) | None => {}
        Some(other) => panic!("the connection stayed open: {other:?}"),
    }
    let (mut next, _) = Shopper::join(server.addr, "en").await;
    next.ping().await;

    drop(next);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_and_failed_verifications_are_rate_limited() {
    let server = TestServer::start_with(|config| {
        config.limits.messages_per_minute = 3;
        config.limits.verify_failures = 2;
    })
    .await;

    // Greetings are answered without the model, so these are quick.
    let (mut chatty, welcome) = Shopper::join(server.addr, "en").await;
    for i in 0..3 {
        assert_eq!(chatty.ask(&format!("m-{i}"), "hi").await.outcome, AnswerOutcome::Answered);
    }
    chatty.send_frame(&message("m-3", "hi")).await;
    chatty.expect_error(ErrorCode::RateLimited).await;
    chatty.ping().await;
    let transcript = server.transcript(&welcome.conversation_id).await;
    assert_eq!(transcript.messages.iter().filter(|m| m.role == Role::Shopper).count(), 3);

    // Two failed verifications; the third attempt is refused even with the
    // right details.
    let (mut guesser, _) = Shopper::join(server.addr, "en").await;
    guesser.send_frame(&verify_order(EMMA_ORDER, "guess@example.com")).await;
    guesser.expect_error(ErrorCode::NotVerified).await;
    guesser.send_frame(&verify_order("NW-199999", EMMA_EMAIL)).await;
    guesser.expect_error(ErrorCode::NotVerified).await;
    guesser.send_frame(&verify_order(EMMA_ORDER, EMMA_EMAIL)).await;
    guesser.expect_error(ErrorCode::RateLimited).await;
    guesser.ping().await;

    // The limit is per client address too: a new connection does not reset it.
    let (mut again, _) = Shopper::join(server.addr, "en").await;
    again.send_frame(&verify_order(EMMA_ORDER, EMMA_EMAIL)).await;
    again.expect_error(ErrorCode::RateLimited).await;
    again.ping().await;

    drop((chatty, guesser, again));
    server.shutdown().await;

    // Per address as well: new conversations do not reset the count.
    let server = TestServer::start_with(|config| {
        config.limits.messages_per_minute_per_address = 3;
    })
    .await;
    let (mut first, _) = Shopper::join(server.addr, "en").await;
    let (mut second, _) = Shopper::join(server.addr, "en").await;
    assert_eq!(first.ask("m-1", "hi").await.outcome, AnswerOutcome::Answered);
    assert_eq!(second.ask("m-1", "hi").await.outcome, AnswerOutcome::Answered);
    assert_eq!(first.ask("m-2", "hi").await.outcome, AnswerOutcome::Answered);
    second.send_frame(&message("m-9", "hi")).await;
    second.expect_error(ErrorCode::RateLimited).await;
    drop((first, second));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_attempts_cannot_pass_the_failure_limits_together() {
    let server = TestServer::start_with(|config| {
        config.limits.login_failures = 3;
        config.limits.verify_failures = 2;
    })
    .await;

    // 20 wrong logins at once from one address: each is counted before its
    // password is checked, so no more than the limit get as far as a 401.
    let body = json!({ "name": STAFF_NAME, "password": "wrong password" });
    let logins = (0..20).map(|_| http(server.addr, "POST", "/api/login", &[], Some(&body)));
    let statuses: Vec<u16> =
        futures_util::future::join_all(logins).await.iter().map(|r| r.status).collect();
    assert_eq!(statuses.iter().filter(|&&s| s == 401).count(), 3, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|&&s| s == 429).count(), 17, "{statuses:?}");

    // 10 wrong verifications on parallel connections from one address.
    let mut guessers = Vec::new();
    for _ in 0..10 {
        guessers.push(Shopper::join(server.addr, "en").await.0);
    }
    let attempts = guessers.iter_mut().map(|guesser| async move {
        guesser.send_frame(&verify_order(EMMA_ORDER, "guess@example.com")).await;
        guesser.next_error().await
    });
    let codes = futures_util::future::join_all(attempts).await;
    let not_verified = codes.iter().filter(|&&c| c == ErrorCode::NotVerified).count();
    assert_eq!(not_verified, 2, "{codes:?}");
    assert!(codes.iter().all(|&c| matches!(c, ErrorCode::NotVerified | ErrorCode::RateLimited)));

    drop(guessers);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_caps_are_closed_with_a_reason() {
    let server = TestServer::start_with(|config| {
        config.limits.max_connections_per_address = 2;
    })
    .await;
    let (first, _) = Shopper::join(server.addr, "en").await;
    let (second, _) = Shopper::join(server.addr, "en").await;
    // The third from the same address is told why, and nothing else.
    let mut third = Shopper::connect_from(server.addr, None).await.expect("the upgrade");
    assert_eq!(third.close_code().await, Some(1013));
    // A closed connection frees its place.
    first.close().await;
    let mut again = None;
    for _ in 0..50 {
        let mut shopper = Shopper::connect_from(server.addr, None).await.expect("the upgrade");
        // Refused connections may be closed before the hello arrives.
        let hello = serde_json::to_string(&hello("en")).unwrap();
        let _ = shopper.ws.send(Message::text(hello)).await;
        match shopper.next_message().await {
            Some(Message::Text(_)) => {
                again = Some(shopper);
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert!(again.is_some(), "the place of a closed connection was not freed");
    drop((second, again));
    server.shutdown().await;

    // The overall cap.
    let server = TestServer::start_with(|config| config.limits.max_connections = 1).await;
    let (only, _) = Shopper::join(server.addr, "en").await;
    let mut over = Shopper::connect_from(server.addr, None).await.expect("the upgrade");
    assert_eq!(over.close_code().await, Some(1013));
    drop(only);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_requests_have_a_deadline_and_the_chat_socket_does_not() {
    let server = TestServer::start_with(|config| {
        config.limits.http_request_timeout = Duration::from_secs(1);
    })
    .await;
    // A client that sends a tenth of its body and then nothing (a slow
    // client holding a request open) gets 503 at the deadline.
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = "POST /api/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"name\":";
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut response = vec![0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(30), tcp.read(&mut response))
        .await
        .expect("an answer at the deadline")
        .unwrap();
    let response = String::from_utf8_lossy(&response[..read]);
    assert!(response.starts_with("HTTP/1.1 503"), "{response}");
    // The chat socket has no deadline: it outlives one.
    let (mut shopper, _) = Shopper::join(server.addr, "en").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    shopper.ping().await;
    drop(shopper);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_allow_no_inline_script_and_the_console_cannot_be_framed() {
    let server = TestServer::start().await;
    for path in ["/", "/console"] {
        let response = http(server.addr, "GET", path, &[], None).await;
        assert_eq!(response.status, 200);
        let policy = response.header("content-security-policy").expect("a policy");
        assert!(policy.contains("script-src 'self'"), "{path}: {policy}");
        assert!(!policy.contains("script-src 'self' 'unsafe-inline'"), "{path}: {policy}");
        assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
        // What the policy forbids must not be needed: no inline script.
        let page = response.text();
        assert!(!page.contains("<script>"), "{path} has an inline script");
        for script in page.split("<script").skip(1) {
            assert!(script.trim_start().starts_with("src=\"/"), "{path}: <script{script}");
        }
    }
    let console = http(server.addr, "GET", "/console", &[], None).await;
    assert!(console.header("content-security-policy").unwrap().contains("frame-ancestors 'none'"));
    assert_eq!(console.header("x-frame-options"), Some("DENY"));
    for path in ["/widget.js", "/console.js", "/demo.js"] {
        let response = http(server.addr, "GET", path, &[], None).await;
        assert_eq!(response.status, 200, "{path}");
        assert_eq!(response.header("x-content-type-options"), Some("nosniff"), "{path}");
        // Shops embed the widget in their own pages: no framing rule on it.
        assert_eq!(response.header("x-frame-options"), None, "{path}");
    }
    server.shutdown().await;
}

// ---------------------------------------------------------------------------
// Stopping, disconnecting, resuming
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_ends_the_answer_at_once_and_keeps_what_was_said() {
    let server = TestServer::start().await;
    let (mut shopper, welcome) = Shopper::join(server.addr, "en").await;

    // With nothing being answered, stop does nothing.
    shopper.send_frame(&ClientFrame::Stop).await;
    shopper.ping().await;

    shopper.send_frame(&message("m-1", LONG_ANSWER)).await;
    let reader = shopper.read_until_first_delta().await;
    // What the shopper has seen is already stored while the answer streams,
    // so a killed process cannot leave an empty answer behind a seen one.
    let streaming = server.transcript(&welcome.conversation_id).await;
    let streaming = streaming.messages.last().expect("the answer being streamed");
    assert_eq!(streaming.role, Role::Assistant);
    assert_eq!(streaming.state, MessageState::Streaming, "{streaming:#?}");
    assert!(!streaming.text.trim().is_empty(), "{streaming:#?}");
    shopper.send_frame(&ClientFrame::Stop).await;
    let stopped_at = Instant::now();
    let answer = shopper.finish_answer(reader).await;
    let took = stopped_at.elapsed();

    assert_ne!(answer.outcome, AnswerOutcome::Error, "{answer:#?}");
    assert!(took < Duration::from_secs(10), "answer_end came {took:?} after stop");
    assert!(
        answer.timings.tokens >= 1 && answer.timings.tokens < MAX_TOKENS,
        "{:?}",
        answer.timings
    );
    let stored = server.finished_answer(&welcome.conversation_id, answer.seq).await;
    assert_eq!(stored.state, MessageState::Partial, "{stored:#?}");
    assert!(!stored.text.trim().is_empty());

    // The conversation goes on.
    assert_eq!(shopper.ask("m-2", "hi").await.outcome, AnswerOutcome::Answered);

    drop(shopper);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_stopped_before_its_first_word_is_stopped_not_answered() {
    let server = TestServer::start().await;
    let (mut shopper, welcome) = Shopper::join(server.addr, "en").await;

    // The stop follows the message at once, so the session reads it right
    // after starting the answer: long before the model has read its
    // passages and written a word.
    shopper.send_frame(&message("m-1", LONG_ANSWER)).await;
    shopper.send_frame(&ClientFrame::Stop).await;
    let answer = shopper.read_answer().await;
    assert!(answer.deltas.is_empty(), "a word came before the stop: {answer:#?}");
    assert_eq!(answer.outcome, AnswerOutcome::Stopped, "{answer:#?}");
    assert_eq!(answer.text, "");

    let stored = server.finished_answer(&welcome.conversation_id, answer.seq).await;
    assert_eq!(stored.state, MessageState::Partial, "{stored:#?}");
    assert_eq!(stored.text, "");
    let details = stored.answer.as_ref().expect("the answer's details");
    assert_eq!(details.outcome, Outcome::Stopped, "{stored:#?}");

    // The conversation goes on.
    assert_eq!(shopper.ask("m-2", "hi").await.outcome, AnswerOutcome::Answered);

    drop(shopper);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shopper_leaving_mid_answer_stops_it_and_frees_the_model() {
    let server = TestServer::start().await;
    let (mut shopper, welcome) = Shopper::join(server.addr, "en").await;

    shopper.send_frame(&message("m-1", LONG_ANSWER)).await;
    let reader = shopper.read_until_first_delta().await;
    let seq = reader.seq.expect("answer_start before the first delta");
    drop(shopper); // the tab is closed: no close handshake

    let stored = server.finished_answer(&welcome.conversation_id, seq).await;
    assert_eq!(stored.state, MessageState::Partial, "{stored:#?}");
    assert!(!stored.text.trim().is_empty(), "what was streamed is kept: {stored:#?}");

    // The model is free for the next shopper.
    let (mut next, _) = Shopper::join(server.addr, "en").await;
    let answer = next.ask("m-1", UK_DELIVERY).await;
    assert_ne!(answer.outcome, AnswerOutcome::Error, "{answer:#?}");
    let addr = server.addr;
    poll("the model's queue to empty", move || async move {
        let metrics = http(addr, "GET", "/metrics", &[], None).await.text();
        (metric_sum(&metrics, "shopchat_queue_depth", None) == Some(0.0)).then_some(())
    })
    .await;

    drop(next);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnecting_shopper_resumes_with_a_replay_and_resends_safely() {
    let server = TestServer::start().await;
    let (mut shopper, welcome) = Shopper::join(server.addr, "en").await;
    let answer = shopper.ask("m-1", UK_DELIVERY).await;
    assert_ne!(answer.outcome, AnswerOutcome::Error, "{answer:#?}");
    let ack = answer.ack_seq.unwrap();
    shopper.close().await;

    // Having seen the acknowledgement but not the answer.
    let mut shopper = Shopper::connect(server.addr).await;
    let resumed = shopper.hello(resume(&welcome.session, Some(ack))).await;
    assert!(resumed.resumed);
    assert_eq!(resumed.conversation_id, welcome.conversation_id);
    let replay = shopper.read_answer().await;
    assert_eq!(replay.ack_seq, None, "the acknowledged message is not replayed");
    assert_eq!(replay.seq, answer.seq);
    assert_eq!(replay.deltas.len(), 1, "one delta with the final text: {replay:#?}");
    assert_eq!(replay.deltas[0].trim(), answer.text.trim());
    assert_eq!(replay.outcome, answer.outcome);
    let stored = server.transcript(&welcome.conversation_id).await;
    assert_eq!(message_at(&stored, answer.seq).text, replay.deltas[0]);

    // The same message again: acknowledged with its first seq, not answered twice.
    let count = stored.messages.len();
    shopper.send_frame(&message("m-1", UK_DELIVERY)).await;
    assert_eq!(shopper.recv().await, ServerFrame::Ack { client_id: "m-1".into(), seq: ack });
    let later = shopper.settle(Duration::from_secs(3)).await;
    assert!(
        !later.iter().any(|f| matches!(f, ServerFrame::AnswerStart { .. })),
        "answered twice: {later:#?}"
    );
    assert_eq!(server.transcript(&welcome.conversation_id).await.messages.len(), count);
    shopper.close().await;

    // Without last_seq: everything, the question as its ack first.
    let mut shopper = Shopper::connect(server.addr).await;
    let again = shopper.hello(resume(&resumed.session, None)).await;
    assert!(again.resumed);
    let replay = shopper.read_answer().await;
    assert_eq!(replay.ack_seq, Some(ack));
    assert!(matches!(&replay.frames[0], ServerFrame::Ack { client_id, .. } if client_id == "m-1"));
    assert_eq!(replay.seq, answer.seq);
    assert_eq!(replay.text.trim(), answer.text.trim());

    // An unknown session starts afresh.
    let mut stranger = Shopper::connect(server.addr).await;
    let fresh = stranger.hello(resume("not-a-session-of-this-server", Some(3))).await;
    assert!(!fresh.resumed);
    assert_ne!(fresh.conversation_id, welcome.conversation_id);

    drop((shopper, stranger));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_longer_than_the_outbox_resumes_whole() {
    // An outbox of 8 frames; the replay of 12 exchanges is about 60 frames.
    let server = TestServer::start_with(|config| {
        config.limits.outbox_frames = 8;
        config.limits.messages_per_minute = 100;
    })
    .await;
    let (mut shopper, welcome) = Shopper::join(server.addr, "en").await;
    for i in 0..12 {
        // Greetings are answered without the model.
        assert_eq!(shopper.ask(&format!("m-{i}"), "hi").await.outcome, AnswerOutcome::Answered);
    }
    shopper.close().await;

    let mut shopper = Shopper::connect(server.addr).await;
    let resumed = shopper.hello(resume(&welcome.session, None)).await;
    assert!(resumed.resumed);
    for i in 0..12 {
        let replay = shopper.read_answer().await;
        assert!(
            matches!(&replay.frames[0], ServerFrame::Ack { client_id, .. } if *client_id == format!("m-{i}")),
            "{replay:#?}"
        );
        assert_eq!(replay.outcome, AnswerOutcome::Answered);
    }
    // Still connected: the replay was not taken for a slow reader.
    shopper.ping().await;
    drop(shopper);
    server.shutdown().await;
}

// ---------------------------------------------------------------------------
// Load
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_shoppers_at_once_are_all_answered() {
    const QUESTIONS: [&str; 5] = [
        UK_DELIVERY,
        "Which payment methods do you accept?",
        "Do gift cards expire?",
        "Do you ship to the United States?",
        "How do I reset my password?",
    ];
    const OPENINGS: [&str; 4] = ["", "Quick question: ", "Could you tell me: ", "Please help: "];
    let server = TestServer::start().await;
    let addr = server.addr;

    let shoppers = (0..20).map(move |i| async move {
        let question = format!("{}{}", OPENINGS[i / 5], QUESTIONS[i % 5]);
        let (mut shopper, _) = Shopper::join(addr, "en").await;
        shopper.timeout = Duration::from_secs(240);
        let answer = shopper.ask("m-1", &question).await; // panics on `busy`
        (question, answer)
    });
    let answers =
        tokio::time::timeout(Duration::from_secs(240), futures_util::future::join_all(shoppers))
            .await
            .expect("all 20 shoppers answered within 4 minutes");

    assert_eq!(answers.len(), 20);
    for (question, answer) in &answers {
        assert_ne!(answer.outcome, AnswerOutcome::Error, "{question}: {answer:#?}");
        assert!(!answer.text.trim().is_empty(), "{question}: {answer:#?}");
    }

    server.shutdown().await;
}

// ---------------------------------------------------------------------------
// Staff API
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_routes_need_credentials_and_foreign_origins_are_refused() {
    let server = TestServer::start_with(|config| {
        config.allowed_origins = vec!["https://shop.example".to_owned()];
    })
    .await;
    server.add_staff().await;
    let addr = server.addr;

    let id = "c-nonexistent";
    let routes: Vec<(&str, String, Option<Value>)> = vec![
        ("POST", "/api/logout".into(), None),
        ("GET", "/api/me".into(), None),
        ("GET", "/api/conversations".into(), None),
        ("GET", "/api/conversations?needs_human=true&limit=5".into(), None),
        ("GET", format!("/api/conversations/{id}"), None),
        ("GET", "/api/export?format=jsonl".into(), None),
        ("GET", "/api/export?format=csv".into(), None),
        ("POST", format!("/api/conversations/{id}/tags"), Some(json!({ "tag": "vip" }))),
        ("DELETE", format!("/api/conversations/{id}/tags/vip"), None),
        ("PUT", format!("/api/conversations/{id}/note"), Some(json!({ "note": "hello" }))),
        ("POST", format!("/api/conversations/{id}/reply"), Some(json!({ "text": "hello" }))),
        ("POST", format!("/api/conversations/{id}/resolve"), None),
        ("POST", "/api/reindex".into(), None),
        ("GET", "/api/events".into(), None),
    ];
    for (method, path, body) in &routes {
        let response = http(addr, method, path, &[], body.as_ref()).await;
        assert_eq!(response.status, 401, "{method} {path}: {}", response.text());
        assert!(response.json()["error"].is_string(), "{method} {path}: {}", response.text());
    }
    let forged =
        http(addr, "GET", "/api/me", &[("Authorization", "Bearer 0123abcd".into())], None).await;
    assert_eq!(forged.status, 401);

    // Wrong password, unknown name: both 401.
    for (name, password) in [(STAFF_NAME, "wrong-password"), ("Mallory", STAFF_PASSWORD)] {
        let body = json!({ "name": name, "password": password });
        let response = http(addr, "POST", "/api/login", &[], Some(&body)).await;
        assert_eq!(response.status, 401, "{name}: {}", response.text());
        assert!(response.json()["error"].is_string());
    }

    // The right password: a token and a session cookie, both of which work.
    let body = json!({ "name": STAFF_NAME, "password": STAFF_PASSWORD });
    let login = http(addr, "POST", "/api/login", &[], Some(&body)).await;
    assert_eq!(login.status, 200, "{}", login.text());
    let session = login.json();
    let token = session["token"].as_str().expect("a token").to_owned();
    assert_eq!(session["name"], STAFF_NAME);
    assert!(!session["expires_at"].is_null(), "{session}");
    let bearer = ("Authorization", format!("Bearer {token}"));
    let me = http(addr, "GET", "/api/me", std::slice::from_ref(&bearer), None).await;
    assert_eq!(me.status, 200, "{}", me.text());
    assert_eq!(me.json()["name"], STAFF_NAME);
    assert!(!me.json()["id"].is_null());
    let cookie = login.header("set-cookie").expect("login sets the session cookie");
    let cookie = ("Cookie", cookie.split(';').next().unwrap().to_owned());
    let me = http(addr, "GET", "/api/me", std::slice::from_ref(&cookie), None).await;
    assert_eq!(me.status, 200, "{}", me.text());

    // Logged out: neither works any more.
    let logout = http(addr, "POST", "/api/logout", std::slice::from_ref(&bearer), None).await;
    assert_eq!(logout.status, 204, "{}", logout.text());
    assert_eq!(http(addr, "GET", "/api/me", &[bearer], None).await.status, 401);
    assert_eq!(http(addr, "GET", "/api/me", &[cookie], None).await.status, 401);

    // The chat socket: same origin, listed origins and no Origin are let in;
    // other origins are not.
    for origin in [Some("https://shop.example".to_owned()), Some(format!("http://{addr}")), None] {
        let mut shopper = Shopper::connect_from(addr, origin.as_deref())
            .await
            .unwrap_or_else(|e| panic!("origin {origin:?} refused: {e}"));
        shopper.hello(hello("en")).await;
    }
    // The scheme counts: an https page is not this plain-http server.
    for foreign in ["https://evil.example".to_owned(), format!("https://{addr}")] {
        match Shopper::connect_from(addr, Some(&foreign)).await {
            Ok(_) => panic!("a foreign origin was let in: {foreign}"),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert!(response.status().is_client_error(), "{:?}", response.status())
            }
            Err(other) => panic!("unexpected handshake error: {other}"),
        }
    }

    // Cookie-authenticated changes must come from this origin, scheme and all.
    let login = http(addr, "POST", "/api/login", &[], Some(&body)).await;
    let cookie = login.header("set-cookie").unwrap().split(';').next().unwrap().to_owned();
    let note = json!({ "note": "hello" });
    let path = format!("/api/conversations/{id}/note");
    for origin in [format!("https://{addr}"), "https://evil.example".to_owned()] {
        let headers = [("Cookie", cookie.clone()), ("Origin", origin.clone())];
        let response = http(addr, "PUT", &path, &headers, Some(&note)).await;
        assert_eq!(response.status, 403, "{origin}: {}", response.text());
    }
    let own = [("Cookie", cookie.clone()), ("Origin", format!("http://{addr}"))];
    assert_eq!(http(addr, "PUT", &path, &own, Some(&note)).await.status, 404);

    // Behind a proxy that ended TLS, the cookie is Secure and the https
    // origin is the server's own.
    let proxied = [("X-Forwarded-Proto", "https".to_owned())];
    let login = http(addr, "POST", "/api/login", &proxied, Some(&body)).await;
    assert_eq!(login.status, 200, "{}", login.text());
    let set_cookie = login.header("set-cookie").unwrap();
    assert!(set_cookie.contains("; Secure"), "{set_cookie}");
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let headers = [
        ("Cookie", cookie),
        ("Origin", format!("https://{addr}")),
        ("X-Forwarded-Proto", "https".to_owned()),
    ];
    assert_eq!(http(addr, "PUT", &path, &headers, Some(&note)).await.status, 404);
    assert!(!http(addr, "POST", "/api/login", &[], Some(&body))
        .await
        .header("set-cookie")
        .unwrap()
        .contains("Secure"));

    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_review_tag_note_search_export_and_reindex() {
    let server = TestServer::start().await;
    server.add_staff().await;
    let staff = StaffClient::login(server.addr).await;

    // Two conversations: a greeting rated up, and a thank-you.
    let (mut greeter, greeted) = Shopper::join(server.addr, "en").await;
    let greeting = greeter.ask("m-1", "hello there").await;
    assert_eq!(greeting.outcome, AnswerOutcome::Answered);
    greeter.send_frame(&feedback(greeting.seq, Rating::Up, None)).await;
    greeter.ping().await;
    let (mut thanker, thanked) = Shopper::join(server.addr, "en").await;
    assert_eq!(thanker.ask("m-1", "thanks a lot").await.outcome, AnswerOutcome::Answered);
    let (a, b) = (greeted.conversation_id.as_str(), thanked.conversation_id.as_str());

    let all = listed_ids(&staff.get("/api/conversations").await);
    assert!(all.contains(&a.to_owned()) && all.contains(&b.to_owned()), "{all:?}");
    assert_eq!(listed_ids(&staff.get("/api/conversations?limit=1").await).len(), 1);
    let rated = listed_ids(&staff.get("/api/conversations?feedback=up").await);
    assert_eq!(rated, vec![a.to_owned()]);
    let answered = listed_ids(&staff.get("/api/conversations?outcome=answered").await);
    assert!(answered.contains(&a.to_owned()) && answered.contains(&b.to_owned()));
    assert!(listed_ids(&staff.get("/api/conversations?outcome=handoff").await).is_empty());
    let found = listed_ids(&staff.get("/api/conversations?q=hello").await);
    assert_eq!(found, vec![a.to_owned()]);

    // Tags and notes.
    let tagged = staff.post(&format!("/api/conversations/{a}/tags"), json!({ "tag": "vip" })).await;
    assert_eq!(tagged.status, 204, "{}", tagged.text());
    assert_eq!(listed_ids(&staff.get("/api/conversations?tag=vip").await), vec![a.to_owned()]);
    let noted =
        staff.put(&format!("/api/conversations/{a}/note"), json!({ "note": "Called back" })).await;
    assert_eq!(noted.status, 204, "{}", noted.text());
    let transcript = staff.get(&format!("/api/conversations/{a}")).await;
    assert_eq!(transcript.status, 200);
    let transcript = transcript.json();
    assert_eq!(transcript["conversation"]["tags"], json!(["vip"]));
    assert_eq!(transcript["conversation"]["note"], "Called back");
    let texts: Vec<&str> = transcript["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert_eq!(texts.first(), Some(&"hello there"), "{transcript}");
    let untagged = staff.delete(&format!("/api/conversations/{a}/tags/vip")).await;
    assert_eq!(untagged.status, 204, "{}", untagged.text());
    assert!(listed_ids(&staff.get("/api/conversations?tag=vip").await).is_empty());

    let missing = staff.get("/api/conversations/c-does-not-exist").await;
    assert_eq!(missing.status, 404);
    assert!(missing.json()["error"].is_string());

    // Exports: one transcript a line, or CSV rows; filters apply.
    let jsonl = staff.get("/api/export?format=jsonl").await;
    assert_eq!(jsonl.status, 200, "{}", jsonl.text());
    // Streamed as the store reads it, not built in memory first.
    assert_eq!(jsonl.header("transfer-encoding"), Some("chunked"), "{:?}", jsonl.headers);
    assert_eq!(jsonl.header("content-length"), None);
    let exported: Vec<String> = jsonl
        .text()
        .lines()
        .map(|line| {
            let transcript: Value = serde_json::from_str(line).expect("a JSON line");
            transcript["conversation"]["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert!(exported.contains(&a.to_owned()) && exported.contains(&b.to_owned()), "{exported:?}");
    let filtered = staff.get("/api/export?format=jsonl&feedback=up").await.text();
    assert_eq!(filtered.lines().count(), 1, "{filtered}");
    assert!(filtered.contains(a));
    let csv = staff.get("/api/export?format=csv").await;
    assert_eq!(csv.status, 200);
    let csv = csv.text();
    assert!(csv.lines().count() >= 5, "a header and a row per message: {csv}");
    assert!(csv.contains(a) && csv.contains(b) && csv.contains("hello there"), "{csv}");

    // Re-indexing builds a new generation, which the assistant then uses.
    let before = server.index_generation();
    let reindex = staff.post("/api/reindex", Value::Null).await;
    assert_eq!(reindex.status, 200, "{}", reindex.text());
    let generation = reindex.json()["generation"].as_u64().expect("the new generation");
    assert!(generation > before, "{generation} after {before}");
    assert_eq!(server.index_generation(), generation);
    let (mut shopper, _) = Shopper::join(server.addr, "zh").await;
    let answer = shopper.ask("m-1", "配送需要多长时间？").await;
    assert_eq!(answer.outcome, AnswerOutcome::Answered, "{answer:#?}");

    drop((greeter, thanker, shopper));
    server.shutdown().await;
}

// ---------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_the_model_fails_one_answer_and_the_server_stays_ready() {
    let server = TestServer::start().await;
    let worker = server.server.assistant().models()[0].worker.clone();
    let (mut shopper, welcome) = Shopper::join(server.addr, "en").await;

    shopper.send_frame(&message("m-1", LONG_ANSWER)).await;
    let reader = shopper.read_until_first_delta().await;
    worker.inject_fault(shopchat_inference::Fault::PanicInStep);
    let answer = shopper.finish_answer(reader).await;
    assert_eq!(answer.outcome, AnswerOutcome::Error, "{answer:#?}");
    let stored = server.finished_answer(&welcome.conversation_id, answer.seq).await;
    assert_eq!(stored.state, MessageState::Failed, "{stored:#?}");

    let ready = http(server.addr, "GET", "/readyz", &[], None).await;
    assert_eq!(ready.status, 200, "{}", ready.text());
    assert_eq!(ready.json()["models_down"], json!([]));
    // The next question is answered by the model as before.
    let next = shopper.ask("m-2", UK_DELIVERY).await;
    assert!(next.timings.ttft_ms.is_some(), "{next:#?}");
    assert_ne!(next.outcome, AnswerOutcome::Error, "{next:#?}");

    drop(shopper);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_metrics_and_a_clean_shutdown() {
    let server = TestServer::start_with(|config| {
        config.assistant.worker.passage_cache_bytes = 256 << 20;
    })
    .await;
    let addr = server.addr;

    let health = http(addr, "GET", "/healthz", &[], None).await;
    assert_eq!((health.status, health.text().trim()), (200, "ok"));
    let ready = http(addr, "GET", "/readyz", &[], None).await;
    assert_eq!(ready.status, 200, "{}", ready.text());

    let (mut shopper, _) = Shopper::join(addr, "en").await;
    let answer = shopper.ask("m-1", UK_DELIVERY).await;
    assert!(answer.timings.ttft_ms.is_some(), "a model answered: {answer:#?}");
    // The same question from another shopper: its passages come from the
    // passage cache, which /metrics counts.
    let (mut other, _) = Shopper::join(addr, "en").await;
    let again = other.ask("m-1", UK_DELIVERY).await;
    assert!(again.timings.ttft_ms.is_some(), "a model answered: {again:#?}");
    drop(other);

    let metrics = http(addr, "GET", "/metrics", &[], None).await;
    assert_eq!(metrics.status, 200);
    let metrics = metrics.text();
    for name in [
        "shopchat_answers_total",
        "shopchat_ttft_seconds_bucket",
        "shopchat_queue_depth",
        "shopchat_open_sessions",
        "shopchat_query_embeddings_waiting",
    ] {
        assert!(metrics.contains(name), "no {name} in\n{metrics}");
    }
    let answers = metric_sum(&metrics, "shopchat_answers_total", None);
    assert!(answers.is_some_and(|n| n >= 1.0), "{answers:?} in\n{metrics}");
    let timed = metric_sum(&metrics, "shopchat_ttft_seconds_bucket", Some(r#"le="+Inf""#));
    assert!(timed.is_some_and(|n| n >= 1.0), "{timed:?} in\n{metrics}");
    for name in ["shopchat_passage_cache_hits_total", "shopchat_passage_cache_bytes"] {
        let value = metric_sum(&metrics, name, None);
        assert!(value.is_some_and(|n| n > 0.0), "{name} {value:?} in\n{metrics}");
    }

    // Shutting down tells the connected shopper to come back later (1001).
    let (stopped, code) = tokio::join!(
        tokio::time::timeout(Duration::from_secs(30), server.server.shutdown()),
        shopper.close_code()
    );
    stopped.expect("shut down in time").expect("shut down cleanly");
    assert_eq!(code, Some(1001));
}

// ---------------------------------------------------------------------------
// The server under test
// ---------------------------------------------------------------------------

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The demo shop with SmolLM2 only, its index in `data_dir`.
fn assistant_config(data_dir: &Path) -> AssistantConfig {
    let mut config = AssistantConfig::standard();
    config.faq_dir = workspace().join("faq");
    config.models_dir = workspace().join("models");
    config.data_dir = data_dir.to_path_buf();
    config.models.extra = None;
    config
}

/// The demo shop's index, built once per test run (embedding every passage
/// takes a while) by the same code the server runs at its first start.
fn prebuilt_index() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("server-tests-index");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (assistant, status) =
            Assistant::load(&assistant_config(&dir)).expect("the demo shop and models load");
        assert!(matches!(status, IndexStatus::Built { .. }), "{status:?}");
        drop(assistant);
        dir
    })
}

/// An index written with an older layout is derived data: the server
/// rebuilds it from the shop's files instead of refusing to start.
#[test]
fn an_index_of_an_older_format_is_rebuilt_at_start() {
    let data = tempfile::tempdir().unwrap();
    copy_dir(prebuilt_index(), data.path());
    let index = data.path().join("index");
    let current = std::fs::read_to_string(index.join("CURRENT")).unwrap();
    let manifest = index.join(current.trim()).join("manifest.json");
    let mut old: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    old["format"] = serde_json::json!(1);
    std::fs::write(&manifest, old.to_string()).unwrap();

    let (_assistant, status) = Assistant::load(&assistant_config(data.path())).unwrap();
    assert!(matches!(status, IndexStatus::Built { passages, .. } if passages > 100), "{status:?}");
    shopchat_retrieval::IndexHandle::open(data.path(), None).expect("the rebuilt index opens");
}

/// Vectors from other embedders than the installed ones (as after the
/// default changed to one embedder per language) are rebuilt at start, not
/// left to keyword search; an index with the right vectors is opened as is.
#[test]
fn an_index_with_another_embedders_vectors_is_rebuilt_at_start() {
    let data = tempfile::tempdir().unwrap();
    copy_dir(prebuilt_index(), data.path());
    let (assistant, status) = Assistant::load(&assistant_config(data.path())).unwrap();
    assert!(matches!(status, IndexStatus::Opened { .. }), "{status:?}");
    drop(assistant);

    let mut english_only = assistant_config(data.path());
    english_only.embedding_model = Some("minilm-l6".into());
    let (_assistant, status) = Assistant::load(&english_only).unwrap();
    assert!(matches!(status, IndexStatus::Built { passages, .. } if passages > 100), "{status:?}");
    let vectors = |dir: &Path| -> serde_json::Value {
        let index = dir.join("index");
        let current = std::fs::read_to_string(index.join("CURRENT")).unwrap();
        let path = index.join(current.trim()).join("vectors.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let model = vectors(data.path())["model_id"].as_str().unwrap().to_owned();
    assert!(model.starts_with("minilm-l6@"), "{model}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A running server with its own data directory and database.
struct TestServer {
    server: Server,
    addr: SocketAddr,
    data_dir: PathBuf,
    _dir: TempDir,
}

impl TestServer {
    async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    async fn start_with(configure: impl FnOnce(&mut ServerConfig)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        copy_dir(&prebuilt_index().join("index"), &data_dir.join("index"));
        let mut config =
            ServerConfig::new(assistant_config(&data_dir), dir.path().join("shopchat.db"));
        config.addr = "127.0.0.1:0".parse().unwrap();
        configure(&mut config);
        let server = Server::start(config).await.expect("the server starts");
        let addr = server.local_addr();
        TestServer { server, addr, data_dir, _dir: dir }
    }

    async fn shutdown(self) {
        tokio::time::timeout(Duration::from_secs(30), self.server.shutdown())
            .await
            .expect("the server shuts down in time")
            .expect("the server shuts down cleanly");
    }

    async fn store<T: Send + 'static>(
        &self,
        query: impl FnOnce(&dyn Store) -> T + Send + 'static,
    ) -> T {
        let store = self.server.store();
        tokio::task::spawn_blocking(move || query(store.as_ref())).await.unwrap()
    }

    async fn transcript(&self, conversation: &str) -> Transcript {
        let id = ConversationId::from(conversation);
        self.store(move |store| store.transcript(&id))
            .await
            .expect("the store answers")
            .unwrap_or_else(|| panic!("no conversation {conversation}"))
    }

    async fn returns_for_order(&self, order: &str) -> Vec<shopchat_store::ReturnRecord> {
        let order = order.to_owned();
        self.store(move |store| store.returns_for_order(&order)).await.expect("the store answers")
    }

    /// The answer `seq` once it is no longer streaming.
    async fn finished_answer(&self, conversation: &str, seq: u64) -> StoredMessage {
        poll("the answer to be finished in the store", move || async move {
            let transcript = self.transcript(conversation).await;
            let message = message_at(&transcript, seq).clone();
            (message.state != MessageState::Streaming).then_some(message)
        })
        .await
    }

    async fn add_staff(&self) {
        self.store(|store| store.add_staff(STAFF_NAME, STAFF_PASSWORD))
            .await
            .expect("the staff account is created");
    }

    /// The index generation `CURRENT` points to.
    fn index_generation(&self) -> u64 {
        let current = std::fs::read_to_string(self.data_dir.join("index/CURRENT")).unwrap();
        current.trim().trim_start_matches("gen-").parse().unwrap()
    }
}

fn message_at(transcript: &Transcript, seq: u64) -> &StoredMessage {
    transcript
        .messages
        .iter()
        .find(|m| u64::from(m.seq) == seq)
        .unwrap_or_else(|| panic!("no message {seq} in {transcript:#?}"))
}

/// Calls `probe` every 100 ms until it gives a value, for up to 10 seconds.
async fn poll<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------
// A shopper: the chat widget's side of the websocket
// ---------------------------------------------------------------------------

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

struct Shopper {
    ws: Socket,
    /// How long to wait for the next frame.
    timeout: Duration,
}

#[derive(Debug)]
struct Welcome {
    session: String,
    conversation_id: String,
    resumed: bool,
}

fn hello(lang: &str) -> ClientFrame {
    ClientFrame::Hello {
        v: PROTOCOL_VERSION,
        session: None,
        last_seq: None,
        lang: Some(lang.into()),
    }
}

fn resume(session: &str, last_seq: Option<u64>) -> ClientFrame {
    ClientFrame::Hello { v: PROTOCOL_VERSION, session: Some(session.into()), last_seq, lang: None }
}

fn message(client_id: &str, text: &str) -> ClientFrame {
    ClientFrame::Message { client_id: client_id.into(), text: text.into() }
}

fn feedback(seq: u64, rating: Rating, comment: Option<&str>) -> ClientFrame {
    ClientFrame::Feedback { message_seq: seq, rating, comment: comment.map(str::to_owned) }
}

fn verify_order(order_number: &str, email: &str) -> ClientFrame {
    ClientFrame::VerifyOrder { order_number: order_number.into(), email: email.into() }
}

fn start_return(order_number: &str) -> ClientFrame {
    ClientFrame::StartReturn { order_number: order_number.into(), skus: None }
}

impl Shopper {
    async fn connect(addr: SocketAddr) -> Shopper {
        Self::connect_from(addr, None).await.expect("the websocket connects")
    }

    /// Connects as a page on `origin` would (`None`: a client that sends no Origin).
    async fn connect_from(
        addr: SocketAddr,
        origin: Option<&str>,
    ) -> Result<Shopper, tokio_tungstenite::tungstenite::Error> {
        let mut request = format!("ws://{addr}/ws").into_client_request()?;
        if let Some(origin) = origin {
            request.headers_mut().insert("Origin", HeaderValue::from_str(origin).unwrap());
        }
        let (ws, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(Shopper { ws, timeout: Duration::from_secs(120) })
    }

    /// Connects and starts a new conversation.
    async fn join(addr: SocketAddr, lang: &str) -> (Shopper, Welcome) {
        let mut shopper = Self::connect(addr).await;
        let welcome = shopper.hello(hello(lang)).await;
        (shopper, welcome)
    }

    async fn hello(&mut self, hello: ClientFrame) -> Welcome {
        self.send_frame(&hello).await;
        match self.recv().await {
            ServerFrame::Welcome { v, session, conversation_id, resumed } => {
                assert_eq!(v, PROTOCOL_VERSION);
                Welcome { session, conversation_id, resumed }
            }
            other => panic!("expected welcome, got {other:?}"),
        }
    }

    async fn send_ws(&mut self, message: Message) {
        self.ws.send(message).await.expect("the frame is sent");
    }

    async fn send_text(&mut self, text: &str) {
        self.send_ws(Message::text(text)).await;
    }

    async fn send(&mut self, frame: Value) {
        self.send_text(&frame.to_string()).await;
    }

    async fn send_frame(&mut self, frame: &ClientFrame) {
        self.send(serde_json::to_value(frame).unwrap()).await;
    }

    async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }

    /// The next data or close message, skipping websocket Ping/Pong; `None`
    /// when the connection has ended.
    async fn next_message(&mut self) -> Option<Message> {
        loop {
            let next = tokio::time::timeout(self.timeout, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("nothing from the server for {:?}", self.timeout));
            match next {
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Ok(message)) => return Some(message),
                Some(Err(_)) | None => return None,
            }
        }
    }

    async fn recv(&mut self) -> ServerFrame {
        match self.next_message().await {
            Some(Message::Text(text)) => serde_json::from_str(text.as_str())
                .unwrap_or_else(|e| panic!("not a server frame ({e}): {text}")),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// Frames up to and including the first that `last` accepts.
    async fn recv_until(&mut self, last: impl Fn(&ServerFrame) -> bool) -> Vec<ServerFrame> {
        let mut frames = Vec::new();
        loop {
            let frame = self.recv().await;
            let done = last(&frame);
            frames.push(frame);
            if done {
                return frames;
            }
        }
    }

    /// Every frame until none has come for `quiet` and no answer is half sent.
    async fn settle(&mut self, quiet: Duration) -> Vec<ServerFrame> {
        let mut frames = Vec::new();
        let mut answering = false;
        loop {
            let wait = if answering { self.timeout } else { quiet };
            let next = match tokio::time::timeout(wait, self.ws.next()).await {
                Err(_) if !answering => return frames,
                Err(_) => panic!("an answer never ended: {frames:#?}"),
                Ok(next) => next,
            };
            let frame: ServerFrame = match next {
                Some(Ok(Message::Text(text))) => serde_json::from_str(text.as_str()).unwrap(),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            };
            match frame {
                ServerFrame::AnswerStart { .. } => answering = true,
                ServerFrame::AnswerEnd { .. } => answering = false,
                _ => {}
            }
            frames.push(frame);
        }
    }

    /// The next frame must be an error; its code.
    async fn next_error(&mut self) -> ErrorCode {
        match self.recv().await {
            ServerFrame::Error { code, .. } => code,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    /// The next frame must be an error with `code`.
    async fn expect_error(&mut self, code: ErrorCode) {
        match self.recv().await {
            ServerFrame::Error { code: got, message } => {
                assert_eq!(got, code, "{message}");
                assert!(!message.is_empty());
            }
            other => panic!("expected error {code:?}, got {other:?}"),
        }
    }

    /// The heartbeat: the next frame must be `pong`.
    async fn ping(&mut self) {
        self.send_frame(&ClientFrame::Ping).await;
        assert_eq!(self.recv().await, ServerFrame::Pong);
    }

    /// Reads until the server closes; its close code, if it sent one.
    async fn close_code(&mut self) -> Option<u16> {
        loop {
            match self.next_message().await {
                Some(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
                Some(_) => continue,
                None => return None,
            }
        }
    }

    async fn verify(&mut self, order_number: &str, email: &str) -> String {
        self.send_frame(&verify_order(order_number, email)).await;
        match self.recv().await {
            ServerFrame::Verified { customer_name } => customer_name,
            other => panic!("expected verified, got {other:?}"),
        }
    }

    /// Sends a message and reads its acknowledgement and answer.
    async fn ask(&mut self, client_id: &str, text: &str) -> Answer {
        self.send_frame(&message(client_id, text)).await;
        let answer = self.read_answer().await;
        let acked = answer
            .frames
            .iter()
            .any(|f| matches!(f, ServerFrame::Ack { client_id: id, .. } if id == client_id));
        assert!(acked, "no ack for {client_id}: {answer:#?}");
        answer
    }

    async fn read_answer(&mut self) -> Answer {
        self.finish_answer(AnswerReader::default()).await
    }

    async fn finish_answer(&mut self, mut reader: AnswerReader) -> Answer {
        while !reader.push(self.recv().await) {}
        reader.finish()
    }

    /// Reads an answer up to its first delta, which must not end it.
    async fn read_until_first_delta(&mut self) -> AnswerReader {
        let mut reader = AnswerReader::default();
        loop {
            let frame = self.recv().await;
            let delta = matches!(frame, ServerFrame::Delta { .. });
            assert!(
                !reader.push(frame),
                "the answer ended before it streamed: {:#?}",
                reader.frames
            );
            if delta {
                return reader;
            }
        }
    }
}

/// One answer as the shopper received it.
#[derive(Debug)]
struct Answer {
    /// The seq of the message's `ack`, if one came with the answer.
    ack_seq: Option<u64>,
    seq: u64,
    /// Everything received, in order.
    frames: Vec<ServerFrame>,
    deltas: Vec<String>,
    /// The deltas joined.
    streamed: String,
    /// What the shopper is shown: `answer_end.text` when it has one (a
    /// replaced answer), else the deltas.
    text: String,
    outcome: AnswerOutcome,
    action: Option<AnswerAction>,
    sources: Vec<Source>,
    timings: Timings,
}

/// Collects the frames of one answer and checks their sequence numbers.
#[derive(Default)]
struct AnswerReader {
    frames: Vec<ServerFrame>,
    ack_seq: Option<u64>,
    seq: Option<u64>,
    sources: Vec<(u64, Vec<Source>)>,
    deltas: Vec<String>,
}

impl AnswerReader {
    /// Takes the next frame; true once the answer has ended.
    fn push(&mut self, frame: ServerFrame) -> bool {
        let mut ended = false;
        match &frame {
            ServerFrame::Ack { seq, .. } => self.ack_seq = Some(*seq),
            ServerFrame::AnswerStart { seq } => {
                assert_eq!(self.seq, None, "two answers at once: {:#?}", self.frames);
                self.seq = Some(*seq);
            }
            ServerFrame::Sources { seq, sources } => self.sources.push((*seq, sources.clone())),
            ServerFrame::Delta { seq, index, text } => {
                assert_eq!(Some(*seq), self.seq, "a delta of another answer: {frame:?}");
                assert_eq!(*index, self.deltas.len() as u64, "delta indexes count from 0");
                self.deltas.push(text.clone());
            }
            ServerFrame::AnswerEnd { seq, .. } => {
                assert_eq!(Some(*seq), self.seq, "the end of another answer: {frame:?}");
                ended = true;
            }
            ServerFrame::Busy { .. } => panic!("the server was too busy to answer: {frame:?}"),
            ServerFrame::Error { .. } => panic!("an error instead of an answer: {frame:?}"),
            _ => {}
        }
        self.frames.push(frame);
        ended
    }

    fn finish(self) -> Answer {
        let seq = self.seq.expect("an answer_start");
        let Some(ServerFrame::AnswerEnd {
            outcome,
            text,
            timings,
            action,
            sources: final_sources,
            ..
        }) = self.frames.last().cloned()
        else {
            panic!("the answer has not ended: {:#?}", self.frames);
        };
        assert!(self.sources.len() <= 1, "sources sent twice: {:#?}", self.frames);
        let sources = match self.sources.into_iter().next() {
            Some((sources_seq, sources)) => {
                assert_eq!(sources_seq, seq, "the sources of another answer");
                sources
            }
            None => Vec::new(),
        };
        // What the shopper is shown: the final sources when the end names them.
        let sources = final_sources.unwrap_or(sources);
        let streamed = self.deltas.concat();
        Answer {
            ack_seq: self.ack_seq,
            seq,
            frames: self.frames,
            text: text.unwrap_or_else(|| streamed.clone()),
            deltas: self.deltas,
            streamed,
            outcome,
            action,
            sources,
            timings,
        }
    }
}

/// The longest run of digits that a phone number could be written as: digits
/// with spaces, dashes, dots, brackets or a plus between them.
fn longest_digit_run(text: &str) -> usize {
    let (mut longest, mut run) = (0, 0);
    for c in text.chars() {
        if c.is_ascii_digit() {
            run += 1;
            longest = longest.max(run);
        } else if !matches!(c, ' ' | '-' | '.' | '(' | ')' | '+') {
            run = 0;
        }
    }
    longest
}

fn is_cjk(c: char) -> bool {
    ('\u{4E00}'..='\u{9FFF}').contains(&c)
}

// ---------------------------------------------------------------------------
// Staff: a tiny HTTP/1.1 client
// ---------------------------------------------------------------------------

struct HttpResponse {
    status: u16,
    /// Names in lower case.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HttpResponse {
    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("a UTF-8 body")
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// One request on its own connection (`Connection: close`).
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: Option<&Value>,
) -> HttpResponse {
    let body = body.map(|b| serde_json::to_vec(b).unwrap()).unwrap_or_default();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        head.push_str("Content-Type: application/json\r\n");
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.expect("connects");
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&body).await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("reads the response");
        raw
    };
    let raw = tokio::time::timeout(Duration::from_secs(120), exchange)
        .await
        .unwrap_or_else(|_| panic!("no response to {method} {path}"));
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> HttpResponse {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete response head");
    let head = std::str::from_utf8(&raw[..end]).expect("an ASCII head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    HttpResponse { status, headers, body }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").expect("a chunk size line");
        let size = std::str::from_utf8(&data[..line_end]).unwrap();
        let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16)
            .unwrap_or_else(|_| panic!("bad chunk size {size:?}"));
        data = &data[line_end + 2..];
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// A logged-in staff member.
struct StaffClient {
    addr: SocketAddr,
    token: String,
}

impl StaffClient {
    async fn login(addr: SocketAddr) -> StaffClient {
        let body = json!({ "name": STAFF_NAME, "password": STAFF_PASSWORD });
        let response = http(addr, "POST", "/api/login", &[], Some(&body)).await;
        assert_eq!(response.status, 200, "{}", response.text());
        let token = response.json()["token"].as_str().expect("a token").to_owned();
        StaffClient { addr, token }
    }

    async fn request(&self, method: &str, path: &str, body: Option<&Value>) -> HttpResponse {
        let auth = [("Authorization", format!("Bearer {}", self.token))];
        http(self.addr, method, path, &auth, body).await
    }

    async fn get(&self, path: &str) -> HttpResponse {
        self.request("GET", path, None).await
    }

    /// `Value::Null` for no body.
    async fn post(&self, path: &str, body: Value) -> HttpResponse {
        self.request("POST", path, Some(&body).filter(|b| !b.is_null())).await
    }

    async fn put(&self, path: &str, body: Value) -> HttpResponse {
        self.request("PUT", path, Some(&body)).await
    }

    async fn delete(&self, path: &str) -> HttpResponse {
        self.request("DELETE", path, None).await
    }
}

/// The conversation ids of a `GET /api/conversations` response, in order.
fn listed_ids(response: &HttpResponse) -> Vec<String> {
    assert_eq!(response.status, 200, "{}", response.text());
    let body = response.json();
    let list = body["conversations"].as_array().unwrap_or_else(|| panic!("no list in {body}"));
    list.iter()
        .map(|summary| {
            // The summary's conversation fields are flattened into it; accept
            // them nested as well.
            let conversation = summary.get("conversation").unwrap_or(summary);
            conversation["id"].as_str().expect("a conversation id").to_owned()
        })
        .collect()
}

/// The sum of a metric's samples (optionally only those whose labels contain
/// `label`); `None` if it has none.
fn metric_sum(metrics: &str, name: &str, label: Option<&str>) -> Option<f64> {
    let mut sum = None;
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else { continue };
        let (labels, value) = if let Some(rest) = rest.strip_prefix('{') {
            let Some(end) = rest.find('}') else { continue };
            (&rest[..end], &rest[end + 1..])
        } else if rest.starts_with(' ') {
            ("", rest)
        } else {
            continue; // another metric whose name starts with this one
        };
        if label.is_some_and(|l| !labels.contains(l)) {
            continue;
        }
        let value: f64 = value.split_whitespace().next()?.parse().ok()?;
        sum = Some(sum.unwrap_or(0.0) + value);
    }
    sum
}

#[cfg(test)]
mod helpers {
    use super::*;

    #[test]
    fn digit_runs_find_phone_numbers_but_not_times() {
        assert_eq!(longest_digit_run("Call +44 20 7946 0321 today"), 12);
        assert_eq!(longest_digit_run("Mon-Fri 9:00-17:00, 2-3 business days"), 4);
        assert_eq!(longest_digit_run("no digits"), 0);
    }

    #[test]
    fn responses_parse_with_and_without_chunking() {
        let plain = parse_response(
            b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n\r\n{\"error\":\"x\"}",
        );
        assert_eq!(plain.status, 401);
        assert_eq!(plain.header("content-type"), Some("application/json"));
        assert_eq!(plain.json()["error"], "x");
        let chunked =
            parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
        assert_eq!(chunked.text(), "abcde");
    }

    #[test]
    fn metrics_are_summed_by_name_and_label() {
        let text = "# HELP shopchat_answers_total Answers.\n\
                    shopchat_answers_total{outcome=\"answered\"} 2\n\
                    shopchat_answers_total{outcome=\"refused\"} 1\n\
                    shopchat_answers_total_created 5\n\
                    shopchat_queue_depth 0\n";
        assert_eq!(metric_sum(text, "shopchat_answers_total", None), Some(3.0));
        assert_eq!(metric_sum(text, "shopchat_answers_total", Some("refused")), Some(1.0));
        assert_eq!(metric_sum(text, "shopchat_queue_depth", None), Some(0.0));
        assert_eq!(metric_sum(text, "shopchat_open_sessions", None), None);
    }
}
