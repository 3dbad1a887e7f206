//! Sliding-window rate limits.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Events in the last `window`, for one subject.
#[derive(Debug)]
pub struct Window {
    limit: u32,
    window: Duration,
    events: VecDeque<Instant>,
}

impl Window {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self { limit, window, events: VecDeque::new() }
    }

    /// Whether another event is allowed now.
    pub fn allows(&mut self, now: Instant) -> bool {
        while self.events.front().is_some_and(|&at| now.duration_since(at) >= self.window) {
            self.events.pop_front();
        }
        self.events.len() < self.limit as usize
    }

    pub fn record(&mut self, now: Instant) {
        self.events.push_back(now);
    }

    /// Records the event if allowed, and says whether it was.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let allowed = self.allows(now);
        if allowed {
            self.record(now);
        }
        allowed
    }
}

/// A [`Window`] per key (a client address), shared by all connections. The
/// lock is held for a few comparisons, never across an `.await`.
#[derive(Debug)]
pub struct KeyedWindows<K> {
    limit: u32,
    window: Duration,
    windows: Mutex<HashMap<K, Window>>,
}

impl<K: Eq + Hash + Clone> KeyedWindows<K> {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self { limit, window, windows: Mutex::new(HashMap::new()) }
    }

    pub fn allows(&self, key: &K) -> bool {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        // Keep the map from growing with every address ever seen.
        if windows.len() > 10_000 {
            windows.retain(|_, w| {
                w.allows(now);
                !w.events.is_empty()
            });
        }
        windows.get_mut(key).is_none_or(|w| w.allows(now))
    }

    pub fn record(&self, key: &K) {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        windows
            .entry(key.clone())
            .or_insert_with(|| Window::new(self.limit, self.window))
            .record(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_admits_its_limit_then_refuses_until_the_oldest_event_expires() {
        let mut window = Window::new(2, Duration::from_secs(60));
        let start = Instant::now();
        assert!(window.try_take(start));
        assert!(window.try_take(start + Duration::from_secs(1)));
        assert!(!window.try_take(start + Duration::from_secs(2)));
        assert!(window.try_take(start + Duration::from_secs(60)));
    }

    #[test]
    fn keyed_windows_count_each_key_apart() {
        let windows = KeyedWindows::new(1, Duration::from_secs(60));
        windows.record(&"a");
        assert!(!windows.allows(&"a"));
        assert!(windows.allows(&"b"));
    }
}
