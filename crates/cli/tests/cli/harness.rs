//! The developers' harness: ask, replay, eval run, eval from-transcript.

use super::*;

#[test]
fn ask_shows_passages_gate_answer_check_and_timings() {
    let text =
        stdout(&harness(&["ask", "--show-prompt", "How long does delivery to the UK take?"]));
    for expected in [
        "intent: Question",
        "faq/shipping-times@en",
        "gate: covered",
        "prompt as sent",
        "<|im_start|>system",
        "outcome: ",
        "timings: first token",
        "prompt default@1",
    ] {
        assert!(text.contains(expected), "no {expected:?} in:\n{text}");
    }
    let refused = stdout(&harness(&["ask", "What is the phone number of your CEO?"]));
    assert!(refused.contains("gate: not covered"), "{refused}");
    assert!(refused.contains("outcome: refused"), "{refused}");
    assert!(!refused.contains("prompt as sent"), "{refused}");
}

#[test]
fn the_shipped_suites_pass_and_a_bad_prompt_fails_them() {
    let suites = workspace().join("tests/eval");
    let english = suites.join("demo-shop.en.yaml");
    let chinese = suites.join("demo-shop.zh.yaml");
    let junit = tempfile::NamedTempFile::new().unwrap();
    let output = harness(&[
        "eval",
        "run",
        english.to_str().unwrap(),
        chinese.to_str().unwrap(),
        "--json",
        "--junit",
        junit.path().to_str().unwrap(),
    ]);
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(report["failed"], 0, "{report:#}");
    assert!(report["total"].as_u64().unwrap() >= 60, "{report}");
    let xml = std::fs::read_to_string(junit.path()).unwrap();
    assert!(xml.contains("<testsuite") && !xml.contains("<failure"), "{xml}");

    let bad_prompt = suites.join("prompts/bad.toml");
    let output = harness(&[
        "eval",
        "run",
        english.to_str().unwrap(),
        // Two of the cases that hold the model's own answer to account
        // (`strict:`; the rest would pass on a replacement passage), to keep
        // the run short: this prompt makes the model write long answers.
        "--filter",
        "strict: p",
        "--prompt",
        bad_prompt.to_str().unwrap(),
        "--json",
    ]);
    assert!(!output.status.success(), "the bad prompt passed");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(report["failed"].as_u64().unwrap() > 0, "{report}");
    let failure = &report["failures"][0];
    assert_eq!(failure["prompt"], "bad@1", "{failure}");
    assert!(!failure["failed"].as_array().unwrap().is_empty(), "{failure}");
}

/// `tests/conversation/same-replies.yaml`, which the server's test plays
/// over a websocket: the harness must give the same replies, among them
/// Chinese after a message of only an order number and an e-mail address.
#[test]
fn the_harness_gives_the_replies_the_server_gives() {
    let script = workspace().join("tests/conversation/same-replies.yaml");
    let output = harness(&["eval", "run", script.to_str().unwrap(), "--json"]);
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(report["failed"], 0, "{report:#}");
    assert_eq!(report["total"], 2, "{report}");
}

#[test]
fn a_malformed_suite_is_an_error_with_its_line() {
    let scratch = tempfile::tempdir().unwrap();
    let cases = [
        ("unknown key", "cases:\n  - name: a\n    turns:\n      - say: hi\n        expect:\n          contain: x\n", "line 6"),
        ("bad regex", "cases:\n  - name: a\n    turns:\n      - say: hi\n        expect:\n          regex: '(['\n", "line 6"),
        ("not YAML", "cases: [\n", "line"),
    ];
    for (what, yaml, expected) in cases {
        let path = scratch.path().join("suite.yaml");
        std::fs::write(&path, yaml).unwrap();
        let output = shopchat(&["eval", "run", path.to_str().unwrap()]);
        assert!(!output.status.success(), "{what} was accepted");
        let message = String::from_utf8_lossy(&output.stderr);
        assert!(message.contains("suite.yaml") && message.contains(expected), "{what}: {message}");
    }
}

/// A stored conversation as the server would leave it: a greeting answered,
/// a question, and the staff's review note.
fn stored_conversation(data_dir: &Path) -> String {
    use shopchat_store::{
        AnswerDetails, AnswerRecord, AnswerState, ConversationId, NewConversation, Outcome,
        SqliteStore, Store, Timings,
    };
    let store = SqliteStore::open(&data_dir.join("shopchat.db")).unwrap();
    let id = ConversationId("c-review".into());
    store
        .create_conversation(NewConversation {
            id: id.clone(),
            lang: "en".into(),
            resume_token: "a-resume-token-of-the-review".into(),
            customer_id: None,
            channel: "web".into(),
        })
        .unwrap();
    let answer = |text: &str, outcome| AnswerRecord {
        text: text.into(),
        state: AnswerState::Complete,
        details: AnswerDetails {
            outcome,
            sources: Vec::new(),
            model: None,
            prompt_version: None,
            timings: Timings { ttft_ms: None, total_ms: 1, tokens: 0, tokens_per_s: 0.0 },
            gate: None,
            check: None,
        },
    };
    store.add_shopper_message(&id, "m-1", "hello").unwrap();
    let greeting = store.start_answer(&id).unwrap();
    store.finish_answer(greeting.id, answer("Hi there!", Outcome::Answered)).unwrap();
    store.add_shopper_message(&id, "m-2", "How long does delivery to the UK take?").unwrap();
    let reply = store.start_answer(&id).unwrap();
    store.finish_answer(reply.id, answer("About a month.", Outcome::Answered)).unwrap();
    store
        .set_note(
            &id,
            "Wrong delivery time.\nturn 2 contains: 2-3 business days\nturn 2 not_contains: month",
        )
        .unwrap();
    id.0
}

#[test]
fn a_reviewed_conversation_becomes_a_test_case_and_replays_side_by_side() {
    let scratch = tempfile::tempdir().unwrap();
    let data = scratch.path();
    for entry in std::fs::read_dir(demo_data_dir()).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() == "index" {
            copy_tree(&entry.path(), &data.join("index"));
        }
    }
    let id = stored_conversation(data);
    let data = data.to_str().unwrap();

    let yaml = stdout(&shopchat(&["eval", "from-transcript", &id, "--data-dir", data]));
    assert!(yaml.contains("say: hello") && yaml.contains("2-3 business days"), "{yaml}");
    assert!(yaml.contains("not_contains: month"), "{yaml}");
    let suite = scratch.path().join("from-review.yaml");
    std::fs::write(&suite, format!("cases:\n{yaml}")).unwrap();
    let run = shopchat(&[
        "eval",
        "run",
        suite.to_str().unwrap(),
        "--data-dir",
        data,
        "--extra-model",
        "none",
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(report["total"], 1, "{report}");

    let replay = stdout(&shopchat(&["replay", &id, "--data-dir", data, "--extra-model", "none"]));
    assert!(replay.contains("turn 2: How long does delivery to the UK take?"), "{replay}");
    assert!(replay.contains("old [answered]: About a month."), "{replay}");
    assert!(replay.contains("2 turns replayed"), "{replay}");
}
