//! Unix domain stream sockets: connect and listen by path (a filesystem path or a Linux
//! abstract name), the peer's credentials and the bound and peer paths. The connections
//! made here are read and written with the same stream operations as TCP ones.

use std::ffi::c_char;

use polyio_core::{Handle, ListenOptions, Status};

use crate::completion::polyio_handle;
use crate::runtime::polyio_runtime;
use crate::status::{polyio_status, status_of};

/// Bytes in `sockaddr_un.sun_path` on Linux. A filesystem path may take up to
/// `POLYIO_UNIX_PATH_MAX - 1` bytes (the kernel needs room for its NUL), an abstract name
/// (its leading NUL included) up to `POLYIO_UNIX_PATH_MAX`. A buffer of
/// `POLYIO_UNIX_PATH_MAX + 1` bytes holds any path `polyio_unix_local_path` reports.
pub const POLYIO_UNIX_PATH_MAX: u32 = 108;

/// The credentials of the process at the other end of a Unix connection, as the kernel
/// recorded them when the connection was made (`SO_PEERCRED`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct polyio_peercred {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
}

/// The `path_len` bytes at `path`, or `None` for a NULL pointer.
///
/// # Safety
/// `path` is NULL or points at `path_len` readable bytes.
unsafe fn path_bytes<'a>(path: *const c_char, path_len: usize) -> Option<&'a [u8]> {
    if path.is_null() || path_len > isize::MAX as usize {
        return None;
    }
    // SAFETY: non-NULL, `path_len` readable bytes (caller's promise).
    Some(unsafe { std::slice::from_raw_parts(path.cast::<u8>(), path_len) })
}

/// Starts a connection to the Unix stream socket at `path` (`path_len` bytes, no NUL
/// terminator needed): a filesystem path, or a Linux abstract name when its first byte is
/// NUL (then every byte of `path_len` counts, NULs included). The bytes are copied, so the
/// caller may free them on return. Completes (op CONNECT) with result 0 and the new
/// connection in `handle`, or an error: NOT_FOUND (no socket at that path),
/// CONNECTION_REFUSED (a socket file nobody listens on, or not a socket), PERMISSION_DENIED,
/// TRY_AGAIN (EAGAIN: the listener's backlog is full; a Unix connect does not wait for room),
/// CANCELED. Read, write, shut down and close the
/// connection as any other; TCP-only calls (`polyio_tcp_nodelay`, `polyio_tcp_keepalive`,
/// `polyio_tcp_local_addr`, `polyio_tcp_peer_addr`) return INVALID_ARGUMENT on it.
///
/// Errors (no completion is ever posted for a submission that returns an error):
/// INVALID_ARGUMENT (`rt` or `path` NULL, `path_len` 0, a filesystem path of
/// `POLYIO_UNIX_PATH_MAX` bytes or more or with a NUL inside, an abstract name longer than
/// `POLYIO_UNIX_PATH_MAX`), SHUTDOWN, QUEUE_FULL.
///
/// # Safety
/// `rt` is NULL or a live runtime used by this thread only; `path` is NULL or points at
/// `path_len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_unix_connect(
    rt: *mut polyio_runtime,
    path: *const c_char,
    path_len: usize,
    user_data: u64,
) -> polyio_status {
    ffi_boundary!(polyio_status::Panic, {
        let core = runtime_mut!(rt, polyio_status::InvalidArgument);
        // SAFETY: forwarded caller promise.
        let Some(path) = (unsafe { path_bytes(path, path_len) }) else {
            return polyio_status::InvalidArgument;
        };
        status_of(core.unix_connect(path, user_data))
    })
}

/// Binds the Unix stream socket `path` (as for `polyio_unix_connect`) and listens.
/// `backlog` 0 means the default (511); `flags` must be 0. Synchronous, no completion: on
/// success writes the listener's handle to `*out`. Accept with `polyio_accept`; close it with
/// `polyio_close`. A filesystem path must not exist yet (ADDRESS_IN_USE otherwise: remove a
/// stale socket file first, as asyncio does). When the listener closes (`polyio_close`,
/// `polyio_runtime_shutdown`, `polyio_runtime_free`) its socket file is removed, if the path
/// still names the socket bound here (same device and inode); an abstract name leaves no
/// file.
///
/// Errors: INVALID_ARGUMENT (`rt`, `path` or `out` NULL, a bad path as for
/// `polyio_unix_connect`, negative backlog, any flag), ADDRESS_IN_USE, PERMISSION_DENIED,
/// NOT_FOUND (a directory on the path is missing), SHUTDOWN, ...
///
/// # Safety
/// `rt` is NULL or a live runtime used by this thread only; `path` is NULL or points at
/// `path_len` readable bytes; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_unix_listen(
    rt: *mut polyio_runtime,
    path: *const c_char,
    path_len: usize,
    backlog: i32,
    flags: u32,
    out: *mut polyio_handle,
) -> polyio_status {
    ffi_boundary!(polyio_status::Panic, {
        let core = runtime_mut!(rt, polyio_status::InvalidArgument);
        // SAFETY: forwarded caller promise.
        let Some(path) = (unsafe { path_bytes(path, path_len) }) else {
            return polyio_status::InvalidArgument;
        };
        if out.is_null() || backlog < 0 || flags != 0 {
            return polyio_status::InvalidArgument;
        }
        let options = ListenOptions {
            backlog: backlog as u32,
            ..ListenOptions::default()
        };
        match core.unix_listen(path, options) {
            Ok(h) => {
                // SAFETY: checked non-NULL; the caller promised it is writable.
                unsafe { out.write(h.into_raw()) };
                polyio_status::Ok
            }
            Err(s) => s.into(),
        }
    })
}

