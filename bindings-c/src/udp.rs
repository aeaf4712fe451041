//! UDP: bind (with its socket options), connect to a default peer, send and receive
//! datagrams (receive single or multi-shot; each completion says where its datagram came
//! from), multicast membership and the IP options. Close with `polyio_close`.

use std::ffi::{CStr, c_char};
use std::net::{IpAddr, SocketAddr};

use polyio_core::{Handle, ReadBuf, UdpOptions, WriteBuf};

use crate::completion::{polyio_addr, write_addr};
use crate::runtime::{polyio_handle, polyio_runtime};
use crate::status::{polyio_status, status_of};

/// `polyio_udp_bind` flag: set `SO_REUSEADDR` (several sockets may bind one multicast
/// address and port).
pub const POLYIO_UDP_REUSEADDR: u32 = 1;
/// `polyio_udp_bind` flag: set `SO_REUSEPORT` (one runtime per thread sharing a port).
pub const POLYIO_UDP_REUSEPORT: u32 = 2;
/// `polyio_udp_bind` flag: set `SO_BROADCAST` (sends to a broadcast address allowed).
pub const POLYIO_UDP_BROADCAST: u32 = 4;
/// `polyio_udp_bind` flag: set `IPV6_V6ONLY` on an IPv6 socket (ignored for IPv4).
pub const POLYIO_UDP_IPV6ONLY: u32 = 8;

const ALL_FLAGS: u32 =
    POLYIO_UDP_REUSEADDR | POLYIO_UDP_REUSEPORT | POLYIO_UDP_BROADCAST | POLYIO_UDP_IPV6ONLY;

/// The IP literal at `ip` (with or without IPv6 brackets); `None` for NULL, invalid UTF-8 or
/// anything but an IP address.
///
/// # Safety
/// `ip` is NULL or a NUL-terminated string.
unsafe fn ip_arg(ip: *const c_char) -> Option<IpAddr> {
    if ip.is_null() {
        return None;
    }
    // SAFETY: non-NULL and NUL-terminated (caller's promise).
    polyio_core::ip_literal(unsafe { CStr::from_ptr(ip) }.to_str().ok()?)
}

/// Opens a UDP socket bound to `ip:port`: `ip` is an IPv4 or IPv6 literal (`"0.0.0.0"`,
/// `"::1"`; no names), `port` 0 picks an ephemeral port (read it back with
/// `polyio_udp_local_addr`). `flags` is a set of `POLYIO_UDP_*`. Synchronous, no
/// completion: on success writes the socket's handle to `*out`. Close it with
/// `polyio_close` (pending receives and sends complete with CANCELED).
///
/// Errors: INVALID_ARGUMENT (`rt`, `ip` or `out` NULL, `ip` not an IP literal, unknown
/// flags), ADDRESS_IN_USE, ADDRESS_NOT_AVAILABLE, PERMISSION_DENIED, SHUTDOWN, ...
///
/// # Safety
/// `rt` is NULL or a live runtime used by this thread only; `ip` is NULL or a
/// NUL-terminated string; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_udp_bind(
    rt: *mut polyio_runtime,
    ip: *const c_char,
    port: u16,
    flags: u32,
    out: *mut polyio_handle,
) -> polyio_status {
    ffi_boundary!(polyio_status::Panic, {
        let core = runtime_mut!(rt, polyio_status::InvalidArgument);
        // SAFETY: forwarded caller promise.
        let Some(ip) = (unsafe { ip_arg(ip) }) else {
            return polyio_status::InvalidArgument;
        };
        if out.is_null() || flags & !ALL_FLAGS != 0 {
            return polyio_status::InvalidArgument;
        }
        let options = UdpOptions {
            reuse_addr: flags & POLYIO_UDP_REUSEADDR != 0,
            reuse_port: flags & POLYIO_UDP_REUSEPORT != 0,
            broadcast: flags & POLYIO_UDP_BROADCAST != 0,
            ipv6_only: flags & POLYIO_UDP_IPV6ONLY != 0,
        };
        match core.udp_bind(SocketAddr::new(ip, port), options) {
            Ok(h) => {
                // SAFETY: checked non-NULL; the caller promised it is writable.
                unsafe { out.write(h.into_raw()) };
                polyio_status::Ok
            }
            Err(s) => s.into(),
        }
    })
}

