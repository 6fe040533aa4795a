//! CPU-bound work on the way to a verdict (reading and compiling a fetched spec, evaluating
//! it) runs on tokio's blocking pool, a bounded number of jobs at once: the async workers keep
//! answering other containers, and a caller's deadline applies to the wait, not only to the
//! network.

use std::sync::{Arc, LazyLock};

use tokio::sync::Semaphore;

/// Jobs at once: the plugin runs two async workers; a hostile spec costs at most its budget
/// (milliseconds), so two jobs never starve anything for long.
pub const MAX_JOBS: usize = 2;

static JOBS: LazyLock<Arc<Semaphore>> = LazyLock::new(|| Arc::new(Semaphore::new(MAX_JOBS)));

/// Slots taken now (jobs running, in this process).
pub fn busy() -> usize {
    MAX_JOBS - JOBS.available_permits()
}

/// Runs `f` on the blocking pool once one of the [`MAX_JOBS`] slots is free. The slot is held
/// by the job itself, so a caller that stops waiting (its deadline) does not free it early.
pub async fn run<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let permit = JOBS
        .clone()
        .acquire_owned()
        .await
        .expect("the job semaphore is never closed");
    let job = tokio::task::spawn_blocking(move || {
        let _slot = permit;
        f()
    });
    match job.await {
        Ok(v) => v,
        // The job panicked: the same panic here, as if it had run inline.
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn at_most_max_jobs_at_once_even_when_callers_give_up() {
        static RUNNING: AtomicUsize = AtomicUsize::new(0);
        static PEAK: AtomicUsize = AtomicUsize::new(0);
        let job = || {
            let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
            PEAK.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(50));
            RUNNING.fetch_sub(1, Ordering::SeqCst);
        };
        // Callers that stop waiting at once: their jobs still hold their slots.
        for _ in 0..4 {
            let _ = tokio::time::timeout(Duration::from_millis(1), run(job)).await;
        }
        let all: Vec<_> = (0..6).map(|_| tokio::spawn(run(job))).collect();
        for j in all {
            j.await.unwrap();
        }
        assert!(PEAK.load(Ordering::SeqCst) <= MAX_JOBS, "{PEAK:?}");
    }
}
