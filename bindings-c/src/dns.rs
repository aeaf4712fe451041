//! Name lookups for C: `polyio_getaddrinfo` submits a lookup; its completion hands the
//! caller a `polyio_addrinfo` list (the record is in `completion.rs`), freed with
//! `polyio_addrinfo_free` (as libuv's `uv_getaddrinfo` / `uv_freeaddrinfo`). Also the host
//! rule every host argument follows.

use std::ffi::{CStr, CString, c_char, c_int};

use polyio_core::LookupHints;

use crate::completion::polyio_addrinfo;
use crate::runtime::polyio_runtime;
use crate::status::{polyio_status, status_of};

/// The longest host name, in bytes: 253, or 254 with a trailing dot. Every function taking
/// a host applies one rule: an IPv4 or IPv6 literal (brackets allowed), or a name whose
/// dot-separated labels are 1 to 63 printable ASCII characters (no space; encode
/// internationalized names with IDNA first), at most this long. Anything else (empty, not
/// UTF-8, non-ASCII, too long, an empty label) is INVALID_ARGUMENT at submission. A
/// well-formed name that does not resolve fails in its completion with NAME_NOT_RESOLVED.
pub const POLYIO_MAX_HOST_LEN: usize = 253;

/// What a lookup asks for, as getaddrinfo(3)'s hints: this system's `AF_*`, `SOCK_*`,
/// `IPPROTO_*` and `AI_*` values; 0 means any. `polyio_getaddrinfo` takes NULL for all 0.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct polyio_lookup_hints {
    pub family: c_int,
    pub socktype: c_int,
    pub protocol: c_int,
    pub flags: c_int,
}

/// Looks up `host` and `service` as getaddrinfo(3) does, without blocking: the call runs on
/// polyio's pool of detached threads. Completes (op LOOKUP) with `result` = the number of
/// addresses and `addrinfo` = the list, in the resolver's order (the caller frees it with
/// `polyio_addrinfo_free`); or with an error: NAME_NOT_RESOLVED (no such name, or none of
/// the family asked for), NAME_TRY_AGAIN (a temporary failure: no DNS server answered),
/// INVALID_ARGUMENT (a service, family, socket type or flag the resolver rejects),
/// TIMED_OUT with `polyio_deadline`, CANCELED (`polyio_cancel`, shutdown). A cancelled or
/// shut-down lookup is abandoned, never waited for: `polyio_runtime_free` and
/// `polyio_runtime_shutdown` return at once however slow the resolver is.
///
/// `host` (see `POLYIO_MAX_HOST_LEN`) and `service` (a port number such as "443" or a
/// service name such as "https", at most 64 bytes) are copied; either may be NULL, not
/// both. `hints` is NULL (all 0) or read during the call only.
///
/// Errors (no completion is ever posted for a submission that returns an error):
/// INVALID_ARGUMENT (`rt` NULL, `host` and `service` both NULL, a host the host rule
/// rejects, an empty or too long service), SHUTDOWN, QUEUE_FULL.
///
/// # Safety
/// `rt` is NULL or a live runtime used by this thread only; `host` and `service` are NULL
/// or NUL-terminated strings; `hints` is NULL or points to a `polyio_lookup_hints`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_getaddrinfo(
    rt: *mut polyio_runtime,
    host: *const c_char,
    service: *const c_char,
    hints: *const polyio_lookup_hints,
    user_data: u64,
) -> polyio_status {
    ffi_boundary!(polyio_status::Panic, {
        let core = runtime_mut!(rt, polyio_status::InvalidArgument);
        // SAFETY: forwarded caller promise: NULL or NUL-terminated.
        let (Ok(host), Ok(service)) = (unsafe { opt_str(host) }, unsafe { opt_str(service) })
        else {
            return polyio_status::InvalidArgument;
        };
        let hints = if hints.is_null() {
            polyio_lookup_hints::default()
        } else {
            // SAFETY: non-NULL and points to a hints struct (caller's promise).
            unsafe { hints.read() }
        };
        let hints = LookupHints {
            family: hints.family,
            socktype: hints.socktype,
            protocol: hints.protocol,
            flags: hints.flags,
        };
        status_of(core.getaddrinfo(host, service, hints, user_data))
    })
}

/// Frees a list from a LOOKUP completion, every node and name in it. NULL is accepted and
/// ignored. Pass the list's first node, once: freeing a list twice, or a node other than the
/// first, is undefined behaviour (as for freeaddrinfo(3)). Safe from any thread, and after
/// the runtime that produced the list is freed.
///
/// # Safety
/// `list` is NULL or the `addrinfo` of a reaped completion, not freed yet.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_addrinfo_free(list: *mut polyio_addrinfo) {
    ffi_boundary!((), {
        let mut at = list;
        while !at.is_null() {
            // SAFETY: every node was made by `Box::into_raw` in `addrinfo_list` and is freed
            // once (the caller's promise).
            let node = unsafe { Box::from_raw(at) };
            if !node.canonname.is_null() {
                // SAFETY: made by `CString::into_raw` in `addrinfo_list`, freed once here.
                drop(unsafe { CString::from_raw(node.canonname) });
            }
            at = node.next;
        }
    })
}

/// A string argument: `Ok(None)` for NULL, `Err` for invalid UTF-8.
///
/// # Safety
/// `s` is NULL or a NUL-terminated string.
unsafe fn opt_str<'a>(s: *const c_char) -> Result<Option<&'a str>, ()> {
    if s.is_null() {
        return Ok(None);
    }
    // SAFETY: non-NULL and NUL-terminated (caller's promise).
    unsafe { CStr::from_ptr(s) }
        .to_str()
        .map(Some)
        .map_err(|_| ())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_host_limit_is_the_core_one() {
        assert_eq!(super::POLYIO_MAX_HOST_LEN, polyio_core::MAX_HOST_LEN);
    }
}