/// Connects UDP socket `h` to a default peer `ip:port` (an IP literal), or with `ip` NULL
/// dissolves that association. While connected, `polyio_udp_send` with a NULL address sends
/// to the peer, only the peer's datagrams are received, and an ICMP port unreachable for a
/// datagram sent to it completes a pending receive with CONNECTION_REFUSED. Synchronous.
/// The unspecified address (`"0.0.0.0"`, `"::"`) means this host, as Linux takes it: the
/// peer reads back as `127.0.0.1` or `::1` (so does Node's `socket.remoteAddress()`).
///
/// Errors: INVALID_ARGUMENT (`rt` NULL, `ip` not an IP literal, `port` 0 with an `ip`, `h`
/// not a UDP socket), BAD_HANDLE, an OS error (NETWORK_UNREACHABLE, ...).
///
/// # Safety
/// `rt` is NULL or a live runtime used by this thread only; `ip` is NULL or a
/// NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_udp_connect(
    rt: *mut polyio_runtime,
    h: polyio_handle,
    ip: *const c_char,
    port: u16,
) -> polyio_status {
    ffi_boundary!(polyio_status::Panic, {
        let core = runtime_mut!(rt, polyio_status::InvalidArgument);
        let peer = if ip.is_null() {
            None
        } else {
            // SAFETY: forwarded caller promise.
            match unsafe { ip_arg(ip) } {
                Some(ip) => Some(SocketAddr::new(ip, port)),
                None => return polyio_status::InvalidArgument,
            }
        };
        status_of(core.udp_connect(Handle::from_raw(h), peer))
    })
}

/// Sends the `len` bytes at `data` as one datagram to `*to` (a `polyio_addr`, for example a
/// received completion's `addr`), or with `to` NULL to the connected peer. Completes (op
/// SEND) with `len` once the kernel took the datagram. The caller keeps `data` valid and
/// unchanged until the completion is reaped; `*to` is read during the call only. Sends queue
/// per socket and go out in order. `len` 0 sends an empty datagram. The completion's errors:
/// MESSAGE_TOO_LONG (past the socket's limit), PERMISSION_DENIED (a broadcast address
/// without `POLYIO_UDP_BROADCAST`), CONNECTION_REFUSED (a connected peer's earlier ICMP
/// port unreachable), NOT_CONNECTED or an OS error (no address on an unconnected socket),
/// NO_BUFFER_SPACE (`ENOBUFS`) or NO_MEMORY (`ENOMEM`) (the kernel had no room for the
/// datagram: it was not sent; the socket stays usable and later sends go on), CANCELED,
/// TIMED_OUT.
///
/// Errors (no completion posted): INVALID_ARGUMENT (`rt` NULL, `data` NULL with `len` > 0,
/// `len` above PTRDIFF_MAX, `*to` not an IP address, `h` not a UDP socket), BAD_HANDLE,
/// SHUTDOWN, QUEUE_FULL.
///
/// # Safety
/// `rt` is NULL or a live runtime used by this thread only; `data` is NULL or `len`
/// readable bytes that stay valid and unchanged until the send completes; `to` is NULL or
/// readable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_udp_send(
    rt: *mut polyio_runtime,
    h: polyio_handle,
    data: *const u8,
    len: usize,
    to: *const polyio_addr,
    user_data: u64,
) -> polyio_status {
    ffi_boundary!(polyio_status::Panic, {
        let core = runtime_mut!(rt, polyio_status::InvalidArgument);
        if data.is_null() && len > 0 {
            return polyio_status::InvalidArgument;
        }
        let to = if to.is_null() {
            None
        } else {
            // SAFETY: non-NULL and readable (caller's promise).
            match unsafe { &*to }.socket_addr() {
                Some(a) => Some(a),
                None => return polyio_status::InvalidArgument,
            }
        };
        // SAFETY: the caller promised `len` readable bytes at `data` until completion (a
        // NULL `data` only with `len` 0, which is never read).
        let buf = unsafe { WriteBuf::raw(data, len) };
        status_of(core.udp_send(Handle::from_raw(h), buf, to, user_data))
    })
}

/// Sends the `len` bytes at `data` as one datagram now, without an operation and without a
/// completion, if the kernel takes it at once: stores true in `*sent`. Stores false when the
/// socket is not writable now or sends are already queued on `h` (this one would overtake
/// them): queue it with `polyio_udp_send`. `to` as for `polyio_udp_send`; `data` is only
/// read during the call.
///
/// Errors (`*sent` untouched): INVALID_ARGUMENT (`rt` or `sent` NULL, `data` NULL with
/// `len` > 0, `len` above PTRDIFF_MAX, `*to` not an IP address, `h` not a UDP socket),
/// BAD_HANDLE, SHUTDOWN, and the send's own failure (MESSAGE_TOO_LONG,
/// CONNECTION_REFUSED after a connected peer's ICMP port unreachable, ...).
///
/// # Safety
/// `rt` is NULL or a live runtime used by this thread only; `data` is NULL or `len`
/// readable bytes; `to` is NULL or readable; `sent` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_udp_try_send(
    rt: *mut polyio_runtime,
    h: polyio_handle,
    data: *const u8,
    len: usize,
    to: *const polyio_addr,
    sent: *mut bool,
) -> polyio_status {
    ffi_boundary!(polyio_status::Panic, {
        let core = runtime_mut!(rt, polyio_status::InvalidArgument);
        if sent.is_null() || (data.is_null() && len > 0) || len > isize::MAX as usize {
            return polyio_status::InvalidArgument;
        }
        let to = if to.is_null() {
            None
        } else {
            // SAFETY: non-NULL and readable (caller's promise).
            match unsafe { &*to }.socket_addr() {
                Some(a) => Some(a),
                None => return polyio_status::InvalidArgument,
            }
        };
        let bytes: &[u8] = if len == 0 {
            &[]
        } else {
            // SAFETY: checked non-NULL; the caller promised `len` readable bytes.
            unsafe { std::slice::from_raw_parts(data, len) }
        };
        match core.udp_try_send(Handle::from_raw(h), bytes, to) {
            Ok(done) => {
                // SAFETY: checked non-NULL; the caller promised it is writable.
                unsafe { sent.write(done) };
                polyio_status::Ok
            }
            Err(s) => s.into(),
        }
    })
}

