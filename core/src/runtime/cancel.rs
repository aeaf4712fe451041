//! Cancellation and shutdown. Cancelling an op completes it at once with `Canceled` (or
//! `TimedOut` for a deadline); its place in a resource's queue is dropped at the front or
//! skipped later, so a cancel is O(1) and shutting down n ops is O(n).

use super::Runtime;
use crate::handle::Handle;
use crate::op::Key;
use crate::opqueue::OpQueue;
use crate::socket::Resource;
use crate::status::Status;

impl Runtime {
    /// Cancels every pending operation submitted with `user_data`: each completes with
    /// `Canceled`. `NotFound` when none is pending (an op that completed but whose
    /// completion is not reaped yet is no longer pending: its completion stands).
    pub fn cancel(&mut self, user_data: u64) -> Result<(), Status> {
        let ids = self.q.with_user_data(user_data);
        if ids.is_empty() {
            return Err(Status::NotFound);
        }
        for id in ids {
            self.cancel_op(id, Status::Canceled);
        }
        Ok(())
    }

    /// Completes op `id` with `status` now. An op at the front of its resource's queue is
    /// taken out (with any cancelled ones behind it) and the next op there gets a look in
    /// the next turn; one further back stays as a stale id that progress skips.
    pub(crate) fn cancel_op(&mut self, id: Handle, status: Status) {
        let Some(op) = self.q.op(id) else { return };
        let target = op.target;
        if self.fs_cancel(id, status) {
            return;
        }
        self.q.finish(id, Err(status), target);
        let q = &self.q;
        let live = |o: &Handle| q.op(*o).is_some();
        let requeue = match self.resources.get_mut(target) {
            Some(Resource::Conn(c)) => {
                if pop_stale(&mut c.reads, live) {
                    Some(Key::Read(target))
                } else if pop_stale(&mut c.writes, live) {
                    Some(Key::Write(target))
                } else {
                    None
                }
            }
            Some(Resource::Listener(l)) => {
                pop_stale(&mut l.accepts, live).then_some(Key::Accept(target))
            }
            Some(Resource::Udp(u)) => {
                if pop_stale(&mut u.recvs, live) {
                    Some(Key::Recv(target))
                } else if pop_stale(&mut u.sends, live) {
                    Some(Key::Send(target))
                } else {
                    None
                }
            }
            Some(Resource::File(_)) | None => None,
        };
        // The next op in that queue may be ready already: let the next turn look. Only when
        // one waits: a spurious key would make `next_timeout` report work on an idle runtime.
        if let Some(k) = requeue {
            self.requeue(k);
        }
    }

    /// Cancels everything: every pending operation completes with `Canceled`, every
    /// connection and listener is closed, and later submissions fail with `Shutdown`.
    /// The completions stay queued for [`turn`](Self::turn) / [`reap`](Self::reap).
    pub fn shutdown_all(&mut self) {
        self.shut_down = true;
        self.fs_shutdown();
        for id in self.q.op_ids() {
            let Some(op) = self.q.op(id) else { continue };
            let target = op.target;
            // Ops queued on a resource complete as it closes, below, in queue order.
            if self.resources.get(target).is_none() {
                self.q.finish(id, Err(Status::Canceled), target);
            }
        }
        for h in self.resources.handles() {
            let _ = self.close(h);
        }
        self.q.timers.clear();
    }

    /// Whether [`shutdown_all`](Self::shutdown_all) has run.
    pub fn is_shut_down(&self) -> bool {
        self.shut_down
    }
}

/// Pops the ids at the front of `queue` whose op is gone. True when it popped some and a
/// live op now heads the queue.
fn pop_stale(queue: &mut OpQueue, live: impl Fn(&Handle) -> bool) -> bool {
    let mut popped = false;
    while let Some(front) = queue.front() {
        if live(&front) {
            return popped;
        }
        queue.pop_front();
        popped = true;
    }
    false
}
