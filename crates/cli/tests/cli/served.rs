//! A real `shopchat serve` process: load, cross-customer attempts, kill -9.

use super::*;

/// `shopchat serve` as its own process on a loopback port, with the load
/// settings (`tests/load/shopchat.toml`: SmolLM2 alone, the per-address
/// limits raised) and the demo index copied into `data_dir`. Killed with
/// SIGKILL when dropped.
struct ServeProcess {
    child: std::process::Child,
    addr: String,
}

impl ServeProcess {
    fn start(data_dir: &Path) -> ServeProcess {
        use std::io::BufRead;
        if !data_dir.join("index").exists() {
            copy_tree(&demo_data_dir().join("index"), &data_dir.join("index"));
        }
        // The server logs every message: to a file, so that an unread pipe
        // never blocks it.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.join("serve.log"))
            .unwrap();
        let config = workspace().join("tests/load/shopchat.toml");
        let mut child = Command::new(env!("CARGO_BIN_EXE_shopchat"))
            .args(["serve", "--addr", "127.0.0.1:0", "--config", config.to_str().unwrap()])
            .arg("--data-dir")
            .arg(data_dir)
            .current_dir(workspace())
            .env("SHOPCHAT_MODELS_DIR", workspace().join("models"))
            .stdout(std::process::Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("the server starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(at) = line.find("http://") {
                    let addr = line[at + 7..].trim_end_matches('/').to_owned();
                    let _ = tx.send(addr);
                }
            }
        });
        let addr = match rx.recv_timeout(std::time::Duration::from_secs(300)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                let log = std::fs::read_to_string(data_dir.join("serve.log")).unwrap_or_default();
                panic!("the server did not start within 5 minutes:\n{log}");
            }
        };
        ServeProcess { child, addr }
    }

    fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

#[test]
fn twenty_shoppers_and_fifty_cross_customer_attempts_against_a_served_process() {
    let scratch = tempfile::tempdir().unwrap();
    let server = ServeProcess::start(&scratch.path().join("data"));
    let url = server.url();
    let pid = server.child.id().to_string();

    // Twenty shoppers at once, one question each (the server's own test
    // `twenty_shoppers_at_once_are_all_answered` checks the answers; this
    // one the command and a separate process): every question gets an
    // answer or an explicit `busy`; no error frame, no dropped socket.
    let questions = workspace().join("tests/load/questions.txt");
    let output = shopchat(&[
        "loadtest",
        "--url",
        &url,
        "--shoppers",
        "20",
        "--questions",
        questions.to_str().unwrap(),
        "--questions-per-shopper",
        "1",
        "--server-pid",
        &pid,
        "--duration-limit",
        "600",
        "--json",
    ]);
    let load: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(load["shoppers"], 20, "{load:#}");
    let asked = load["questions_asked"].as_u64().unwrap();
    assert_eq!(asked, 20, "{load:#}");
    let (answered, busy) = (load["answered"].as_u64().unwrap(), load["busy"].as_u64().unwrap());
    assert_eq!(answered + busy, asked, "{load:#}");
    assert!(answered > 0, "{load:#}");
    for zero in ["rate_limited", "failed_answers", "dropped", "unfinished"] {
        assert_eq!(load[zero], 0, "{zero}: {load:#}");
    }
    assert_eq!(load["errors"], serde_json::json!({}), "{load:#}");
    assert!(load["first_delta"]["count"].as_u64().unwrap() > 0, "{load:#}");
    assert!(load["process"]["hwm_mb"].as_f64().unwrap() > 0.0, "{load:#}");
    assert!(load["process"]["fds_max"].as_u64().unwrap() > 0, "{load:#}");
    assert!(load["metrics"]["shopchat_open_sessions"].is_number(), "{load:#}");

    // Seven of each kind of attempt at another customer's orders: none
    // leaks, none verifies, and (limits raised) none is merely rate-limited.
    let orders = workspace().join("faq/orders.json");
    let output = shopchat(&[
        "attack",
        "--url",
        &url,
        "--attempts",
        "49",
        "--orders",
        orders.to_str().unwrap(),
        "--duration-limit",
        "480",
        "--json",
    ]);
    let attack: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(attack["attempts"], 49, "{attack:#}");
    for zero in ["leaks", "verified_as_other", "rate_limited", "dropped", "timed_out"] {
        assert_eq!(attack[zero], 0, "{zero}: {attack:#}");
    }
    let kinds = attack["kinds"].as_object().unwrap();
    assert_eq!(kinds.len(), 7, "{attack:#}");
    for (kind, report) in kinds {
        assert_eq!(report["attempts"], 7, "{kind}: {attack:#}");
    }
    for kind in ["verify_known_order_wrong_email", "verify_unknown_order", "forged_identity"] {
        assert_eq!(kinds[kind]["answers"]["not_verified"], 7, "{kind}: {attack:#}");
    }
}

/// What one shopper saw of its answer before the server died.
#[derive(Debug, Default, Clone)]
struct Seen {
    session: String,
    conversation: String,
    ack: Option<u64>,
    answer: Option<u64>,
    streamed: String,
    deltas: usize,
    ended: bool,
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn send_frame(ws: &mut Socket, frame: serde_json::Value) {
    use futures_util::SinkExt;
    let text = frame.to_string();
    ws.send(tokio_tungstenite::tungstenite::Message::text(text)).await.unwrap();
}

/// The next server frame as JSON; `None` once the connection is gone.
async fn next_frame(ws: &mut Socket) -> Option<serde_json::Value> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        let next = tokio::time::timeout(std::time::Duration::from_secs(300), ws.next())
            .await
            .expect("a frame within 5 minutes");
        match next {
            Some(Ok(Message::Text(text))) => return Some(serde_json::from_str(&text).unwrap()),
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return None,
            Some(Ok(_)) => continue,
        }
    }
}

