//! The runtime: create and free it, learn its backend fd and next timeout, drive it with
//! `polyio_turn` / `polyio_reap`, wake it from another thread, read its counters and the
//! library's version. Everything else takes the `polyio_runtime *` made here.

use std::cell::UnsafeCell;
use std::ffi::{c_char, c_int};
use std::time::Duration;

use polyio_core::{Backend, Completion, FsBackend, Options, Runtime, RuntimeWaker};

pub use crate::completion::polyio_handle;
use crate::completion::{self, polyio_completion};
use crate::status::polyio_status;

/// Major version of this header; `polyio_version()` reports the library's.
pub const POLYIO_VERSION_MAJOR: u32 = 0;
/// Minor version of this header.
pub const POLYIO_VERSION_MINOR: u32 = 1;
/// Patch version of this header.
pub const POLYIO_VERSION_PATCH: u32 = 0;

/// How a runtime reads and writes files (`polyio_options.fs_backend`,
/// `polyio_stats.fs_backend`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum polyio_fs_backend {
    /// io_uring where the kernel allows it, else the blocking pool; the environment variable
    /// `POLYIO_FS_BACKEND=threads` picks the blocking pool. The default. In `polyio_stats`:
    /// no file operation has chosen a backend yet.
    Auto = 0,
    /// One io_uring ring per runtime, created by the first file operation (which fails with
    /// the setup's error where io_uring is not available).
    Uring = 1,
    /// The runtime's blocking thread pool, as libuv's `uv_fs_*`.
    Threads = 2,
}

impl polyio_fs_backend {
    pub(crate) fn from_core(b: FsBackend) -> polyio_fs_backend {
        match b {
            FsBackend::Auto => polyio_fs_backend::Auto,
            FsBackend::Uring => polyio_fs_backend::Uring,
            FsBackend::Threads => polyio_fs_backend::Threads,
        }
    }

    pub(crate) fn to_core(v: u32) -> Option<FsBackend> {
        match v {
            0 => Some(FsBackend::Auto),
            1 => Some(FsBackend::Uring),
            2 => Some(FsBackend::Threads),
            _ => None,
        }
    }
}

/// How a runtime tells its consumer that it has work (`polyio_options.backend`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum polyio_backend {
    /// Epoll where available, else Thread. The default.
    Auto = 0,
    /// The backend fd is tokio's own epoll instance; each turn drives the I/O driver inline.
    Epoll = 1,
    /// A reactor thread drives the I/O; the backend fd is an eventfd signaled once per batch.
    Thread = 2,
}

/// Runtime settings. Fill with `polyio_options_init`, then change fields.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct polyio_options {
    /// A `polyio_backend` value.
    pub backend: u32,
    /// Upper bound on operations in flight plus completions not yet reaped (default 65536).
    /// Past it, submissions fail with `POLYIO_STATUS_QUEUE_FULL`.
    pub max_ops: u32,
    /// A `polyio_fs_backend` value: how files are read and written (default AUTO).
    pub fs_backend: u32,
}

/// Counters for tests and tuning.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct polyio_stats {
    /// Completions posted during their submit call (the inline fast path).
    pub inline_completions: u64,
    /// Completions posted in all.
    pub completions: u64,
    /// Turns run.
    pub turns: u64,
    /// Operations submitted and not yet completed.
    pub in_flight: u64,
    /// The `polyio_fs_backend` in use: AUTO until the first file operation chose one.
    pub fs_backend: u32,
}

/// An engine instance: a current-thread tokio runtime plus polyio's handle table and
/// completion queue. Opaque; create with `polyio_runtime_new`, free with
/// `polyio_runtime_free`. Use it from one thread at a time; only `polyio_runtime_wake` may be
/// called from any thread.
#[derive(Debug)]
pub struct polyio_runtime {
    _private: [u8; 0],
}

/// What a `polyio_runtime *` points at. The core sits in an `UnsafeCell` so that
/// `polyio_runtime_wake` can read `waker` from another thread while the owner holds
/// `&mut Runtime`.
pub(crate) struct Rt {
    waker: RuntimeWaker,
    core: UnsafeCell<Runtime>,
    scratch: UnsafeCell<Vec<Completion>>,
    /// This runtime's name in the registry of lent read buffers (`completion.rs`).
    lender: completion::Lender,
}

