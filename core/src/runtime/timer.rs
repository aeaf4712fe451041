//! Timers and deadlines: a timer op completes with 0 when due; a deadline on another op
//! completes that op with `TimedOut`. Both live in the queue's timer map, ordered by
//! instant, and fire at the end of a turn.

use std::time::{Duration, Instant};

use super::Runtime;
use super::queue::TimerTarget;
use crate::handle::Handle;
use crate::op::{Op, OpCode, OpState};
use crate::status::Status;

impl Runtime {
    /// A one-shot timer: completes with 0 after `ms` milliseconds (0: on the next turn).
    /// `InvalidArgument` when `ms` exceeds `i64::MAX`.
    pub fn timer(&mut self, ms: u64, user_data: u64) -> Result<(), Status> {
        self.admit()?;
        let at = instant_after(ms)?;
        let id = self.new_op(
            user_data,
            OpCode::Timer,
            Handle::NONE,
            OpState::Timer((at, 0)),
        )?;
        let k = self.q.add_timer(at, TimerTarget::Fire(id));
        if let Some(op) = self.q.op_mut(id) {
            op.state = OpState::Timer(k);
        }
        Ok(())
    }

    /// Gives every pending operation submitted with `user_data` a deadline `ms` from now
    /// (replacing an earlier one); one still pending then completes with `TimedOut`.
    /// `NotFound` when none is pending (an op that completed but whose completion is not
    /// reaped yet is no longer pending). O(1) in the number of other ops.
    pub fn deadline(&mut self, user_data: u64, ms: u64) -> Result<(), Status> {
        let at = instant_after(ms)?;
        let ids = self.q.with_user_data(user_data);
        if ids.is_empty() {
            return Err(Status::NotFound);
        }
        for id in ids {
            let old = self.q.op_mut(id).and_then(|op| op.deadline.take());
            if let Some(k) = &old {
                self.q.timers.remove(&**k);
            }
            let k = self.q.add_timer(at, TimerTarget::Deadline(id));
            // A replaced deadline's box takes the new timer.
            let k = match old {
                Some(mut b) => {
                    *b = k;
                    b
                }
                None => Box::new(k),
            };
            if let Some(op) = self.q.op_mut(id) {
                op.deadline = Some(k);
            }
        }
        Ok(())
    }

    /// Fires every timer and deadline due at `now`.
    pub(super) fn fire_timers(&mut self, now: Instant) {
        while let Some(entry) = self.q.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            match entry.remove() {
                TimerTarget::Fire(op) => self.q.finish(op, Ok(0), Handle::NONE),
                TimerTarget::Deadline(op) => {
                    if let Some(o) = self.q.op_mut(op) {
                        o.deadline = None;
                    }
                    self.cancel_op(op, Status::TimedOut);
                }
                TimerTarget::WakeTask(op) => {
                    if let Some(Op {
                        state: OpState::Task(t),
                        ..
                    }) = self.q.op_mut(op)
                    {
                        t.wake_timer = None;
                    }
                    self.progress_task(op);
                }
            }
        }
    }
}

/// The instant `ms` milliseconds from now. A delay with the top bit set is a negative
/// number in disguise (a C caller passing -1): `InvalidArgument`, as is one past the clock's
/// range. `Instant::checked_add` alone does not catch `u64::MAX` ms on Linux.
fn instant_after(ms: u64) -> Result<Instant, Status> {
    if ms > i64::MAX as u64 {
        return Err(Status::InvalidArgument);
    }
    Instant::now()
        .checked_add(Duration::from_millis(ms))
        .ok_or(Status::InvalidArgument)
}
