//! Knowledge questions: a streamed grounded answer, a refusal, Chinese, and
//! the same replies as the harness.

use super::*;

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
