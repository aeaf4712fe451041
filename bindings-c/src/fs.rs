//! Files: open, read and write at an offset, fsync, stat, close, and whole-file reads and
//! writes, each a submission with one completion. The runtime runs them through io_uring
//! (one ring per runtime, its fd inside the backend fd) or on its blocking pool
//! (`polyio_options.fs_backend`, or `POLYIO_FS_BACKEND=threads`).

use std::ffi::{CStr, OsStr, c_char};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use polyio_core::{FileStat, Handle, ReadBuf, Status, WriteBuf};

use crate::runtime::{polyio_handle, polyio_runtime};
use crate::status::{polyio_status, status_of};

/// What `polyio_fs_stat` and `polyio_fs_fstat` write (`statx(2)`'s basic fields). Times are
/// seconds and nanoseconds since the epoch; `birthtime` is 0 where the file system does not
/// record it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct polyio_stat {
    pub dev: u64,
    pub ino: u64,
    /// File type and permission bits (`st_mode`: `S_ISREG(mode)`, ...).
    pub mode: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u64,
    pub size: u64,
    pub blksize: u64,
    pub blocks: u64,
    pub atime_sec: i64,
    pub atime_nsec: i64,
    pub mtime_sec: i64,
    pub mtime_nsec: i64,
    pub ctime_sec: i64,
    pub ctime_nsec: i64,
    pub birthtime_sec: i64,
    pub birthtime_nsec: i64,
}

/// Read or write at the file's position instead of an offset (`polyio_fs_read`,
/// `polyio_fs_write`).
pub const POLYIO_FS_AT_POSITION: i64 = -1;

/// `path` as a `Path`: `Err(InvalidArgument)` for NULL.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string.
unsafe fn path_arg<'a>(path: *const c_char) -> Result<&'a Path, Status> {
    if path.is_null() {
        return Err(Status::InvalidArgument);
    }
    // SAFETY: the caller promised a NUL-terminated string.
    let bytes = unsafe { CStr::from_ptr(path) }.to_bytes();
    Ok(Path::new(OsStr::from_bytes(bytes)))
}

/// An offset argument: -1 is the file position; other negatives are invalid.
fn offset_arg(offset: i64) -> Result<Option<u64>, Status> {
    match offset {
        POLYIO_FS_AT_POSITION => Ok(None),
        o if o < 0 => Err(Status::InvalidArgument),
        o => Ok(Some(o as u64)),
    }
}

/// Opens `path` with `open(2)` `flags` (`O_RDONLY`, `O_WRONLY | O_CREAT | O_TRUNC`, ...;
/// `O_CLOEXEC` is always added) and `mode` (the permissions `O_CREAT` gives a new file).
/// Completes (op FS_OPEN) with 0 and the open file's handle in `handle`, or an error
/// (NOT_FOUND, PERMISSION_DENIED, IS_A_DIRECTORY for a directory opened for writing,
/// ALREADY_EXISTS with `O_EXCL`, ...; `handle` is then 0). The caller owns the file handle
/// and closes it with `polyio_fs_close` (or `polyio_close`, which posts no completion);
/// freeing the runtime closes every file. Through io_uring, work the kernel hands to its
/// worker threads runs with the credentials the process had when they started: a process that
/// changes uid or gid after its first file operation should use a new runtime for files.
///
/// Errors (no completion posted): INVALID_ARGUMENT (`rt` or `path` NULL, a path with
/// an interior NUL), NOT_FOUND (empty path), SHUTDOWN, QUEUE_FULL, or the io_uring setup's
/// error when `fs_backend` is URING and io_uring is not available.
///
/// # Safety
/// `rt` is NULL or a live runtime used by this thread only; `path` is NULL or a
/// NUL-terminated string (copied before this returns).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_fs_open(
    rt: *mut polyio_runtime,
    path: *const c_char,
    flags: i32,
    mode: u32,
    user_data: u64,
) -> polyio_status {
    ffi_boundary!(polyio_status::Panic, {
        let core = runtime_mut!(rt, polyio_status::InvalidArgument);
        // SAFETY: the caller's promise about `path`.
        let path = match unsafe { path_arg(path) } {
            Ok(p) => p,
            Err(s) => return s.into(),
        };
        status_of(core.fs_open(path, flags, mode, user_data))
    })
}