/// Receives one datagram into the `cap` bytes at `buf`. Completes (op RECV) with its
/// length and its source in the completion's `addr`; a datagram longer than `cap` keeps its
/// first `cap` bytes and is flagged `POLYIO_COMPLETION_TRUNC`. The caller keeps `buf` valid
/// and untouched until the completion is reaped; polyio never frees it. Receives queue per
/// socket and complete in order; a cancelled receive takes no datagram. On a connected
/// socket an ICMP port unreachable completes it with CONNECTION_REFUSED.
///
/// Errors (no completion posted): INVALID_ARGUMENT (`rt` or `buf` NULL, `cap` 0 or above
/// PTRDIFF_MAX, `h` not a UDP socket), BAD_HANDLE, SHUTDOWN, QUEUE_FULL.
///
/// # Safety
/// `rt` is NULL or a live runtime used by this thread only; `buf` is NULL or `cap` writable
/// bytes that stay valid until the receive completes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_udp_recv(
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
        status_of(core.udp_recv(Handle::from_raw(h), buf, user_data))
    })
}

/// Receives continuously: one submission, then one completion (op RECV, flagged
/// `POLYIO_COMPLETION_MORE`) per datagram, with its source in `addr` and its first `cap`
/// bytes in `payload` / `payload_len` (`result` is the same count; `POLYIO_COMPLETION_TRUNC`
/// when it was longer; an empty datagram has a NULL payload). Each payload stays valid until
/// the caller passes its `payload_id` to `polyio_buffer_release`. An ICMP error on a
/// connected socket completes with CONNECTION_REFUSED (or another error), also flagged MORE,
/// and the receive stays armed. It ends with exactly one completion without MORE: CANCELED
/// (`polyio_cancel`, `polyio_close`, shutdown) or TIMED_OUT (`polyio_deadline`).
///
/// Errors (no completion posted): INVALID_ARGUMENT (`rt` NULL, `cap` 0 or above
/// PTRDIFF_MAX, `h` not a UDP socket), BAD_HANDLE, SHUTDOWN, QUEUE_FULL.
///
/// # Safety
/// `rt` is NULL or a live runtime used by this thread only.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_udp_recv_multishot(
    rt: *mut polyio_runtime,
    h: polyio_handle,
    cap: usize,
    user_data: u64,
) -> polyio_status {
    ffi_boundary!(polyio_status::Panic, {
        status_of(
            runtime_mut!(rt, polyio_status::InvalidArgument).udp_recv_multishot(
                Handle::from_raw(h),
                cap,
                user_data,
            ),
        )
    })
}

/// Allows (`enable` true) or forbids sends to a broadcast address (`SO_BROADCAST`).
///
/// Errors: INVALID_ARGUMENT (`rt` NULL, `h` not a UDP socket), BAD_HANDLE, an OS error.
///
/// # Safety
/// `rt` is NULL or a live runtime used by this thread only.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_udp_set_broadcast(
    rt: *mut polyio_runtime,
    h: polyio_handle,
    enable: bool,
) -> polyio_status {
    ffi_boundary!(polyio_status::Panic, {
        status_of(
            runtime_mut!(rt, polyio_status::InvalidArgument)
                .udp_set_broadcast(Handle::from_raw(h), enable),
        )
    })
}

/// Sets the unicast hop limit, 1 to 255 (`IP_TTL`, or `IPV6_UNICAST_HOPS` on IPv6).
///
/// Errors: INVALID_ARGUMENT (`rt` NULL, `ttl` out of range, `h` not a UDP socket; nothing
/// changes), BAD_HANDLE, an OS error.
///
/// # Safety
/// `rt` is NULL or a live runtime used by this thread only.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_udp_set_ttl(
    rt: *mut polyio_runtime,
    h: polyio_handle,
    ttl: u32,
) -> polyio_status {
    ffi_boundary!(polyio_status::Panic, {
        status_of(
            runtime_mut!(rt, polyio_status::InvalidArgument).udp_set_ttl(Handle::from_raw(h), ttl),
        )
    })
}

