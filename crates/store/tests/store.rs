//! The store on real SQLite files in a temporary directory.

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use shopchat_store::{
    AnswerDetails, AnswerRecord, AnswerState, CheckRecord, ConversationFilter, ConversationId,
    Error, Feedback, GateRecord, MessageState, NewConversation, NewMessage, NewReturn, Outcome,
    Rating, Role, SourceRef, SqliteStore, Store, Timings, Transcript,
};
use tempfile::TempDir;

fn open() -> (TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("shopchat.db")).expect("opens");
    (dir, store)
}

fn resume_token(id: &str) -> String {
    format!("resume-token-of-{id}-0123456789")
}

fn start(store: &dyn Store, id: &str) -> ConversationId {
    let new = NewConversation {
        id: id.into(),
        lang: "en".into(),
        resume_token: resume_token(id),
        customer_id: None,
        channel: "web".into(),
    };
    store.create_conversation(new).expect("conversation created").id
}

fn answered(text: &str, outcome: Outcome) -> AnswerRecord {
    AnswerRecord {
        text: text.into(),
        state: AnswerState::Complete,
        details: AnswerDetails {
            outcome,
            sources: vec![],
            model: None,
            prompt_version: None,
            timings: Timings::default(),
            gate: None,
            check: None,
        },
    }
}

/// Stores a question and a finished answer; returns the answer's id.
fn exchange(
    store: &dyn Store,
    id: &ConversationId,
    question: &str,
    answer: AnswerRecord,
) -> shopchat_store::MessageId {
    store.add_message(id, NewMessage::shopper(question)).expect("question stored");
    let answer_id = store.start_answer(id).expect("answer started").id;
    store.finish_answer(answer_id, answer).expect("answer finished");
    answer_id
}

fn ids(store: &dyn Store, filter: ConversationFilter) -> Vec<String> {
    let list = store.list_conversations(&filter).expect("lists");
    list.into_iter().map(|summary| summary.conversation.id.0).collect()
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

#[test]
fn messages_get_increasing_seq_and_resume_after_any_of_them() {
    let (_dir, store) = open();
    let c = start(&store, "c1");
    let question = store.add_message(&c, NewMessage::shopper("Where is my parcel?")).unwrap();
    let answer = store.start_answer(&c).unwrap();
    let reply = store.add_message(&c, NewMessage::staff("Mei", "Let me check.")).unwrap();
    assert_eq!((question.seq, answer.seq, reply.seq), (1, 2, 3));
    assert_eq!(answer.state, MessageState::Streaming);
    assert_eq!(answer.role, Role::Assistant);
    assert_eq!(reply.author.as_deref(), Some("Mei"));

    // A second conversation counts on its own.
    let other = start(&store, "c2");
    assert_eq!(store.add_message(&other, NewMessage::shopper("hi")).unwrap().seq, 1);

    let seqs = |after| -> Vec<u32> {
        store.messages_after(&c, after).unwrap().iter().map(|m| m.seq).collect()
    };
    assert_eq!(seqs(0), [1, 2, 3]);
    assert_eq!(seqs(1), [2, 3]);
    assert_eq!(seqs(3), [] as [u32; 0]);
    let err = store.messages_after(&"nope".into(), 0).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }) && err.is_user_error(), "{err}");
    let err = store.add_message(&"nope".into(), NewMessage::shopper("hi")).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    let err =
        store.add_message(&c, NewMessage { role: Role::Staff, text: "x".into(), author: None });
    assert!(matches!(err, Err(Error::InvalidInput(_))));
}

#[test]
fn concurrent_writers_get_distinct_seqs() {
    let (_dir, store) = open();
    let c = start(&store, "busy");
    std::thread::scope(|scope| {
        for thread in 0..4 {
            let (store, c) = (&store, &c);
            scope.spawn(move || {
                for i in 0..25 {
                    store.add_message(c, NewMessage::shopper(format!("{thread}/{i}"))).unwrap();
                    store.list_conversations(&ConversationFilter::default()).unwrap();
                }
            });
        }
    });
    let seqs: Vec<u32> = store.messages_after(&c, 0).unwrap().iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=100).collect::<Vec<u32>>());
}

