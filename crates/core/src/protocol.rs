//! The chat widget's websocket protocol: typed JSON frames.
//!
//! Every frame is one JSON object in a text message, tagged by `"type"`
//! (snake_case). The types live here rather than in the server so that the
//! server, its tests and any Rust client share one definition, and so that
//! `docs/protocol.md` can be checked against them (a test parses every
//! example in it). Parsing is strict about what it needs and lenient about
//! the rest: unknown fields are ignored so that newer clients can talk to an
//! older server, and optional fields may be omitted or `null`.
//!
//! [`parse_client_frame`] tells the failure modes apart (not JSON, unknown
//! type, missing field, too long), because each gets its own error code and
//! the connection survives all of them.

use serde::{Deserialize, Serialize};

/// The protocol version, sent in `hello` and `welcome`.
pub const PROTOCOL_VERSION: u32 = 1;

/// A frame from the chat widget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// First frame of a connection. With `session` (from an earlier
    /// `welcome`) it resumes that conversation and replays every entry after
    /// `last_seq`.
    Hello {
        v: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_seq: Option<u64>,
        /// A language tag such as `en` or `zh-CN`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lang: Option<String>,
    },
    /// A shopper's message. `client_id` is chosen by the client and makes
    /// resending after a lost connection safe: the same id is stored once.
    Message { client_id: String, text: String },
    /// Stop the answer being generated.
    Stop,
    /// Thumbs up or down on the answer with sequence number `message_seq`.
    Feedback {
        message_seq: u64,
        rating: Rating,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
    },
    /// Prove ownership of an order with the e-mail address it was placed with.
    VerifyOrder { order_number: String, email: String },
    /// A signed-in shop account: `signature` is the lower-case hex
    /// HMAC-SHA256 of `customer_id` under the shop's identity secret.
    Identity { customer_id: String, signature: String },
    /// Start a return of a verified order: all returnable items, or `skus`.
    StartReturn {
        order_number: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        skus: Option<Vec<String>>,
    },
    /// Ask for a person.
    Handoff,
    /// Heartbeat; answered with `pong`.
    Ping,
}

/// A frame from the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// Reply to `hello`. `session` is the secret that resumes this
    /// conversation; `resumed` says whether the requested one was resumed.
    Welcome {
        v: u32,
        session: String,
        conversation_id: String,
        resumed: bool,
    },
    /// The message with `client_id` is stored as entry `seq`.
    Ack {
        client_id: String,
        seq: u64,
    },
    /// An answer with sequence number `seq` begins.
    AnswerStart {
        seq: u64,
    },
    /// The next piece of answer `seq`; `index` counts the deltas of one
    /// answer from 0.
    Delta {
        seq: u64,
        index: u64,
        text: String,
    },
    /// The passages answer `seq` is grounded on.
    Sources {
        seq: u64,
        sources: Vec<Source>,
    },
    /// Answer `seq` is complete. `text`, when present, is the full text that
    /// replaces what was streamed (a replaced answer, a refusal, an error).
    AnswerEnd {
        seq: u64,
        outcome: AnswerOutcome,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        timings: Timings,
        /// What the widget should offer next, if anything.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        action: Option<AnswerAction>,
        /// The passages the final answer rests on, when they differ from
        /// the `sources` frame sent as it started (a replaced answer quotes
        /// one passage; an answer may cite fewer). Its `[n]` count in this
        /// list. Older widgets ignore it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sources: Option<Vec<Source>>,
    },
    /// A person from the shop wrote entry `seq`.
    StaffMessage {
        seq: u64,
        author: String,
        text: String,
    },
    /// The answer waits for the model; `position` answers are ahead.
    Queued {
        position: u64,
    },
    /// The model's queue is full (`queued` waiting); this message gets no
    /// answer and the shopper may ask again.
    Busy {
        queued: u64,
    },
    /// The shopper is verified as this customer.
    Verified {
        customer_name: String,
    },
    ReturnStarted {
        return_number: String,
        order_number: String,
    },
    Handoff {
        status: HandoffStatus,
    },
    /// Something the client sent could not be handled; the connection stays open.
    Error {
        code: ErrorCode,
        message: String,
    },
    Pong,
}

impl ServerFrame {
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerFrame::Error { code, message: message.into() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rating {
    Up,
    Down,
}

/// Something the widget should offer with an answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AnswerAction {
    /// Show the order form (order number and e-mail address), which sends
    /// `verify_order`.
    VerifyOrder,
    /// The order can be returned: offer a button that sends `start_return`.
    StartReturn { order_number: String },
}

/// How an answer ended, as the shopper's client needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerOutcome {
    /// Answered from the knowledge base or the shop's own data.
    Answered,
    /// Declined: the knowledge base does not cover the question.
    Refused,
    /// The generated text failed the answer check; `text` replaces it.
    Replaced,
    /// Handed over to a person.
    Handoff,
    /// Generation failed.
    Error,
    /// Stopped (by the shopper, or the connection ended) before a word was
    /// written: the answer is empty.
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub url: Option<String>,
}

/// Timings of one answer. `ttft_ms` (time to first token) is `null` for an
/// answer no model generated.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    #[serde(default)]
    pub ttft_ms: Option<f64>,
    pub total_ms: f64,
    pub tokens: u64,
    pub tokens_per_s: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HandoffStatus {
    /// The conversation is marked for staff; a person will reply here.
    Requested,
    /// Staff have closed the handoff; the assistant answers again.
    Resolved,
}