/// Reads up to `cap` bytes of file `file` into `buf`, at `offset`, or at the file's position
/// (which then advances) with `POLYIO_FS_AT_POSITION`. Completes (op FS_READ) with the
/// number of bytes read: short or 0 at end of file. The caller keeps `buf` valid and
/// untouched until the completion is reaped (or the runtime is freed); polyio never frees
/// it. Reads of one file run concurrently (no queue). A read cancelled or timed out never
/// writes into `buf` after its completion: through io_uring such a read completes once the
/// kernel has let go of `buf` (with CANCELED, or with its count if it had finished).
///
/// Errors (no completion posted): INVALID_ARGUMENT (`rt` or `buf` NULL, `cap` above
/// PTRDIFF_MAX, a negative `offset` other than -1, `file` is a socket), BAD_HANDLE,
/// SHUTDOWN, QUEUE_FULL.
///
/// # Safety
/// `rt` is NULL or a live runtime used by this thread only; `buf` is NULL or `cap` writable
/// bytes that stay valid until the read completes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_fs_read(
    rt: *mut polyio_runtime,
    file: polyio_handle,
    buf: *mut u8,
    cap: usize,
    offset: i64,
    user_data: u64,
) -> polyio_status {
    ffi_boundary!(polyio_status::Panic, {
        let core = runtime_mut!(rt, polyio_status::InvalidArgument);
        if buf.is_null() {
            return polyio_status::InvalidArgument;
        }
        let offset = match offset_arg(offset) {
            Ok(o) => o,
            Err(s) => return s.into(),
        };
        // SAFETY: the caller promised `cap` writable bytes at `buf` until completion.
        let buf = unsafe { ReadBuf::raw(buf, cap) };
        status_of(core.fs_read(Handle::from_raw(file), buf, offset, user_data))
    })
}

/// Reads `cap` bytes of file `file` at `offset` into `buf` now, without an operation and
/// without a completion, when the page cache holds every one of them (`preadv2` with
/// `RWF_NOWAIT`, which never waits for storage): stores true in `*done`. Stores false when
/// it did not (a range not wholly cached or past the end of the file, a file system without
/// `RWF_NOWAIT`, a read error, or the blocking-pool backend): `buf`'s contents are then
/// unspecified; submit `polyio_fs_read` for the same range. This is the first step an
/// io_uring read takes inside the kernel, without the submission and the completion.
///
/// Errors (`*done` untouched): INVALID_ARGUMENT (`rt`, `buf` or `done` NULL, `offset`
/// negative), BAD_HANDLE.
///
/// # Safety
/// `rt` is NULL or a live runtime used by this thread only; `buf` is NULL or `cap` writable
/// bytes, written only during the call; `done` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_fs_try_read(
    rt: *mut polyio_runtime,
    file: polyio_handle,
    buf: *mut u8,
    cap: usize,
    offset: i64,
    done: *mut bool,
) -> polyio_status {
    ffi_boundary!(polyio_status::Panic, {
        let core = runtime_mut!(rt, polyio_status::InvalidArgument);
        if buf.is_null() || done.is_null() || offset < 0 || cap > isize::MAX as usize {
            return polyio_status::InvalidArgument;
        }
        // SAFETY: checked non-NULL; the caller promised `cap` writable bytes at `buf`.
        let bytes = unsafe { std::slice::from_raw_parts_mut(buf, cap) };
        match core.fs_try_read(Handle::from_raw(file), bytes, offset as u64) {
            Ok(full) => {
                // SAFETY: checked non-NULL; the caller promised it is writable.
                unsafe { done.write(full) };
                polyio_status::Ok
            }
            Err(s) => s.into(),
        }
    })
}

