//! One shopper's websocket connection: `docs/protocol.md` in code.
//!
//! The connection's task owns everything about its conversation (the
//! verified customer, the history the model sees, the answer streaming) and
//! reacts to whichever comes first: a frame from the client, the next piece
//! of the answer, a staff event, a heartbeat tick, or shutdown. Frames to the
//! client go through a bounded queue to a writer task; when it is full the
//! client is not reading, and it is closed with 1013 instead of buffering
//! without end.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use shopchat_core::protocol::{
    parse_client_frame, AnswerAction, AnswerOutcome, ClientFrame, ErrorCode, HandoffStatus, Rating,
    ServerFrame, Source, Timings, PROTOCOL_VERSION,
};
use shopchat_core::{ChatMessage, Language};
use shopchat_pipeline::{
    AnswerStream, Effect, Finished, Reply, Response as PipelineResponse, ReturnRefusal,
    StreamEvent, Turn,
};
use shopchat_retrieval::VerifiedCustomer;
use shopchat_store as store;
use shopchat_store::{ConversationId, MessageState, NewConversation, NewReturn, StoredMessage};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::hub::LiveEvent;
use crate::limit::Window;
use crate::state::{AppState, SessionGuard, SessionRefused};

/// How often a streaming answer's text is saved, so that a killed process
/// loses at most this much of it: after this long, or this many deltas,
/// whichever comes first. The first delta is saved before it is sent, so an
/// answer the shopper has seen a word of is never stored empty.
const SAVE_PROGRESS_EVERY: Duration = Duration::from_secs(1);
const SAVE_PROGRESS_DELTAS: u64 = 16;

/// How long a resumed client may take no frame of its replay before it is
/// closed as a slow reader.
const REPLAY_STALL: Duration = Duration::from_secs(10);

/// How long an orderly close may take to reach a client before giving up.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn upgrade(
    ws: WebSocketUpgrade,
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if !origin_allowed(&headers, &state.config.allowed_origins) {
        return (StatusCode::FORBIDDEN, "this origin may not open the chat").into_response();
    }
    let limits = &state.config.limits;
    ws.max_message_size(limits.max_ws_message_bytes)
        .max_frame_size(limits.max_ws_message_bytes)
        .on_upgrade(move |socket| async move {
            match state.try_open_session(peer.ip()) {
                Ok(guard) => connection(socket, state, peer.ip(), guard).await,
                Err(refused) => close_at_once(socket, refused).await,
            }
        })
}

/// Over a connection cap: the upgrade is completed so that the page's
/// script sees why (close code 1013, "try again later", and the reason),
/// which a refused HTTP upgrade would not tell it.
async fn close_at_once(mut socket: WebSocket, refused: SessionRefused) {
    tracing::info!(reason = refused.reason(), "chat connection refused");
    let close = CloseFrame { code: 1013, reason: refused.reason().into() };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, socket.send(Message::Close(Some(close)))).await;
}

/// Pages of the server itself and of the configured origins may connect;
/// programs (no `Origin` header) may too, as browsers always send one.
fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let origin = origin.trim_end_matches('/');
    crate::origin::is_own_origin(origin, headers)
        || allowed.iter().any(|a| a == "*" || a.trim_end_matches('/') == origin)
}

