//! Stored entries as a resumed client gets them again, and as the model's
//! history.

use shopchat_core::protocol::{AnswerOutcome, ServerFrame, Source, Timings};
use shopchat_core::ChatMessage;
use shopchat_store as store;
use shopchat_store::{MessageState, StoredMessage};

use super::convert::outcome_to_wire;

/// One stored entry, as the protocol replays it.
pub(super) fn replay_frames(message: &StoredMessage) -> Vec<ServerFrame> {
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

pub(super) fn history_of(messages: &[StoredMessage]) -> Vec<ChatMessage> {
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
