//! polyio's C ABI: thin `extern "C"` shims over `polyio-core`, one per core call. Every
//! function goes through `ffi_boundary!` (no panic crosses into C) and checks its pointers;
//! out-params are written only on success. `include/polyio.h` is generated from this file
//! by cbindgen (`make header`); the doc comments here are the header's documentation.

#![deny(unsafe_op_in_unsafe_fn)]
#![allow(non_camel_case_types)]

use std::cell::UnsafeCell;
use std::ffi::{CStr, c_char, c_int};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use polyio_core::{
    Backend, Completion, Handle, ListenOptions, Options, ReadBuf, Runtime, RuntimeWaker, Status,
    WriteBuf,
};

/// Major version of this header; `polyio_version()` reports the library's.
pub const POLYIO_VERSION_MAJOR: u32 = 0;
/// Minor version of this header.
pub const POLYIO_VERSION_MINOR: u32 = 1;
/// Patch version of this header.
pub const POLYIO_VERSION_PATCH: u32 = 0;

/// A handle names a connection or a listener: an opaque 64-bit id (slot, generation and
/// runtime id), never a pointer. 0 (`POLYIO_HANDLE_NONE`) names nothing. A stale, closed,
/// foreign or made-up handle gets `POLYIO_STATUS_BAD_HANDLE`, never undefined behaviour.
pub type polyio_handle = u64;

/// The handle that names nothing.
pub const POLYIO_HANDLE_NONE: polyio_handle = 0;

/// Completion flag: the operation completed during its submit call (the inline fast path).
pub const POLYIO_COMPLETION_INLINE: u32 = 1;

/// `polyio_tcp_listen` flag: set `SO_REUSEPORT`, so that one runtime per thread can share a
/// port (thread-per-core).
pub const POLYIO_LISTEN_REUSEPORT: u32 = 1;

/// Result codes. `POLYIO_STATUS_OK` is 0; errors are negative. Where an OS errno exists the
/// code is `-errno` (as in libuv); codes from -4000 down are polyio's own.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum polyio_status {
    Ok = 0,
    NotFound = -2,
    IoError = -5,
    BadHandle = -9,
    NoMemory = -12,
    PermissionDenied = -13,
    Busy = -16,
    InvalidArgument = -22,
    TooManyOpenFiles = -24,
    BrokenPipe = -32,
    AddressInUse = -98,
    AddressNotAvailable = -99,
    NetworkUnreachable = -101,
    ConnectionAborted = -103,
    ConnectionReset = -104,
    NotConnected = -107,
    TimedOut = -110,
    ConnectionRefused = -111,
    HostUnreachable = -113,
    Canceled = -125,
    /// The runtime is shut down (`polyio_runtime_shutdown`): no new operations.
    Shutdown = -4001,
    /// Too many operations in flight plus completions not reaped (`polyio_options.max_ops`).
    QueueFull = -4002,
    /// polyio caught an internal panic: a bug; please report it.
    Panic = -4003,
    /// The host name could not be resolved.
    NameNotResolved = -4004,
}

impl From<Status> for polyio_status {
    fn from(s: Status) -> polyio_status {
        match s {
            Status::Ok => polyio_status::Ok,
            Status::NotFound => polyio_status::NotFound,
            Status::IoError => polyio_status::IoError,
            Status::BadHandle => polyio_status::BadHandle,
            Status::NoMemory => polyio_status::NoMemory,
            Status::PermissionDenied => polyio_status::PermissionDenied,
            Status::Busy => polyio_status::Busy,
            Status::InvalidArgument => polyio_status::InvalidArgument,
            Status::TooManyOpenFiles => polyio_status::TooManyOpenFiles,
            Status::BrokenPipe => polyio_status::BrokenPipe,
            Status::AddressInUse => polyio_status::AddressInUse,
            Status::AddressNotAvailable => polyio_status::AddressNotAvailable,
            Status::NetworkUnreachable => polyio_status::NetworkUnreachable,
            Status::ConnectionAborted => polyio_status::ConnectionAborted,
            Status::ConnectionReset => polyio_status::ConnectionReset,
            Status::NotConnected => polyio_status::NotConnected,
            Status::TimedOut => polyio_status::TimedOut,
            Status::ConnectionRefused => polyio_status::ConnectionRefused,
            Status::HostUnreachable => polyio_status::HostUnreachable,
            Status::Canceled => polyio_status::Canceled,
            Status::Shutdown => polyio_status::Shutdown,
            Status::QueueFull => polyio_status::QueueFull,
            Status::Panic => polyio_status::Panic,
            Status::NameNotResolved => polyio_status::NameNotResolved,
        }
    }
}