/// Writes `len` bytes at `data` to file `file` at `offset`, or at the file's position (or
/// its end, for a file opened with `O_APPEND`) with `POLYIO_FS_AT_POSITION`. Completes (op
/// FS_WRITE) with the number of bytes written (one `pwrite`: it may be short, as
/// `pwrite(2)`). The caller keeps `data` valid and unchanged until the completion is reaped
/// (or the runtime is freed); polyio never frees it. A write cancelled or timed out never
/// reads `data` after its completion: through io_uring such a write completes once the
/// kernel has let go of `data` (with CANCELED, or with the kernel's result if it had
/// finished).
///
/// Errors (no completion posted): INVALID_ARGUMENT (`rt` NULL, `data` NULL with `len` > 0,
/// a negative `offset` other than -1, `file` is a socket), BAD_HANDLE, SHUTDOWN,
/// QUEUE_FULL.
///
/// # Safety
/// `rt` is NULL or a live runtime used by this thread only; `data` is NULL or `len`
/// readable bytes that stay valid and unchanged until the write completes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_fs_write(
    rt: *mut polyio_runtime,
    file: polyio_handle,
    data: *const u8,
    len: usize,
    offset: i64,
    user_data: u64,
) -> polyio_status {
    ffi_boundary!(polyio_status::Panic, {
        let core = runtime_mut!(rt, polyio_status::InvalidArgument);
        if data.is_null() && len > 0 {
            return polyio_status::InvalidArgument;
        }
        let offset = match offset_arg(offset) {
            Ok(o) => o,
            Err(s) => return s.into(),
        };
        // SAFETY: the caller promised `len` readable bytes at `data` until completion.
        let buf = unsafe { WriteBuf::raw(data, len) };
        status_of(core.fs_write(Handle::from_raw(file), buf, offset, user_data))
    })
}

/// One buffer of a vectored read or write (as `struct iovec`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct polyio_iovec {
    pub base: *mut u8,
    pub len: usize,
}

/// The most buffers one `polyio_fs_readv` / `polyio_fs_writev` takes.
pub const POLYIO_FS_MAX_IOV: usize = 1024;

/// Reads into `n` buffers at once (`preadv(2)`), at `offset` or at the file's position with
/// `POLYIO_FS_AT_POSITION`. Completes (op FS_READ) with the total number of bytes read,
/// filling the buffers in order. polyio copies the `iov` array before this returns; the
/// caller keeps every buffer valid and untouched until the completion is reaped (or the
/// runtime is freed), as for `polyio_fs_read`.
///
/// Errors (no completion posted): INVALID_ARGUMENT (`rt` or `iov` NULL, `n` 0 or above
/// `POLYIO_FS_MAX_IOV`, a NULL `base` with a non-zero `len`, a negative `offset` other than
/// -1, `file` is a socket), BAD_HANDLE, SHUTDOWN, QUEUE_FULL.
///
/// # Safety
/// `rt` is NULL or a live runtime used by this thread only; `iov` is NULL or `n` readable
/// records, each naming `len` writable bytes that stay valid until the read completes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_fs_readv(
    rt: *mut polyio_runtime,
    file: polyio_handle,
    iov: *const polyio_iovec,
    n: usize,
    offset: i64,
    user_data: u64,
) -> polyio_status {
    ffi_boundary!(polyio_status::Panic, {
        let core = runtime_mut!(rt, polyio_status::InvalidArgument);
        // SAFETY: the caller's promise about `iov` and `n`.
        let list = match unsafe { iov_arg(iov, n) } {
            Ok(l) => l,
            Err(s) => return s.into(),
        };
        let offset = match offset_arg(offset) {
            Ok(o) => o,
            Err(s) => return s.into(),
        };
        let list: Vec<(*mut u8, usize)> = list.iter().map(|v| (v.base, v.len)).collect();
        // SAFETY: the caller keeps every buffer writable until the completion.
        status_of(unsafe { core.fs_readv(Handle::from_raw(file), &list, offset, user_data) })
    })
}

