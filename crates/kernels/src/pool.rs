//! One persistent pool of threads for the matrix kernels.
//!
//! A matrix product is split into as many parts as there are threads; the
//! calling thread computes part 0 and the workers the others. Workers wait
//! for the next job by spinning briefly (a decode step issues one product
//! every few tens of microseconds), then yielding, then sleeping on a
//! condition variable, so an idle server costs no CPU. There is no barrier
//! per operation beyond the caller waiting for the parts to finish.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;

/// Spins of a waiting worker before it starts yielding, and yields before it
/// sleeps. Spinning about a millisecond covers the gap between two products
/// of a decode step (norms, attention): SmolLM2 decoded at 56 tok/s with
/// 2,000 spins and 64-66 with 20,000 on a 2-core AMD EPYC; yielding then
/// lets other threads (candle's) use the core.
const SPINS: u32 = 20_000;
const YIELDS: u32 = 200;

/// A job with its borrow's lifetime erased; see [`ThreadPool::run`].
#[derive(Clone, Copy)]
struct JobPtr(*const (dyn Fn(usize) + Sync + 'static));

// SAFETY: the pointee is `Sync`, so calling it from another thread is sound;
// `run` keeps it alive for as long as any worker may call it.
unsafe impl Send for JobPtr {}

struct Shared {
    job: Mutex<Option<JobPtr>>,
    parts: AtomicUsize,
    generation: AtomicU64,
    finished: AtomicUsize,
    panicked: AtomicBool,
    shutdown: AtomicBool,
    sleep_lock: Mutex<usize>,
    wake: Condvar,
}

pub struct ThreadPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    /// One job at a time: the job slot and the counters are per pool.
    running: Mutex<()>,
}

impl ThreadPool {
    /// A pool of `threads` threads in all, the caller included (so
    /// `threads - 1` are spawned). At least one.
    pub fn new(threads: usize) -> ThreadPool {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            job: Mutex::new(None),
            parts: AtomicUsize::new(0),
            generation: AtomicU64::new(0),
            finished: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            sleep_lock: Mutex::new(0),
            wake: Condvar::new(),
        });
        let workers = (1..threads)
            .map(|index| {
                let shared = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("shopchat-kernels-{index}"))
                    .spawn(move || worker(&shared, index))
                    .expect("cannot spawn a kernel thread")
            })
            .collect();
        ThreadPool { shared, workers, running: Mutex::new(()) }
    }

    /// The process-wide pool: one thread per available core.
    pub fn global() -> &'static ThreadPool {
        static POOL: OnceLock<ThreadPool> = OnceLock::new();
        POOL.get_or_init(|| {
            ThreadPool::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
        })
    }

    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Calls `job(part)` for every part in `0..parts` (at most
    /// [`threads`](Self::threads)), each on its own thread, and returns when
    /// all have returned. A panic in a part is raised again here.
    pub fn run(&self, parts: usize, job: &(dyn Fn(usize) + Sync)) {
        let parts = parts.clamp(1, self.threads());
        if parts == 1 {
            job(0);
            return;
        }
        let _one_job = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let shared = &*self.shared;
        let erased: *const (dyn Fn(usize) + Sync + '_) = job;
        // SAFETY: only the lifetime changes. Workers call the job only
        // between the generation bump below and their `finished` increment,
        // and this function does not return before every worker has
        // incremented `finished`, so the borrow outlives every call.
        let erased: *const (dyn Fn(usize) + Sync + 'static) =
            unsafe { std::mem::transmute(erased) };
        *shared.job.lock().unwrap_or_else(|e| e.into_inner()) = Some(JobPtr(erased));
        shared.parts.store(parts, Ordering::Relaxed);
        shared.finished.store(0, Ordering::Relaxed);
        {
            let sleepers = shared.sleep_lock.lock().unwrap_or_else(|e| e.into_inner());
            shared.generation.fetch_add(1, Ordering::Release);
            if *sleepers > 0 {
                shared.wake.notify_all();
            }
        }
        let mine = catch_unwind(AssertUnwindSafe(|| job(0)));
        let mut spins = 0u32;
        while shared.finished.load(Ordering::Acquire) < self.workers.len() {
            if spins < SPINS {
                std::hint::spin_loop();
                spins += 1;
            } else {
                std::thread::yield_now();
            }
        }
        *shared.job.lock().unwrap_or_else(|e| e.into_inner()) = None;
        if let Err(panic) = mine {
            std::panic::resume_unwind(panic);
        }
        if shared.panicked.swap(false, Ordering::AcqRel) {
            panic!("a kernel thread panicked while computing a matrix product");
        }
    }
}

fn worker(shared: &Shared, index: usize) {
    let mut seen = 0u64;
    loop {
        let mut waited = 0u32;
        loop {
            let generation = shared.generation.load(Ordering::Acquire);
            if generation != seen {
                seen = generation;
                break;
            }
            if shared.shutdown.load(Ordering::Acquire) {
                return;
            }
            if waited < SPINS {
                std::hint::spin_loop();
            } else if waited < SPINS + YIELDS {
                std::thread::yield_now();
            } else {
                let mut sleepers = shared.sleep_lock.lock().unwrap_or_else(|e| e.into_inner());
                if shared.generation.load(Ordering::Acquire) == seen
                    && !shared.shutdown.load(Ordering::Acquire)
                {
                    *sleepers += 1;
                    sleepers = shared.wake.wait(sleepers).unwrap_or_else(|e| e.into_inner());
                    *sleepers -= 1;
                }
                waited = 0;
                continue;
            }
            waited += 1;
        }
        if index < shared.parts.load(Ordering::Relaxed) {
            let job = *shared.job.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(JobPtr(job)) = job {
                // SAFETY: `run` stored this pointer before bumping the
                // generation and keeps its borrow alive until this worker
                // increments `finished` below.
                let job = unsafe { &*job };
                if catch_unwind(AssertUnwindSafe(|| job(index))).is_err() {
                    shared.panicked.store(true, Ordering::Release);
                }
            }
        }
        shared.finished.fetch_add(1, Ordering::Release);
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::Release);
        {
            let _sleepers = self.shared.sleep_lock.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.wake.notify_all();
        }
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_runs_once_and_the_pool_survives_idle_sleeps() {
        let pool = ThreadPool::new(3);
        for round in 0..50 {
            let counts: Vec<AtomicUsize> = (0..3).map(|_| AtomicUsize::new(0)).collect();
            pool.run(3, &|part| {
                counts[part].fetch_add(1, Ordering::Relaxed);
            });
            assert!(counts.iter().all(|c| c.load(Ordering::Relaxed) == 1), "round {round}");
            if round % 10 == 0 {
                // Long enough for the workers to go to sleep.
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    }

    #[test]
    fn a_panicking_part_is_reported_to_the_caller_and_the_pool_goes_on() {
        let pool = ThreadPool::new(2);
        let result = catch_unwind(AssertUnwindSafe(|| {
            pool.run(2, &|part| assert_ne!(part, 1, "part one fails"));
        }));
        assert!(result.is_err());
        let ran = AtomicUsize::new(0);
        pool.run(2, &|_| {
            ran.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(ran.load(Ordering::Relaxed), 2);
    }
}