fn status_of(r: Result<(), Status>) -> polyio_status {
    match r {
        Ok(()) => polyio_status::Ok,
        Err(s) => s.into(),
    }
}

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

/// A socket address in text form.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct polyio_addr {
    /// The IP address, NUL-terminated (`"127.0.0.1"`, `"::1"`).
    pub ip: [c_char; 46],
    pub port: u16,
    /// 4 or 6.
    pub family: u8,
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
struct Rt {
    waker: RuntimeWaker,
    core: UnsafeCell<Runtime>,
    scratch: UnsafeCell<Vec<Completion>>,
}

/// Runs `$body`, turning a panic into `$on_panic`: no unwind crosses into C.
macro_rules! ffi_boundary {
    ($on_panic:expr, $body:block) => {
        match catch_unwind(AssertUnwindSafe(|| $body)) {
            Ok(v) => v,
            Err(_) => $on_panic,
        }
    };
}

/// Evaluates to the `&mut Runtime` behind `$rt`, or returns `$on_null` when it is NULL.
macro_rules! runtime_mut {
    ($rt:expr, $on_null:expr) => {{
        if $rt.is_null() {
            return $on_null;
        }
        // SAFETY: a non-NULL `polyio_runtime *` came from `polyio_runtime_new` and is not
        // freed yet (documented contract); one thread at a time uses it, so this is the only
        // live reference to the core.
        unsafe { &mut *(*($rt as *mut Rt)).core.get() }
    }};
}

/// Fills `opts` with the defaults (backend AUTO, max_ops 65536). NULL is ignored.
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
                })
            };
        }
    })
}

/// Creates a runtime. `opts` may be NULL for the defaults. On success writes the new runtime
/// to `*out` and returns OK; on failure leaves `*out` untouched. The caller owns the returned
/// runtime and must free it with `polyio_runtime_free`.
///
/// Errors: INVALID_ARGUMENT (`out` NULL, unknown backend, max_ops 0), NOT_FOUND (backend
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
        }
        match Runtime::new(options) {
            Ok(core) => {
                let rt = Box::new(Rt {
                    waker: core.waker(),
                    core: UnsafeCell::new(core),
                    scratch: UnsafeCell::new(Vec::new()),
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
/// connection and listener, joins the runtime's threads and releases all memory. Buffers
/// given to pending reads and writes are not touched after this returns. NULL is accepted
/// and ignored. `rt` is invalid afterwards.
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
/// usual), every connection and listener is closed, and later submissions fail with
/// SHUTDOWN. Use it before `polyio_runtime_free` to see every completion.
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
    ffi_boundary!(-1, {
        runtime_mut!(rt as *mut polyio_runtime, -1).backend_fd()
    })
}

/// The backend in use, as a `polyio_backend` value (EPOLL or THREAD, never AUTO); 0 if `rt`
/// is NULL.
///
/// # Safety
/// `rt` is NULL or a live runtime.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_runtime_backend(rt: *const polyio_runtime) -> u32 {
    ffi_boundary!(0, {
        match runtime_mut!(rt as *mut polyio_runtime, 0).backend() {
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
        match runtime_mut!(rt as *mut polyio_runtime, -1).next_timeout() {
            None => -1,
            Some(d) => d.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32,
        }
    })
}

fn copy_out(
    rt: &mut Rt,
    out: *mut polyio_completion,
    f: impl FnOnce(&mut Runtime, &mut Vec<Completion>) -> usize,
) -> usize {
    let core = rt.core.get_mut();
    let scratch = rt.scratch.get_mut();
    scratch.clear();
    let n = f(core, scratch);
    for (i, c) in scratch.drain(..).enumerate() {
        let rec = polyio_completion {
            user_data: c.user_data,
            handle: c.handle.into_raw(),
            result: c.result,
            op: c.op as u32,
            flags: c.flags,
        };
        // SAFETY: `i < n <= max` and the caller promised room for `max` records at `out`.
        unsafe { out.add(i).write(rec) };
    }
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
/// turn, and makes a `polyio_reap` blocked in another thread return. The one call that is safe from any thread (while `rt` is alive).
/// Wakes are coalesced: many calls before the next turn cost one eventfd write.
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
        let s = runtime_mut!(rt as *mut polyio_runtime, polyio_status::InvalidArgument).stats();
        let rec = polyio_stats {
            inline_completions: s.inline_completions,
            completions: s.completions,
            turns: s.turns,
            in_flight: s.in_flight as u64,
        };
        // SAFETY: checked non-NULL; the caller promised it is writable.
        unsafe { out.write(rec) };
        polyio_status::Ok
    })
}

/// Reads a NUL-terminated UTF-8 host name, or `None` for NULL / invalid UTF-8.
///
/// # Safety
/// `host` is NULL or a NUL-terminated string.
unsafe fn host_str<'a>(host: *const c_char) -> Option<&'a str> {
    if host.is_null() {
        return None;
    }
    // SAFETY: non-NULL and NUL-terminated (caller's promise).
    unsafe { CStr::from_ptr(host) }.to_str().ok()
}

/// Starts a TCP connection to `host:port`. `host` is an IPv4 or IPv6 literal (`"::1"` or
/// `"[::1]"`) or a name, resolved on the runtime's blocking pool; it is copied, so the
/// caller may free it on return. Completes (op CONNECT) with result 0 and the new
/// connection in `handle`, or an error (CONNECTION_REFUSED, NAME_NOT_RESOLVED, TIMED_OUT
/// with `polyio_deadline`, CANCELED, ...).
///
/// Errors (no completion is ever posted for a submission that returns an error):
/// INVALID_ARGUMENT (`rt` or `host` NULL, `host` empty or not UTF-8, `port` 0), SHUTDOWN,
/// QUEUE_FULL.
///
/// # Safety
/// `rt` is NULL or a live runtime used by this thread only; `host` is NULL or a
/// NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_tcp_connect(
    rt: *mut polyio_runtime,
    host: *const c_char,
    port: u16,
    user_data: u64,
) -> polyio_status {
    ffi_boundary!(polyio_status::Panic, {
        let core = runtime_mut!(rt, polyio_status::InvalidArgument);
        // SAFETY: forwarded caller promise.
        let Some(host) = (unsafe { host_str(host) }) else {
            return polyio_status::InvalidArgument;
        };
        status_of(core.tcp_connect(host, port, user_data))
    })
}

