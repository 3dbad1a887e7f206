//! Operations: a model panic, health, readiness, metrics, shutdown, and
//! indexes rebuilt at start.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_the_model_fails_one_answer_and_the_server_stays_ready() {
    let server = TestServer::start().await;
    let worker = server.server.assistant().models()[0].worker.clone();
    let (mut shopper, welcome) = Shopper::join(server.addr, "en").await;

    shopper.send_frame(&message("m-1", LONG_ANSWER)).await;
    let reader = shopper.read_until_first_delta().await;
    worker.inject_fault(shopchat_inference::Fault::PanicInStep);
    let answer = shopper.finish_answer(reader).await;
    assert_eq!(answer.outcome, AnswerOutcome::Error, "{answer:#?}");
    let stored = server.finished_answer(&welcome.conversation_id, answer.seq).await;
    assert_eq!(stored.state, MessageState::Failed, "{stored:#?}");

    let ready = http(server.addr, "GET", "/readyz", &[], None).await;
    assert_eq!(ready.status, 200, "{}", ready.text());
    assert_eq!(ready.json()["models_down"], json!([]));
    // The next question is answered by the model as before.
    let next = shopper.ask("m-2", UK_DELIVERY).await;
    assert!(next.timings.ttft_ms.is_some(), "{next:#?}");
    assert_ne!(next.outcome, AnswerOutcome::Error, "{next:#?}");

    drop(shopper);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_metrics_and_a_clean_shutdown() {
    let server = TestServer::start_with(|config| {
        config.assistant.worker.passage_cache_bytes = 256 << 20;
    })
    .await;
    let addr = server.addr;

    let health = http(addr, "GET", "/healthz", &[], None).await;
    assert_eq!((health.status, health.text().trim()), (200, "ok"));
    let ready = http(addr, "GET", "/readyz", &[], None).await;
    assert_eq!(ready.status, 200, "{}", ready.text());

    let (mut shopper, _) = Shopper::join(addr, "en").await;
    let answer = shopper.ask("m-1", UK_DELIVERY).await;
    assert!(answer.timings.ttft_ms.is_some(), "a model answered: {answer:#?}");
    // The same question from another shopper: its passages come from the
    // passage cache, which /metrics counts, and the answer is the same.
    let (mut other, _) = Shopper::join(addr, "en").await;
    let again = other.ask("m-1", UK_DELIVERY).await;
    assert!(again.timings.ttft_ms.is_some(), "a model answered: {again:#?}");
    assert_eq!((&again.text, again.outcome), (&answer.text, answer.outcome));
    drop(other);

    let metrics = http(addr, "GET", "/metrics", &[], None).await;
    assert_eq!(metrics.status, 200);
    let metrics = metrics.text();
    for name in [
        "shopchat_answers_total",
        "shopchat_ttft_seconds_bucket",
        "shopchat_queue_depth",
        "shopchat_open_sessions",
        "shopchat_query_embeddings_waiting",
    ] {
        assert!(metrics.contains(name), "no {name} in\n{metrics}");
    }
    let answers = metric_sum(&metrics, "shopchat_answers_total", None);
    assert!(answers.is_some_and(|n| n >= 1.0), "{answers:?} in\n{metrics}");
    let timed = metric_sum(&metrics, "shopchat_ttft_seconds_bucket", Some(r#"le="+Inf""#));
    assert!(timed.is_some_and(|n| n >= 1.0), "{timed:?} in\n{metrics}");
    for name in ["shopchat_passage_cache_hits_total", "shopchat_passage_cache_bytes"] {
        let value = metric_sum(&metrics, name, None);
        assert!(value.is_some_and(|n| n > 0.0), "{name} {value:?} in\n{metrics}");
    }

    // Shutting down tells the connected shopper to come back later (1001).
    let (stopped, code) = tokio::join!(
        tokio::time::timeout(Duration::from_secs(30), server.server.shutdown()),
        shopper.close_code()
    );
    stopped.expect("shut down in time").expect("shut down cleanly");
    assert_eq!(code, Some(1001));
}

/// An index written with an older layout is derived data: the server
/// rebuilds it from the shop's files instead of refusing to start.
#[test]
fn an_index_of_an_older_format_is_rebuilt_at_start() {
    let data = tempfile::tempdir().unwrap();
    copy_dir(prebuilt_index(), data.path());
    let index = data.path().join("index");
    let current = std::fs::read_to_string(index.join("CURRENT")).unwrap();
    let manifest = index.join(current.trim()).join("manifest.json");
    let mut old: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    old["format"] = serde_json::json!(1);
    std::fs::write(&manifest, old.to_string()).unwrap();

    let (_assistant, status) = Assistant::load(&assistant_config(data.path())).unwrap();
    assert!(matches!(status, IndexStatus::Built { passages, .. } if passages > 100), "{status:?}");
    shopchat_retrieval::IndexHandle::open(data.path(), None).expect("the rebuilt index opens");
}

/// Vectors from other embedders than the installed ones (as after the
/// default changed to one embedder per language) are rebuilt at start, not
/// left to keyword search; an index with the right vectors is opened as is.
#[test]
fn an_index_with_another_embedders_vectors_is_rebuilt_at_start() {
    let data = tempfile::tempdir().unwrap();
    copy_dir(prebuilt_index(), data.path());
    let (assistant, status) = Assistant::load(&assistant_config(data.path())).unwrap();
    assert!(matches!(status, IndexStatus::Opened { .. }), "{status:?}");
    drop(assistant);

    let mut english_only = assistant_config(data.path());
    english_only.embedding_model = Some("minilm-l6".into());
    let (_assistant, status) = Assistant::load(&english_only).unwrap();
    assert!(matches!(status, IndexStatus::Built { passages, .. } if passages > 100), "{status:?}");
    let vectors = |dir: &Path| -> serde_json::Value {
        let index = dir.join("index");
        let current = std::fs::read_to_string(index.join("CURRENT")).unwrap();
        let path = index.join(current.trim()).join("vectors.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let model = vectors(data.path())["model_id"].as_str().unwrap().to_owned();
    assert!(model.starts_with("minilm-l6@"), "{model}");
}
