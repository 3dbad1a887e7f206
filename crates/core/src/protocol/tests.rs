//! Frames in and out: every frame round-trips, and every bad frame gets its
//! typed error.

use super::*;

fn parse(text: &str) -> Result<ClientFrame, ProtocolError> {
    parse_client_frame(text, &FrameLimits::default())
}

fn all_client_frames() -> Vec<ClientFrame> {
    vec![
        ClientFrame::Hello { v: 1, session: None, last_seq: None, lang: None },
        ClientFrame::Hello {
            v: 1,
            session: Some("s3cr3t-s3ss10n-t0k3n".to_owned()),
            last_seq: Some(12),
            lang: Some("zh-CN".to_owned()),
        },
        ClientFrame::Message {
            client_id: "c-1".to_owned(),
            text: "Where is my order? 我的订单".to_owned(),
        },
        ClientFrame::Stop,
        ClientFrame::Feedback {
            message_seq: 8,
            rating: Rating::Down,
            comment: Some("wrong".to_owned()),
        },
        ClientFrame::Feedback { message_seq: 8, rating: Rating::Up, comment: None },
        ClientFrame::VerifyOrder {
            order_number: "NW-100231".to_owned(),
            email: "a@example.com".to_owned(),
        },
        ClientFrame::Identity { customer_id: "C1001".to_owned(), signature: "ab12".to_owned() },
        ClientFrame::StartReturn {
            order_number: "NW-100231".to_owned(),
            skus: Some(vec!["TP-101".to_owned()]),
        },
        ClientFrame::StartReturn { order_number: "NW-100231".to_owned(), skus: None },
        ClientFrame::Handoff,
        ClientFrame::Ping,
    ]
}

fn all_server_frames() -> Vec<ServerFrame> {
    let timings =
        Timings { ttft_ms: Some(180.5), total_ms: 2400.0, tokens: 41, tokens_per_s: 18.2 };
    vec![
        ServerFrame::Welcome {
            v: 1,
            session: "s".to_owned(),
            conversation_id: "c".to_owned(),
            resumed: false,
        },
        ServerFrame::Ack { client_id: "c-1".to_owned(), seq: 7 },
        ServerFrame::AnswerStart { seq: 8 },
        ServerFrame::Delta { seq: 8, index: 0, text: "Standard".to_owned() },
        ServerFrame::Sources {
            seq: 8,
            sources: vec![
                Source {
                    id: "faq/shipping-times@en".to_owned(),
                    title: "How long?".to_owned(),
                    url: Some("https://x.example/a".to_owned()),
                },
                Source { id: "order/NW-100231".to_owned(), title: "Order".to_owned(), url: None },
            ],
        },
        ServerFrame::AnswerEnd {
            seq: 8,
            outcome: AnswerOutcome::Answered,
            text: None,
            timings,
            action: None,
            sources: None,
        },
        ServerFrame::AnswerEnd {
            seq: 8,
            outcome: AnswerOutcome::Replaced,
            text: Some("passage".to_owned()),
            timings: Timings { ttft_ms: None, total_ms: 3.0, tokens: 0, tokens_per_s: 0.0 },
            action: Some(AnswerAction::StartReturn { order_number: "NW-100231".into() }),
            sources: Some(vec![Source { id: "faq/a@en".into(), title: "A".into(), url: None }]),
        },
        ServerFrame::StaffMessage { seq: 9, author: "Sam".to_owned(), text: "Hi!".to_owned() },
        ServerFrame::Queued { position: 2 },
        ServerFrame::Busy { queued: 16 },
        ServerFrame::Verified { customer_name: "Emma Clarke".to_owned() },
        ServerFrame::ReturnStarted {
            return_number: "R-1".to_owned(),
            order_number: "NW-100231".to_owned(),
        },
        ServerFrame::Handoff { status: HandoffStatus::Requested },
        ServerFrame::error(ErrorCode::RateLimited, "slow down"),
        ServerFrame::Pong,
    ]
}

#[test]
fn every_frame_survives_a_round_trip() {
    for frame in all_client_frames() {
        let json = serde_json::to_string(&frame).unwrap();
        assert_eq!(parse(&json).unwrap(), frame, "{json}");
    }
    for frame in all_server_frames() {
        let json = serde_json::to_string(&frame).unwrap();
        let back: ServerFrame = serde_json::from_str(&json).unwrap();
        assert_eq!(back, frame, "{json}");
    }
}

