//! The staff API: access control, review, tags, notes, search, export and
//! re-indexing.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_routes_need_credentials_and_foreign_origins_are_refused() {
    let server = TestServer::start_with(|config| {
        config.allowed_origins = vec!["https://shop.example".to_owned()];
    })
    .await;
    server.add_staff().await;
    let addr = server.addr;

    let id = "c-nonexistent";
    let routes: Vec<(&str, String, Option<Value>)> = vec![
        ("POST", "/api/logout".into(), None),
        ("GET", "/api/me".into(), None),
        ("GET", "/api/conversations".into(), None),
        ("GET", "/api/conversations?needs_human=true&limit=5".into(), None),
        ("GET", format!("/api/conversations/{id}"), None),
        ("GET", "/api/export?format=jsonl".into(), None),
        ("GET", "/api/export?format=csv".into(), None),
        ("POST", format!("/api/conversations/{id}/tags"), Some(json!({ "tag": "vip" }))),
        ("DELETE", format!("/api/conversations/{id}/tags/vip"), None),
        ("PUT", format!("/api/conversations/{id}/note"), Some(json!({ "note": "hello" }))),
        ("POST", format!("/api/conversations/{id}/reply"), Some(json!({ "text": "hello" }))),
        ("POST", format!("/api/conversations/{id}/resolve"), None),
        ("POST", "/api/reindex".into(), None),
        ("GET", "/api/events".into(), None),
    ];
    for (method, path, body) in &routes {
        let response = http(addr, method, path, &[], body.as_ref()).await;
        assert_eq!(response.status, 401, "{method} {path}: {}", response.text());
        assert!(response.json()["error"].is_string(), "{method} {path}: {}", response.text());
    }
    let forged =
        http(addr, "GET", "/api/me", &[("Authorization", "Bearer 0123abcd".into())], None).await;
    assert_eq!(forged.status, 401);

    // Wrong password, unknown name: both 401.
    for (name, password) in [(STAFF_NAME, "wrong-password"), ("Mallory", STAFF_PASSWORD)] {
        let body = json!({ "name": name, "password": password });
        let response = http(addr, "POST", "/api/login", &[], Some(&body)).await;
        assert_eq!(response.status, 401, "{name}: {}", response.text());
        assert!(response.json()["error"].is_string());
    }

    // The right password: a token and a session cookie, both of which work.
    let body = json!({ "name": STAFF_NAME, "password": STAFF_PASSWORD });
    let login = http(addr, "POST", "/api/login", &[], Some(&body)).await;
    assert_eq!(login.status, 200, "{}", login.text());
    let session = login.json();
    let token = session["token"].as_str().expect("a token").to_owned();
    assert_eq!(session["name"], STAFF_NAME);
    assert!(!session["expires_at"].is_null(), "{session}");
    let bearer = ("Authorization", format!("Bearer {token}"));
    let me = http(addr, "GET", "/api/me", std::slice::from_ref(&bearer), None).await;
    assert_eq!(me.status, 200, "{}", me.text());
    assert_eq!(me.json()["name"], STAFF_NAME);
    assert!(!me.json()["id"].is_null());
    let cookie = login.header("set-cookie").expect("login sets the session cookie");
    let cookie = ("Cookie", cookie.split(';').next().unwrap().to_owned());
    let me = http(addr, "GET", "/api/me", std::slice::from_ref(&cookie), None).await;
    assert_eq!(me.status, 200, "{}", me.text());

    // Logged out: neither works any more.
    let logout = http(addr, "POST", "/api/logout", std::slice::from_ref(&bearer), None).await;
    assert_eq!(logout.status, 204, "{}", logout.text());
    assert_eq!(http(addr, "GET", "/api/me", &[bearer], None).await.status, 401);
    assert_eq!(http(addr, "GET", "/api/me", &[cookie], None).await.status, 401);

    // The chat socket: same origin, listed origins and no Origin are let in;
    // other origins are not.
    for origin in [Some("https://shop.example".to_owned()), Some(format!("http://{addr}")), None] {
        let mut shopper = Shopper::connect_from(addr, origin.as_deref())
            .await
            .unwrap_or_else(|e| panic!("origin {origin:?} refused: {e}"));
        shopper.hello(hello("en")).await;
    }
    // The scheme counts: an https page is not this plain-http server.
    for foreign in ["https://evil.example".to_owned(), format!("https://{addr}")] {
        match Shopper::connect_from(addr, Some(&foreign)).await {
            Ok(_) => panic!("a foreign origin was let in: {foreign}"),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert!(response.status().is_client_error(), "{:?}", response.status())
            }
            Err(other) => panic!("unexpected handshake error: {other}"),
        }
    }

    // Cookie-authenticated changes must come from this origin, scheme and all.
    let login = http(addr, "POST", "/api/login", &[], Some(&body)).await;
    let cookie = login.header("set-cookie").unwrap().split(';').next().unwrap().to_owned();
    let note = json!({ "note": "hello" });
    let path = format!("/api/conversations/{id}/note");
    for origin in [format!("https://{addr}"), "https://evil.example".to_owned()] {
        let headers = [("Cookie", cookie.clone()), ("Origin", origin.clone())];
        let response = http(addr, "PUT", &path, &headers, Some(&note)).await;
        assert_eq!(response.status, 403, "{origin}: {}", response.text());
    }
    let own = [("Cookie", cookie.clone()), ("Origin", format!("http://{addr}"))];
    assert_eq!(http(addr, "PUT", &path, &own, Some(&note)).await.status, 404);

    // Behind a proxy that ended TLS, the cookie is Secure and the https
    // origin is the server's own.
    let proxied = [("X-Forwarded-Proto", "https".to_owned())];
    let login = http(addr, "POST", "/api/login", &proxied, Some(&body)).await;
    assert_eq!(login.status, 200, "{}", login.text());
    let set_cookie = login.header("set-cookie").unwrap();
    assert!(set_cookie.contains("; Secure"), "{set_cookie}");
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let headers = [
        ("Cookie", cookie),
        ("Origin", format!("https://{addr}")),
        ("X-Forwarded-Proto", "https".to_owned()),
    ];
    assert_eq!(http(addr, "PUT", &path, &headers, Some(&note)).await.status, 404);
    assert!(!http(addr, "POST", "/api/login", &[], Some(&body))
        .await
        .header("set-cookie")
        .unwrap()
        .contains("Secure"));

    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_review_tag_note_search_export_and_reindex() {
    let server = TestServer::start().await;
    server.add_staff().await;
    let staff = StaffClient::login(server.addr).await;

    // Two conversations: a greeting rated up, and a thank-you.
    let (mut greeter, greeted) = Shopper::join(server.addr, "en").await;
    let greeting = greeter.ask("m-1", "hello there").await;
    assert_eq!(greeting.outcome, AnswerOutcome::Answered);
    greeter.send_frame(&feedback(greeting.seq, Rating::Up, None)).await;
    greeter.ping().await;
    let (mut thanker, thanked) = Shopper::join(server.addr, "en").await;
    assert_eq!(thanker.ask("m-1", "thanks a lot").await.outcome, AnswerOutcome::Answered);
    let (a, b) = (greeted.conversation_id.as_str(), thanked.conversation_id.as_str());

    let all = listed_ids(&staff.get("/api/conversations").await);
    assert!(all.contains(&a.to_owned()) && all.contains(&b.to_owned()), "{all:?}");
    assert_eq!(listed_ids(&staff.get("/api/conversations?limit=1").await).len(), 1);
    let rated = listed_ids(&staff.get("/api/conversations?feedback=up").await);
    assert_eq!(rated, vec![a.to_owned()]);
    let answered = listed_ids(&staff.get("/api/conversations?outcome=answered").await);
    assert!(answered.contains(&a.to_owned()) && answered.contains(&b.to_owned()));
    assert!(listed_ids(&staff.get("/api/conversations?outcome=handoff").await).is_empty());
    let found = listed_ids(&staff.get("/api/conversations?q=hello").await);
    assert_eq!(found, vec![a.to_owned()]);

    // Tags and notes.
    let tagged = staff.post(&format!("/api/conversations/{a}/tags"), json!({ "tag": "vip" })).await;
    assert_eq!(tagged.status, 204, "{}", tagged.text());
    assert_eq!(listed_ids(&staff.get("/api/conversations?tag=vip").await), vec![a.to_owned()]);
    let noted =
        staff.put(&format!("/api/conversations/{a}/note"), json!({ "note": "Called back" })).await;
    assert_eq!(noted.status, 204, "{}", noted.text());
    let transcript = staff.get(&format!("/api/conversations/{a}")).await;
    assert_eq!(transcript.status, 200);
    let transcript = transcript.json();
    assert_eq!(transcript["conversation"]["tags"], json!(["vip"]));
    assert_eq!(transcript["conversation"]["note"], "Called back");
    let texts: Vec<&str> = transcript["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert_eq!(texts.first(), Some(&"hello there"), "{transcript}");
    let untagged = staff.delete(&format!("/api/conversations/{a}/tags/vip")).await;
    assert_eq!(untagged.status, 204, "{}", untagged.text());
    assert!(listed_ids(&staff.get("/api/conversations?tag=vip").await).is_empty());

    let missing = staff.get("/api/conversations/c-does-not-exist").await;
    assert_eq!(missing.status, 404);
    assert!(missing.json()["error"].is_string());

    // Exports: one transcript a line, or CSV rows; filters apply.
    let jsonl = staff.get("/api/export?format=jsonl").await;
    assert_eq!(jsonl.status, 200, "{}", jsonl.text());
    // Streamed as the store reads it, not built in memory first.
    assert_eq!(jsonl.header("transfer-encoding"), Some("chunked"), "{:?}", jsonl.headers);
    assert_eq!(jsonl.header("content-length"), None);
    let exported: Vec<String> = jsonl
        .text()
        .lines()
        .map(|line| {
            let transcript: Value = serde_json::from_str(line).expect("a JSON line");
            transcript["conversation"]["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert!(exported.contains(&a.to_owned()) && exported.contains(&b.to_owned()), "{exported:?}");
    let filtered = staff.get("/api/export?format=jsonl&feedback=up").await.text();
    assert_eq!(filtered.lines().count(), 1, "{filtered}");
    assert!(filtered.contains(a));
    let csv = staff.get("/api/export?format=csv").await;
    assert_eq!(csv.status, 200);
    let csv = csv.text();
    assert!(csv.lines().count() >= 5, "a header and a row per message: {csv}");
    assert!(csv.contains(a) && csv.contains(b) && csv.contains("hello there"), "{csv}");

    // Re-indexing builds a new generation, which the assistant then uses.
    let before = server.index_generation();
    let reindex = staff.post("/api/reindex", Value::Null).await;
    assert_eq!(reindex.status, 200, "{}", reindex.text());
    let generation = reindex.json()["generation"].as_u64().expect("the new generation");
    assert!(generation > before, "{generation} after {before}");
    assert_eq!(server.index_generation(), generation);
    let (mut shopper, _) = Shopper::join(server.addr, "zh").await;
    let answer = shopper.ask("m-1", "配送需要多长时间？").await;
    assert_eq!(answer.outcome, AnswerOutcome::Answered, "{answer:#?}");

    drop((greeter, thanker, shopper));
    server.shutdown().await;
}
