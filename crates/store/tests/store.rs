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

#[path = "store/accounts.rs"]
mod accounts;
#[path = "store/listings.rs"]
mod listings;

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