#[test]
fn a_finished_answer_reads_back_with_everything_recorded() {
    let (_dir, store) = open();
    let c = start(&store, "c1");
    store.add_message(&c, NewMessage::shopper("Can I return shoes?")).unwrap();
    let started = store.start_answer(&c).unwrap();
    let record = AnswerRecord {
        text: "Yes, within 30 days [1].".into(),
        state: AnswerState::Complete,
        details: AnswerDetails {
            outcome: Outcome::Answered,
            sources: vec![SourceRef {
                id: "faq-returns".into(),
                title: "Returns".into(),
                url: Some("https://shop.example/returns".into()),
            }],
            model: Some("qwen2.5-0.5b-instruct-q4".into()),
            prompt_version: Some("answer-v3".into()),
            timings: Timings { ttft_ms: Some(420), total_ms: 2100, tokens: 48, tokens_per_s: 28.5 },
            gate: Some(GateRecord { covered: true, score: 0.82 }),
            check: Some(CheckRecord { passed: true, reason: None }),
        },
    };
    store.finish_answer(started.id, record.clone()).unwrap();
    store
        .set_feedback(started.id, Feedback { rating: Rating::Up, comment: Some("quick!".into()) })
        .unwrap();

    let transcript = store.transcript(&c).unwrap().expect("exists");
    let answer = &transcript.messages[1];
    assert_eq!(answer.id, started.id);
    assert_eq!(answer.text, record.text);
    assert_eq!(answer.state, MessageState::Complete);
    assert_eq!(answer.answer.as_ref(), Some(&record.details));
    assert!(answer.finished_at.is_some_and(|at| at >= answer.created_at));
    assert_eq!(
        answer.feedback,
        Some(Feedback { rating: Rating::Up, comment: Some("quick!".into()) })
    );
    assert_eq!(transcript.messages[0].answer, None);

    // An answer ends once; feedback goes on answers only.
    let err = store.finish_answer(started.id, answered("again", Outcome::Answered)).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    let question = transcript.messages[0].id;
    let err = store.set_feedback(question, Feedback { rating: Rating::Down, comment: None });
    assert!(matches!(err, Err(Error::NotFound { .. })));

    // A partial answer keeps what was sent and says so.
    let cut = store.start_answer(&c).unwrap();
    let partial =
        AnswerRecord { state: AnswerState::Partial, ..answered("Yes, wi", Outcome::Answered) };
    store.finish_answer(cut.id, partial).unwrap();
    let last = store.messages_after(&c, cut.seq - 1).unwrap().remove(0);
    assert_eq!((last.state, last.text.as_str()), (MessageState::Partial, "Yes, wi"));
}

/// The environment variable that makes the test below act as the process
/// that gets killed.
const VICTIM: &str = "SHOPCHAT_STORE_TEST_VICTIM_DB";

#[test]
fn an_answer_cut_off_by_a_killed_process_comes_back_partial() {
    if let Ok(path) = std::env::var(VICTIM) {
        // The victim: store a question, start answering, and die without
        // unwinding, closing or checkpointing anything.
        let store = SqliteStore::open(Path::new(&path)).unwrap();
        let c = start(&store, "killed");
        store.add_message(&c, NewMessage::shopper("Is the blue scarf in stock?")).unwrap();
        let answer = store.start_answer(&c).unwrap();
        store.save_answer_progress(answer.id, "Yes, the blue scarf").unwrap();
        std::process::abort();
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shopchat.db");
    let victim = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "an_answer_cut_off_by_a_killed_process_comes_back_partial"])
        .env(VICTIM, &path)
        .output()
        .unwrap();
    assert!(!victim.status.success(), "the victim process should have aborted");

    let store = SqliteStore::open(&path).unwrap();
    let transcript = store.transcript(&"killed".into()).unwrap().expect("conversation kept");
    let [question, answer] = &transcript.messages[..] else {
        panic!("expected the question and the answer, got {:?}", transcript.messages);
    };
    assert_eq!(
        (question.role, question.text.as_str()),
        (Role::Shopper, "Is the blue scarf in stock?")
    );
    assert_eq!(answer.state, MessageState::Partial);
    assert_eq!(answer.text, "Yes, the blue scarf", "the progress saved before the kill");
    assert_eq!(answer.answer.as_ref().map(|a| a.outcome), Some(Outcome::Error));
    assert_eq!(answer.finished_at, None);
    // Staff find such answers among the errors.
    let errors = ConversationFilter { outcome: Some(Outcome::Error), ..Default::default() };
    assert_eq!(ids(&store, errors), ["killed"]);
}

