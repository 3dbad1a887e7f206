//! The staff REST API: login, the conversation list and transcripts,
//! export, tags and notes, replies, resolving a handoff, re-indexing.
//!
//! Every route but `/api/login` needs a session, given as
//! `Authorization: Bearer TOKEN` (scripts) or the `shopchat_session` cookie
//! (the console: HttpOnly, SameSite=Strict, and Secure over HTTPS). A cookie-authenticated request
//! that changes something must also come from the server's own origin, so
//! another site cannot make a logged-in browser act (CSRF).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use shopchat_store::{ConversationFilter, ConversationId, NewMessage, Outcome, Rating, Staff};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::sync::broadcast;

use crate::hub::LiveEvent;
use crate::state::{AppState, StoreCallError};

const SESSION_COOKIE: &str = "shopchat_session";

/// An API error, sent as `{"error": "..."}` with its status.
#[derive(Debug)]
pub enum ApiError {
    Unauthorized,
    Forbidden(&'static str),
    BadRequest(String),
    NotFound(String),
    TooManyRequests,
    Internal,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "log in first".to_owned()),
            ApiError::Forbidden(why) => (StatusCode::FORBIDDEN, why.to_owned()),
            ApiError::BadRequest(why) => (StatusCode::BAD_REQUEST, why),
            ApiError::NotFound(what) => (StatusCode::NOT_FOUND, what),
            ApiError::TooManyRequests => {
                (StatusCode::TOO_MANY_REQUESTS, "too many failed logins; try again later".into())
            }
            ApiError::Internal => {
                (StatusCode::INTERNAL_SERVER_ERROR, "something went wrong on our side".into())
            }
        };
        (status, Json(json!({ "error": message }))).into_response()
    }
}

impl From<StoreCallError> for ApiError {
    fn from(error: StoreCallError) -> Self {
        if error.is_not_found() {
            ApiError::NotFound(error.to_string())
        } else if error.is_user_error() {
            ApiError::BadRequest(error.to_string())
        } else {
            tracing::error!(%error, "staff API store call failed");
            ApiError::Internal
        }
    }
}

/// The logged-in staff member of a request.
pub struct StaffSession {
    pub staff: Staff,
    token: String,
}

impl FromRequestParts<Arc<AppState>> for StaffSession {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let (token, from_cookie) = match bearer_token(&parts.headers) {
            Some(token) => (token, false),
            None => (cookie_token(&parts.headers).ok_or(ApiError::Unauthorized)?, true),
        };
        if from_cookie && !parts.method.is_safe() && !same_origin(&parts.headers) {
            return Err(ApiError::Forbidden("cross-site request refused"));
        }
        let lookup = token.clone();
        let staff =
            state.with_store(move |s| s.session(&lookup)).await?.ok_or(ApiError::Unauthorized)?;
        Ok(StaffSession { staff, token })
    }
}

fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = value.strip_prefix("Bearer ")?.trim();
    (!token.is_empty()).then(|| token.to_owned())
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|value| !value.is_empty())
}

/// Browsers send `Origin` on every cross-site POST, PUT and DELETE.
fn same_origin(headers: &HeaderMap) -> bool {
    headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|origin| crate::origin::is_own_origin(origin, headers))
}

/// The session cookie's attributes: `Secure` whenever the request came over
/// HTTPS (directly or through a proxy that says so), so the browser never
/// sends it over plain HTTP.
fn cookie_attributes(headers: &HeaderMap) -> &'static str {
    if crate::origin::is_https(headers) {
        "HttpOnly; Secure; SameSite=Strict; Path=/"
    } else {
        "HttpOnly; SameSite=Strict; Path=/"
    }
}

#[derive(Deserialize)]
pub struct Login {
    name: String,
    password: String,
}

