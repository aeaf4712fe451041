//! The one op type for work that is a future rather than readiness: a connect (with its name
//! lookup), and later lookups and blocking-pool jobs. A task is polled by the turn when its
//! waker fires; what it produces is plain data (`Done`), which the turn turns into a
//! completion. Each new kind of such work adds a `Done` variant, not an op type of its own.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use crate::socket::StreamSocket;
use crate::status::Status;

/// What a finished task hands the runtime.
pub(crate) enum Done {
    /// A connected stream, to register as a new connection (connect).
    Stream(StreamSocket),
}

pub(crate) type TaskFuture = Pin<Box<dyn Future<Output = Result<Done, Status>> + Send>>;

/// A future and the waker that queues its key on the runtime's ready queue.
pub(crate) struct Task {
    fut: TaskFuture,
    waker: Waker,
}

impl Task {
    /// A task whose waker is set later (with [`set_waker`](Self::set_waker)), once its op
    /// has an id to name in the waker's key.
    pub(crate) fn new(fut: TaskFuture) -> Task {
        Task {
            fut,
            waker: Waker::noop().clone(),
        }
    }

    pub(crate) fn set_waker(&mut self, waker: Waker) {
        self.waker = waker;
    }

    pub(crate) fn poll(&mut self) -> Poll<Result<Done, Status>> {
        let mut cx = Context::from_waker(&self.waker);
        self.fut.as_mut().poll(&mut cx)
    }
}
