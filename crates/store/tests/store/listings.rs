//! Listing conversations: filters, full-text search in English and Chinese,
//! and the CSV and JSON lines exports.

use super::*;

#[test]
fn each_filter_narrows_the_list() {
    let (_dir, store) = open();
    let a = start(&store, "a");
    exchange(&store, &a, "Where is my order?", answered("On its way.", Outcome::Answered));
    std::thread::sleep(Duration::from_millis(5));

    let b = start(&store, "b");
    let refused = exchange(
        &store,
        &b,
        "What do you think of politics?",
        answered("I can only help with the shop.", Outcome::Refused),
    );
    store.set_feedback(refused, Feedback { rating: Rating::Down, comment: None }).unwrap();
    store.add_tag(&b, "off-topic").unwrap();
    std::thread::sleep(Duration::from_millis(5));

    let c = start(&store, "c");
    let handoff =
        exchange(&store, &c, "I want a person", answered("Handing over.", Outcome::Handoff));
    store.set_feedback(handoff, Feedback { rating: Rating::Up, comment: None }).unwrap();
    store.set_needs_human(&c, Some("asked")).unwrap();
    let b_started = store.conversation(&b).unwrap().unwrap().created_at;

    // Needs-human first, then the most recently active; `a` becomes the most
    // recent by getting a new message.
    store.add_message(&a, NewMessage::shopper("Thanks")).unwrap();
    assert_eq!(ids(&store, ConversationFilter::default()), ["c", "a", "b"]);

    let check = |filter: ConversationFilter, expected: &[&str]| {
        assert_eq!(sorted(ids(&store, filter.clone())), expected, "{filter:?}");
    };
    check(ConversationFilter { from: Some(b_started), ..Default::default() }, &["b", "c"]);
    check(ConversationFilter { to: Some(b_started), ..Default::default() }, &["a"]);
    check(ConversationFilter { outcome: Some(Outcome::Refused), ..Default::default() }, &["b"]);
    check(ConversationFilter { outcome: Some(Outcome::Error), ..Default::default() }, &[]);
    check(ConversationFilter { feedback: Some(Rating::Up), ..Default::default() }, &["c"]);
    check(ConversationFilter { feedback: Some(Rating::Down), ..Default::default() }, &["b"]);
    check(ConversationFilter { tag: Some("off-topic".into()), ..Default::default() }, &["b"]);
    check(ConversationFilter { needs_human: Some(true), ..Default::default() }, &["c"]);
    check(ConversationFilter { needs_human: Some(false), ..Default::default() }, &["a", "b"]);
    check(ConversationFilter { text: Some("order".into()), ..Default::default() }, &["a"]);
    check(
        ConversationFilter {
            from: Some(b_started),
            feedback: Some(Rating::Up),
            ..Default::default()
        },
        &["c"],
    );
    // Paging.
    assert_eq!(
        ids(&store, ConversationFilter { limit: Some(2), ..Default::default() }),
        ["c", "a"]
    );
    assert_eq!(
        ids(&store, ConversationFilter { limit: Some(2), offset: 2, ..Default::default() }),
        ["b"]
    );

    let summary = &store.list_conversations(&ConversationFilter::default()).unwrap()[1];
    assert_eq!(summary.conversation.id.0, "a");
    assert_eq!(summary.message_count, 3);
    assert_eq!(summary.first_question.as_deref(), Some("Where is my order?"));
    assert_eq!(summary.last_outcome, Some(Outcome::Answered));
}

#[test]
fn full_text_search_finds_english_words_and_chinese_phrases() {
    let (_dir, store) = open();
    let en = start(&store, "en");
    store.add_message(&en, NewMessage::shopper("I would like refunds for two jackets")).unwrap();
    let zh = start(&store, "zh");
    store.add_message(&zh, NewMessage::shopper("我想退货，可以吗？订单 NW-100231")).unwrap();
    let policy = start(&store, "zh-policy");
    let answer = store.start_answer(&policy).unwrap();
    store
        .finish_answer(answer.id, answered("请问你们的退货政策是什么", Outcome::Answered))
        .unwrap();

    let search = |text: &str| {
        sorted(ids(&store, ConversationFilter { text: Some(text.into()), ..Default::default() }))
    };
    assert_eq!(search("refund"), ["en"], "stemmed: refunds");
    assert_eq!(search("REFUNDS jacket"), ["en"]);
    assert_eq!(search("refund shoes"), [] as [&str; 0], "every word must occur");
    assert_eq!(search("退货"), ["zh", "zh-policy"], "two characters, inside a sentence");
    assert_eq!(search("退货政策"), ["zh-policy"]);
    assert_eq!(search("订单 NW-100231"), ["zh"]);
    assert_eq!(search("退款"), [] as [&str; 0]);
    // Search syntax typed by staff is searched for, not obeyed.
    assert_eq!(search("\"refund\" OR *"), [] as [&str; 0]);
    assert_eq!(search("NW-100231"), ["zh"]);
}

#[test]
fn csv_export_quotes_what_needs_quoting() {
    let (_dir, store) = open();
    let c = start(&store, "c1");
    let tricky = "He said \"hi\", then\nleft; 再见";
    store.add_message(&c, NewMessage::shopper(tricky)).unwrap();
    store.add_message(&c, NewMessage::shopper("=HYPERLINK(\"http://evil.example\")")).unwrap();
    let mut answer = answered("Bye, \"friend\"", Outcome::Answered);
    answer.details.sources = vec![
        SourceRef { id: "faq-1".into(), title: "One".into(), url: None },
        SourceRef { id: "faq-2".into(), title: "Two".into(), url: None },
    ];
    let answer_id = store.start_answer(&c).unwrap().id;
    store.finish_answer(answer_id, answer).unwrap();

    let mut out = Vec::new();
    store.export_csv(&ConversationFilter::default(), &mut out).unwrap();
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(text.contains("\"He said \"\"hi\"\", then\nleft; 再见\""), "{text}");

    let mut reader = csv::Reader::from_reader(&out[..]);
    let header = reader.headers().unwrap().clone();
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(&rows[0][column("text")], tricky);
    assert_eq!(&rows[0][column("role")], "shopper");
    assert_eq!(&rows[1][column("text")], "'=HYPERLINK(\"http://evil.example\")");
    assert_eq!(&rows[2][column("text")], "Bye, \"friend\"");
    assert_eq!(&rows[2][column("sources")], "faq-1, faq-2");
    assert_eq!(&rows[2][column("outcome")], "answered");
    assert!(rows.iter().all(|row| &row[column("conversation_id")] == "c1"));
}

#[test]
fn jsonl_export_writes_one_transcript_a_line() {
    let (_dir, store) = open();
    for id in ["c1", "c2"] {
        let c = start(&store, id);
        exchange(&store, &c, "line one\nline two", answered("ok", Outcome::Answered));
    }
    let mut out = Vec::new();
    let filter = ConversationFilter { text: Some("two".into()), ..Default::default() };
    store.export_jsonl(&filter, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let transcripts: Vec<Transcript> =
        text.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(transcripts.len(), 2);
    for transcript in &transcripts {
        assert_eq!(
            Some(transcript),
            store.transcript(&transcript.conversation.id).unwrap().as_ref()
        );
    }
}
