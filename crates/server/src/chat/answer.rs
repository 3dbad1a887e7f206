//! A shopper's message and its answer: stored, acknowledged, answered from
//! data or streamed from the model (saved as it goes), stored again when it
//! ends, and the bookkeeping after it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use shopchat_core::protocol::{AnswerOutcome, ErrorCode, HandoffStatus, ServerFrame, Timings};
use shopchat_pipeline::{
    Action, AnswerStream, Event, Finished, Reply, Response as PipelineResponse, StreamEvent,
    TurnRequest,
};
use shopchat_store as store;

use super::convert::{action_of, millis, outcome_to_store};
use super::outbox::End;
use super::session::Session;

/// How often a streaming answer's text is saved, so that a killed process
/// loses at most this much of it: after this long, or this many deltas,
/// whichever comes first. The first delta is saved before it is sent, so an
/// answer the shopper has seen a word of is never stored empty.
const SAVE_PROGRESS_EVERY: Duration = Duration::from_secs(1);
const SAVE_PROGRESS_DELTAS: u64 = 16;

/// The answer being generated, with what the protocol needs to report it.
pub(super) struct Answering {
    pub(super) stream: AnswerStream,
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

impl Session {
    pub(super) async fn on_message(&mut self, client_id: String, text: String) -> Result<(), End> {
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
        self.state.hub.notify_console("message", &self.conversation_id().0);
        let rules = self.state.assistant.rules();
        let actions = self.talk.handle(&rules, Event::Message(&text));
        self.carry_out(actions, received_at).await
    }

    /// Carries out what the conversation decided, in order; what it decides
    /// on the results (a check's, an answer's) joins the queue.
    pub(super) async fn carry_out(
        &mut self,
        actions: Vec<Action>,
        received_at: Instant,
    ) -> Result<(), End> {
        let rules = self.state.assistant.rules();
        let mut queue: VecDeque<Action> = actions.into();
        while let Some(action) = queue.pop_front() {
            match action {
                Action::Verify(check) => {
                    let checked = self.check(check).await?;
                    queue.extend(self.talk.handle(&rules, Event::Checked(checked)));
                }
                Action::Verified(customer) => {
                    let customer_name = self.state.assistant.customer_name(&customer);
                    self.send(ServerFrame::Verified { customer_name })?;
                }
                Action::NotVerified { rate_limited: true } => self.error(
                    ErrorCode::RateLimited,
                    "Too many verification attempts; please try again later.",
                )?,
                Action::NotVerified { rate_limited: false } => self.error(
                    ErrorCode::NotVerified,
                    "We couldn't verify that order number and email address.",
                )?,
                Action::Respond(request) => self.respond(request, received_at).await?,
                Action::Reply(reply) => self.send_reply(reply, received_at).await?,
                Action::StartReturn { customer, order_number, skus, lang } => {
                    self.start_return(customer, order_number, skus, lang, received_at).await?
                }
                Action::StopAnswer => {
                    if let Some(answering) = &self.answering {
                        answering.stream.stop();
                    }
                }
                Action::Handoff { reason } => self.request_handoff(reason).await?,
            }
        }
        Ok(())
    }

    /// Answers a turn: from data at once, or by starting the model's stream.
    async fn respond(&mut self, request: TurnRequest, received_at: Instant) -> Result<(), End> {
        let assistant = self.state.assistant.clone();
        let response =
            tokio::task::spawn_blocking(move || assistant.respond(&request.turn())).await;
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
    pub(super) async fn send_reply(
        &mut self,
        reply: Reply,
        received_at: Instant,
    ) -> Result<(), End> {
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

    pub(super) async fn start_stream(
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

    pub(super) async fn on_answer_event(&mut self, event: Option<StreamEvent>) -> Result<(), End> {
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

    pub(super) async fn finish_stream(
        &mut self,
        answering: Answering,
        finished: Finished,
    ) -> Result<(), End> {
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
    pub(super) async fn store_answer(
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

    /// Tells the conversation how the answer ended, and carries out a
    /// handoff it decides on (the only thing an answer leads to).
    pub(super) async fn after_answer(&mut self, reply: &Reply) -> Result<(), End> {
        let rules = self.state.assistant.rules();
        for action in self.talk.handle(&rules, Event::Answered(reply)) {
            if let Action::Handoff { reason } = action {
                self.request_handoff(reason).await?;
            }
        }
        Ok(())
    }

    pub(super) async fn request_handoff(&mut self, reason: String) -> Result<(), End> {
        let id = self.conversation_id();
        if let Err(error) =
            self.state.with_store(move |s| s.set_needs_human(&id, Some(&reason))).await
        {
            return self.internal_error(&error);
        }
        self.state.hub.notify_console("needs_human", &self.conversation_id().0);
        tracing::info!(conversation = %self.conversation_id().0, "handed over to staff");
        self.send(ServerFrame::Handoff { status: HandoffStatus::Requested })
    }
}