pub async fn login(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(login): Json<Login>,
) -> Result<Response, ApiError> {
    let ip = peer.ip();
    // Counted before the password is checked, so that parallel attempts
    // cannot all pass the limit; a successful login gives its place back.
    let Some(attempt) = state.login_failures.try_take(&ip) else {
        return Err(ApiError::TooManyRequests);
    };
    let ttl = state.config.staff_session;
    let Login { name, password } = login;
    let session = state
        .with_store(move |s| match s.verify_staff(&name, &password)? {
            Some(staff) => Ok(Some((s.create_session(staff.id, ttl)?, staff))),
            None => Ok(None),
        })
        .await?;
    let Some((token, staff)) = session else {
        return Err(ApiError::Unauthorized);
    };
    state.login_failures.give_back(&ip, attempt);
    let expires_at = (OffsetDateTime::now_utc() + ttl).format(&Rfc3339).unwrap_or_default();
    let cookie = format!(
        "{SESSION_COOKIE}={}; {}; Max-Age={}",
        token.as_str(),
        cookie_attributes(&headers),
        ttl.as_secs()
    );
    let body = json!({ "token": token.as_str(), "name": staff.name, "expires_at": expires_at });
    Ok(([(header::SET_COOKIE, cookie)], Json(body)).into_response())
}

pub async fn logout(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    session: StaffSession,
) -> Result<Response, ApiError> {
    let token = session.token;
    state.with_store(move |s| s.delete_session(&token)).await?;
    let cookie = format!("{SESSION_COOKIE}=; {}; Max-Age=0", cookie_attributes(&headers));
    Ok(([(header::SET_COOKIE, cookie)], StatusCode::NO_CONTENT).into_response())
}

pub async fn me(session: StaffSession) -> Json<serde_json::Value> {
    Json(json!({ "id": session.staff.id.0, "name": session.staff.name }))
}

/// The list filters as query parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListQuery {
    from: Option<String>,
    to: Option<String>,
    outcome: Option<String>,
    feedback: Option<String>,
    tag: Option<String>,
    needs_human: Option<String>,
    q: Option<String>,
    pub(crate) limit: Option<u32>,
    offset: Option<u32>,
    /// Export only: `jsonl` (default) or `csv`.
    pub(crate) format: Option<String>,
}

impl ListQuery {
    pub(crate) fn filter(&self) -> Result<ConversationFilter, ApiError> {
        let time = |name: &str, value: &Option<String>| {
            value
                .as_deref()
                .map(|v| {
                    OffsetDateTime::parse(v, &Rfc3339).map_err(|_| {
                        ApiError::BadRequest(format!("`{name}` must be an RFC 3339 time"))
                    })
                })
                .transpose()
        };
        let outcome = match self.outcome.as_deref() {
            None | Some("") => None,
            Some(v) => Some(
                Outcome::parse(v)
                    .ok_or_else(|| ApiError::BadRequest(format!("unknown outcome `{v}`")))?,
            ),
        };
        let feedback = match self.feedback.as_deref() {
            None | Some("") => None,
            Some(v) => Some(Rating::parse(v).ok_or_else(|| {
                ApiError::BadRequest(format!("`feedback` must be up or down, not `{v}`"))
            })?),
        };
        let needs_human = match self.needs_human.as_deref() {
            None | Some("") => None,
            Some("true" | "1") => Some(true),
            Some("false" | "0") => Some(false),
            Some(v) => {
                return Err(ApiError::BadRequest(format!(
                    "`needs_human` must be true or false, not `{v}`"
                )))
            }
        };
        Ok(ConversationFilter {
            from: time("from", &self.from)?,
            to: time("to", &self.to)?,
            outcome,
            feedback,
            tag: self.tag.clone().filter(|t| !t.is_empty()),
            needs_human,
            text: self.q.clone().filter(|q| !q.trim().is_empty()),
            limit: Some(self.limit.unwrap_or(50).min(500)),
            offset: self.offset.unwrap_or(0),
        })
    }
}