#[test]
fn a_server_killed_mid_answer_keeps_what_was_said_and_shoppers_resume() {
    use shopchat_store::{MessageState, Store};
    const QUESTION: &str =
        "Which payment methods do you accept? Please list every one of them and explain Klarna.";
    let scratch = tempfile::tempdir().unwrap();
    let data = scratch.path().join("data");
    let mut server = ServeProcess::start(&data);
    let runtime = tokio::runtime::Runtime::new().unwrap();

    // Three shoppers ask for a long answer; the server is killed once each
    // has its first words (saved before they were sent).
    let seen = std::sync::Arc::new(std::sync::Mutex::new(vec![Seen::default(); 3]));
    let url = server.url();
    let readers: Vec<_> = (0..3)
        .map(|i| {
            let (seen, url) = (seen.clone(), url.clone());
            runtime.spawn(async move {
                let (mut ws, _) =
                    tokio_tungstenite::connect_async(format!("{url}/ws")).await.unwrap();
                send_frame(&mut ws, serde_json::json!({"type": "hello", "v": 1, "lang": "en"}))
                    .await;
                let welcome = next_frame(&mut ws).await.unwrap();
                assert_eq!(welcome["type"], "welcome", "{welcome}");
                {
                    let mut seen = seen.lock().unwrap();
                    seen[i].session = welcome["session"].as_str().unwrap().to_owned();
                    seen[i].conversation = welcome["conversation_id"].as_str().unwrap().to_owned();
                }
                let ask =
                    serde_json::json!({"type": "message", "client_id": "m-1", "text": QUESTION});
                send_frame(&mut ws, ask).await;
                while let Some(frame) = next_frame(&mut ws).await {
                    let mut seen = seen.lock().unwrap();
                    let one = &mut seen[i];
                    match frame["type"].as_str().unwrap() {
                        "ack" => one.ack = frame["seq"].as_u64(),
                        "answer_start" => one.answer = frame["seq"].as_u64(),
                        "delta" => {
                            one.streamed.push_str(frame["text"].as_str().unwrap());
                            one.deltas += 1;
                        }
                        "answer_end" => one.ended = true,
                        "busy" | "error" => panic!("shopper {i}: {frame}"),
                        _ => {}
                    }
                }
            })
        })
        .collect();
    let started = std::time::Instant::now();
    loop {
        let ready = seen.lock().unwrap().iter().all(|s| s.deltas > 0 || s.ended);
        if ready {
            break;
        }
        assert!(started.elapsed().as_secs() < 600, "no first words in 10 minutes: {seen:?}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    server.kill();
    for reader in readers {
        runtime.block_on(reader).unwrap();
    }
    let seen = seen.lock().unwrap().clone();
    assert!(seen.iter().any(|s| !s.ended), "every answer ended before the kill: {seen:?}");

    // Restarted on the same data directory: every acknowledged message is
    // stored, and each cut-off answer is there as partial, with at least
    // the words its shopper saw first.
    let server = ServeProcess::start(&data);
    let store = shopchat_store::SqliteStore::open(&data.join("shopchat.db")).unwrap();
    for one in &seen {
        let id = shopchat_store::ConversationId(one.conversation.clone());
        let transcript = store.transcript(&id).unwrap().expect("the conversation is stored");
        let at = |seq: u64| {
            transcript.messages.iter().find(|m| u64::from(m.seq) == seq).unwrap_or_else(|| {
                panic!("no message {seq} in {transcript:?}");
            })
        };
        let question = at(one.ack.expect("acknowledged"));
        assert_eq!(question.text, QUESTION);
        let answer = at(one.answer.expect("the answer started"));
        let expected = if one.ended { MessageState::Complete } else { MessageState::Partial };
        if !one.ended {
            assert_eq!(answer.state, expected, "{answer:?}");
            assert!(!answer.text.is_empty(), "the first words were not saved: {answer:?}");
            // Saved every 16 deltas or every second: the stored text and
            // what the shopper read are one the other's beginning.
            assert!(
                one.streamed.starts_with(&answer.text) || answer.text.starts_with(&one.streamed),
                "stored {:?}, seen {:?}",
                answer.text,
                one.streamed
            );
        }
    }

    // Each shopper reconnects with its resume token and gets the
    // conversation back: its question and the answer as stored.
    runtime.block_on(async {
        for one in &seen {
            let (mut ws, _) =
                tokio_tungstenite::connect_async(format!("{}/ws", server.url())).await.unwrap();
            let hello =
                serde_json::json!({"type": "hello", "v": 1, "session": one.session, "last_seq": 0});
            send_frame(&mut ws, hello).await;
            let welcome = next_frame(&mut ws).await.unwrap();
            assert_eq!(welcome["resumed"], true, "{welcome}");
            assert_eq!(welcome["conversation_id"], one.conversation.as_str(), "{welcome}");
            let mut replayed = String::new();
            let mut acked = false;
            while let Some(frame) = next_frame(&mut ws).await {
                match frame["type"].as_str().unwrap() {
                    "ack" => acked = frame["seq"].as_u64() == one.ack,
                    "delta" => replayed.push_str(frame["text"].as_str().unwrap()),
                    "answer_end" => break,
                    _ => {}
                }
            }
            assert!(acked, "the question was not replayed");
            let transcript = store
                .transcript(&shopchat_store::ConversationId(one.conversation.clone()))
                .unwrap()
                .unwrap();
            let stored = transcript.messages.iter().find(|m| Some(u64::from(m.seq)) == one.answer);
            assert_eq!(replayed, stored.unwrap().text, "the replay is not the stored answer");
        }
    });
    drop(server);
}