/// Binds `host:port` and listens. `port` 0 picks an ephemeral port (read it back with
/// `polyio_tcp_local_addr`). `backlog` 0 means the default (511); `flags` may contain
/// `POLYIO_LISTEN_REUSEPORT`. `SO_REUSEADDR` is always set. Synchronous, no completion:
/// on success writes the listener's handle to `*out`. Close it with `polyio_close`.
///
/// Errors: INVALID_ARGUMENT (`rt`, `host` or `out` NULL, negative backlog, unknown flags,
/// invalid host), ADDRESS_IN_USE, PERMISSION_DENIED, NAME_NOT_RESOLVED, SHUTDOWN, ...
///
/// # Safety
/// `rt` is NULL or a live runtime used by this thread only; `host` is NULL or a
/// NUL-terminated string; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_tcp_listen(
    rt: *mut polyio_runtime,
    host: *const c_char,
    port: u16,
    backlog: i32,
    flags: u32,
    out: *mut polyio_handle,
) -> polyio_status {
    ffi_boundary!(polyio_status::Panic, {
        let core = runtime_mut!(rt, polyio_status::InvalidArgument);
        // SAFETY: forwarded caller promise.
        let Some(host) = (unsafe { host_str(host) }) else {
            return polyio_status::InvalidArgument;
        };
        if out.is_null() || backlog < 0 || flags & !POLYIO_LISTEN_REUSEPORT != 0 {
            return polyio_status::InvalidArgument;
        }
        let options = ListenOptions {
            backlog: backlog as u32,
            reuse_port: flags & POLYIO_LISTEN_REUSEPORT != 0,
            ..ListenOptions::default()
        };
        match core.tcp_listen(host, port, options) {
            Ok(h) => {
                // SAFETY: checked non-NULL; the caller promised it is writable.
                unsafe { out.write(h.into_raw()) };
                polyio_status::Ok
            }
            Err(s) => s.into(),
        }
    })
}

