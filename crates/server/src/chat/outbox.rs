//! The bounded queue of frames to the client and the writer task behind it:
//! a full queue means the client is not reading, and it is closed with 1013
//! instead of buffering without end.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::stream::SplitSink;
use futures_util::SinkExt;
use shopchat_core::protocol::ServerFrame;
use tokio::sync::{mpsc, oneshot};

/// How long a resumed client may take no frame of its replay before it is
/// closed as a slow reader.
pub(super) const REPLAY_STALL: Duration = Duration::from_secs(10);

/// How long an orderly close may take to reach a client before giving up.
pub(super) const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// What goes to the writer task.
pub(super) enum Out {
    Frame(ServerFrame),
    Ping,
    /// Send this close frame after everything queued before it, then stop.
    Close(u16, &'static str),
}

/// Why a connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    ClientGone,
    SlowReader,
    IdleTimeout,
    ShuttingDown,
    UnsupportedVersion,
    MessageTooLarge,
}

pub(super) async fn write_frames(
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
pub(super) struct Outbox {
    pub(super) frames: mpsc::Sender<Out>,
    pub(super) abort: Option<oneshot::Sender<(u16, &'static str)>>,
}

impl Outbox {
    /// Queues a frame; a full queue means the client is not reading.
    pub(super) fn push(&self, out: Out) -> Result<(), End> {
        match self.frames.try_send(out) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => Err(End::SlowReader),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(End::ClientGone),
        }
    }

    /// Queues a frame, waiting for room: for a replay, which may be longer
    /// than the queue however fast the client reads. A client that takes
    /// no frame for `REPLAY_STALL` is a slow reader all the same.
    pub(super) async fn push_waiting(&self, out: Out) -> Result<(), End> {
        match tokio::time::timeout(REPLAY_STALL, self.frames.send(out)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::ClientGone),
            Err(_) => Err(End::SlowReader),
        }
    }
}
