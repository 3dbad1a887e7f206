//! The chat server: the shoppers' websocket, the staff API, and the
//! endpoints operations need (`/healthz`, `/readyz`, `/metrics`).
//!
//! # Layout
//! - [`Server`] (this file): loading everything, binding, shutting down.
//! - [`config`]: [`ServerConfig`], from `shopchat.toml`, environment and flags.
//! - `chat`: one websocket connection, from `hello` to close: the protocol
//!   of `docs/protocol.md`, storing every message before answering it.
//! - `staff`: the staff REST API behind session authentication.
//! - `hub`: live events between staff and the connected shoppers.
//! - `ops`: health, readiness and Prometheus metrics.
//! - `web`: the demo page, the widget and the staff console, from `web/`.
//! - `limit`: sliding-window rate limits.
//!
//! # Key design decisions
//! **Each connection is one task that owns its conversation's state**
//! (verified customer, history, the answer streaming); nothing about a
//! conversation is shared behind a lock. Frames to the client go through a
//! bounded queue to a writer task, so a client that stops reading costs a
//! fixed amount of memory and is then closed (1013), which also stops its
//! answer.
//!
//! **The model has one owner**, the inference worker, reached through the
//! pipeline's [`shopchat_pipeline::Assistant`]; the server only reads the
//! answer's event stream. **The store is reached through `spawn_blocking`**,
//! as its calls block on disk.

pub mod config;

mod chat;
mod export;
mod hub;
mod limit;
#[cfg(test)]
#[path = "../../../tests/fuzz/mutations.rs"]
mod mutations;
mod ops;
mod origin;
mod staff;
mod state;
mod web;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::routing::{delete, get, post, put};
use axum::Router;
use shopchat_pipeline::{Assistant, IndexStatus};
use shopchat_store::{SqliteStore, Store};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower::limit::ConcurrencyLimitLayer;
use tower::ServiceBuilder;
use tower_http::timeout::TimeoutLayer;