/// The core behind a runtime pointer (used through `runtime_mut!`).
///
/// # Safety
/// `rt` is a live runtime from `polyio_runtime_new`, used by this thread only, and no other
/// reference to its core is alive.
pub(crate) unsafe fn core_mut<'a>(rt: *const polyio_runtime) -> &'a mut Runtime {
    // SAFETY: the caller's promise; the core is in an `UnsafeCell`.
    unsafe { &mut *(*rt.cast::<Rt>()).core.get() }
}

/// Fills `opts` with the defaults (backend AUTO, max_ops 65536, fs_backend AUTO). NULL is
/// ignored.
///
/// # Safety
/// `opts` is NULL or points to writable memory for one `polyio_options`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_options_init(opts: *mut polyio_options) {
    ffi_boundary!((), {
        if !opts.is_null() {
            let d = Options::default();
            // SAFETY: checked non-NULL; the caller promised it is writable.
            unsafe {
                opts.write(polyio_options {
                    backend: polyio_backend::Auto as u32,
                    max_ops: d.max_ops as u32,
                    fs_backend: polyio_fs_backend::Auto as u32,
                })
            };
        }
    })
}

/// Creates a runtime. `opts` may be NULL for the defaults. On success writes the new runtime
/// to `*out` and returns OK; on failure leaves `*out` untouched. The caller owns the returned
/// runtime and must free it with `polyio_runtime_free`.
///
/// Errors: INVALID_ARGUMENT (`out` NULL, unknown backend or fs_backend, max_ops 0), NOT_FOUND (backend
/// EPOLL requested but tokio's epoll instance could not be found), QUEUE_FULL (65,535
/// runtimes alive at once), or an OS error.
///
/// # Safety
/// `opts` is NULL or a valid `polyio_options`; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_runtime_new(
    opts: *const polyio_options,
    out: *mut *mut polyio_runtime,
) -> polyio_status {
    ffi_boundary!(polyio_status::Panic, {
        if out.is_null() {
            return polyio_status::InvalidArgument;
        }
        let mut options = Options::default();
        if !opts.is_null() {
            // SAFETY: checked non-NULL; the caller promised a valid struct.
            let o = unsafe { *opts };
            options.backend = match o.backend {
                0 => Backend::Auto,
                1 => Backend::Epoll,
                2 => Backend::Thread,
                _ => return polyio_status::InvalidArgument,
            };
            options.max_ops = o.max_ops as usize;
            options.fs_backend = match polyio_fs_backend::to_core(o.fs_backend) {
                Some(b) => b,
                None => return polyio_status::InvalidArgument,
            };
        }
        match Runtime::new(options) {
            Ok(core) => {
                let rt = Box::new(Rt {
                    waker: core.waker(),
                    core: UnsafeCell::new(core),
                    scratch: UnsafeCell::new(Vec::new()),
                    lender: completion::Lender::new(),
                });
                // SAFETY: checked non-NULL; the caller promised it is writable.
                unsafe { out.write(Box::into_raw(rt).cast()) };
                polyio_status::Ok
            }
            Err(s) => s.into(),
        }
    })
}

/// Frees a runtime: cancels every operation still in flight (their completions are
/// discarded; call `polyio_runtime_shutdown` and reap first to see them), closes every
/// connection and listener, joins the runtime's threads and releases all memory except
/// multi-shot read payloads already handed out, which stay valid until each is given to
/// `polyio_buffer_release`. Buffers given to pending reads and writes are not touched after
/// this returns. Pending name lookups are abandoned, never waited for: they run on polyio's
/// process-wide pool of detached threads, which drops their answers. NULL is accepted and
/// ignored. `rt` is invalid afterwards.
///
/// # Safety
/// `rt` is NULL or a runtime from `polyio_runtime_new` not yet freed, and no other thread is
/// using it (including `polyio_runtime_wake`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_runtime_free(rt: *mut polyio_runtime) {
    ffi_boundary!((), {
        if !rt.is_null() {
            // SAFETY: `rt` came from `Box::into_raw` in `polyio_runtime_new` and is freed once.
            drop(unsafe { Box::from_raw(rt.cast::<Rt>()) });
        }
    })
}

