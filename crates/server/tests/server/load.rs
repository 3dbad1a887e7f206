//! Many shoppers at once.

use super::*;

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
