//! Timers: a one-shot timer is an operation like any other, with a completion of its own
//! (op TIMER); cancel it with `polyio_cancel`.

use crate::runtime::polyio_runtime;
use crate::status::{polyio_status, status_of};

/// A one-shot timer: completes (op TIMER) with 0 after `ms` milliseconds (0: on the next
/// turn). Timers due at the same time complete in submission order.
///
/// Errors (no completion posted): INVALID_ARGUMENT (`rt` NULL, `ms` too large to represent),
/// SHUTDOWN, QUEUE_FULL.
///
/// # Safety
/// `rt` is NULL or a live runtime used by this thread only.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_timer(
    rt: *mut polyio_runtime,
    ms: u64,
    user_data: u64,
) -> polyio_status {
    ffi_boundary!(polyio_status::Panic, {
        status_of(runtime_mut!(rt, polyio_status::InvalidArgument).timer(ms, user_data))
    })
}