/// Cancels everything: every operation in flight completes with CANCELED (reap them as
/// usual; a file operation through io_uring that the kernel had finished completes with its
/// result, as for `polyio_cancel`), every connection and listener is closed, and later
/// submissions fail with SHUTDOWN. Use it before `polyio_runtime_free` to see every
/// completion. A runtime whose backend fd a caller closed shuts itself down the same way
/// when it notices (at its next turn on the epoll backend, or its next wait in
/// `polyio_reap`).
///
/// Errors: INVALID_ARGUMENT if `rt` is NULL.
///
/// # Safety
/// `rt` is NULL or a live runtime used by this thread only.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_runtime_shutdown(rt: *mut polyio_runtime) -> polyio_status {
    ffi_boundary!(polyio_status::Panic, {
        runtime_mut!(rt, polyio_status::InvalidArgument).shutdown_all();
        polyio_status::Ok
    })
}

/// The runtime's backend fd: readable whenever the runtime has work. Watch it for
/// readability with your own loop (`poll`, `epoll`, libuv's `uv_poll_t`, ...), then call
/// `polyio_turn`. Owned by the runtime: do not read, write or close it. Returns -1 if `rt`
/// is NULL.
///
/// # Safety
/// `rt` is NULL or a live runtime.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_runtime_backend_fd(rt: *const polyio_runtime) -> c_int {
    ffi_boundary!(-1, { runtime_mut!(rt, -1).backend_fd() })
}

/// The backend in use, as a `polyio_backend` value (EPOLL or THREAD, never AUTO); 0 if `rt`
/// is NULL.
///
/// # Safety
/// `rt` is NULL or a live runtime.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_runtime_backend(rt: *const polyio_runtime) -> u32 {
    ffi_boundary!(0, {
        match runtime_mut!(rt, 0).backend() {
            Backend::Epoll => polyio_backend::Epoll as u32,
            Backend::Thread => polyio_backend::Thread as u32,
            Backend::Auto => polyio_backend::Auto as u32,
        }
    })
}

/// How long (ms) the consumer may sleep before the next `polyio_turn` even if the backend fd
/// stays quiet: 0 when completions are waiting, the time to the earliest timer or deadline
/// (rounded up), or -1 when only I/O can bring work (and for a NULL `rt`). Ask again after
/// every submission and turn.
///
/// # Safety
/// `rt` is NULL or a live runtime used by this thread only.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_runtime_next_timeout_ms(rt: *const polyio_runtime) -> i32 {
    ffi_boundary!(-1, {
        match runtime_mut!(rt, -1).next_timeout() {
            None => -1,
            Some(d) => d.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32,
        }
    })
}

/// Runs `f` on the core, then copies the completions it produced to `out`.
fn copy_out(
    rt: &mut Rt,
    out: *mut polyio_completion,
    f: impl FnOnce(&mut Runtime, &mut Vec<Completion>) -> usize,
) -> usize {
    let core = rt.core.get_mut();
    let scratch = rt.scratch.get_mut();
    scratch.clear();
    rt.lender.take_back(core);
    let n = f(core, scratch);
    // SAFETY: the caller promised room for `max >= n` records at `out`.
    unsafe { completion::write_records(&mut rt.lender, core, scratch, out) };
    n
}

/// Runs one bounded, non-blocking turn: polls I/O with a zero timeout, progresses every
/// ready operation, fires due timers, then copies up to `max` completions into `out` and
/// returns how many. Completions that do not fit stay queued for the next call (and
/// `polyio_runtime_next_timeout_ms` returns 0). Never blocks. Returns 0 if `rt` is NULL or
/// `out` is NULL with `max > 0`.
///
/// # Safety
/// `rt` is NULL or a live runtime used by this thread only; `out` has room for `max`
/// records.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_turn(
    rt: *mut polyio_runtime,
    out: *mut polyio_completion,
    max: usize,
) -> usize {
    ffi_boundary!(0, {
        if rt.is_null() || (out.is_null() && max > 0) {
            return 0;
        }
        // SAFETY: checked non-NULL; a live runtime used by this thread only.
        let rt = unsafe { &mut *rt.cast::<Rt>() };
        copy_out(rt, out, |core, v| core.turn(v, max))
    })
}

