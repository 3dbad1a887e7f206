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

/// Per-conversation broadcast channels, created on first subscription and
/// dropped with the last subscriber.
#[derive(Default)]
pub struct Hub {
    channels: Mutex<HashMap<String, broadcast::Sender<LiveEvent>>>,
}

impl Hub {
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
