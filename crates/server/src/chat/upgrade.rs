//! Opening a chat connection: the origin check, the connection caps, and
//! the task that runs one connection's session beside its writer.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};

use super::outbox::{write_frames, Outbox, CLOSE_TIMEOUT};
use super::session::Session;
use crate::state::{AppState, SessionGuard, SessionRefused};

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

pub(super) async fn connection(
    socket: WebSocket,
    state: Arc<AppState>,
    ip: IpAddr,
    _guard: SessionGuard,
) {
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