/// Runs turns until at least one completion is available and copies up to `max` into `out`;
/// returns how many. Blocks at most `timeout_ms` (-1: no limit; 0: one turn, like
/// `polyio_turn`). Returns 0 on timeout, when another thread (or a signal handler) calls
/// `polyio_runtime_wake`, and at once when nothing is in flight (nothing could ever
/// complete). Returns 0 if `rt` is NULL or `out` is NULL with `max > 0`.
///
/// # Safety
/// As for `polyio_turn`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_reap(
    rt: *mut polyio_runtime,
    out: *mut polyio_completion,
    max: usize,
    timeout_ms: i32,
) -> usize {
    ffi_boundary!(0, {
        if rt.is_null() || (out.is_null() && max > 0) {
            return 0;
        }
        // SAFETY: checked non-NULL; a live runtime used by this thread only.
        let rt = unsafe { &mut *rt.cast::<Rt>() };
        let timeout = if timeout_ms < 0 {
            None
        } else {
            Some(Duration::from_millis(timeout_ms as u64))
        };
        copy_out(rt, out, |core, v| core.reap(v, max, timeout))
    })
}

/// Makes the backend fd readable, so that a consumer sleeping in `poll` wakes and runs a
/// turn, and makes a `polyio_reap` blocked in another thread return. The one call that is
/// safe from any thread (while `rt` is alive). Wakes are coalesced: many calls before the
/// next turn cost one eventfd write. A wake made while no `polyio_reap` waits is
/// remembered: the next `polyio_reap` returns at once (with 0 completions unless some are
/// ready), even if turns ran in between; one reap consumes it.
///
/// Errors: INVALID_ARGUMENT if `rt` is NULL.
///
/// # Safety
/// `rt` is NULL or a live runtime that no thread frees during this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_runtime_wake(rt: *const polyio_runtime) -> polyio_status {
    ffi_boundary!(polyio_status::Panic, {
        if rt.is_null() {
            return polyio_status::InvalidArgument;
        }
        // SAFETY: a live runtime; `waker` is only ever read, and the core lives in an
        // `UnsafeCell`, so this shared reference does not alias the owner's `&mut Runtime`.
        unsafe { &(*rt.cast::<Rt>()).waker }.wake();
        polyio_status::Ok
    })
}

/// Copies the runtime's counters into `*out`.
///
/// Errors: INVALID_ARGUMENT if `rt` or `out` is NULL.
///
/// # Safety
/// `rt` is NULL or a live runtime used by this thread only; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_runtime_stats(
    rt: *const polyio_runtime,
    out: *mut polyio_stats,
) -> polyio_status {
    ffi_boundary!(polyio_status::Panic, {
        if out.is_null() {
            return polyio_status::InvalidArgument;
        }
        let s = runtime_mut!(rt, polyio_status::InvalidArgument).stats();
        let rec = polyio_stats {
            inline_completions: s.inline_completions,
            completions: s.completions,
            turns: s.turns,
            in_flight: s.in_flight as u64,
            fs_backend: polyio_fs_backend::from_core(s.fs_backend) as u32,
        };
        // SAFETY: checked non-NULL; the caller promised it is writable.
        unsafe { out.write(rec) };
        polyio_status::Ok
    })
}

/// The library's version as `(major << 16) | (minor << 8) | patch`; compare with the
/// `POLYIO_VERSION_*` macros to detect a header/library mismatch.
#[unsafe(no_mangle)]
pub extern "C" fn polyio_version() -> u32 {
    ffi_boundary!(0, {
        (POLYIO_VERSION_MAJOR << 16) | (POLYIO_VERSION_MINOR << 8) | POLYIO_VERSION_PATCH
    })
}

/// The library's version as a static string ("0.1.0"). Never free it.
#[unsafe(no_mangle)]
pub extern "C" fn polyio_version_string() -> *const c_char {
    ffi_boundary!(c"unknown".as_ptr(), { VERSION_CSTR.as_ptr() })
}

const VERSION_CSTR: &std::ffi::CStr = match std::ffi::CStr::from_bytes_with_nul(
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes(),
) {
    Ok(s) => s,
    Err(_) => c"unknown",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_macros_match_cargo_toml() {
        assert_eq!(
            POLYIO_VERSION_MAJOR.to_string(),
            env!("CARGO_PKG_VERSION_MAJOR")
        );
        assert_eq!(
            POLYIO_VERSION_MINOR.to_string(),
            env!("CARGO_PKG_VERSION_MINOR")
        );
        assert_eq!(
            POLYIO_VERSION_PATCH.to_string(),
            env!("CARGO_PKG_VERSION_PATCH")
        );
        // SAFETY: a static NUL-terminated string.
        let s = unsafe { std::ffi::CStr::from_ptr(polyio_version_string()) };
        assert_eq!(s.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
    }
}