#[test]
fn a_resent_shopper_message_is_stored_once() {
    let (_dir, store) = open();
    let c = start(&store, "c1");
    let first = store.add_shopper_message(&c, "msg-1", "Where is my parcel?").unwrap();
    assert!(!first.duplicate);
    let message = &first.message;
    assert_eq!(
        (message.seq, message.role, message.state),
        (1, Role::Shopper, MessageState::Complete)
    );
    assert_eq!(message.client_id.as_deref(), Some("msg-1"));
    let answer = store.start_answer(&c).unwrap();

    // The browser lost its connection and sends the message again.
    let again = store.add_shopper_message(&c, "msg-1", "Where is my parcel?").unwrap();
    assert!(again.duplicate);
    assert_eq!(again.message, first.message);
    // The resent message took no seq.
    let next = store.add_shopper_message(&c, "msg-2", "Hello?").unwrap();
    assert_eq!((next.message.seq, next.duplicate), (3, false));

    let messages = store.messages_after(&c, 0).unwrap();
    let seqs: Vec<u32> = messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, [1, 2, 3]);
    let with_id = |id: &str| messages.iter().filter(|m| m.client_id.as_deref() == Some(id)).count();
    assert_eq!((with_id("msg-1"), with_id("msg-2")), (1, 1));
    assert_eq!(messages[1].id, answer.id);

    // JSON has the client id only where there is one.
    let json = serde_json::to_value(&messages).unwrap();
    assert_eq!(json[0]["client_id"], "msg-1");
    assert!(json[1].get("client_id").is_none(), "{json}");

    let err = store.add_shopper_message(&"nope".into(), "msg-1", "hi").unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    let err = store.add_shopper_message(&c, " ", "hi").unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err}");
}

#[test]
fn client_ids_are_told_apart_per_conversation() {
    let (_dir, store) = open();
    let a = start(&store, "a");
    let b = start(&store, "b");
    let in_a = store.add_shopper_message(&a, "msg-1", "Hi from a").unwrap();
    let in_b = store.add_shopper_message(&b, "msg-1", "Hi from b").unwrap();
    assert!(!in_a.duplicate && !in_b.duplicate);
    assert_ne!(in_a.message.id, in_b.message.id);
    assert_eq!(store.messages_after(&a, 0).unwrap()[0].text, "Hi from a");
    assert_eq!(store.messages_after(&b, 0).unwrap()[0].text, "Hi from b");
}

#[test]
fn saved_progress_survives_reopening_as_a_partial_answer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shopchat.db");
    let (c, started) = {
        let store = SqliteStore::open(&path).unwrap();
        let c = start(&store, "c1");
        store.add_shopper_message(&c, "msg-1", "Can I return shoes?").unwrap();
        let started = store.start_answer(&c).unwrap();
        store.save_answer_progress(started.id, "Yes, within").unwrap();
        store.save_answer_progress(started.id, "Yes, within 30 days of").unwrap();
        let streaming = store.answer_by_seq(&c, started.seq).unwrap().expect("the answer");
        assert_eq!(
            (streaming.state, streaming.text.as_str()),
            (MessageState::Streaming, "Yes, within 30 days of")
        );
        (c, started)
    };

    let store = SqliteStore::open(&path).unwrap();
    let answer = store.answer_by_seq(&c, started.seq).unwrap().expect("the answer");
    assert_eq!(answer.id, started.id);
    assert_eq!(answer.state, MessageState::Partial);
    assert_eq!(answer.text, "Yes, within 30 days of");
    assert_eq!(answer.answer.as_ref().map(|a| a.outcome), Some(Outcome::Error));
    assert_eq!(answer.finished_at, None);
    // The saved text is searchable like any other.
    let search = ConversationFilter { text: Some("days".into()), ..Default::default() };
    assert_eq!(ids(&store, search), ["c1"]);
    // Closed answers take no more progress.
    let err = store.save_answer_progress(started.id, "Yes, within 30 days of delivery.");
    assert!(matches!(err, Err(Error::NotFound { .. })), "{err:?}");
}