/// The code of an `error` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidJson,
    UnknownType,
    TooLarge,
    RateLimited,
    BinaryNotSupported,
    BadRequest,
    NotVerified,
    Internal,
}

/// Size limits applied by [`parse_client_frame`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLimits {
    /// A frame longer than this (in bytes) is rejected before parsing.
    pub max_frame_bytes: usize,
    /// Longest message text and feedback comment, in characters (Unicode
    /// scalar values, so a Chinese character counts as one).
    pub max_message_chars: usize,
}

impl FrameLimits {
    pub const DEFAULT: FrameLimits =
        FrameLimits { max_frame_bytes: 64 * 1024, max_message_chars: 2000 };
}

impl Default for FrameLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Longest `client_id`: an idempotency key, not content.
pub const MAX_CLIENT_ID_CHARS: usize = 64;

/// Why a client frame was rejected. Each maps to one [`ErrorCode`] and a
/// message safe to show the shopper (no input is echoed at length).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("the frame is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("a frame must be a JSON object with a \"type\"")]
    NotAnObject,
    #[error("unknown frame type \"{0}\"")]
    UnknownType(String),
    #[error("\"{frame_type}\" frame is missing field \"{field}\"")]
    MissingField { frame_type: String, field: &'static str },
    #[error("\"{frame_type}\" frame is invalid: {detail}")]
    InvalidField { frame_type: String, detail: String },
    #[error("{what} is too long: {len} of at most {max} {unit}")]
    TooLarge { what: &'static str, len: usize, max: usize, unit: &'static str },
}

impl ProtocolError {
    pub fn code(&self) -> ErrorCode {
        match self {
            ProtocolError::InvalidJson(_) => ErrorCode::InvalidJson,
            ProtocolError::UnknownType(_) => ErrorCode::UnknownType,
            ProtocolError::TooLarge { .. } => ErrorCode::TooLarge,
            ProtocolError::NotAnObject
            | ProtocolError::MissingField { .. }
            | ProtocolError::InvalidField { .. } => ErrorCode::BadRequest,
        }
    }

    /// The `error` frame that answers this problem.
    pub fn to_frame(&self) -> ServerFrame {
        ServerFrame::error(self.code(), self.to_string())
    }
}

/// Every client frame type, with the fields it cannot do without. Kept in
/// step with [`ClientFrame`] by a test that removes each field in turn.
const CLIENT_TYPES: &[(&str, &[&str])] = &[
    ("hello", &["v"]),
    ("message", &["client_id", "text"]),
    ("stop", &[]),
    ("feedback", &["message_seq", "rating"]),
    ("verify_order", &["order_number", "email"]),
    ("identity", &["customer_id", "signature"]),
    ("start_return", &["order_number"]),
    ("handoff", &[]),
    ("ping", &[]),
];

/// Parses one text frame from a client and applies `limits`.
pub fn parse_client_frame(text: &str, limits: &FrameLimits) -> Result<ClientFrame, ProtocolError> {
    if text.len() > limits.max_frame_bytes {
        return Err(ProtocolError::TooLarge {
            what: "frame",
            len: text.len(),
            max: limits.max_frame_bytes,
            unit: "bytes",
        });
    }
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| ProtocolError::InvalidJson(e.to_string()))?;
    let object = value.as_object().ok_or(ProtocolError::NotAnObject)?;
    let frame_type = match object.get("type") {
        Some(serde_json::Value::String(t)) => t.as_str(),
        _ => return Err(ProtocolError::NotAnObject),
    };
    let Some((_, required)) = CLIENT_TYPES.iter().find(|(name, _)| *name == frame_type) else {
        return Err(ProtocolError::UnknownType(frame_type.chars().take(40).collect()));
    };
    let missing = required.iter().find(|field| object.get(**field).is_none_or(|v| v.is_null()));
    if let Some(field) = missing {
        return Err(ProtocolError::MissingField { frame_type: frame_type.to_owned(), field });
    }
    let invalid =
        |detail: String| ProtocolError::InvalidField { frame_type: frame_type.to_owned(), detail };
    let frame: ClientFrame =
        serde_json::from_value(value.clone()).map_err(|e| invalid(e.to_string()))?;

    let too_long = |what: &'static str, text: &str| -> Result<(), ProtocolError> {
        let len = text.chars().count();
        if len > limits.max_message_chars {
            return Err(ProtocolError::TooLarge {
                what,
                len,
                max: limits.max_message_chars,
                unit: "characters",
            });
        }
        Ok(())
    };
    match &frame {
        ClientFrame::Message { client_id, text } => {
            too_long("message text", text)?;
            if text.trim().is_empty() {
                return Err(invalid("the message text is empty".to_owned()));
            }
            let id_len = client_id.chars().count();
            if client_id.trim().is_empty() || id_len > MAX_CLIENT_ID_CHARS {
                return Err(invalid(format!(
                    "client_id must be 1 to {MAX_CLIENT_ID_CHARS} characters"
                )));
            }
        }
        ClientFrame::Feedback { comment: Some(comment), .. } => {
            too_long("feedback comment", comment)?
        }
        _ => {}
    }
    Ok(frame)
}

#[cfg(test)]
mod tests;
