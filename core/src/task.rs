//! The one op type for work that is a future rather than readiness: a connect (with its name
//! lookup and Happy Eyeballs attempts) and a name lookup. A task is polled by the turn when
//! its waker fires or its wake-up time comes; what it produces is plain data (`Done`), which
//! the turn turns into a completion. Each new kind of such work adds a `Done` variant, not
//! an op type of its own.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use crate::clock::TimerKey;
use crate::fs::types::FileDone;
use crate::resolve::AddrInfo;
use crate::socket::StreamSocket;
use crate::status::Status;

thread_local! {
    /// The earliest time the task being polled asked to be polled again (see `wake_at`).
    static WAKE_AT: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Asks the runtime to poll the task being polled again at `at` (or earlier, if its waker
/// fires first). For timeouts inside a task: the runtime times them with its own timers,
/// so the consumer's `next_timeout` accounts for them. Only meaningful inside a task's poll.
pub(crate) fn wake_at(at: Instant) {
    WAKE_AT.with(|w| w.set(Some(w.get().map_or(at, |old| old.min(at)))));
}

/// What a finished task hands the runtime.
pub(crate) enum Done {
    /// A connected stream, to register as a new connection (connect).
    Stream(StreamSocket),
    /// Every address a name lookup found.
    Addrs(Vec<AddrInfo>),
    /// A file op that ran on the blocking pool (the `threads` file backend).
    File(FileDone),
}

pub(crate) type TaskFuture = Pin<Box<dyn Future<Output = Result<Done, Status>> + Send>>;

/// A future, the waker that queues its key on the runtime's ready queue, and the timer that
/// polls it again when it asked for that with `wake_at`.
pub(crate) struct Task {
    fut: TaskFuture,
    waker: Waker,
    pub(crate) wake_timer: Option<TimerKey>,
}

impl Task {
    /// A task whose waker is set later (with [`set_waker`](Self::set_waker)), once its op
    /// has an id to name in the waker's key.
    pub(crate) fn new(fut: TaskFuture) -> Task {
        Task {
            fut,
            waker: Waker::noop().clone(),
            wake_timer: None,
        }
    }

    pub(crate) fn set_waker(&mut self, waker: Waker) {
        self.waker = waker;
    }

    /// Polls the future. Also returns the time it asked to be polled again, if any.
    pub(crate) fn poll(&mut self) -> (Poll<Result<Done, Status>>, Option<Instant>) {
        let mut cx = Context::from_waker(&self.waker);
        let outer = WAKE_AT.with(|w| w.take());
        let r = self.fut.as_mut().poll(&mut cx);
        let at = WAKE_AT.with(|w| w.replace(outer));
        (r, at)
    }
}