pub(crate) fn query_of(
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<ListQuery, ApiError> {
    query.map(|Query(q)| q).map_err(|e| ApiError::BadRequest(e.body_text()))
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    _session: StaffSession,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let filter = query_of(query)?.filter()?;
    let conversations = state.with_store(move |s| s.list_conversations(&filter)).await?;
    Ok(Json(json!({ "conversations": conversations })))
}

pub async fn transcript(
    State(state): State<Arc<AppState>>,
    _session: StaffSession,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = ConversationId(id);
    let transcript = state.with_store(move |s| s.transcript(&id)).await?;
    match transcript {
        Some(transcript) => Ok(Json(transcript).into_response()),
        None => Err(ApiError::NotFound("no such conversation".into())),
    }
}

#[derive(Deserialize)]
pub struct TagBody {
    tag: String,
}

pub async fn add_tag(
    State(state): State<Arc<AppState>>,
    _session: StaffSession,
    Path(id): Path<String>,
    Json(body): Json<TagBody>,
) -> Result<StatusCode, ApiError> {
    let id = ConversationId(id);
    state.with_store(move |s| s.add_tag(&id, &body.tag)).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn remove_tag(
    State(state): State<Arc<AppState>>,
    _session: StaffSession,
    Path((id, tag)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let id = ConversationId(id);
    state.with_store(move |s| s.remove_tag(&id, &tag)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct NoteBody {
    note: String,
}

pub async fn set_note(
    State(state): State<Arc<AppState>>,
    _session: StaffSession,
    Path(id): Path<String>,
    Json(body): Json<NoteBody>,
) -> Result<StatusCode, ApiError> {
    let id = ConversationId(id);
    state.with_store(move |s| s.set_note(&id, &body.note)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct ReplyBody {
    text: String,
}

/// A staff message into a conversation: stored, then sent to the shopper if
/// connected (otherwise they get it when they reconnect).
pub async fn reply(
    State(state): State<Arc<AppState>>,
    session: StaffSession,
    Path(id): Path<String>,
    Json(body): Json<ReplyBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let text = body.text.trim().to_owned();
    let max = state.config.limits.frame.max_message_chars;
    if text.is_empty() {
        return Err(ApiError::BadRequest("the reply is empty".into()));
    }
    if text.chars().count() > max {
        return Err(ApiError::BadRequest(format!("the reply is longer than {max} characters")));
    }
    let author = session.staff.name.clone();
    let conversation = ConversationId(id.clone());
    let message = {
        let (author, text) = (author.clone(), text.clone());
        state
            .with_store(move |s| s.add_message(&conversation, NewMessage::staff(author, text)))
            .await?
    };
    let seq = u64::from(message.seq);
    state.hub.publish(&id, LiveEvent::StaffMessage { seq, author, text });
    state.hub.notify_console("message", &id);
    Ok(Json(json!({ "seq": seq })))
}

/// Closes a handoff: the assistant answers the conversation again.
pub async fn resolve(
    State(state): State<Arc<AppState>>,
    _session: StaffSession,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let conversation = ConversationId(id.clone());
    state.with_store(move |s| s.set_needs_human(&conversation, None)).await?;
    state.hub.publish(&id, LiveEvent::HandoffResolved);
    state.hub.notify_console("resolved", &id);
    Ok(StatusCode::NO_CONTENT)
}

/// Re-reads the shop's files and builds a new index generation.
pub async fn reindex(
    State(state): State<Arc<AppState>>,
    session: StaffSession,
) -> Result<Json<serde_json::Value>, ApiError> {
    tracing::info!(staff = %session.staff.name, "re-index requested");
    let assistant = state.assistant.clone();
    match tokio::task::spawn_blocking(move || assistant.reindex()).await {
        Ok(Ok(generation)) => Ok(Json(json!({ "generation": generation }))),
        Ok(Err(error)) if error.is_user_error() => Err(ApiError::BadRequest(error.to_string())),
        Ok(Err(error)) => {
            tracing::error!(%error, "re-index failed");
            Err(ApiError::Internal)
        }
        Err(_) => Err(ApiError::Internal),
    }
}

/// Server-sent events for the console: `needs_human`, `resolved` and
/// `message`, each with the conversation's id as JSON. A console that falls
/// behind gets a `lagged` event and reloads its list.
pub async fn events(
    State(state): State<Arc<AppState>>,
    _session: StaffSession,
) -> Sse<impl futures_util::Stream<Item = Result<Event, std::convert::Infallible>>> {
    let receiver = state.hub.subscribe_console();
    let shutdown = state.shutdown.clone();
    // The stream ends when the server shuts down, so an open console does
    // not hold the shutdown up.
    let stream = futures_util::stream::unfold(
        (receiver, shutdown),
        |(mut receiver, mut shutdown)| async move {
            let received = tokio::select! {
                received = receiver.recv() => received,
                _ = crate::chat::shutting_down(&mut shutdown) => return None,
            };
            let event = match received {
                Ok(event) => Event::default()
                    .event(event.kind)
                    .json_data(&event)
                    .unwrap_or_else(|_| Event::default().event("lagged").data("{}")),
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    Event::default().event("lagged").data("{}")
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            Some((Ok(event), (receiver, shutdown)))
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}
