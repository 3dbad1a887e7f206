//! End-to-end tests of the chat server, as the chat widget and shop staff use it.
//!
//! Everything here is real: each test starts a [`Server`] on a loopback port
//! with the real SmolLM2-135M model (and MiniLM for hybrid search) from
//! `<workspace>/models`, a real tantivy index of the demo shop in `faq/`, and
//! a real SQLite file in a temporary directory. Shoppers are real websocket
//! clients (tokio-tungstenite) speaking the protocol of `docs/protocol.md`
//! with the frame types of `shopchat_core::protocol`; staff use the REST API
//! through the small HTTP/1.1 client in `http.rs`. One module per concern;
//! `support`, `shopper` and `http` hold what the tests share.
//!
//! What is covered: a streamed grounded answer and its record; refusing what
//! the shop's data does not hold; orders and returns only for a verified
//! shopper, and never someone else's; handing over to a person and their
//! replies; every kind of bad input; rate limits; stopping, disconnecting and
//! resuming mid-conversation; 20 shoppers at once; staff access control,
//! review, search, export and re-indexing; health, readiness and metrics.
//!
//! Qwen is not loaded (it is several times slower): Chinese questions are
//! then answered with the best Chinese passage's own text. The index is
//! built once per test run and copied into each test's own data directory.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use shopchat_core::protocol::{
    AnswerAction, AnswerOutcome, ClientFrame, ErrorCode, HandoffStatus, Rating, ServerFrame,
    Source, Timings, PROTOCOL_VERSION,
};
use shopchat_core::Language;
use shopchat_pipeline::{Assistant, AssistantConfig, IndexStatus};
use shopchat_server::{Server, ServerConfig};
use shopchat_store::{
    ConversationId, Feedback, MessageState, Outcome, Role, Store, StoredMessage, Transcript,
};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

#[path = "../../../../tests/fuzz/mutations.rs"]
mod mutations;

// ---------------------------------------------------------------------------
// The demo shop's facts the tests rely on (faq/faq/en, faq/orders.json).
// ---------------------------------------------------------------------------

/// Answered by `faq/shipping-times`: "standard delivery takes 2-3 business days to the UK".
const UK_DELIVERY: &str = "How long does standard delivery to the UK take?";
/// A question whose answer is a long list (`faq/payment-methods`), so that it
/// can be interrupted after its first delta.
const LONG_ANSWER: &str =
    "Which payment methods do you accept? Please list every one of them and explain Klarna.";
/// The longest answer the assistant generates (`AnswerSettings::default`).
const MAX_TOKENS: u64 = 160;

/// Emma Clarke's order that has shipped with DPD.
const EMMA_NAME: &str = "Emma Clarke";
const EMMA_EMAIL: &str = "emma.clarke@example.com";
const EMMA_ORDER: &str = "NW-101574";
const EMMA_TRACKING: &str = "15500003760321";
/// Emma's order delivered on 2026-08-05: its return window has closed.
const EMMA_OLD_ORDER: &str = "NW-100231";

/// Piotr Nowak's shipped order: another customer's, for Emma.
const PIOTR_ORDER: &str = "NW-101260";
const PIOTR_TRACKING: &str = "15500003747223";
const PIOTR_ITEM: &str = "Suede Penny Loafers";
const PIOTR_SKU: &str = "SH-403";

/// Mia Schneider's shoes, delivered 2026-11-23: returnable until 2026-12-23
/// (the demo data is dated 2026-11-28).
const MIA_NAME: &str = "Mia Schneider";
const MIA_EMAIL: &str = "mia.schneider@example.com";
const MIA_ORDER: &str = "NW-101296";
const MIA_CUSTOMER: &str = "C1024";
const MIA_SKU: &str = "SH-404";

/// Aoife Murphy's monogrammed tote, delivered 2026-11-27: personalised items
/// cannot be returned.
const AOIFE_EMAIL: &str = "aoife.murphy@example.com";
const AOIFE_ORDER: &str = "NW-101276";

const STAFF_NAME: &str = "Sam";
const STAFF_PASSWORD: &str = "correct-horse-battery";

mod answers;
mod bad_input;
mod handoff;
mod http;
mod interruptions;
mod load;
mod operations;
mod orders;
mod shopper;
mod staff;
mod support;

use http::*;
use shopper::*;
use support::*;