/// Writes `n` buffers at once (`pwritev(2)`), at `offset` or at the file's position (its end
/// with `O_APPEND`) with `POLYIO_FS_AT_POSITION`. Completes (op FS_WRITE) with the total
/// number of bytes written (one call: it may be short). polyio copies the `iov` array before
/// this returns; the caller keeps every buffer valid and unchanged until the completion is
/// reaped (or the runtime is freed).
///
/// Errors (no completion posted): as `polyio_fs_readv`.
///
/// # Safety
/// `rt` is NULL or a live runtime used by this thread only; `iov` is NULL or `n` readable
/// records, each naming `len` readable bytes that stay unchanged until the write completes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_fs_writev(
    rt: *mut polyio_runtime,
    file: polyio_handle,
    iov: *const polyio_iovec,
    n: usize,
    offset: i64,
    user_data: u64,
) -> polyio_status {
    ffi_boundary!(polyio_status::Panic, {
        let core = runtime_mut!(rt, polyio_status::InvalidArgument);
        // SAFETY: the caller's promise about `iov` and `n`.
        let list = match unsafe { iov_arg(iov, n) } {
            Ok(l) => l,
            Err(s) => return s.into(),
        };
        let offset = match offset_arg(offset) {
            Ok(o) => o,
            Err(s) => return s.into(),
        };
        // SAFETY: the caller keeps every buffer readable and unchanged until the completion.
        let bufs = list
            .iter()
            .map(|v| unsafe { WriteBuf::raw(v.base, v.len) })
            .collect();
        status_of(core.fs_writev(Handle::from_raw(file), bufs, offset, user_data))
    })
}

/// The records of an iovec argument, checked.
///
/// # Safety
/// `iov` is NULL or `n` readable records.
unsafe fn iov_arg<'a>(iov: *const polyio_iovec, n: usize) -> Result<&'a [polyio_iovec], Status> {
    if iov.is_null() || n == 0 || n > POLYIO_FS_MAX_IOV {
        return Err(Status::InvalidArgument);
    }
    // SAFETY: the caller promised `n` readable records.
    let list = unsafe { std::slice::from_raw_parts(iov, n) };
    if list.iter().any(|v| v.base.is_null() && v.len > 0) {
        return Err(Status::InvalidArgument);
    }
    Ok(list)
}

/// Flushes file `file` to storage: `fsync(2)`, or `fdatasync(2)` when `datasync` is
/// non-zero. Completes (op FS_FSYNC) with 0.
///
/// Errors (no completion posted): INVALID_ARGUMENT (`rt` NULL, `file` is a socket),
/// BAD_HANDLE, SHUTDOWN, QUEUE_FULL.
///
/// # Safety
/// `rt` is NULL or a live runtime used by this thread only.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_fs_fsync(
    rt: *mut polyio_runtime,
    file: polyio_handle,
    datasync: i32,
    user_data: u64,
) -> polyio_status {
    ffi_boundary!(polyio_status::Panic, {
        let core = runtime_mut!(rt, polyio_status::InvalidArgument);
        status_of(core.fs_fsync(Handle::from_raw(file), datasync != 0, user_data))
    })
}

/// Stats `path` (following symlinks) into `*out`. Completes (op FS_STAT) with 0, `*out`
/// written before the completion is posted; on an error (NOT_FOUND, ...) `*out` is not
/// written. The caller keeps `out` valid until the completion is reaped (or the runtime is
/// freed).
///
/// Errors (no completion posted): INVALID_ARGUMENT (`rt`, `path` or `out` NULL, a path with
/// an interior NUL), NOT_FOUND (empty path), SHUTDOWN, QUEUE_FULL.
///
/// # Safety
/// `rt` is NULL or a live runtime used by this thread only; `path` is NULL or a
/// NUL-terminated string; `out` is NULL or writable until the completion.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_fs_stat(
    rt: *mut polyio_runtime,
    path: *const c_char,
    out: *mut polyio_stat,
    user_data: u64,
) -> polyio_status {
    ffi_boundary!(polyio_status::Panic, {
        let core = runtime_mut!(rt, polyio_status::InvalidArgument);
        // SAFETY: the caller's promise about `path`.
        let path = match unsafe { path_arg(path) } {
            Ok(p) => p,
            Err(s) => return s.into(),
        };
        // SAFETY: `polyio_stat` and `FileStat` have one layout (a test checks it); the
        // caller keeps `out` writable until the completion.
        status_of(unsafe { core.fs_stat_into(path, out.cast::<FileStat>(), user_data) })
    })
}

