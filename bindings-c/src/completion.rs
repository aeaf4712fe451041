//! What every operation shares: the completion record with its op kinds and flags, and
//! cancel and deadline by `user_data`.

use polyio_core::Completion;

use crate::runtime::{polyio_handle, polyio_runtime};
use crate::status::{polyio_status, status_of};

/// Completion flag: the operation completed during its submit call (the inline fast path).
pub const POLYIO_COMPLETION_INLINE: u32 = 1;

/// The kind of operation a completion ends.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum polyio_op {
    Connect = 1,
    Accept = 2,
    Read = 3,
    Write = 4,
    Shutdown = 5,
    Timer = 6,
}

/// One finished operation, as `polyio_turn` and `polyio_reap` report it.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct polyio_completion {
    /// The value given at submission.
    pub user_data: u64,
    /// The connection the operation used; for connect and accept, the new connection.
    pub handle: polyio_handle,
    /// `>= 0`: success (bytes read or written; 0 for a read means end of stream).
    /// `< 0`: a `polyio_status` error code.
    pub result: i64,
    /// A `polyio_op` value.
    pub op: u32,
    /// `POLYIO_COMPLETION_*` bits.
    pub flags: u32,
}

/// Moves `done` into C records at `out`.
///
/// # Safety
/// `out` has room for `done.len()` records.
pub(crate) unsafe fn write_records(done: &mut Vec<Completion>, out: *mut polyio_completion) {
    for (i, c) in done.drain(..).enumerate() {
        let rec = polyio_completion {
            user_data: c.user_data,
            handle: c.handle.into_raw(),
            result: c.result,
            op: c.op as u32,
            flags: c.flags,
        };
        // SAFETY: `i < done.len()` and the caller promised room for that many at `out`.
        unsafe { out.add(i).write(rec) };
    }
}

/// Cancels every pending operation submitted with `user_data`: each completes with
/// CANCELED (exactly once; one that already completed is not affected).
///
/// Errors: INVALID_ARGUMENT (`rt` NULL), NOT_FOUND (nothing pending has that user_data).
///
/// # Safety
/// `rt` is NULL or a live runtime used by this thread only.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_cancel(rt: *mut polyio_runtime, user_data: u64) -> polyio_status {
    ffi_boundary!(polyio_status::Panic, {
        status_of(runtime_mut!(rt, polyio_status::InvalidArgument).cancel(user_data))
    })
}

/// Gives every pending operation submitted with `user_data` a deadline `ms` from now,
/// replacing an earlier one: an operation still pending then completes with TIMED_OUT.
///
/// Errors: INVALID_ARGUMENT (`rt` NULL, `ms` too large), NOT_FOUND (nothing pending).
///
/// # Safety
/// `rt` is NULL or a live runtime used by this thread only.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_deadline(
    rt: *mut polyio_runtime,
    user_data: u64,
    ms: u64,
) -> polyio_status {
    ffi_boundary!(polyio_status::Panic, {
        status_of(runtime_mut!(rt, polyio_status::InvalidArgument).deadline(user_data, ms))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_match_core() {
        assert_eq!(POLYIO_COMPLETION_INLINE, polyio_core::FLAG_INLINE);
    }
}