#[test]
fn progress_is_saved_only_while_the_answer_streams() {
    let (_dir, store) = open();
    let c = start(&store, "c1");
    let question = store.add_message(&c, NewMessage::shopper("Do you ship abroad?")).unwrap();
    let started = store.start_answer(&c).unwrap();
    store.save_answer_progress(started.id, "We ship to").unwrap();
    store.finish_answer(started.id, answered("We ship to the EU.", Outcome::Answered)).unwrap();

    let err = store.save_answer_progress(started.id, "We ship to").unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }) && err.is_user_error(), "{err}");
    let answer = store.answer_by_seq(&c, started.seq).unwrap().unwrap();
    assert_eq!(
        (answer.state, answer.text.as_str()),
        (MessageState::Complete, "We ship to the EU.")
    );

    for id in [question.id, shopchat_store::MessageId(999)] {
        let err = store.save_answer_progress(id, "x");
        assert!(matches!(err, Err(Error::NotFound { .. })), "{id}: {err:?}");
    }
    assert_eq!(store.messages_after(&c, 0).unwrap()[0].text, "Do you ship abroad?");
}

#[test]
fn answer_by_seq_finds_answers_only() {
    let (_dir, store) = open();
    let c = start(&store, "c1");
    let answer_id =
        exchange(&store, &c, "Where is my order?", answered("Shipped.", Outcome::Answered));
    store.add_message(&c, NewMessage::staff("Mei", "It arrives Friday.")).unwrap();
    let other = start(&store, "c2");

    let found = store.answer_by_seq(&c, 2).unwrap().expect("seq 2 is the answer");
    assert_eq!(
        (found.id, found.role, found.text.as_str()),
        (answer_id, Role::Assistant, "Shipped.")
    );
    assert_eq!(store.answer_by_seq(&c, 1).unwrap(), None, "the shopper's question");
    assert_eq!(store.answer_by_seq(&c, 3).unwrap(), None, "a staff reply");
    assert_eq!(store.answer_by_seq(&c, 4).unwrap(), None, "no such seq");
    assert_eq!(store.answer_by_seq(&c, 0).unwrap(), None);
    assert_eq!(store.answer_by_seq(&other, 2).unwrap(), None, "another conversation");
    assert_eq!(store.answer_by_seq(&"nope".into(), 2).unwrap(), None);
}

#[test]
fn data_and_schema_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shopchat.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        let c = start(&store, "c1");
        exchange(&store, &c, "hello", answered("hi!", Outcome::Answered));
        store.add_tag(&c, "vip").unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let transcript = store.transcript(&"c1".into()).unwrap().unwrap();
    assert_eq!(transcript.conversation.tags, ["vip"]);
    assert_eq!(transcript.messages.len(), 2);
    assert_eq!(transcript.messages[1].state, MessageState::Complete);
}

#[test]
fn conversations_keep_customer_flags_tags_and_notes() {
    let (_dir, store) = open();
    let c = start(&store, "c1");
    assert!(matches!(
        store.create_conversation(NewConversation {
            id: "c1".into(),
            lang: "en".into(),
            resume_token: resume_token("another"),
            customer_id: None,
            channel: "web".into(),
        }),
        Err(Error::AlreadyExists { .. })
    ));
    store.set_customer(&c, "cust-7").unwrap();
    store.set_needs_human(&c, Some("asked for a person")).unwrap();
    store.add_tag(&c, "shipping").unwrap();
    store.add_tag(&c, " damaged ").unwrap();
    store.add_tag(&c, "shipping").unwrap();
    store.set_note(&c, "Called back on Monday.").unwrap();
    let got = store.conversation(&c).unwrap().unwrap();
    assert_eq!(got.customer_id.as_deref(), Some("cust-7"));
    assert_eq!(got.needs_human.as_deref(), Some("asked for a person"));
    assert_eq!(got.tags, ["damaged", "shipping"]);
    assert_eq!(got.note.as_deref(), Some("Called back on Monday."));

    store.set_needs_human(&c, None).unwrap();
    store.remove_tag(&c, "shipping").unwrap();
    store.remove_tag(&c, "never-added").unwrap();
    store.set_note(&c, "").unwrap();
    let got = store.conversation(&c).unwrap().unwrap();
    assert_eq!((got.needs_human, got.tags, got.note), (None, vec!["damaged".to_owned()], None));

    let missing: ConversationId = "missing".into();
    assert_eq!(store.conversation(&missing).unwrap(), None);
    for result in [
        store.set_customer(&missing, "x"),
        store.set_needs_human(&missing, None),
        store.add_tag(&missing, "x"),
        store.remove_tag(&missing, "x"),
        store.set_note(&missing, "x"),
    ] {
        assert!(matches!(result, Err(Error::NotFound { .. })), "{result:?}");
    }
}

