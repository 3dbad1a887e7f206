//! What every request handler shares.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shopchat_pipeline::Assistant;
use shopchat_store::Store;
use tokio::sync::{watch, Notify, Semaphore};

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
    /// Shopper messages per client address, over all its conversations.
    pub messages_by_address: KeyedWindows<IpAddr>,
    /// Exports streaming now: two at a time, held until each body ends.
    pub exports: Arc<Semaphore>,
    /// Becomes `true` when the server shuts down.
    pub shutdown: watch::Receiver<bool>,
    open_sessions: AtomicUsize,
    /// Open chat websockets per client address; under the lock, the total
    /// and this map change together.
    sessions_by_address: Mutex<HashMap<IpAddr, usize>>,
    sessions_changed: Notify,
}

/// Why a chat connection was not opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionRefused {
    /// `max_connections` chat websockets are open.
    ServerFull,
    /// `max_connections_per_address` are open from this client address.
    AddressFull,
}

impl SessionRefused {
    /// The websocket close reason the client is sent (with code 1013).
    pub fn reason(self) -> &'static str {
        match self {
            SessionRefused::ServerFull => "server_full",
            SessionRefused::AddressFull => "too_many_connections",
        }
    }
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
        let messages_by_address =
            KeyedWindows::new(limits.messages_per_minute_per_address, Duration::from_secs(60));
        Self {
            config,
            assistant,
            store,
            hub: Hub::default(),
            metrics: Metrics::default(),
            verify_failures,
            login_failures,
            messages_by_address,
            exports: Arc::new(Semaphore::new(2)),
            shutdown,
            open_sessions: AtomicUsize::new(0),
            sessions_by_address: Mutex::new(HashMap::new()),
            sessions_changed: Notify::new(),
        }
    }

    /// Counts a websocket session from `ip` until the guard is dropped, if
    /// the connection caps (overall and per address) leave room for it.
    pub fn try_open_session(self: &Arc<Self>, ip: IpAddr) -> Result<SessionGuard, SessionRefused> {
        let limits = &self.config.limits;
        let mut by_address = self.sessions_by_address.lock().unwrap_or_else(|e| e.into_inner());
        if self.open_sessions.load(Ordering::SeqCst) >= limits.max_connections {
            return Err(SessionRefused::ServerFull);
        }
        let from_ip = by_address.entry(ip).or_insert(0);
        if *from_ip >= limits.max_connections_per_address {
            return Err(SessionRefused::AddressFull);
        }
        *from_ip += 1;
        self.open_sessions.fetch_add(1, Ordering::SeqCst);
        Ok(SessionGuard { state: self.clone(), ip })
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

pub struct SessionGuard {
    state: Arc<AppState>,
    ip: IpAddr,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        let state = &self.state;
        {
            let mut by_address =
                state.sessions_by_address.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(from_ip) = by_address.get_mut(&self.ip) {
                *from_ip -= 1;
                if *from_ip == 0 {
                    by_address.remove(&self.ip);
                }
            }
            state.open_sessions.fetch_sub(1, Ordering::SeqCst);
        }
        state.sessions_changed.notify_waiters();
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