/// Sets the multicast hop limit, 0 to 255 (`IP_MULTICAST_TTL` / `IPV6_MULTICAST_HOPS`).
///
/// Errors: INVALID_ARGUMENT (`rt` NULL, `ttl` out of range, `h` not a UDP socket),
/// BAD_HANDLE, an OS error.
///
/// # Safety
/// `rt` is NULL or a live runtime used by this thread only.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_udp_set_multicast_ttl(
    rt: *mut polyio_runtime,
    h: polyio_handle,
    ttl: u32,
) -> polyio_status {
    ffi_boundary!(polyio_status::Panic, {
        status_of(
            runtime_mut!(rt, polyio_status::InvalidArgument)
                .udp_set_multicast_ttl(Handle::from_raw(h), ttl),
        )
    })
}

/// Whether this host's own multicast sends loop back to it (`IP_MULTICAST_LOOP` /
/// `IPV6_MULTICAST_LOOP`).
///
/// Errors: INVALID_ARGUMENT (`rt` NULL, `h` not a UDP socket), BAD_HANDLE, an OS error.
///
/// # Safety
/// `rt` is NULL or a live runtime used by this thread only.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_udp_set_multicast_loop(
    rt: *mut polyio_runtime,
    h: polyio_handle,
    enable: bool,
) -> polyio_status {
    ffi_boundary!(polyio_status::Panic, {
        status_of(
            runtime_mut!(rt, polyio_status::InvalidArgument)
                .udp_set_multicast_loop(Handle::from_raw(h), enable),
        )
    })
}

/// Joins (`join` true) or leaves multicast group `group` (an IP literal) on the IPv4
/// interface whose address is `iface` (NULL: the system's choice; ignored for IPv6 groups,
/// which use the default interface).
///
/// Errors: INVALID_ARGUMENT (`rt` or `group` NULL, `group` not a multicast address, `iface`
/// not an IPv4 literal, `h` not a UDP socket), BAD_HANDLE, an OS error (ADDRESS_NOT_AVAILABLE
/// when leaving a group not joined, ...).
///
/// # Safety
/// `rt` is NULL or a live runtime used by this thread only; `group` and `iface` are NULL or
/// NUL-terminated strings.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_udp_membership(
    rt: *mut polyio_runtime,
    h: polyio_handle,
    group: *const c_char,
    iface: *const c_char,
    join: bool,
) -> polyio_status {
    ffi_boundary!(polyio_status::Panic, {
        let core = runtime_mut!(rt, polyio_status::InvalidArgument);
        // SAFETY: forwarded caller promise.
        let Some(group) = (unsafe { ip_arg(group) }) else {
            return polyio_status::InvalidArgument;
        };
        let iface = if iface.is_null() {
            None
        } else {
            // SAFETY: forwarded caller promise.
            match unsafe { ip_arg(iface) } {
                Some(i) => Some(i),
                None => return polyio_status::InvalidArgument,
            }
        };
        let h = Handle::from_raw(h);
        status_of(if join {
            core.udp_join_multicast(h, group, iface)
        } else {
            core.udp_leave_multicast(h, group, iface)
        })
    })
}

/// Writes the local address of UDP socket `h` to `*out` (for a socket bound to port 0,
/// this is how to learn the port).
///
/// Errors: INVALID_ARGUMENT (`rt` or `out` NULL), BAD_HANDLE, an OS error.
///
/// # Safety
/// `rt` is NULL or a live runtime used by this thread only; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_udp_local_addr(
    rt: *const polyio_runtime,
    h: polyio_handle,
    out: *mut polyio_addr,
) -> polyio_status {
    ffi_boundary!(polyio_status::Panic, {
        let core = runtime_mut!(rt as *mut polyio_runtime, polyio_status::InvalidArgument);
        write_addr(out, core.local_addr(Handle::from_raw(h)))
    })
}

/// Writes the peer address of a connected UDP socket to `*out`.
///
/// Errors: INVALID_ARGUMENT (`rt` or `out` NULL), BAD_HANDLE, NOT_CONNECTED.
///
/// # Safety
/// `rt` is NULL or a live runtime used by this thread only; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_udp_peer_addr(
    rt: *const polyio_runtime,
    h: polyio_handle,
    out: *mut polyio_addr,
) -> polyio_status {
    ffi_boundary!(polyio_status::Panic, {
        let core = runtime_mut!(rt as *mut polyio_runtime, polyio_status::InvalidArgument);
        write_addr(out, core.peer_addr(Handle::from_raw(h)))
    })
}
