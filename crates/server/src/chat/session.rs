//! [`Session`]: one connection's conversation, reacting to whichever comes
//! first: a frame from the client, the next piece of the answer, a staff
//! event, a heartbeat tick, or shutdown.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket};
use futures_util::stream::SplitStream;
use futures_util::StreamExt;
use shopchat_core::protocol::{
    parse_client_frame, ClientFrame, ErrorCode, HandoffStatus, Rating, ServerFrame,
    PROTOCOL_VERSION,
};
use shopchat_core::Language;
use shopchat_pipeline::{Conversation, Event, Resumed, StreamEvent};
use shopchat_retrieval::VerifiedCustomer;
use shopchat_store as store;
use shopchat_store::{ConversationId, NewConversation};
use tokio::sync::broadcast;

use super::answer::Answering;
use super::convert::random_token;
use super::outbox::{End, Out, Outbox};
use super::replay::{history_of, replay_frames};
use crate::hub::LiveEvent;
use crate::limit::Window;
use crate::state::AppState;

pub(super) struct Session {
    pub(super) state: Arc<AppState>,
    pub(super) outbox: Outbox,
    pub(super) ip: IpAddr,
    pub(super) conversation: Option<ConversationId>,
    /// The conversation's rules and state (language, verified customer,
    /// history, "don't know" count, handoff): this session carries out
    /// what it decides.
    pub(super) talk: Conversation,
    pub(super) messages: Window,
    pub(super) verify_failures: Window,
    pub(super) answering: Option<Answering>,
    pub(super) live: Option<broadcast::Receiver<LiveEvent>>,
}

impl Session {
    pub(super) fn new(state: Arc<AppState>, outbox: Outbox, ip: IpAddr) -> Self {
        let limits = &state.config.limits;
        let messages = Window::new(limits.messages_per_minute, Duration::from_secs(60));
        let verify_failures = Window::new(limits.verify_failures, limits.verify_window);
        Self {
            state,
            outbox,
            ip,
            conversation: None,
            talk: Conversation::new("", None),
            messages,
            verify_failures,
            answering: None,
            live: None,
        }
    }

    pub(super) fn send(&self, frame: ServerFrame) -> Result<(), End> {
        self.outbox.push(Out::Frame(frame))
    }

    pub(super) fn error(&self, code: ErrorCode, message: impl Into<String>) -> Result<(), End> {
        self.state.metrics.record_frame_error();
        self.send(ServerFrame::error(code, message))
    }

    pub(super) fn internal_error(&self, error: &dyn std::fmt::Display) -> Result<(), End> {
        tracing::error!(%error, "chat request failed");
        self.error(ErrorCode::Internal, "Something went wrong on our side; please try again.")
    }

    /// Hands an event to the conversation and carries out what it decides.
    pub(super) async fn handle(&mut self, event: Event<'_>) -> Result<(), End> {
        let rules = self.state.assistant.rules();
        let actions = self.talk.handle(&rules, event);
        self.carry_out(actions, Instant::now()).await
    }

    pub(super) async fn run(&mut self, stream: &mut SplitStream<WebSocket>) -> End {
        let limits = self.state.config.limits.clone();
        let mut shutdown = self.state.shutdown.clone();
        let mut ping = tokio::time::interval(limits.ping_interval);
        ping.tick().await;
        let mut last_heard = Instant::now();
        loop {
            let idle_deadline = tokio::time::Instant::from_std(last_heard + limits.idle_timeout);
            let step = tokio::select! {
                incoming = stream.next() => {
                    last_heard = Instant::now();
                    self.on_incoming(incoming).await
                }
                event = next_event(&mut self.answering) => self.on_answer_event(event).await,
                live = next_live(&mut self.live) => self.on_live(live),
                _ = ping.tick() => self.outbox.push(Out::Ping),
                _ = tokio::time::sleep_until(idle_deadline) => Err(End::IdleTimeout),
                _ = shutting_down(&mut shutdown) => Err(End::ShuttingDown),
            };
            if let Err(end) = step {
                return end;
            }
        }
    }

