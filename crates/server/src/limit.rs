//! Sliding-window rate limits: on shopper messages, and on failed attempts
//! (staff logins, order verifications).
//!
//! An attempt is counted *before* it is checked ([`Window::try_take`]) and
//! handed back when it succeeds ([`Window::give_back`]): counting only after
//! a failed check let a burst of parallel attempts all pass the limit before
//! the first failure was recorded.
//!
//! Why hand-written rather than `governor`: governor (0.10) takes a cell in
//! the same call that checks it (`check_key`, `check_key_n`) and has no call
//! that returns a cell or looks without taking one. Counting before
//! the check with governor would count every correct login and verification
//! as a failure; counting after a failed check is the race above. Its GCRA
//! quota is also a steady refill (5 per 15 minutes is one every 3 minutes
//! after a burst of 5), not "at most N in any window", and cannot be zero.
//! The window here is a few dozen lines with its own tests, so it stays.

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
    fn allows(&mut self, now: Instant) -> bool {
        while self.events.front().is_some_and(|&at| now.duration_since(at) >= self.window) {
            self.events.pop_front();
        }
        self.events.len() < self.limit as usize
    }

    fn record(&mut self, now: Instant) {
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

    /// Forgets one event taken at `at` (an attempt that succeeded).
    pub fn give_back(&mut self, at: Instant) {
        if let Some(index) = self.events.iter().rposition(|&event| event == at) {
            self.events.remove(index);
        }
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

    /// Counts an attempt for `key` if the limit allows it, in one step
    /// under the lock. Returns the attempt's time, to [`give_back`] it if the
    /// attempt succeeds; `None` when over the limit.
    ///
    /// [`give_back`]: Self::give_back
    pub fn try_take(&self, key: &K) -> Option<Instant> {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        // Keep the map from growing with every address ever seen.
        if windows.len() > 10_000 {
            windows.retain(|_, w| {
                w.allows(now);
                !w.events.is_empty()
            });
        }
        let window =
            windows.entry(key.clone()).or_insert_with(|| Window::new(self.limit, self.window));
        window.try_take(now).then_some(now)
    }

    /// Forgets the attempt taken at `at` for `key`.
    pub fn give_back(&self, key: &K, at: Instant) {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(window) = windows.get_mut(key) {
            window.give_back(at);
        }
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
        assert!(windows.try_take(&"a").is_some());
        assert!(windows.try_take(&"a").is_none());
        assert!(windows.try_take(&"b").is_some());
    }

    #[test]
    fn an_attempt_given_back_frees_its_place() {
        let windows = KeyedWindows::new(1, Duration::from_secs(60));
        let at = windows.try_take(&"a").unwrap();
        windows.give_back(&"a", at);
        assert!(windows.try_take(&"a").is_some());
        assert!(windows.try_take(&"a").is_none());
    }

    #[test]
    fn parallel_attempts_never_pass_the_limit_together() {
        let windows = std::sync::Arc::new(KeyedWindows::new(5, Duration::from_secs(60)));
        let taken: usize = (0..40)
            .map(|_| {
                let windows = windows.clone();
                std::thread::spawn(move || windows.try_take(&"a").is_some())
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| usize::from(t.join().unwrap()))
            .sum();
        assert_eq!(taken, 5);
    }
}