#[test]
fn a_resume_token_finds_its_conversation_and_is_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("shopchat.db")).unwrap();
    start(&store, "c1");
    start(&store, "c2");
    let found = store.conversation_by_resume_token(&resume_token("c2")).unwrap();
    assert_eq!(found.map(|c| c.id.0), Some("c2".to_owned()));
    assert_eq!(store.conversation_by_resume_token("resume-token-of-c3-0123456789").unwrap(), None);
    assert!(matches!(
        store.create_conversation(NewConversation {
            id: "c3".into(),
            lang: "en".into(),
            resume_token: "short".into(),
            customer_id: None,
            channel: "web".into(),
        }),
        Err(Error::InvalidInput(_))
    ));
    assert_no_file_contains(dir.path(), &resume_token("c2"));
}

/// Neither the database nor its WAL holds `secret`.
fn assert_no_file_contains(dir: &Path, secret: &str) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "{secret} stored");
    }
}

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

#[test]
fn staff_log_in_with_the_right_password_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("shopchat.db")).unwrap();
    let id = store.add_staff("Mei", "plum blossom 7").unwrap();
    let err = store.add_staff("mei", "another password").unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }) && err.is_user_error(), "{err}");
    let err = store.add_staff("Tom", "short").unwrap_err();
    assert!(matches!(err, Error::WeakPassword { min_chars: 8 }) && err.is_user_error(), "{err}");

    let mei = store.verify_staff("Mei", "plum blossom 7").unwrap().expect("right password");
    assert_eq!((mei.id, mei.name.as_str()), (id, "Mei"));
    assert_eq!(store.verify_staff("Mei", "plum blossom 8").unwrap(), None);
    assert_eq!(store.verify_staff("Nobody", "plum blossom 7").unwrap(), None);
    assert_no_file_contains(dir.path(), "plum blossom 7");

    let token = store.create_session(id, Duration::from_secs(3600)).unwrap();
    assert_eq!(token.as_str().len(), 64);
    assert_eq!(store.session(token.as_str()).unwrap(), Some(mei.clone()));
    assert_eq!(store.session("not a token").unwrap(), None);
    assert_no_file_contains(dir.path(), token.as_str());
    store.delete_session(token.as_str()).unwrap();
    assert_eq!(store.session(token.as_str()).unwrap(), None);

    let expired = store.create_session(id, Duration::ZERO).unwrap();
    assert_eq!(store.session(expired.as_str()).unwrap(), None);
    assert!(matches!(
        store.create_session(shopchat_store::StaffId(999), Duration::from_secs(60)),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn return_numbers_are_unique() {
    let (_dir, store) = open();
    let mut numbers = HashSet::new();
    for i in 0..300 {
        let record = store
            .create_return(NewReturn {
                order_number: format!("NW-{}", 100_000 + i % 3),
                customer_id: "cust-1".into(),
                items: vec!["SKU-SCARF-BLUE".into()],
                reason: Some("too small".into()),
            })
            .unwrap();
        let digits = record.return_number.strip_prefix("RMA-").expect("RMA- prefix");
        assert!(
            digits.len() == 6 && digits.chars().all(|c| c.is_ascii_digit()),
            "{}",
            record.return_number
        );
        assert!(numbers.insert(record.return_number), "duplicate return number");
    }
    let returns = store.returns_for_order("NW-100001").unwrap();
    assert_eq!(returns.len(), 100);
    assert!(returns
        .iter()
        .all(|r| r.items == ["SKU-SCARF-BLUE"] && r.reason.as_deref() == Some("too small")));
    assert_eq!(store.returns_for_order("NW-999999").unwrap(), []);
    let no_items = NewReturn {
        order_number: "NW-1".into(),
        customer_id: "c".into(),
        items: vec![],
        reason: None,
    };
    assert!(matches!(store.create_return(no_items), Err(Error::InvalidInput(_))));
}
