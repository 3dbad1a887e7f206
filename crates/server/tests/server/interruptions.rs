//! Stopping an answer, a shopper leaving mid-answer, and resuming a
//! conversation after a reconnect.

use super::*;

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