/// Accepts one connection on `listener`. Completes (op ACCEPT) with result 0 and the new
/// connection in `handle`. Several accepts may be queued; they complete in order.
///
/// Errors (no completion posted): INVALID_ARGUMENT (`rt` NULL, or `listener` is a
/// connection), BAD_HANDLE, SHUTDOWN, QUEUE_FULL.
///
/// # Safety
/// `rt` is NULL or a live runtime used by this thread only.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_accept(
    rt: *mut polyio_runtime,
    listener: polyio_handle,
    user_data: u64,
) -> polyio_status {
    ffi_boundary!(polyio_status::Panic, {
        status_of(
            runtime_mut!(rt, polyio_status::InvalidArgument)
                .accept(Handle::from_raw(listener), user_data),
        )
    })
}

/// Reads up to `cap` bytes into `buf`. Completes (op READ) with the number of bytes read,
/// 0 at end of stream. The caller keeps `buf` valid and untouched until the completion is
/// reaped (or the runtime is freed); polyio never frees it. Reads queue per connection and
/// complete in order. A cancelled read consumes no bytes: they stay for the next read.
///
/// Errors (no completion posted): INVALID_ARGUMENT (`rt` or `buf` NULL, `cap` 0 or above
/// PTRDIFF_MAX, handle is a listener), BAD_HANDLE, SHUTDOWN, QUEUE_FULL.
///
/// # Safety
/// `rt` is NULL or a live runtime used by this thread only; `buf` is NULL or `cap` writable
/// bytes that stay valid until the read completes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_read(
    rt: *mut polyio_runtime,
    h: polyio_handle,
    buf: *mut u8,
    cap: usize,
    user_data: u64,
) -> polyio_status {
    ffi_boundary!(polyio_status::Panic, {
        let core = runtime_mut!(rt, polyio_status::InvalidArgument);
        if buf.is_null() {
            return polyio_status::InvalidArgument;
        }
        // SAFETY: the caller promised `cap` writable bytes at `buf` until completion.
        let buf = unsafe { ReadBuf::raw(buf, cap) };
        status_of(core.read(Handle::from_raw(h), buf, user_data))
    })
}

/// Writes all `len` bytes at `data`. Completes (op WRITE) with `len` once every byte is
/// with the kernel. The caller keeps `data` valid and unchanged until the completion is
/// reaped (or the runtime is freed); polyio never frees it. Writes queue per connection,
/// go out in order, and queued writes are gathered into one vectored write. `len` 0 is
/// allowed (`data` may then be NULL) and completes with 0 in order. Writing to a reset peer
/// completes with BROKEN_PIPE or CONNECTION_RESET; it never raises SIGPIPE.
///
/// Errors (no completion posted): INVALID_ARGUMENT (`rt` NULL, `data` NULL with `len` > 0,
/// `len` above PTRDIFF_MAX, handle is a listener), BAD_HANDLE, SHUTDOWN, QUEUE_FULL.
///
/// # Safety
/// `rt` is NULL or a live runtime used by this thread only; `data` is NULL or `len`
/// readable bytes that stay valid and unchanged until the write completes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_write(
    rt: *mut polyio_runtime,
    h: polyio_handle,
    data: *const u8,
    len: usize,
    user_data: u64,
) -> polyio_status {
    ffi_boundary!(polyio_status::Panic, {
        let core = runtime_mut!(rt, polyio_status::InvalidArgument);
        if data.is_null() && len > 0 {
            return polyio_status::InvalidArgument;
        }
        // SAFETY: the caller promised `len` readable bytes at `data` until completion (a
        // NULL `data` only with `len` 0, which is never read).
        let buf = unsafe { WriteBuf::raw(data, len) };
        status_of(core.write(Handle::from_raw(h), buf, user_data))
    })
}

/// Writes what the kernel takes of the `len` bytes at `data` now, without an operation and
/// without a completion (libuv's `uv_try_write`), and stores the count in `*written`: all
/// of `len`, part of it, or 0 when the socket is not writable now or when writes or a
/// shutdown are already queued on `h` (bytes sent now would overtake them). Queue the rest
/// with `polyio_write`. `data` is only read during the call.
///
/// Errors (`*written` untouched): INVALID_ARGUMENT (`rt` or `written` NULL, `data` NULL
/// with `len` > 0, handle is a listener), BAD_HANDLE, SHUTDOWN, and the connection's
/// failure (BROKEN_PIPE, CONNECTION_RESET, ...), which never raises SIGPIPE.
///
/// # Safety
/// `rt` is NULL or a live runtime used by this thread only; `data` is NULL or `len`
/// readable bytes; `written` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_try_write(
    rt: *mut polyio_runtime,
    h: polyio_handle,
    data: *const u8,
    len: usize,
    written: *mut usize,
) -> polyio_status {
    ffi_boundary!(polyio_status::Panic, {
        let core = runtime_mut!(rt, polyio_status::InvalidArgument);
        if written.is_null() || (data.is_null() && len > 0) || len > isize::MAX as usize {
            return polyio_status::InvalidArgument;
        }
        let bytes: &[u8] = if len == 0 {
            &[]
        } else {
            // SAFETY: checked non-NULL; the caller promised `len` readable bytes.
            unsafe { std::slice::from_raw_parts(data, len) }
        };
        match core.try_write(Handle::from_raw(h), &[bytes]) {
            Ok(n) => {
                // SAFETY: checked non-NULL; the caller promised it is writable.
                unsafe { written.write(n) };
                polyio_status::Ok
            }
            Err(s) => s.into(),
        }
    })
}

