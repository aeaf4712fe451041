//! A small process-wide pool of detached threads for blocking calls (name lookups today).
//! Nothing ever joins its threads, so freeing a runtime never waits for a slow call: a job
//! hands its result over through its own channel, and a result nobody waits for is dropped.
//! Threads start on demand up to `MAX_THREADS` and exit after `IDLE` without work.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

use crate::status::Status;

/// Threads at most (tokio's blocking pool allows 512, libuv's 4 by default; lookups past
/// this many wait in the queue).
const MAX_THREADS: usize = 32;
/// An idle thread exits after this long.
const IDLE: Duration = Duration::from_secs(10);

type Job = Box<dyn FnOnce() + Send>;

struct State {
    jobs: VecDeque<Job>,
    threads: usize,
    idle: usize,
    /// The process the counts belong to: a child of `fork` inherits them but no thread.
    pid: u32,
}

struct Pool {
    state: Mutex<State>,
    work: Condvar,
}

static POOL: Pool = Pool {
    state: Mutex::new(State {
        jobs: VecDeque::new(),
        threads: 0,
        idle: 0,
        pid: 0,
    }),
    work: Condvar::new(),
};

/// Runs `job` on a pool thread. Fails only when no pool thread exists and the OS refuses to
/// start one (the job is then dropped, unrun).
pub(crate) fn spawn(job: impl FnOnce() + Send + 'static) -> Result<(), Status> {
    let mut st = POOL.state.lock().unwrap_or_else(PoisonError::into_inner);
    let pid = std::process::id();
    if st.pid != pid {
        // First use, or first use in a forked child: the parent's threads are not here.
        *st = State {
            jobs: VecDeque::new(),
            threads: 0,
            idle: 0,
            pid,
        };
    }
    st.jobs.push_back(Box::new(job));
    if st.idle >= st.jobs.len() || st.threads >= MAX_THREADS {
        POOL.work.notify_one();
        return Ok(());
    }
    let started = std::thread::Builder::new()
        .name("polyio-pool".into())
        .spawn(worker);
    match started {
        Ok(_) => {
            st.threads += 1;
            Ok(())
        }
        Err(_) if st.threads > 0 => Ok(()),
        Err(e) => {
            st.jobs.pop_back();
            Err(Status::from(e))
        }
    }
}

fn worker() {
    let mut st = POOL.state.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        if let Some(job) = st.jobs.pop_front() {
            drop(st);
            // A panicking job must not take the thread's count with it.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            st = POOL.state.lock().unwrap_or_else(PoisonError::into_inner);
            continue;
        }
        st.idle += 1;
        let (next, timeout) = POOL
            .work
            .wait_timeout(st, IDLE)
            .unwrap_or_else(PoisonError::into_inner);
        st = next;
        st.idle -= 1;
        if timeout.timed_out() && st.jobs.is_empty() {
            st.threads -= 1;
            return;
        }
    }
}
