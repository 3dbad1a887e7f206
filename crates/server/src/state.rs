//! What every request handler shares.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use shopchat_pipeline::Assistant;
use shopchat_store::Store;
use tokio::sync::{watch, Notify};

use crate::config::ServerConfig;
use crate::hub::Hub;
use crate::limit::KeyedWindows;
use crate::ops::Metrics;

pub struct AppState {
    pub config: ServerConfig,
    pub assistant: Arc<Assistant>,
    pub store: Arc<dyn Store>,
    pub hub: Hub,
    pub metrics: Metrics,
    /// Failed order verifications per client address.
    pub verify_failures: KeyedWindows<IpAddr>,
    /// Failed staff logins per client address.
    pub login_failures: KeyedWindows<IpAddr>,
    /// Becomes `true` when the server shuts down.
    pub shutdown: watch::Receiver<bool>,
    open_sessions: AtomicUsize,
    sessions_changed: Notify,
}

impl AppState {
    pub fn new(
        config: ServerConfig,
        assistant: Arc<Assistant>,
        store: Arc<dyn Store>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let limits = &config.limits;
        let verify_failures = KeyedWindows::new(limits.verify_failures, limits.verify_window);
        let login_failures = KeyedWindows::new(limits.login_failures, limits.verify_window);
        Self {
            config,
            assistant,
            store,
            hub: Hub::default(),
            metrics: Metrics::default(),
            verify_failures,
            login_failures,
            shutdown,
            open_sessions: AtomicUsize::new(0),
            sessions_changed: Notify::new(),
        }
    }

    /// Counts a websocket session until the guard is dropped.
    pub fn session_opened(self: &Arc<Self>) -> SessionGuard {
        self.open_sessions.fetch_add(1, Ordering::SeqCst);
        SessionGuard(self.clone())
    }

    pub fn open_sessions(&self) -> usize {
        self.open_sessions.load(Ordering::SeqCst)
    }

    /// Waits until every websocket session has ended.
    pub async fn sessions_closed(&self) {
        loop {
            let notified = self.sessions_changed.notified();
            if self.open_sessions() == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Runs a store call on a blocking thread.
    pub async fn with_store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> shopchat_store::Result<T> + Send + 'static,
    ) -> Result<T, StoreCallError> {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || f(store.as_ref())).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(StoreCallError::Store(error)),
            Err(join) => Err(StoreCallError::Panicked(join.to_string())),
        }
    }
}

pub struct SessionGuard(Arc<AppState>);

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.0.open_sessions.fetch_sub(1, Ordering::SeqCst);
        self.0.sessions_changed.notify_waiters();
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreCallError {
    #[error(transparent)]
    Store(shopchat_store::Error),
    #[error("a store call panicked: {0}")]
    Panicked(String),
}

impl StoreCallError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreCallError::Store(shopchat_store::Error::NotFound { .. }))
    }

    pub fn is_user_error(&self) -> bool {
        matches!(self, StoreCallError::Store(e) if e.is_user_error())
    }
}