/// Shuts down the write side once every queued write has gone out; the peer then reads end
/// of stream while this side can still read. Completes (op SHUTDOWN) with 0.
///
/// Errors (no completion posted): INVALID_ARGUMENT, BAD_HANDLE, SHUTDOWN, QUEUE_FULL.
///
/// # Safety
/// `rt` is NULL or a live runtime used by this thread only.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_shutdown(
    rt: *mut polyio_runtime,
    h: polyio_handle,
    user_data: u64,
) -> polyio_status {
    ffi_boundary!(polyio_status::Panic, {
        status_of(
            runtime_mut!(rt, polyio_status::InvalidArgument)
                .shutdown(Handle::from_raw(h), user_data),
        )
    })
}

/// Closes a connection or listener at once. Its pending operations complete with CANCELED
/// (their buffers are not touched after this returns); the handle is stale from now on.
/// Posts no completion of its own.
///
/// Errors: INVALID_ARGUMENT (`rt` NULL), BAD_HANDLE.
///
/// # Safety
/// `rt` is NULL or a live runtime used by this thread only.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_close(rt: *mut polyio_runtime, h: polyio_handle) -> polyio_status {
    ffi_boundary!(polyio_status::Panic, {
        status_of(runtime_mut!(rt, polyio_status::InvalidArgument).close(Handle::from_raw(h)))
    })
}

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

/// Sets (`enable` true) or clears `TCP_NODELAY` on a connection.
///
/// Errors: INVALID_ARGUMENT (`rt` NULL or a listener), BAD_HANDLE, an OS error.
///
/// # Safety
/// `rt` is NULL or a live runtime used by this thread only.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_tcp_nodelay(
    rt: *mut polyio_runtime,
    h: polyio_handle,
    enable: bool,
) -> polyio_status {
    ffi_boundary!(polyio_status::Panic, {
        status_of(
            runtime_mut!(rt, polyio_status::InvalidArgument)
                .set_nodelay(Handle::from_raw(h), enable),
        )
    })
}

/// Turns TCP keepalive on (probes after `delay_secs` idle seconds, >= 1) or off.
///
/// Errors: INVALID_ARGUMENT (`rt` NULL, a listener, `enable` with `delay_secs` 0),
/// BAD_HANDLE, an OS error.
///
/// # Safety
/// `rt` is NULL or a live runtime used by this thread only.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_tcp_keepalive(
    rt: *mut polyio_runtime,
    h: polyio_handle,
    enable: bool,
    delay_secs: u32,
) -> polyio_status {
    ffi_boundary!(polyio_status::Panic, {
        let idle = enable.then(|| Duration::from_secs(u64::from(delay_secs)));
        status_of(
            runtime_mut!(rt, polyio_status::InvalidArgument)
                .set_keepalive(Handle::from_raw(h), idle),
        )
    })
}

fn write_addr(out: *mut polyio_addr, addr: Result<std::net::SocketAddr, Status>) -> polyio_status {
    if out.is_null() {
        return polyio_status::InvalidArgument;
    }
    let addr = match addr {
        Ok(a) => a,
        Err(s) => return s.into(),
    };
    let mut rec = polyio_addr {
        ip: [0; 46],
        port: addr.port(),
        family: if addr.is_ipv4() { 4 } else { 6 },
    };
    for (dst, src) in rec
        .ip
        .iter_mut()
        .zip(addr.ip().to_string().bytes().take(45))
    {
        *dst = src as c_char;
    }
    // SAFETY: checked non-NULL; the caller promised it is writable.
    unsafe { out.write(rec) };
    polyio_status::Ok
}