/// One stored entry, as the protocol replays it.
fn replay_frames(message: &StoredMessage) -> Vec<ServerFrame> {
    let seq = u64::from(message.seq);
    match message.role {
        store::Role::Shopper => {
            vec![ServerFrame::Ack { client_id: message.client_id.clone().unwrap_or_default(), seq }]
        }
        store::Role::Assistant if message.state != MessageState::Streaming => {
            let details = message.answer.as_ref();
            let sources: Vec<Source> = details
                .map(|d| {
                    d.sources
                        .iter()
                        .map(|s| Source {
                            id: s.id.clone(),
                            title: s.title.clone(),
                            url: s.url.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            let outcome = details.map_or(AnswerOutcome::Error, |d| outcome_to_wire(d.outcome));
            let timings = details.map_or(
                Timings { ttft_ms: None, total_ms: 0.0, tokens: 0, tokens_per_s: 0.0 },
                |d| Timings {
                    ttft_ms: d.timings.ttft_ms.map(f64::from),
                    total_ms: f64::from(d.timings.total_ms),
                    tokens: u64::from(d.timings.tokens),
                    tokens_per_s: f64::from(d.timings.tokens_per_s),
                },
            );
            let mut frames = vec![ServerFrame::AnswerStart { seq }];
            if !sources.is_empty() {
                frames.push(ServerFrame::Sources { seq, sources });
            }
            frames.push(ServerFrame::Delta { seq, index: 0, text: message.text.clone() });
            frames.push(ServerFrame::AnswerEnd {
                seq,
                outcome,
                text: None,
                timings,
                action: None,
                sources: None,
            });
            frames
        }
        store::Role::Staff => vec![ServerFrame::StaffMessage {
            seq,
            author: message.author.clone().unwrap_or_default(),
            text: message.text.clone(),
        }],
        store::Role::Assistant | store::Role::System => Vec::new(),
    }
}

/// What goes to the writer task.
enum Out {
    Frame(ServerFrame),
    Ping,
    /// Send this close frame after everything queued before it, then stop.
    Close(u16, &'static str),
}

/// Why a connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    ClientGone,
    SlowReader,
    IdleTimeout,
    ShuttingDown,
    UnsupportedVersion,
    MessageTooLarge,
}

async fn connection(socket: WebSocket, state: Arc<AppState>, ip: IpAddr, _guard: SessionGuard) {
    let (sink, mut stream) = socket.split();
    let (frames, queue) = mpsc::channel(state.config.limits.outbox_frames);
    let (abort, aborted) = oneshot::channel();
    let writer = tokio::spawn(write_frames(sink, queue, aborted));
    let mut session = Session::new(state, Outbox { frames, abort: Some(abort) }, ip);
    let end = session.run(&mut stream).await;
    session.close(end).await;
    drop(session);
    let _ = writer.await;
}

async fn write_frames(
    mut sink: SplitSink<WebSocket, Message>,
    mut queue: mpsc::Receiver<Out>,
    aborted: oneshot::Receiver<(u16, &'static str)>,
) {
    let close = |code: u16, reason: &'static str| {
        Message::Close(Some(CloseFrame { code, reason: reason.into() }))
    };
    // `None` once the session dropped its abort handle without using it.
    let mut aborted = Some(aborted);
    loop {
        let out = tokio::select! {
            biased;
            abort = async { aborted.as_mut().expect("guarded").await }, if aborted.is_some() => {
                match abort {
                    Ok((code, reason)) => {
                        let close = close(code, reason);
                        let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.send(close)).await;
                        return;
                    }
                    Err(_) => {
                        aborted = None;
                        continue;
                    }
                }
            }
            out = queue.recv() => out,
        };
        let message = match out {
            Some(Out::Frame(frame)) => match serde_json::to_string(&frame) {
                Ok(text) => Message::Text(text.into()),
                Err(error) => {
                    tracing::error!(%error, "a server frame did not serialize");
                    continue;
                }
            },
            Some(Out::Ping) => Message::Ping(Vec::new().into()),
            Some(Out::Close(code, reason)) => {
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.send(close(code, reason))).await;
                return;
            }
            None => return,
        };
        if sink.send(message).await.is_err() {
            return;
        }
    }
}

/// The bounded queue of frames to the client.
struct Outbox {
    frames: mpsc::Sender<Out>,
    abort: Option<oneshot::Sender<(u16, &'static str)>>,
}

impl Outbox {
    /// Queues a frame; a full queue means the client is not reading.
    fn push(&self, out: Out) -> Result<(), End> {
        match self.frames.try_send(out) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => Err(End::SlowReader),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(End::ClientGone),
        }
    }

    /// Queues a frame, waiting for room: for a replay, which may be longer
    /// than the queue however fast the client reads. A client that takes
    /// no frame for `REPLAY_STALL` is a slow reader all the same.
    async fn push_waiting(&self, out: Out) -> Result<(), End> {
        match tokio::time::timeout(REPLAY_STALL, self.frames.send(out)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::ClientGone),
            Err(_) => Err(End::SlowReader),
        }
    }
}

/// The answer being generated, with what the protocol needs to report it.
struct Answering {
    stream: AnswerStream,
    message_id: store::MessageId,
    seq: u64,
    received_at: Instant,
    first_token_at: Option<Instant>,
    deltas: u64,
    /// When, and after how many deltas, the text was last saved.
    saved_at: Instant,
    saved_deltas: u64,
    /// The save in flight; the next one waits for it, so saves land in order.
    saving: Option<tokio::task::JoinHandle<()>>,
}

struct Session {
    state: Arc<AppState>,
    outbox: Outbox,
    ip: IpAddr,
    conversation: Option<ConversationId>,
    /// From `hello`, or the language of the shopper's latest message.
    lang: Option<Language>,
    customer: Option<VerifiedCustomer>,
    /// Shopper and assistant messages, for the model's context.
    history: Vec<ChatMessage>,
    refusals_in_a_row: u32,
    needs_human: bool,
    messages: Window,
    verify_failures: Window,
    answering: Option<Answering>,
    live: Option<broadcast::Receiver<LiveEvent>>,
}

impl Session {
    fn new(state: Arc<AppState>, outbox: Outbox, ip: IpAddr) -> Self {
        let limits = &state.config.limits;
        let messages = Window::new(limits.messages_per_minute, Duration::from_secs(60));
        let verify_failures = Window::new(limits.verify_failures, limits.verify_window);
        Self {
            state,
            outbox,
            ip,
            conversation: None,
            lang: None,
            customer: None,
            history: Vec::new(),
            refusals_in_a_row: 0,
            needs_human: false,
            messages,
            verify_failures,
            answering: None,
            live: None,
        }
    }

    fn send(&self, frame: ServerFrame) -> Result<(), End> {
        self.outbox.push(Out::Frame(frame))
    }

    fn error(&self, code: ErrorCode, message: impl Into<String>) -> Result<(), End> {
        self.state.metrics.record_frame_error();
        self.send(ServerFrame::error(code, message))
    }

    fn internal_error(&self, error: &dyn std::fmt::Display) -> Result<(), End> {
        tracing::error!(%error, "chat request failed");
        self.error(ErrorCode::Internal, "Something went wrong on our side; please try again.")
    }

    fn lang(&self) -> Language {
        self.lang.unwrap_or(Language::En)
    }

    async fn run(&mut self, stream: &mut SplitStream<WebSocket>) -> End {
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
    async fn close(&mut self, end: End) {
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

    async fn on_incoming(
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

    async fn on_text(&mut self, text: &str) -> Result<(), End> {
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
            ClientFrame::Stop => {
                if let Some(answering) = &self.answering {
                    answering.stream.stop();
                }
                Ok(())
            }
            ClientFrame::Feedback { message_seq, rating, comment } => {
                self.on_feedback(message_seq, rating, comment).await
            }
            ClientFrame::VerifyOrder { order_number, email } => {
                let assistant = self.state.assistant.clone();
                self.verify(move || assistant.verify_order(&order_number, &email)).await
            }
            ClientFrame::Identity { customer_id, signature } => {
                let assistant = self.state.assistant.clone();
                self.verify(move || assistant.verify_identity(&customer_id, &signature)).await
            }
            ClientFrame::StartReturn { order_number, skus } => {
                self.on_start_return(order_number, skus).await
            }
            ClientFrame::Handoff => {
                self.request_handoff("the shopper asked for a person".into()).await
            }
            ClientFrame::Ping => self.send(ServerFrame::Pong),
        }
    }

    async fn on_hello(
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
        self.lang = lang.as_deref().and_then(Language::from_tag);

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
            return self.start_conversation().await;
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
        if self.lang.is_none() {
            self.lang = Language::from_tag(&conversation.lang);
        }
        // The customer id was stored only after the server verified it.
        self.customer =
            conversation.customer_id.as_deref().map(VerifiedCustomer::from_signed_identity);
        self.needs_human = conversation.needs_human.is_some();
        self.history = history_of(&messages);
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
        if self.needs_human {
            self.send(ServerFrame::Handoff { status: HandoffStatus::Requested })?;
        }
        if let Some(customer) = &self.customer {
            let customer_name = self.state.assistant.customer_name(customer);
            self.send(ServerFrame::Verified { customer_name })?;
        }
        Ok(())
    }

    async fn start_conversation(&mut self) -> Result<(), End> {
        let token = random_token(24);
        let new = NewConversation {
            id: ConversationId(format!("c-{}", random_token(12))),
            lang: self.lang.map_or("und", Language::code).to_owned(),
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
        self.conversation = Some(conversation.id);
        Ok(())
    }

    fn conversation_id(&self) -> ConversationId {
        self.conversation.clone().unwrap_or_else(|| ConversationId(String::new()))
    }

    async fn on_message(&mut self, client_id: String, text: String) -> Result<(), End> {
        if self.answering.is_some() {
            return self.error(
                ErrorCode::BadRequest,
                "An answer is still being written; wait for it or send \"stop\".",
            );
        }
        // Per conversation, and per address: a client cannot get round the
        // first by opening more conversations.
        if !self.messages.try_take(Instant::now())
            || self.state.messages_by_address.try_take(&self.ip).is_none()
        {
            return self.error(ErrorCode::RateLimited, "Too many messages; please wait a minute.");
        }
        let received_at = Instant::now();
        let id = self.conversation_id();
        let received = {
            let (client_id, text) = (client_id.clone(), text.clone());
            self.state.with_store(move |s| s.add_shopper_message(&id, &client_id, &text)).await
        };
        let received = match received {
            Ok(received) => received,
            Err(error) if error.is_user_error() => {
                return self.error(ErrorCode::BadRequest, error.to_string())
            }
            Err(error) => return self.internal_error(&error),
        };
        tracing::info!(
            conversation = %self.conversation_id().0,
            seq = received.message.seq,
            text = %shopchat_core::mask::mask_pii(&text),
            "shopper message"
        );
        self.send(ServerFrame::Ack { client_id, seq: u64::from(received.message.seq) })?;
        if received.duplicate {
            // Answered (or being answered) the first time; a reconnecting
            // client gets that answer in the replay.
            return Ok(());
        }
        self.history.push(ChatMessage::user(text.clone()));
        self.state.hub.notify_console("message", &self.conversation_id().0);
        if self.needs_human {
            // A person has the conversation; the assistant keeps out of it.
            return Ok(());
        }

        let understanding = self.state.assistant.understand(&text);
        if understanding.intent != shopchat_core::intent::Intent::Human
            && text.chars().any(char::is_alphabetic)
        {
            self.lang = Some(understanding.lang);
        }
        // A message with an order number and an e-mail address counts as
        // `verify_order`.
        if self.customer.is_none() {
            if let (Some(number), Some(email)) = (understanding.order_number, understanding.email) {
                let assistant = self.state.assistant.clone();
                match self.try_verify(move || assistant.verify_order(&number, &email)).await? {
                    Verification::Verified => {}
                    Verification::Failed(code) => {
                        let texts = self.state.assistant.texts();
                        let text = match code {
                            ErrorCode::RateLimited => rate_limited_text(self.lang()),
                            _ => texts.not_verified(self.lang()),
                        };
                        let mut reply = Reply::fixed(text, AnswerOutcome::Answered, self.lang());
                        reply.effect = Some(Effect::AskForVerification);
                        return self.send_reply(reply, received_at).await;
                    }
                }
            }
        }

        let assistant = self.state.assistant.clone();
        let history = self.history[..self.history.len() - 1].to_vec();
        let customer = self.customer.clone();
        let conversation = self.conversation_id().0;
        let lang = self.lang;
        let refusals_in_a_row = self.refusals_in_a_row;
        let response = tokio::task::spawn_blocking(move || {
            assistant.respond(&Turn {
                text: &text,
                lang,
                history: &history,
                customer: customer.as_ref(),
                conversation: Some(&conversation),
                refusals_in_a_row,
            })
        })
        .await;
        match response {
            Ok(Ok(PipelineResponse::Reply(reply))) => self.send_reply(reply, received_at).await,
            Ok(Ok(PipelineResponse::Stream(stream))) => {
                self.start_stream(stream, received_at).await
            }
            Ok(Err(shopchat_pipeline::Error::Busy { queued })) => {
                self.state.metrics.record_busy();
                self.send(ServerFrame::Busy { queued: queued as u64 })
            }
            Ok(Err(error)) => self.internal_error(&error),
            Err(join) => self.internal_error(&join),
        }
    }

    /// Sends and stores an answer no model writes.
    async fn send_reply(&mut self, reply: Reply, received_at: Instant) -> Result<(), End> {
        let id = self.conversation_id();
        let message = match self.state.with_store(move |s| s.start_answer(&id)).await {
            Ok(message) => message,
            Err(error) => return self.internal_error(&error),
        };
        let seq = u64::from(message.seq);
        let timings = Timings {
            ttft_ms: None,
            total_ms: millis(received_at.elapsed()),
            tokens: 0,
            tokens_per_s: 0.0,
        };
        self.store_answer(message.id, &reply, timings, store::AnswerState::Complete).await;
        self.send(ServerFrame::AnswerStart { seq })?;
        if !reply.sources.is_empty() {
            self.send(ServerFrame::Sources { seq, sources: reply.sources.clone() })?;
        }
        self.send(ServerFrame::Delta { seq, index: 0, text: reply.text.clone() })?;
        let action = action_of(&reply);
        self.send(ServerFrame::AnswerEnd {
            seq,
            outcome: reply.outcome,
            text: None,
            timings,
            action,
            sources: None,
        })?;
        self.after_answer(&reply).await
    }

    async fn start_stream(
        &mut self,
        stream: AnswerStream,
        received_at: Instant,
    ) -> Result<(), End> {
        let id = self.conversation_id();
        let message = match self.state.with_store(move |s| s.start_answer(&id)).await {
            Ok(message) => message,
            Err(error) => {
                stream.stop();
                return self.internal_error(&error);
            }
        };
        let seq = u64::from(message.seq);
        self.send(ServerFrame::AnswerStart { seq })?;
        if stream.queue_position() > 0 {
            self.send(ServerFrame::Queued { position: stream.queue_position() as u64 })?;
        }
        if !stream.sources().is_empty() {
            self.send(ServerFrame::Sources { seq, sources: stream.sources().to_vec() })?;
        }
        self.answering = Some(Answering {
            stream,
            message_id: message.id,
            seq,
            received_at,
            first_token_at: None,
            deltas: 0,
            saved_at: Instant::now(),
            saved_deltas: 0,
            saving: None,
        });
        Ok(())
    }

    async fn on_answer_event(&mut self, event: Option<StreamEvent>) -> Result<(), End> {
        let Some(answering) = self.answering.as_mut() else { return Ok(()) };
        match event {
            Some(StreamEvent::Started { .. }) => Ok(()),
            Some(StreamEvent::Delta(text)) => {
                let now = Instant::now();
                if answering.first_token_at.is_none() {
                    answering.first_token_at = Some(now);
                    let ttft = now.duration_since(answering.received_at).as_secs_f64();
                    self.state.metrics.record_ttft(ttft);
                }
                let frame =
                    ServerFrame::Delta { seq: answering.seq, index: answering.deltas, text };
                answering.deltas += 1;
                let first = answering.saved_deltas == 0;
                let due = first
                    || answering.deltas - answering.saved_deltas >= SAVE_PROGRESS_DELTAS
                    || now.duration_since(answering.saved_at) >= SAVE_PROGRESS_EVERY;
                // A save still running is not overtaken: the next delta tries again.
                if due && answering.saving.as_ref().is_none_or(|save| save.is_finished()) {
                    answering.saved_at = now;
                    answering.saved_deltas = answering.deltas;
                    let (id, text) = (answering.message_id, answering.stream.text().to_owned());
                    let state = self.state.clone();
                    let save = tokio::spawn(async move {
                        let _ = state.with_store(move |s| s.save_answer_progress(id, &text)).await;
                    });
                    if first {
                        // One short write before the first word goes out.
                        let _ = save.await;
                    } else {
                        // The answer streams on while the text is saved.
                        answering.saving = Some(save);
                    }
                }
                self.send(frame)
            }
            Some(StreamEvent::Done(finished)) => {
                let Some(answering) = self.answering.take() else { return Ok(()) };
                self.finish_stream(answering, *finished).await
            }
            None => {
                self.answering = None;
                Ok(())
            }
        }
    }

    async fn finish_stream(&mut self, answering: Answering, finished: Finished) -> Result<(), End> {
        let Finished { reply, generated, stopped, stats } = finished;
        let now = Instant::now();
        let tokens = stats.as_ref().map_or(0, |s| s.generated_tokens as u64);
        let tokens_per_s = stats.as_ref().map_or(0.0, |s| s.decode_tokens_per_s);
        if let Some(stats) = &stats {
            self.state.metrics.record_decode(tokens, stats.decode_ms / 1000.0);
        }
        let timings = Timings {
            ttft_ms: answering
                .first_token_at
                .map(|t| millis(t.duration_since(answering.received_at))),
            total_ms: millis(now.duration_since(answering.received_at)),
            tokens,
            tokens_per_s,
        };
        let state = match (stopped, reply.outcome) {
            (_, AnswerOutcome::Error) => store::AnswerState::Failed,
            (true, _) => store::AnswerState::Partial,
            (false, _) => store::AnswerState::Complete,
        };
        self.store_answer(answering.message_id, &reply, timings, state).await;
        // The client shows `text` instead of the deltas whenever they differ,
        // and `sources` instead of those announced at the start.
        let text = (reply.text.trim() != generated.trim()).then(|| reply.text.clone());
        let sources = (reply.sources != answering.stream.sources()).then(|| reply.sources.clone());
        let action = action_of(&reply);
        self.send(ServerFrame::AnswerEnd {
            seq: answering.seq,
            outcome: reply.outcome,
            text,
            timings,
            action,
            sources,
        })?;
        self.after_answer(&reply).await
    }

    /// Records an answer's ending. A failure is logged, not sent: the
    /// shopper already has the answer, and staff see the gap.
    async fn store_answer(
        &self,
        message_id: store::MessageId,
        reply: &Reply,
        timings: Timings,
        state: store::AnswerState,
    ) {
        self.state.metrics.record_answer(reply.outcome);
        let record = store::AnswerRecord {
            text: reply.text.clone(),
            state,
            details: store::AnswerDetails {
                outcome: outcome_to_store(reply.outcome),
                sources: reply
                    .sources
                    .iter()
                    .map(|s| store::SourceRef {
                        id: s.id.clone(),
                        title: s.title.clone(),
                        url: s.url.clone(),
                    })
                    .collect(),
                model: reply.model.clone(),
                prompt_version: reply.prompt_version.clone(),
                timings: store::Timings {
                    ttft_ms: timings.ttft_ms.map(|ms| ms.round() as u32),
                    total_ms: timings.total_ms.round() as u32,
                    tokens: timings.tokens as u32,
                    tokens_per_s: timings.tokens_per_s as f32,
                },
                gate: reply.gate.map(|g| store::GateRecord { covered: g.covered, score: g.score }),
                check: reply
                    .check
                    .as_ref()
                    .map(|c| store::CheckRecord { passed: c.passed, reason: c.reason() }),
            },
        };
        match self.state.with_store(move |s| s.finish_answer(message_id, record)).await {
            Ok(()) => self.state.hub.notify_console("message", &self.conversation_id().0),
            Err(error) => tracing::error!(%error, "an answer could not be stored"),
        }
    }

    /// Bookkeeping after an answer: history, the "don't know" count, handoff.
    async fn after_answer(&mut self, reply: &Reply) -> Result<(), End> {
        if !reply.text.is_empty() {
            self.history.push(ChatMessage::assistant(reply.text.clone()));
        }
        match reply.outcome {
            AnswerOutcome::Refused => self.refusals_in_a_row += 1,
            AnswerOutcome::Answered | AnswerOutcome::Replaced => self.refusals_in_a_row = 0,
            AnswerOutcome::Handoff | AnswerOutcome::Error => {}
        }
        if let Some(Effect::Handoff { reason }) = &reply.effect {
            self.refusals_in_a_row = 0;
            return self.request_handoff(reason.clone()).await;
        }
        Ok(())
    }

    async fn request_handoff(&mut self, reason: String) -> Result<(), End> {
        let id = self.conversation_id();
        if let Err(error) =
            self.state.with_store(move |s| s.set_needs_human(&id, Some(&reason))).await
        {
            return self.internal_error(&error);
        }
        self.needs_human = true;
        self.state.hub.notify_console("needs_human", &self.conversation_id().0);
        tracing::info!(conversation = %self.conversation_id().0, "handed over to staff");
        self.send(ServerFrame::Handoff { status: HandoffStatus::Requested })
    }

    async fn on_feedback(
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

    /// `verify_order` and `identity` frames.
    async fn verify(
        &mut self,
        check: impl FnOnce() -> Option<VerifiedCustomer> + Send + 'static,
    ) -> Result<(), End> {
        match self.try_verify(check).await? {
            Verification::Verified => Ok(()),
            Verification::Failed(ErrorCode::RateLimited) => self.error(
                ErrorCode::RateLimited,
                "Too many verification attempts; please try again later.",
            ),
            Verification::Failed(code) => {
                self.error(code, "We couldn't verify that order number and email address.")
            }
        }
    }

    /// Rate-limited verification; on success the conversation is linked to
    /// the customer and the client told with `verified`.
    async fn try_verify(
        &mut self,
        check: impl FnOnce() -> Option<VerifiedCustomer> + Send + 'static,
    ) -> Result<Verification, End> {
        // The attempt is counted before the check, per conversation and per
        // address, so that parallel connections cannot all pass the limit;
        // a successful verification gives its places back.
        let now = Instant::now();
        if !self.verify_failures.try_take(now) {
            return Ok(Verification::Failed(ErrorCode::RateLimited));
        }
        let Some(attempt) = self.state.verify_failures.try_take(&self.ip) else {
            self.verify_failures.give_back(now);
            return Ok(Verification::Failed(ErrorCode::RateLimited));
        };
        let customer = match tokio::task::spawn_blocking(check).await {
            Ok(customer) => customer,
            Err(join) => {
                self.internal_error(&join)?;
                return Ok(Verification::Failed(ErrorCode::Internal));
            }
        };
        let Some(customer) = customer else {
            return Ok(Verification::Failed(ErrorCode::NotVerified));
        };
        self.verify_failures.give_back(now);
        self.state.verify_failures.give_back(&self.ip, attempt);
        let id = self.conversation_id();
        let customer_id = customer.customer_id().to_owned();
        if let Err(error) = self.state.with_store(move |s| s.set_customer(&id, &customer_id)).await
        {
            self.internal_error(&error)?;
            return Ok(Verification::Failed(ErrorCode::Internal));
        }
        let customer_name = self.state.assistant.customer_name(&customer);
        self.customer = Some(customer);
        self.send(ServerFrame::Verified { customer_name })?;
        Ok(Verification::Verified)
    }

    async fn on_start_return(
        &mut self,
        order_number: String,
        skus: Option<Vec<String>>,
    ) -> Result<(), End> {
        if self.answering.is_some() {
            return self.error(
                ErrorCode::BadRequest,
                "An answer is still being written; wait for it or send \"stop\".",
            );
        }
        let received_at = Instant::now();
        let lang = self.lang();
        let decision = self.state.assistant.approve_return(
            self.customer.as_ref(),
            &order_number,
            skus.as_deref(),
            lang,
        );
        match decision {
            Ok(approval) => {
                let new = NewReturn {
                    order_number: approval.order_number.clone(),
                    customer_id: approval.customer_id.clone(),
                    items: approval.skus.clone(),
                    reason: None,
                };
                let record = match self.state.with_store(move |s| s.create_return(new)).await {
                    Ok(record) => record,
                    Err(error) => return self.internal_error(&error),
                };
                self.send(ServerFrame::ReturnStarted {
                    return_number: record.return_number.clone(),
                    order_number: record.order_number.clone(),
                })?;
                let text = self.state.assistant.texts().return_started(
                    lang,
                    &record.return_number,
                    &record.order_number,
                );
                self.send_reply(Reply::fixed(text, AnswerOutcome::Answered, lang), received_at)
                    .await
            }
            Err(ReturnRefusal::NotVerified) => self.error(
                ErrorCode::NotVerified,
                "Verify the order with its number and email address first.",
            ),
            Err(ReturnRefusal::NotEligible { text }) => {
                self.send_reply(Reply::fixed(text, AnswerOutcome::Refused, lang), received_at).await
            }
        }
    }

    fn on_live(&mut self, event: Option<LiveEvent>) -> Result<(), End> {
        match event {
            Some(LiveEvent::StaffMessage { seq, author, text }) => {
                self.send(ServerFrame::StaffMessage { seq, author, text })
            }
            Some(LiveEvent::HandoffResolved) => {
                self.needs_human = false;
                self.refusals_in_a_row = 0;
                self.send(ServerFrame::Handoff { status: HandoffStatus::Resolved })
            }
            None => {
                self.live = None;
                Ok(())
            }
        }
    }
}

enum Verification {
    Verified,
    Failed(ErrorCode),
}

/// The next event of the answer being generated; pending when there is none,
/// so `select!` waits on the other branches.
async fn next_event(answering: &mut Option<Answering>) -> Option<StreamEvent> {
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

fn history_of(messages: &[StoredMessage]) -> Vec<ChatMessage> {
    messages
        .iter()
        .filter_map(|m| match m.role {
            store::Role::Shopper => Some(ChatMessage::user(m.text.clone())),
            store::Role::Assistant if !m.text.is_empty() => {
                Some(ChatMessage::assistant(m.text.clone()))
            }
            _ => None,
        })
        .collect()
}

fn action_of(reply: &Reply) -> Option<AnswerAction> {
    match &reply.effect {
        Some(Effect::AskForVerification) => Some(AnswerAction::VerifyOrder),
        Some(Effect::OfferReturn { order_number }) => {
            Some(AnswerAction::StartReturn { order_number: order_number.clone() })
        }
        Some(Effect::Handoff { .. }) | None => None,
    }
}

fn rate_limited_text(lang: Language) -> String {
    match lang {
        Language::En => "Too many verification attempts; please try again later.".into(),
        Language::Zh => "验证尝试次数过多，请稍后再试。".into(),
    }
}

pub(crate) fn outcome_to_store(outcome: AnswerOutcome) -> store::Outcome {
    match outcome {
        AnswerOutcome::Answered => store::Outcome::Answered,
        AnswerOutcome::Refused => store::Outcome::Refused,
        AnswerOutcome::Replaced => store::Outcome::Replaced,
        AnswerOutcome::Handoff => store::Outcome::Handoff,
        AnswerOutcome::Error => store::Outcome::Error,
    }
}

fn outcome_to_wire(outcome: store::Outcome) -> AnswerOutcome {
    match outcome {
        store::Outcome::Answered => AnswerOutcome::Answered,
        store::Outcome::Refused => AnswerOutcome::Refused,
        store::Outcome::Replaced => AnswerOutcome::Replaced,
        store::Outcome::Handoff => AnswerOutcome::Handoff,
        store::Outcome::Error => AnswerOutcome::Error,
    }
}

fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1000.0 * 10.0).round() / 10.0
}

/// A random token of `bytes` bytes, hex-encoded: session secrets and ids.
pub(crate) fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the operating system's random source works");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}