#[test]
fn frames_have_the_documented_shape() {
    let check_client = |frame: ClientFrame, expected: &str| {
        assert_eq!(serde_json::to_string(&frame).unwrap(), expected);
    };
    check_client(ClientFrame::Stop, r#"{"type":"stop"}"#);
    check_client(
        ClientFrame::VerifyOrder { order_number: "NW-1".to_owned(), email: "a@b.co".to_owned() },
        r#"{"type":"verify_order","order_number":"NW-1","email":"a@b.co"}"#,
    );
    check_client(
        ClientFrame::Hello { v: 1, session: None, last_seq: None, lang: None },
        r#"{"type":"hello","v":1}"#,
    );
    let check_server = |frame: ServerFrame, expected: &str| {
        assert_eq!(serde_json::to_string(&frame).unwrap(), expected);
    };
    check_server(ServerFrame::AnswerStart { seq: 3 }, r#"{"type":"answer_start","seq":3}"#);
    check_server(
        ServerFrame::AnswerEnd {
            seq: 3,
            outcome: AnswerOutcome::Refused,
            text: None,
            timings: Timings { ttft_ms: None, total_ms: 12.5, tokens: 0, tokens_per_s: 0.0 },
            action: None,
            sources: None,
        },
        r#"{"type":"answer_end","seq":3,"outcome":"refused","timings":{"ttft_ms":null,"total_ms":12.5,"tokens":0,"tokens_per_s":0.0}}"#,
    );
    check_server(
        ServerFrame::error(ErrorCode::BinaryNotSupported, "Send text frames."),
        r#"{"type":"error","code":"binary_not_supported","message":"Send text frames."}"#,
    );
    check_server(
        ServerFrame::Handoff { status: HandoffStatus::Resolved },
        r#"{"type":"handoff","status":"resolved"}"#,
    );
}

#[test]
fn tells_bad_frames_apart() {
    let check = |text: &str, code: ErrorCode, message: &str| {
        let error = parse(text).unwrap_err();
        assert_eq!(error.code(), code, "{text}: {error}");
        assert!(error.to_string().contains(message), "{text}: {error}");
        assert_eq!(error.to_frame(), ServerFrame::error(code, error.to_string()));
    };
    check("{\"type\": \"message\"", ErrorCode::InvalidJson, "not valid JSON");
    check("hello", ErrorCode::InvalidJson, "not valid JSON");
    check("", ErrorCode::InvalidJson, "not valid JSON");
    check("[1, 2]", ErrorCode::BadRequest, "JSON object");
    check(r#"{"text": "hi"}"#, ErrorCode::BadRequest, "JSON object");
    check(r#"{"type": 5}"#, ErrorCode::BadRequest, "JSON object");
    check(r#"{"type": "shout"}"#, ErrorCode::UnknownType, "\"shout\"");
    check(
        r#"{"type": "Message", "client_id": "a", "text": "hi"}"#,
        ErrorCode::UnknownType,
        "Message",
    );
    check(
        r#"{"type": "message", "text": "hi"}"#,
        ErrorCode::BadRequest,
        "missing field \"client_id\"",
    );
    check(
        r#"{"type": "message", "client_id": "a", "text": null}"#,
        ErrorCode::BadRequest,
        "missing field \"text\"",
    );
    check(
        r#"{"type": "feedback", "message_seq": 3, "rating": "meh"}"#,
        ErrorCode::BadRequest,
        "unknown variant",
    );
    check(r#"{"type": "hello", "v": "1"}"#, ErrorCode::BadRequest, "invalid type");
    check(
        r#"{"type": "message", "client_id": "a", "text": "   "}"#,
        ErrorCode::BadRequest,
        "empty",
    );
    check(
        r#"{"type": "message", "client_id": "", "text": "hi"}"#,
        ErrorCode::BadRequest,
        "client_id",
    );
    let long_id = "x".repeat(MAX_CLIENT_ID_CHARS + 1);
    check(
        &format!(r#"{{"type": "message", "client_id": "{long_id}", "text": "hi"}}"#),
        ErrorCode::BadRequest,
        "client_id",
    );
}

#[test]
fn limits_count_characters_not_bytes() {
    let message = |text: &str| format!(r#"{{"type":"message","client_id":"c","text":"{text}"}}"#);
    let limits = FrameLimits::default();
    // 2000 Chinese characters are 6000 bytes and within the limit.
    assert!(parse_client_frame(&message(&"好".repeat(2000)), &limits).is_ok());
    let error = parse_client_frame(&message(&"好".repeat(2001)), &limits).unwrap_err();
    assert_eq!(error.code(), ErrorCode::TooLarge);
    assert_eq!(error.to_string(), "message text is too long: 2001 of at most 2000 characters");
    let comment = format!(
        r#"{{"type":"feedback","message_seq":1,"rating":"up","comment":"{}"}}"#,
        "a".repeat(2001)
    );
    assert_eq!(parse_client_frame(&comment, &limits).unwrap_err().code(), ErrorCode::TooLarge);
    let small = FrameLimits { max_frame_bytes: 100, max_message_chars: 10 };
    let error = parse_client_frame(&message(&"a".repeat(200)), &small).unwrap_err();
    assert!(error.to_string().starts_with("frame is too long"), "{error}");
    assert!(parse_client_frame(&message("0123456789"), &small).is_ok());
    assert_eq!(
        parse_client_frame(&message("0123456789a"), &small).unwrap_err().code(),
        ErrorCode::TooLarge
    );
}

#[test]
fn unknown_fields_are_ignored_and_optional_fields_may_be_null() {
    let frame =
        parse(r#"{"type":"hello","v":1,"session":null,"last_seq":null,"future":{"x":1}}"#).unwrap();
    assert_eq!(frame, ClientFrame::Hello { v: 1, session: None, last_seq: None, lang: None });
    let frame = parse(r#"{"type":"start_return","order_number":"NW-1","skus":null}"#).unwrap();
    assert_eq!(frame, ClientFrame::StartReturn { order_number: "NW-1".to_owned(), skus: None });
}

/// The table of required fields agrees with the frame types: removing
/// any listed field fails with `MissingField`, and every type in the
/// enum is listed.
#[test]
fn required_fields_match_the_frame_types() {
    let mut types = std::collections::HashSet::new();
    for frame in all_client_frames() {
        let value = serde_json::to_value(&frame).unwrap();
        let frame_type = value["type"].as_str().unwrap().to_owned();
        let (_, required) = CLIENT_TYPES.iter().find(|(name, _)| *name == frame_type).unwrap();
        for field in *required {
            let mut without = value.clone();
            without.as_object_mut().unwrap().remove(*field);
            let error = parse(&without.to_string()).unwrap_err();
            assert!(
                matches!(error, ProtocolError::MissingField { .. }),
                "{frame_type}.{field}: {error}"
            );
        }
        // Fields not listed as required really are optional.
        let mut minimal = serde_json::Map::new();
        minimal.insert("type".to_owned(), value["type"].clone());
        for field in *required {
            minimal.insert((*field).to_owned(), value[*field].clone());
        }
        assert!(parse(&serde_json::Value::Object(minimal).to_string()).is_ok(), "{frame_type}");
        types.insert(frame_type);
    }
    assert_eq!(types.len(), CLIENT_TYPES.len());
}

/// Every example in `docs/protocol.md` is a valid frame: the lines that
/// start with `→ ` (client to server) or `← ` (server to client).
#[test]
fn the_protocol_document_matches_the_types() {
    let doc = include_str!("../../../../docs/protocol.md");
    let mut seen = std::collections::HashSet::new();
    for line in doc.lines() {
        let (client, json) = match (line.strip_prefix("→ "), line.strip_prefix("← ")) {
            (Some(json), _) => (true, json),
            (_, Some(json)) => (false, json),
            _ => continue,
        };
        let value: serde_json::Value =
            serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"));
        if client {
            parse(json).unwrap_or_else(|e| panic!("{json}: {e}"));
        } else {
            serde_json::from_str::<ServerFrame>(json).unwrap_or_else(|e| panic!("{json}: {e}"));
        }
        seen.insert((client, value["type"].as_str().unwrap_or_default().to_owned()));
    }
    let type_of = |value: serde_json::Value| value["type"].as_str().unwrap_or_default().to_owned();
    for frame in all_client_frames() {
        let t = type_of(serde_json::to_value(&frame).unwrap());
        assert!(seen.contains(&(true, t.clone())), "no example of client frame {t}");
    }
    for frame in all_server_frames() {
        let t = type_of(serde_json::to_value(&frame).unwrap());
        assert!(seen.contains(&(false, t.clone())), "no example of server frame {t}");
    }
}
