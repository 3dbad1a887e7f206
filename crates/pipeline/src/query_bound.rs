//! A bound on the query embeddings that run before a message reaches the
//! model.
//!
//! Every shopper question is embedded for hybrid search, on whatever
//! blocking thread the caller runs on. Unbounded, a burst of shoppers runs
//! that many model forwards at once on two cores: each slows the others and
//! the chat model's worker, and the threads pile up. Here at most `at_once`
//! embeddings run; up to `waiting` more wait their turn, and past that a
//! query is refused at once with [`EmbedError::Busy`], which the shopper
//! sees as `busy`, like a full model queue.
//!
//! A semaphore rather than a worker thread: the caller is already on a
//! blocking thread (search is blocking), so handing the work to another
//! thread would only add a hop. Passage embeddings (index builds) are not
//! bounded here: a build is one batch job, serialized by the index lock.

use std::sync::{Arc, Condvar, Mutex, PoisonError};

use shopchat_core::{EmbedError, Language, TextEmbedder};

/// How many query embeddings run at once and how many may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryEmbeddingLimits {
    pub at_once: usize,
    pub waiting: usize,
}

impl Default for QueryEmbeddingLimits {
    /// One per core (an embedding is CPU work; more at once only slows each
    /// one down), and a queue for a burst of shoppers asking together: a
    /// query takes milliseconds, so 256 waiting is seconds of work.
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self { at_once: cores, waiting: 256 }
    }
}

#[derive(Debug, Default)]
struct Counts {
    running: usize,
    waiting: usize,
}

/// An embedder whose [`TextEmbedder::embed_queries`] is bounded by
/// [`QueryEmbeddingLimits`]; everything else passes through.
pub struct BoundedQueries {
    inner: Arc<dyn TextEmbedder>,
    limits: QueryEmbeddingLimits,
    counts: Mutex<Counts>,
    turn: Condvar,
}

impl BoundedQueries {
    pub fn new(inner: Arc<dyn TextEmbedder>, limits: QueryEmbeddingLimits) -> Self {
        let limits = QueryEmbeddingLimits { at_once: limits.at_once.max(1), ..limits };
        Self { inner, limits, counts: Mutex::default(), turn: Condvar::new() }
    }

    /// Queries waiting for their turn now.
    pub fn waiting(&self) -> usize {
        self.lock().waiting
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        // The counts are plain integers updated in one step each, so a
        // panic elsewhere cannot leave them half-changed.
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a running place, waiting for one if the queue has room.
    fn enter(&self) -> Result<Running<'_>, EmbedError> {
        let mut counts = self.lock();
        if counts.running >= self.limits.at_once {
            if counts.waiting >= self.limits.waiting {
                return Err(EmbedError::Busy { waiting: counts.waiting });
            }
            counts.waiting += 1;
            while counts.running >= self.limits.at_once {
                counts = self.turn.wait(counts).unwrap_or_else(PoisonError::into_inner);
            }
            counts.waiting -= 1;
        }
        counts.running += 1;
        Ok(Running { bound: self })
    }
}

/// A running place; given back on drop, also when the embedding panics.
struct Running<'a> {
    bound: &'a BoundedQueries,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.bound.lock().running -= 1;
        self.bound.turn.notify_one();
    }
}

impl TextEmbedder for BoundedQueries {
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.inner.embed(texts)
    }

    fn embed_queries(&self, lang: Language, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let _running = self.enter()?;
        self.inner.embed_queries(lang, texts)
    }

    fn embed_passages(&self, lang: Language, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.inner.embed_passages(lang, texts)
    }

    fn dimension(&self) -> usize {
        self.inner.dimension()
    }

    fn model_id(&self) -> &str {
        self.inner.model_id()
    }

    fn supports(&self, lang: Language) -> bool {
        self.inner.supports(lang)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// An embedder that holds each query until the test lets it go, so the
    /// test decides how many are running. The bound is under test, not a
    /// model.
    struct Held {
        started: Mutex<mpsc::Sender<()>>,
        release: Mutex<mpsc::Receiver<()>>,
    }

    impl TextEmbedder for Held {
        fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
            self.started.lock().unwrap().send(()).unwrap();
            self.release.lock().unwrap().recv().unwrap();
            Ok(texts.iter().map(|_| vec![1.0]).collect())
        }
        fn dimension(&self) -> usize {
            1
        }
        fn model_id(&self) -> &str {
            "held"
        }
    }

    fn held(
        limits: QueryEmbeddingLimits,
    ) -> (Arc<BoundedQueries>, mpsc::Receiver<()>, mpsc::Sender<()>) {
        let (started_tx, started) = mpsc::channel();
        let (release, release_rx) = mpsc::channel();
        let inner = Held { started: Mutex::new(started_tx), release: Mutex::new(release_rx) };
        (Arc::new(BoundedQueries::new(Arc::new(inner), limits)), started, release)
    }

    fn wait_until(what: impl Fn() -> bool) {
        for _ in 0..500 {
            if what() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the condition never held");
    }

    #[test]
    fn past_the_running_and_waiting_bounds_a_query_is_refused_at_once() {
        let (bound, started, release) = held(QueryEmbeddingLimits { at_once: 1, waiting: 1 });
        let first = {
            let bound = bound.clone();
            std::thread::spawn(move || bound.embed_queries(Language::En, &["first"]))
        };
        started.recv().unwrap();
        let second = {
            let bound = bound.clone();
            std::thread::spawn(move || bound.embed_queries(Language::En, &["second"]))
        };
        wait_until(|| bound.waiting() == 1);

        match bound.embed_queries(Language::En, &["third"]) {
            Err(EmbedError::Busy { waiting }) => assert_eq!(waiting, 1),
            other => panic!("expected busy, got {other:?}"),
        }

        release.send(()).unwrap();
        assert!(first.join().unwrap().is_ok());
        started.recv().unwrap();
        assert_eq!(bound.waiting(), 0, "the waiting query took the free place");
        release.send(()).unwrap();
        assert!(second.join().unwrap().is_ok());
    }

    #[test]
    fn a_place_is_given_back_after_each_query() {
        let (bound, started, release) = held(QueryEmbeddingLimits { at_once: 1, waiting: 0 });
        for _ in 0..3 {
            release.send(()).unwrap();
            assert!(bound.embed_queries(Language::En, &["again"]).is_ok());
            started.recv().unwrap();
        }
        assert_eq!(bound.lock().running, 0);
    }
}