/// Stats open file `file` into `*out`, as `polyio_fs_stat`.
///
/// Errors (no completion posted): INVALID_ARGUMENT (`rt` or `out` NULL, `file` is a
/// socket), BAD_HANDLE, SHUTDOWN, QUEUE_FULL.
///
/// # Safety
/// `rt` is NULL or a live runtime used by this thread only; `out` is NULL or writable until
/// the completion.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_fs_fstat(
    rt: *mut polyio_runtime,
    file: polyio_handle,
    out: *mut polyio_stat,
    user_data: u64,
) -> polyio_status {
    ffi_boundary!(polyio_status::Panic, {
        let core = runtime_mut!(rt, polyio_status::InvalidArgument);
        // SAFETY: as in `polyio_fs_stat`.
        status_of(unsafe {
            core.fs_fstat_into(Handle::from_raw(file), out.cast::<FileStat>(), user_data)
        })
    })
}

/// Truncates (or extends with zeroes) file `file` to `len` bytes (`ftruncate(2)`, on the
/// runtime's blocking pool with either file backend). Completes (op FS_TRUNCATE) with 0.
///
/// Errors (no completion posted): INVALID_ARGUMENT (`rt` NULL, `len` above INT64_MAX,
/// `file` is a socket), BAD_HANDLE, SHUTDOWN, QUEUE_FULL.
///
/// # Safety
/// `rt` is NULL or a live runtime used by this thread only.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_fs_truncate(
    rt: *mut polyio_runtime,
    file: polyio_handle,
    len: u64,
    user_data: u64,
) -> polyio_status {
    ffi_boundary!(polyio_status::Panic, {
        let core = runtime_mut!(rt, polyio_status::InvalidArgument);
        status_of(core.fs_truncate(Handle::from_raw(file), len, user_data))
    })
}

/// Closes file `file`. The handle is invalid at once; the operation completes (op
/// FS_CLOSE, `handle` = the closed file) with `close(2)`'s result. Reads and writes still in
/// flight on the file finish on their own.
///
/// Errors (no completion posted): INVALID_ARGUMENT (`rt` NULL, `file` is a socket: use
/// `polyio_close`), BAD_HANDLE, SHUTDOWN, QUEUE_FULL.
///
/// # Safety
/// `rt` is NULL or a live runtime used by this thread only.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_fs_close(
    rt: *mut polyio_runtime,
    file: polyio_handle,
    user_data: u64,
) -> polyio_status {
    ffi_boundary!(polyio_status::Panic, {
        let core = runtime_mut!(rt, polyio_status::InvalidArgument);
        status_of(core.fs_close(Handle::from_raw(file), user_data))
    })
}