pub use config::{ConfigFile, Limits, ServerConfig};
use state::AppState;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Pipeline(#[from] shopchat_pipeline::Error),
    #[error(transparent)]
    Store(#[from] shopchat_store::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the server task failed: {0}")]
    Task(String),
}

impl ServerError {
    /// True for errors the operator fixes (a missing model, a busy port, a
    /// damaged index) rather than bugs.
    pub fn is_user_error(&self) -> bool {
        match self {
            ServerError::Pipeline(e) => e.is_user_error(),
            ServerError::Store(e) => e.is_user_error(),
            ServerError::Bind { .. } => true,
            ServerError::Io { .. } | ServerError::Task(_) => false,
        }
    }
}

/// A running server.
pub struct Server {
    addr: SocketAddr,
    state: Arc<AppState>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<std::io::Result<()>>,
    index_status: IndexStatus,
}

impl Server {
    /// Loads the models, opens (or builds) the index, opens the database
    /// (creating it on first start) and starts listening.
    pub async fn start(config: ServerConfig) -> Result<Server, ServerError> {
        let assistant_config = config.assistant.clone();
        let (assistant, index_status) =
            tokio::task::spawn_blocking(move || Assistant::load(&assistant_config))
                .await
                .map_err(|e| ServerError::Task(e.to_string()))??;
        if let Some(parent) = config.database.parent() {
            std::fs::create_dir_all(parent).map_err(|source| ServerError::Io {
                context: format!("cannot create {}", parent.display()),
                source,
            })?;
        }
        let database = config.database.clone();
        let store: Arc<dyn Store> = Arc::new(
            tokio::task::spawn_blocking(move || SqliteStore::open(&database))
                .await
                .map_err(|e| ServerError::Task(e.to_string()))??,
        );

        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .map_err(|source| ServerError::Bind { addr: config.addr, source })?;
        let addr = listener.local_addr().map_err(|source| ServerError::Io {
            context: "cannot read the listening address".into(),
            source,
        })?;

        let (shutdown, shutdown_signal) = watch::channel(false);
        let state = Arc::new(AppState::new(config, Arc::new(assistant), store, shutdown_signal));
        let app = router(state.clone());
        let mut signal = shutdown.subscribe();
        let task = tokio::spawn(async move {
            axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
                .with_graceful_shutdown(async move {
                    let _ = signal.wait_for(|stop| *stop).await;
                })
                .await
        });
        tracing::info!(%addr, "listening");
        Ok(Server { addr, state, shutdown, task, index_status })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn store(&self) -> Arc<dyn Store> {
        self.state.store.clone()
    }

    pub fn assistant(&self) -> Arc<Assistant> {
        self.state.assistant.clone()
    }

    /// Whether the index was opened or built at start.
    pub fn index_status(&self) -> IndexStatus {
        self.index_status
    }

    /// Stops accepting, stops the answers in flight (each is stored as
    /// partial and its client told to reconnect, code 1001), and waits for
    /// the connections to end.
    pub async fn shutdown(self) -> Result<(), ServerError> {
        let _ = self.shutdown.send(true);
        self.state.sessions_closed().await;
        match self.task.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(ServerError::Io { context: "serving".into(), source }),
            Err(e) => Err(ServerError::Task(e.to_string())),
        }
    }

    /// Runs until `stop` resolves (Ctrl-C in `shopchat serve`), then shuts down.
    pub async fn run_until(
        self,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<(), ServerError> {
        stop.await;
        tracing::info!("shutting down");
        self.shutdown().await
    }
}

fn router(state: Arc<AppState>) -> Router {
    let limits = &state.config.limits;
    // Quick requests: a deadline, and a cap on how many run at once (the
    // rest wait their turn within the deadline), so a flood of requests
    // queues instead of piling work onto the store's threads.
    let quick = || {
        ServiceBuilder::new()
            .layer(TimeoutLayer::with_status_code(
                StatusCode::SERVICE_UNAVAILABLE,
                limits.http_request_timeout,
            ))
            .layer(ConcurrencyLimitLayer::new(limits.http_concurrency))
    };
    let api = Router::new()
        .route("/login", post(staff::login))
        .route("/logout", post(staff::logout))
        .route("/me", get(staff::me))
        .route("/conversations", get(staff::list))
        .route("/conversations/{id}", get(staff::transcript))
        .route("/conversations/{id}/tags", post(staff::add_tag))
        .route("/conversations/{id}/tags/{tag}", delete(staff::remove_tag))
        .route("/conversations/{id}/note", put(staff::set_note))
        .route("/conversations/{id}/reply", post(staff::reply))
        .route("/conversations/{id}/resolve", post(staff::resolve))
        .layer(quick());
    // Long requests: an export or a re-index takes as long as the data is
    // big, so they get a generous deadline. Re-indexes run two at a time
    // here; an export's body streams after its headers, so its own
    // semaphore (`AppState::exports`) bounds it until the body ends.
    let long = Router::new()
        .route("/export", get(export::export))
        .route("/reindex", post(staff::reindex))
        .layer(
            ServiceBuilder::new()
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::SERVICE_UNAVAILABLE,
                    limits.http_long_request_timeout,
                ))
                .layer(ConcurrencyLimitLayer::new(2)),
        );
    let pages = Router::new()
        .route("/", get(web::index))
        .route("/demo.js", get(web::demo_script))
        .route("/widget.js", get(web::widget))
        .route("/console", get(web::console))
        .route("/console.js", get(web::console_script))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .layer(quick());
    // Streams that last as long as the client stays: the chat socket (its
    // own heartbeat and idle timeout close it) and the staff events.
    let streams =
        Router::new().route("/ws", get(chat::upgrade)).route("/api/events", get(staff::events));
    Router::new().merge(pages).merge(streams).nest("/api", api.merge(long)).with_state(state)
}
