//! Bad input and limits: invalid and fuzzed frames, rate limits, connection
//! caps, request deadlines and the pages' security headers.

use super::*;

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