    /// Ends the connection: an answer in flight is stopped and stored as
    /// partial, then the client gets the close code that says why.
    pub(super) async fn close(&mut self, end: End) {
        if let Some(answering) = &self.answering {
            answering.stream.stop();
            let deadline = tokio::time::sleep(Duration::from_secs(10));
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    event = next_event(&mut self.answering) => {
                        let _ = self.on_answer_event(event).await;
                        if self.answering.is_none() {
                            break;
                        }
                    }
                    _ = &mut deadline => {
                        tracing::warn!("an answer did not stop in time; it stays marked streaming");
                        break;
                    }
                }
            }
        }
        let close = match end {
            End::ClientGone => None,
            End::SlowReader => {
                if let Some(abort) = self.outbox.abort.take() {
                    let _ = abort.send((1013, "slow_reader"));
                }
                None
            }
            End::IdleTimeout => Some((1001, "idle")),
            End::ShuttingDown => Some((1001, "server shutting down")),
            End::UnsupportedVersion => Some((1002, "unsupported protocol version")),
            End::MessageTooLarge => Some((1009, "message too large")),
        };
        if let Some((code, reason)) = close {
            // Sent after the frames already queued; a full queue means the
            // client is not reading, so it gets the close out of turn.
            if self.outbox.push(Out::Close(code, reason)).is_err() {
                if let Some(abort) = self.outbox.abort.take() {
                    let _ = abort.send((code, reason));
                }
            }
        }
    }

    pub(super) async fn on_incoming(
        &mut self,
        incoming: Option<Result<Message, axum::Error>>,
    ) -> Result<(), End> {
        match incoming {
            None => Err(End::ClientGone),
            Some(Err(error)) => {
                // tungstenite reports an over-long message as a capacity error.
                let text = error.to_string();
                if text.contains("too long") || text.contains("Space limit") {
                    Err(End::MessageTooLarge)
                } else {
                    Err(End::ClientGone)
                }
            }
            Some(Ok(Message::Text(text))) => self.on_text(text.as_str()).await,
            Some(Ok(Message::Binary(_))) => {
                self.error(ErrorCode::BinaryNotSupported, "Send text frames only.")
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => Ok(()),
            Some(Ok(Message::Close(_))) => Err(End::ClientGone),
        }
    }

    pub(super) async fn on_text(&mut self, text: &str) -> Result<(), End> {
        let frame = match parse_client_frame(text, &self.state.config.limits.frame) {
            Ok(frame) => frame,
            Err(problem) => {
                self.state.metrics.record_frame_error();
                return self.send(problem.to_frame());
            }
        };
        let hello = matches!(frame, ClientFrame::Hello { .. });
        if self.conversation.is_none() && !hello {
            return self.error(ErrorCode::BadRequest, "Send \"hello\" first.");
        }
        match frame {
            ClientFrame::Hello { v, session, last_seq, lang } => {
                self.on_hello(v, session, last_seq, lang).await
            }
            ClientFrame::Message { client_id, text } => self.on_message(client_id, text).await,
            ClientFrame::Stop => self.handle(Event::Stop).await,
            ClientFrame::Feedback { message_seq, rating, comment } => {
                self.on_feedback(message_seq, rating, comment).await
            }
            ClientFrame::VerifyOrder { order_number, email } => {
                self.handle(Event::VerifyOrder { order_number: &order_number, email: &email }).await
            }
            ClientFrame::Identity { customer_id, signature } => {
                self.handle(Event::Identity { customer_id: &customer_id, signature: &signature })
                    .await
            }
            ClientFrame::StartReturn { order_number, skus } => {
                if self.answering.is_some() {
                    return self.error(
                        ErrorCode::BadRequest,
                        "An answer is still being written; wait for it or send \"stop\".",
                    );
                }
                self.handle(Event::StartReturn {
                    order_number: &order_number,
                    skus: skus.as_deref(),
                })
                .await
            }
            ClientFrame::Handoff => self.handle(Event::Handoff).await,
            ClientFrame::Ping => self.send(ServerFrame::Pong),
        }
    }

    pub(super) async fn on_hello(
        &mut self,
        v: u32,
        session: Option<String>,
        last_seq: Option<u64>,
        lang: Option<String>,
    ) -> Result<(), End> {
        if self.conversation.is_some() {
            return self.error(ErrorCode::BadRequest, "\"hello\" was already sent.");
        }
        if v != PROTOCOL_VERSION {
            self.error(
                ErrorCode::BadRequest,
                format!(
                    "protocol version {v} is not supported; this server speaks {PROTOCOL_VERSION}"
                ),
            )?;
            return Err(End::UnsupportedVersion);
        }
        let lang = lang.as_deref().and_then(Language::from_tag);

        let resumed = match session.clone() {
            Some(token) => {
                match self.state.with_store(move |s| s.conversation_by_resume_token(&token)).await {
                    Ok(found) => found,
                    Err(error) => return self.internal_error(&error),
                }
            }
            None => None,
        };
        let Some(conversation) = resumed else {
            return self.start_conversation(lang).await;
        };

        let token = session.unwrap_or_default();
        let id = conversation.id.clone();
        let messages = {
            let id = id.clone();
            match self.state.with_store(move |s| s.messages_after(&id, 0)).await {
                Ok(messages) => messages,
                Err(error) => return self.internal_error(&error),
            }
        };
        self.talk = Conversation::resume(
            id.0.clone(),
            Resumed {
                lang: lang.or_else(|| Language::from_tag(&conversation.lang)),
                // The customer id was stored only after the server verified it.
                customer: conversation
                    .customer_id
                    .as_deref()
                    .map(VerifiedCustomer::from_signed_identity),
                handed_over: conversation.needs_human.is_some(),
                history: history_of(&messages),
            },
        );
        self.conversation = Some(id.clone());
        self.live = Some(self.state.hub.subscribe(id.as_str()));
        self.send(ServerFrame::Welcome {
            v: PROTOCOL_VERSION,
            session: token,
            conversation_id: id.0.clone(),
            resumed: true,
        })?;
        let after = last_seq.unwrap_or(0);
        // With backpressure: a long conversation's replay does not fit in
        // the outbox, and must not be taken for a client that stopped reading.
        let replay = messages.iter().filter(|m| u64::from(m.seq) > after).flat_map(replay_frames);
        for frame in replay {
            self.outbox.push_waiting(Out::Frame(frame)).await?;
        }
        if self.talk.handed_over() {
            self.send(ServerFrame::Handoff { status: HandoffStatus::Requested })?;
        }
        if let Some(customer) = self.talk.customer() {
            let customer_name = self.state.assistant.customer_name(customer);
            self.send(ServerFrame::Verified { customer_name })?;
        }
        Ok(())
    }

    pub(super) async fn start_conversation(&mut self, lang: Option<Language>) -> Result<(), End> {
        let token = random_token(24);
        let new = NewConversation {
            id: ConversationId(format!("c-{}", random_token(12))),
            lang: lang.map_or("und", Language::code).to_owned(),
            resume_token: token.clone(),
            customer_id: None,
            channel: "web".into(),
        };
        let conversation = match self.state.with_store(move |s| s.create_conversation(new)).await {
            Ok(conversation) => conversation,
            Err(error) => return self.internal_error(&error),
        };
        self.live = Some(self.state.hub.subscribe(conversation.id.as_str()));
        self.send(ServerFrame::Welcome {
            v: PROTOCOL_VERSION,
            session: token,
            conversation_id: conversation.id.0.clone(),
            resumed: false,
        })?;
        self.talk = Conversation::new(conversation.id.0.clone(), lang);
        self.conversation = Some(conversation.id);
        Ok(())
    }

    pub(super) fn conversation_id(&self) -> ConversationId {
        self.conversation.clone().unwrap_or_else(|| ConversationId(String::new()))
    }

    pub(super) async fn on_feedback(
        &mut self,
        message_seq: u64,
        rating: Rating,
        comment: Option<String>,
    ) -> Result<(), End> {
        let id = self.conversation_id();
        let Ok(seq) = u32::try_from(message_seq) else {
            return self.error(ErrorCode::BadRequest, "message_seq is not an answer here.");
        };
        let feedback = store::Feedback {
            rating: match rating {
                Rating::Up => store::Rating::Up,
                Rating::Down => store::Rating::Down,
            },
            comment: comment.filter(|c| !c.trim().is_empty()),
        };
        let result = self
            .state
            .with_store(move |s| match s.answer_by_seq(&id, seq)? {
                Some(answer) => s.set_feedback(answer.id, feedback).map(|()| true),
                None => Ok(false),
            })
            .await;
        match result {
            Ok(true) => {
                self.state.hub.notify_console("message", &self.conversation_id().0);
                Ok(())
            }
            Ok(false) => self.error(
                ErrorCode::BadRequest,
                format!("message_seq {message_seq} is not an answer in this conversation."),
            ),
            Err(error) => self.internal_error(&error),
        }
    }

    pub(super) fn on_live(&mut self, event: Option<LiveEvent>) -> Result<(), End> {
        match event {
            Some(LiveEvent::StaffMessage { seq, author, text }) => {
                self.send(ServerFrame::StaffMessage { seq, author, text })
            }
            Some(LiveEvent::HandoffResolved) => {
                let rules = self.state.assistant.rules();
                // Resolving asks for nothing to be done.
                let _ = self.talk.handle(&rules, Event::HandoffResolved);
                self.send(ServerFrame::Handoff { status: HandoffStatus::Resolved })
            }
            None => {
                self.live = None;
                Ok(())
            }
        }
    }
}

/// The next event of the answer being generated; pending when there is none,
/// so `select!` waits on the other branches.
pub(super) async fn next_event(answering: &mut Option<Answering>) -> Option<StreamEvent> {
    match answering {
        Some(answering) => answering.stream.next().await,
        None => std::future::pending().await,
    }
}

/// Resolves once the server starts shutting down.
pub(crate) async fn shutting_down(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    loop {
        if *shutdown.borrow_and_update() {
            return;
        }
        if shutdown.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

async fn next_live(live: &mut Option<broadcast::Receiver<LiveEvent>>) -> Option<LiveEvent> {
    let Some(receiver) = live else { return std::future::pending().await };
    loop {
        match receiver.recv().await {
            Ok(event) => return Some(event),
            // Missed events are in the store; the next reconnect replays them.
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return None,
        }
    }
}
