//! Handing over to a person, and their replies reaching the shopper.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handoff_reaches_staff_and_their_reply_reaches_the_shopper() {
    let server = TestServer::start().await;
    server.add_staff().await;
    let (mut shopper, welcome) = Shopper::join(server.addr, "en").await;
    let id = welcome.conversation_id.clone();
    // Another conversation, which needs no one.
    let (mut other, other_welcome) = Shopper::join(server.addr, "en").await;
    assert_eq!(other.ask("m-1", "hi").await.outcome, AnswerOutcome::Answered);

    shopper.send_frame(&ClientFrame::Handoff).await;
    let frames = shopper.recv_until(|f| matches!(f, ServerFrame::Handoff { .. })).await;
    assert_eq!(frames.last(), Some(&ServerFrame::Handoff { status: HandoffStatus::Requested }));

    let staff = StaffClient::login(server.addr).await;
    let (staff_ref, id_ref) = (&staff, &id);
    let listed = poll("the conversation to be listed for staff", move || async move {
        let listed = listed_ids(&staff_ref.get("/api/conversations?needs_human=true").await);
        listed.contains(id_ref).then_some(listed)
    })
    .await;
    assert!(!listed.contains(&other_welcome.conversation_id), "{listed:?}");

    let transcript = staff.get(&format!("/api/conversations/{id}")).await;
    assert_eq!(transcript.status, 200, "{}", transcript.text());
    let transcript = transcript.json();
    assert_eq!(transcript["conversation"]["id"], id.as_str());
    assert!(!transcript["conversation"]["needs_human"].is_null(), "{transcript}");

    // A staff reply arrives live, under the staff member's name.
    let text = "Hi, I'm Sam from Northwind Threads. How can I help?";
    let reply =
        staff.post(&format!("/api/conversations/{id}/reply"), json!({ "text": text })).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seq = reply.json()["seq"].as_u64().expect("the reply's seq");
    let frames = shopper.recv_until(|f| matches!(f, ServerFrame::StaffMessage { .. })).await;
    assert_eq!(
        frames.last(),
        Some(&ServerFrame::StaffMessage {
            seq,
            author: STAFF_NAME.to_owned(),
            text: text.to_owned()
        })
    );
    let stored = server.transcript(&id).await;
    let stored = message_at(&stored, seq);
    assert_eq!(stored.role, Role::Staff);
    assert_eq!(stored.author.as_deref(), Some(STAFF_NAME));

    // Resolved: the shopper is told, staff no longer see it as waiting, and
    // the assistant answers again.
    let resolved = staff.post(&format!("/api/conversations/{id}/resolve"), Value::Null).await;
    assert_eq!(resolved.status, 204, "{}", resolved.text());
    let frames = shopper.recv_until(|f| matches!(f, ServerFrame::Handoff { .. })).await;
    assert_eq!(frames.last(), Some(&ServerFrame::Handoff { status: HandoffStatus::Resolved }));
    let waiting = listed_ids(&staff.get("/api/conversations?needs_human=true").await);
    assert!(!waiting.contains(&id), "{waiting:?}");
    assert_eq!(shopper.ask("m-2", "hi").await.outcome, AnswerOutcome::Answered);

    drop((shopper, other));
    server.shutdown().await;
}