/// Reads the whole of `path` in one operation (open, size, read to the end, close).
/// Completes (op FS_READ_FILE) with the file's length in `result` and its bytes in
/// `payload` / `payload_len` (NULL and 0 for an empty file). polyio lends the payload to the
/// caller until the caller passes its `payload_id` to `polyio_buffer_release`, as for
/// multi-shot reads (it stays valid across turns, reaps and `polyio_runtime_free`; never
/// `free` it). Errors complete with NOT_FOUND, PERMISSION_DENIED, IS_A_DIRECTORY, ... and
/// no payload.
///
/// Errors (no completion posted): INVALID_ARGUMENT (`rt` or `path` NULL, a path with an
/// interior NUL), NOT_FOUND (empty path), SHUTDOWN, QUEUE_FULL.
///
/// # Safety
/// `rt` is NULL or a live runtime used by this thread only; `path` is NULL or a
/// NUL-terminated string (copied before this returns).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_fs_read_file(
    rt: *mut polyio_runtime,
    path: *const c_char,
    user_data: u64,
) -> polyio_status {
    ffi_boundary!(polyio_status::Panic, {
        let core = runtime_mut!(rt, polyio_status::InvalidArgument);
        // SAFETY: the caller's promise about `path`.
        let path = match unsafe { path_arg(path) } {
            Ok(p) => p,
            Err(s) => return s.into(),
        };
        status_of(core.fs_read_file(path, user_data))
    })
}

/// Writes `len` bytes at `data` as the whole of `path` in one operation: open with `flags`
/// (`O_WRONLY | O_CREAT | O_TRUNC` to replace, `O_WRONLY | O_CREAT | O_APPEND` to add) and
/// `mode`, write everything, close. Completes (op FS_WRITE_FILE) with `len` once the file is
/// closed. polyio copies `data` before this returns: the caller may reuse it at once.
///
/// Errors (no completion posted): INVALID_ARGUMENT (`rt` or `path` NULL, `data` NULL with
/// `len` > 0, a path with an interior NUL), NOT_FOUND (empty path), SHUTDOWN, QUEUE_FULL.
///
/// # Safety
/// `rt` is NULL or a live runtime used by this thread only; `path` is NULL or a
/// NUL-terminated string; `data` is NULL or `len` readable bytes for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn polyio_fs_write_file(
    rt: *mut polyio_runtime,
    path: *const c_char,
    data: *const u8,
    len: usize,
    flags: i32,
    mode: u32,
    user_data: u64,
) -> polyio_status {
    ffi_boundary!(polyio_status::Panic, {
        let core = runtime_mut!(rt, polyio_status::InvalidArgument);
        if data.is_null() && len > 0 {
            return polyio_status::InvalidArgument;
        }
        // SAFETY: the caller's promise about `path`.
        let path = match unsafe { path_arg(path) } {
            Ok(p) => p,
            Err(s) => return s.into(),
        };
        // SAFETY: `len` readable bytes at `data` for the call; the core copies them.
        let buf = unsafe { WriteBuf::raw(data, len) };
        status_of(core.fs_write_file(path, buf, flags, mode, user_data))
    })
}

#[cfg(test)]
mod tests {
    use std::mem::{offset_of, size_of};

    use super::*;

    #[test]
    fn stat_layout_matches_core() {
        assert_eq!(size_of::<polyio_stat>(), size_of::<FileStat>());
        assert_eq!(
            std::mem::align_of::<polyio_stat>(),
            std::mem::align_of::<FileStat>()
        );
        macro_rules! same {
            ($($f:ident),*) => {
                $(assert_eq!(offset_of!(polyio_stat, $f), offset_of!(FileStat, $f), stringify!($f));)*
            };
        }
        same!(
            dev,
            ino,
            mode,
            nlink,
            uid,
            gid,
            rdev,
            size,
            blksize,
            blocks,
            atime_sec,
            atime_nsec,
            mtime_sec,
            mtime_nsec,
            ctime_sec,
            ctime_nsec,
            birthtime_sec,
            birthtime_nsec
        );
    }

    #[test]
    fn max_iov_matches_core() {
        assert_eq!(POLYIO_FS_MAX_IOV, polyio_core::MAX_IOV);
    }

    #[test]
    fn backends_round_trip() {
        use crate::runtime::polyio_fs_backend;
        use polyio_core::FsBackend;
        for b in [FsBackend::Auto, FsBackend::Uring, FsBackend::Threads] {
            let c = polyio_fs_backend::from_core(b);
            assert_eq!(polyio_fs_backend::to_core(c as u32), Some(b));
        }
        assert_eq!(polyio_fs_backend::to_core(3), None);
    }
}
