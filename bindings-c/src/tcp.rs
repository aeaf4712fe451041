//! TCP: connect, listen and accept, socket options and addresses. The connections made
//! here are read and written with the stream operations (`stream.rs`).

use std::ffi::{CStr, c_char};
use std::time::Duration;

use polyio_core::{Handle, ListenOptions};

use crate::completion::{polyio_addr, write_addr};
use crate::runtime::{polyio_handle, polyio_runtime};
use crate::status::{polyio_status, status_of};

/// `polyio_tcp_listen` flag: set `SO_REUSEPORT`, so that one runtime per thread can share a
/// port (thread-per-core).
pub const POLYIO_LISTEN_REUSEPORT: u32 = 1;

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
/// `"[::1]"`) or a name, looked up as `polyio_getaddrinfo` does; it is copied, so the
/// caller may free it on return. A name's addresses are tried by Happy Eyeballs (RFC 8305,
/// as Node's `autoSelectFamily`): families interleaved, the next address started when the
/// last has run 250 ms alone or has failed, the first to connect wins and the other
/// attempts are closed. Completes (op CONNECT) with result 0 and the new connection in
/// `handle`, or an error: NAME_NOT_RESOLVED or NAME_TRY_AGAIN from the lookup; when every
/// address failed, the most telling error (CONNECTION_REFUSED over TIMED_OUT over
/// HOST_UNREACHABLE over NETWORK_UNREACHABLE over the rest); TIMED_OUT with
/// `polyio_deadline`, CANCELED.
///
/// Errors (no completion is ever posted for a submission that returns an error):
/// INVALID_ARGUMENT (`rt` or `host` NULL, `port` 0, or a host the host rule rejects: see
/// `POLYIO_MAX_HOST_LEN`), SHUTDOWN, QUEUE_FULL.
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
/// `host` is an IP literal (`"0.0.0.0"`, `"::"`, `"[::1]"`) or `"localhost"`, which means
/// 127.0.0.1: listening looks up no names, so it never blocks. To listen on a name, look
/// it up with `polyio_getaddrinfo` (flag `AI_PASSIVE` for a wildcard) and listen on each
/// address.
///
/// Errors: INVALID_ARGUMENT (`rt`, `host` or `out` NULL, negative backlog, unknown flags,
/// a host that is neither an IP literal nor "localhost"), ADDRESS_IN_USE,
/// PERMISSION_DENIED, SHUTDOWN, ...
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

/// Turns TCP keepalive on (probes after `delay_secs` idle seconds, 1 to 32767, Linux's
/// limit for `TCP_KEEPIDLE`) or off (`delay_secs` ignored).
///
/// Errors: INVALID_ARGUMENT (`rt` NULL, a listener, `enable` with `delay_secs` 0 or above
/// 32767; nothing changes),
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
