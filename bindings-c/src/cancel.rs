//! Cancel and deadline by `user_data`: for every kind of operation (reads, writes,
//! accepts, connects, timers), each O(1) in the number of other operations.

use crate::runtime::polyio_runtime;
use crate::status::{polyio_status, status_of};

/// Cancels every pending operation submitted with `user_data`: each completes with
/// CANCELED, exactly once. O(1) in the number of other operations. An operation that has
/// completed but whose completion is not reaped yet is no longer pending: it is not
/// affected, its completion stands, and if nothing else matches the call returns NOT_FOUND.
/// A write canceled after it sent part of its bytes is flagged `POLYIO_COMPLETION_PARTIAL`.
/// One exception to CANCELED: a file read or write through io_uring on the caller's memory
/// (`polyio_fs_read`, `polyio_fs_write`, their vectored forms) completes only once the
/// kernel lets go of that memory, and if the kernel had finished it first, with the
/// kernel's result (its count: the bytes did move; or its error). Such an operation stays
/// pending until then: a second cancel of it returns OK again.
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
/// O(1) in the number of other operations. As for `polyio_cancel`, an operation completed
/// but not yet reaped is not pending (NOT_FOUND if nothing else matches; its completion
/// stands), a write that times out after sending part of its bytes is flagged
/// `POLYIO_COMPLETION_PARTIAL`, and a file read or write through io_uring that the kernel
/// finished first completes with the kernel's result.
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
