//! Live events between staff and the shoppers connected right now.
//!
//! A staff reply is stored first and then published here; a shopper who is
//! not connected gets it from the store when they reconnect, so nothing
//! depends on a live event arriving.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::broadcast;

/// Something staff did in a conversation.
#[derive(Debug, Clone)]
pub enum LiveEvent {
    StaffMessage { seq: u64, author: String, text: String },
    HandoffResolved,
}

/// Something the staff console should show without reloading.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConsoleEvent {
    /// `needs_human`, `resolved` or `message` (a new entry in the transcript).
    pub kind: &'static str,
    pub conversation_id: String,
}

/// Per-conversation broadcast channels, created on first subscription and
/// dropped with the last subscriber, and one channel for staff consoles.
pub struct Hub {
    channels: Mutex<HashMap<String, broadcast::Sender<LiveEvent>>>,
    console: broadcast::Sender<ConsoleEvent>,
}

impl Default for Hub {
    fn default() -> Self {
        Self { channels: Mutex::default(), console: broadcast::channel(256).0 }
    }
}

impl Hub {
    pub fn subscribe_console(&self) -> broadcast::Receiver<ConsoleEvent> {
        self.console.subscribe()
    }

    /// Tells the open consoles; none open is fine.
    pub fn notify_console(&self, kind: &'static str, conversation_id: &str) {
        let _ =
            self.console.send(ConsoleEvent { kind, conversation_id: conversation_id.to_owned() });
    }

    pub fn subscribe(&self, conversation_id: &str) -> broadcast::Receiver<LiveEvent> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        channels.retain(|_, sender| sender.receiver_count() > 0);
        channels
            .entry(conversation_id.to_owned())
            .or_insert_with(|| broadcast::channel(64).0)
            .subscribe()
    }

    /// Sends to whoever is connected to the conversation; nobody is fine.
    pub fn publish(&self, conversation_id: &str, event: LiveEvent) {
        let channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sender) = channels.get(conversation_id) {
            let _ = sender.send(event);
        }
    }
}