/// Writes the local address of a connection or listener to `*out` (for a listener bound to
/// port 0, this is how to learn the port).
///
/// Errors: INVALID_ARGUMENT (`rt` or `out` NULL), BAD_HANDLE, an OS error.
///
/// # Safety
/// `rt` is NULL or a live runtime used by this thread only; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_tcp_local_addr(
    rt: *const polyio_runtime,
    h: polyio_handle,
    out: *mut polyio_addr,
) -> polyio_status {
    ffi_boundary!(polyio_status::Panic, {
        let core = runtime_mut!(rt as *mut polyio_runtime, polyio_status::InvalidArgument);
        write_addr(out, core.local_addr(Handle::from_raw(h)))
    })
}

/// Writes the peer address of a connection to `*out`.
///
/// Errors: INVALID_ARGUMENT (`rt` or `out` NULL), BAD_HANDLE, NOT_CONNECTED (a listener).
///
/// # Safety
/// `rt` is NULL or a live runtime used by this thread only; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_tcp_peer_addr(
    rt: *const polyio_runtime,
    h: polyio_handle,
    out: *mut polyio_addr,
) -> polyio_status {
    ffi_boundary!(polyio_status::Panic, {
        let core = runtime_mut!(rt as *mut polyio_runtime, polyio_status::InvalidArgument);
        write_addr(out, core.peer_addr(Handle::from_raw(h)))
    })
}

/// A static, NUL-terminated English description of `status` ("connection refused").
/// Unknown values give "unknown status". Never NULL; never free it.
#[unsafe(no_mangle)]
pub extern "C" fn polyio_strerror(status: i32) -> *const c_char {
    ffi_boundary!(c"internal panic".as_ptr(), {
        match Status::from_code(i64::from(status)) {
            Some(s) => message_cstr(s).as_ptr(),
            None => c"unknown status".as_ptr(),
        }
    })
}

/// A static, NUL-terminated symbolic name of `status` as Node spells it ("ECONNREFUSED";
/// polyio's own codes read "POLYIO_SHUTDOWN" etc.). Unknown values give "UNKNOWN". Never
/// NULL; never free it.
#[unsafe(no_mangle)]
pub extern "C" fn polyio_status_name(status: i32) -> *const c_char {
    ffi_boundary!(c"UNKNOWN".as_ptr(), {
        match Status::from_code(i64::from(status)) {
            Some(s) => name_cstr(s).as_ptr(),
            None => c"UNKNOWN".as_ptr(),
        }
    })
}

/// The library's version as `(major << 16) | (minor << 8) | patch`; compare with the
/// `POLYIO_VERSION_*` macros to detect a header/library mismatch.
#[unsafe(no_mangle)]
pub extern "C" fn polyio_version() -> u32 {
    (POLYIO_VERSION_MAJOR << 16) | (POLYIO_VERSION_MINOR << 8) | POLYIO_VERSION_PATCH
}

/// The library's version as a static string ("0.1.0"). Never free it.
#[unsafe(no_mangle)]
pub extern "C" fn polyio_version_string() -> *const c_char {
    VERSION_CSTR.as_ptr()
}

const VERSION_CSTR: &std::ffi::CStr = match std::ffi::CStr::from_bytes_with_nul(
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes(),
) {
    Ok(s) => s,
    Err(_) => c"unknown",
};

macro_rules! cstr_table {
    ($fn_name:ident, $method:ident) => {
        fn $fn_name(s: Status) -> &'static CStr {
            use std::sync::OnceLock;
            static TABLE: OnceLock<Vec<(Status, std::ffi::CString)>> = OnceLock::new();
            let table = TABLE.get_or_init(|| {
                polyio_core::ALL_STATUSES
                    .iter()
                    .map(|s| (*s, std::ffi::CString::new(s.$method()).unwrap_or_default()))
                    .collect()
            });
            table
                .iter()
                .find(|(k, _)| *k == s)
                .map_or(c"unknown status", |(_, v)| v.as_c_str())
        }
    };
}
cstr_table!(message_cstr, message);
cstr_table!(name_cstr, name);

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
        let s = unsafe { CStr::from_ptr(polyio_version_string()) };
        assert_eq!(s.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn every_core_status_has_the_same_code_in_c() {
        for s in polyio_core::ALL_STATUSES {
            assert_eq!(polyio_status::from(*s) as i32, s.code());
        }
    }
}