/// Writes the credentials of a Unix connection's peer process to `*out`.
///
/// Errors: INVALID_ARGUMENT (`rt` or `out` NULL, a TCP handle), NOT_CONNECTED (a listener),
/// BAD_HANDLE.
///
/// # Safety
/// `rt` is NULL or a live runtime used by this thread only; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_unix_peercred(
    rt: *const polyio_runtime,
    h: polyio_handle,
    out: *mut polyio_peercred,
) -> polyio_status {
    ffi_boundary!(polyio_status::Panic, {
        let core = runtime_mut!(rt as *mut polyio_runtime, polyio_status::InvalidArgument);
        if out.is_null() {
            return polyio_status::InvalidArgument;
        }
        match core.unix_peer_cred(Handle::from_raw(h)) {
            Ok(c) => {
                // SAFETY: checked non-NULL; the caller promised it is writable.
                unsafe {
                    out.write(polyio_peercred {
                        pid: c.pid,
                        uid: c.uid,
                        gid: c.gid,
                    })
                };
                polyio_status::Ok
            }
            Err(s) => s.into(),
        }
    })
}

/// Copies `path` into `buf` (NUL-terminated when room is left) and its length to `*len`.
fn write_path(
    path: Result<Vec<u8>, Status>,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> polyio_status {
    let path = match path {
        Ok(p) => p,
        Err(s) => return s.into(),
    };
    if path.len() > cap {
        return polyio_status::InvalidArgument;
    }
    // SAFETY: `buf` is non-NULL with `cap` writable bytes (checked by the caller and
    // promised by the C caller); `path.len() <= cap`.
    unsafe {
        std::ptr::copy_nonoverlapping(path.as_ptr(), buf.cast::<u8>(), path.len());
        if path.len() < cap {
            buf.add(path.len()).write(0);
        }
        len.write(path.len());
    }
    polyio_status::Ok
}

/// Writes the path a Unix connection or listener is bound to into `buf` (`cap` bytes) and
/// its length to `*len`: a filesystem path, an abstract name with its leading NUL, or
/// length 0 for an unbound socket (a client's end of a connection). A NUL follows the path
/// when `cap` leaves room for it. The caller owns `buf`; `POLYIO_UNIX_PATH_MAX + 1` bytes
/// always suffice. Nothing is written on error.
///
/// Errors: INVALID_ARGUMENT (`rt`, `buf` or `len` NULL, `cap` too small, a TCP handle),
/// BAD_HANDLE.
///
/// # Safety
/// `rt` is NULL or a live runtime used by this thread only; `buf` is NULL or has `cap`
/// writable bytes; `len` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_unix_local_path(
    rt: *const polyio_runtime,
    h: polyio_handle,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> polyio_status {
    ffi_boundary!(polyio_status::Panic, {
        let core = runtime_mut!(rt as *mut polyio_runtime, polyio_status::InvalidArgument);
        if buf.is_null() || len.is_null() {
            return polyio_status::InvalidArgument;
        }
        write_path(core.unix_local_path(Handle::from_raw(h)), buf, cap, len)
    })
}

/// Writes the path of a Unix connection's peer into `buf`, as `polyio_unix_local_path` does:
/// a client sees the listener's path, an accepted connection usually length 0.
///
/// Errors: INVALID_ARGUMENT (`rt`, `buf` or `len` NULL, `cap` too small, a TCP handle),
/// NOT_CONNECTED (a listener), BAD_HANDLE.
///
/// # Safety
/// As for `polyio_unix_local_path`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_unix_peer_path(
    rt: *const polyio_runtime,
    h: polyio_handle,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> polyio_status {
    ffi_boundary!(polyio_status::Panic, {
        let core = runtime_mut!(rt as *mut polyio_runtime, polyio_status::InvalidArgument);
        if buf.is_null() || len.is_null() {
            return polyio_status::InvalidArgument;
        }
        write_path(core.unix_peer_path(Handle::from_raw(h)), buf, cap, len)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_path_limit_is_cores() {
        assert_eq!(
            super::POLYIO_UNIX_PATH_MAX as usize,
            polyio_core::UNIX_PATH_MAX
        );
    }
}
