//! The operations every connected socket shares, whatever its kind (as libuv's `stream.c`):
//! read (single and multi-shot), write, try_write, shutdown and close. The socket kinds
//! (`tcp.rs`, ...) make the connections these take.

use polyio_core::{Handle, ReadBuf, WriteBuf};

use crate::runtime::{polyio_handle, polyio_runtime};
use crate::status::{polyio_status, status_of};

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

/// Reads continuously, as libuv's `uv_read_start`: one submission, then one completion
/// (op READ, flagged `POLYIO_COMPLETION_MORE`) per chunk read, each carrying at most `cap`
/// bytes in `payload` / `payload_len` (`result` is the same count). Each payload stays valid
/// until the caller passes its `payload_id` to `polyio_buffer_release`. The operation stays
/// in flight and ends with exactly one completion without MORE: 0 at end of stream, an error
/// (CONNECTION_RESET, ...), TIMED_OUT after `polyio_deadline`, or CANCELED (`polyio_cancel`
/// with its `user_data`, `polyio_close`, shutdown). Every byte it read came in an earlier
/// MORE completion, so a cancel loses none: bytes not yet read stay for the next read. It
/// queues with `polyio_read` calls on the same connection, in order: reads submitted after
/// it start once it has ended.
///
/// Errors (no completion posted): INVALID_ARGUMENT (`rt` NULL, `cap` 0 or above
/// PTRDIFF_MAX, handle is a listener), BAD_HANDLE, SHUTDOWN, QUEUE_FULL.
///
/// # Safety
/// `rt` is NULL or a live runtime used by this thread only.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_read_multishot(
    rt: *mut polyio_runtime,
    h: polyio_handle,
    cap: usize,
    user_data: u64,
) -> polyio_status {
    ffi_boundary!(polyio_status::Panic, {
        status_of(
            runtime_mut!(rt, polyio_status::InvalidArgument).read_multishot(
                Handle::from_raw(h),
                cap,
                user_data,
            ),
        )
    })
}

/// Writes all `len` bytes at `data`. Completes (op WRITE) with `len` once every byte is
/// with the kernel. The caller keeps `data` valid and unchanged until the completion is
/// reaped (or the runtime is freed); polyio never frees it. Writes queue per connection,
/// go out in order, and queued writes are gathered into one vectored write. `len` 0 is
/// allowed (`data` may then be NULL) and completes with 0 in order. Writing to a reset peer
/// completes with BROKEN_PIPE or CONNECTION_RESET; it never raises SIGPIPE. When the kernel
/// refuses a send for want of memory the write completes with NO_BUFFER_SPACE (`ENOBUFS`)
/// or NO_MEMORY (`ENOMEM`), flagged PARTIAL with the bytes it had taken if any; the
/// connection stays open and writes queued behind it go on, so the stream has a gap: close
/// the connection (as asyncio does) unless the protocol can resend.
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
