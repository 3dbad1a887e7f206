//! Orders and returns: only for a verified shopper, never another
//! customer's, and returns only when the rules allow them.

use super::*;

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
