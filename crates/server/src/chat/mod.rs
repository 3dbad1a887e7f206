//! One shopper's websocket connection: `docs/protocol.md` in code.
//!
//! The connection's task owns everything about its conversation (the
//! verified customer, the history the model sees, the answer streaming) and
//! reacts to whichever comes first: a frame from the client, the next piece
//! of the answer, a staff event, a heartbeat tick, or shutdown. Frames to the
//! client go through a bounded queue to a writer task; when it is full the
//! client is not reading, and it is closed with 1013 instead of buffering
//! without end.
//!
//! `upgrade` opens the connection, `session` runs it, `answer` handles a
//! message and its answer, `verify` verification and returns, `outbox` the
//! frames to the client, `replay` a resumed client's replay, `convert` the
//! type conversions between pipeline, store and wire.

mod answer;
mod convert;
mod outbox;
mod replay;
mod session;
mod upgrade;
mod verify;

pub(crate) use session::shutting_down;
pub use upgrade::upgrade;
