//! Files: the `Driver.fs_*` submissions behind `polyio.open` and the module-level
//! `read_bytes` / `write_bytes` / `stat`. Each op's completion resolves its future with a
//! plain value (a handle, bytes, a count, a stat tuple); `python/polyio/_files.py` builds
//! the aiofiles-style file objects on top.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use polyio_core::{Completion, FileStat, FsBackend, Handle, ReadBuf, WriteBuf};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

use crate::driver::{self, Driver, Kind, ud};
use crate::errors::{raise, status_err};

/// A file op's waiter: the tuple `(future, what)`, `what` one of the `WHAT_*` values.
static FILE_OP: Kind = Kind {
    settle,
    flush: driver::no_flush,
    detach: driver::no_detach,
};

const WHAT_HANDLE: u8 = 0;
const WHAT_BYTES: u8 = 1;
const WHAT_COUNT: u8 = 2;
const WHAT_STAT: u8 = 3;
const WHAT_NONE: u8 = 4;

/// How long `fs_try_pread` answers inline after its first inline answer since the driver
/// last ran: then it says None, the read goes through the ring, and its await lets the loop
/// run (timers, I/O callbacks), so reading cached bytes in a loop never stalls it longer.
const INLINE_BUDGET: Duration = Duration::from_micros(200);

/// A stat as the tuple `_files.py` turns into an `os.stat_result`: `(mode, ino, dev, nlink,
/// uid, gid, size, atime_ns, mtime_ns, ctime_ns, blksize, blocks, rdev)`.
fn stat_tuple<'py>(py: Python<'py>, s: &FileStat) -> PyResult<Bound<'py, PyTuple>> {
    let ns = |sec: i64, nsec: i64| sec.saturating_mul(1_000_000_000).saturating_add(nsec);
    let small = [s.mode, s.nlink, s.uid, s.gid].map(u64::from);
    let times = [
        ns(s.atime_sec, s.atime_nsec),
        ns(s.mtime_sec, s.mtime_nsec),
        ns(s.ctime_sec, s.ctime_nsec),
    ];
    let mut items: Vec<Bound<'py, PyAny>> = Vec::with_capacity(13);
    for v in [small[0], s.ino, s.dev, small[1], small[2], small[3], s.size] {
        items.push(v.into_pyobject(py)?.into_any());
    }
    for t in times {
        items.push(t.into_pyobject(py)?.into_any());
    }
    for v in [s.blksize, s.blocks, s.rdev] {
        items.push(v.into_pyobject(py)?.into_any());
    }
    PyTuple::new(py, items)
}

fn settle(d: &Bound<'_, Driver>, waiter: &Bound<'_, PyAny>, c: Completion) -> PyResult<()> {
    let py = waiter.py();
    let (fut, what): (Py<PyAny>, u8) = waiter.extract()?;
    let done = fut.bind(py).call_method0("done")?.is_truthy()?;
    if done {
        // Cancelled after the file was opened: do not leak it.
        if what == WHAT_HANDLE && c.result >= 0 {
            let _ = d.borrow_mut().rt()?.close(c.handle);
        }
        return Ok(());
    }
    let r = if c.result < 0 {
        Err(status_err(py, c.result, None))
    } else {
        Ok(match what {
            WHAT_HANDLE => c.handle.into_raw().into_pyobject(py)?.into_any().unbind(),
            WHAT_BYTES => {
                let bytes = PyBytes::new(py, c.buf.as_deref().unwrap_or_default());
                if let (Some(buf), Ok(rt)) = (c.buf, d.borrow_mut().rt()) {
                    // Copied out: the next whole-file read (or stream read) reuses it.
                    rt.recycle(buf);
                }
                bytes.into_any().unbind()
            }
            WHAT_COUNT => c.result.into_pyobject(py)?.into_any().unbind(),
            WHAT_STAT => match &c.stat {
                Some(s) => stat_tuple(py, s)?.into_any().unbind(),
                None => py.None(),
            },
            _ => py.None(),
        })
    };
    driver::resolve(py, &fut, r)
}

fn path_of(path: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(path))
}

/// An offset argument: -1 is the file position.
fn offset_of(offset: i64) -> Option<u64> {
    u64::try_from(offset).ok()
}

impl Driver {
    /// Registers a waiter for op `id` and returns (future, user_data).
    fn file_waiter(
        slf: &Bound<'_, Self>,
        submit: impl FnOnce(&mut polyio_core::Runtime, u64) -> Result<(), polyio_core::Status>,
        what: u8,
    ) -> PyResult<(Py<PyAny>, u64)> {
        let py = slf.py();
        let mut d = slf.borrow_mut();
        let fut = d.new_future(py)?.unbind();
        let id = d.new_id();
        let u = ud(id, 0);
        submit(d.rt()?, u).map_err(|s| raise(py, s))?;
        let what = what.into_pyobject(py)?.into_any().unbind();
        let waiter = PyTuple::new(py, [fut.clone_ref(py), what])?;
        d.register_once(id, waiter.into_any().unbind(), &FILE_OP);
        d.poke(py)?;
        Ok((fut, u))
    }
}

#[pymethods]
impl Driver {
    /// The file backend: "uring" or "threads" (choosing it now if no file op did yet).
    fn fs_backend(slf: &Bound<'_, Self>) -> PyResult<String> {
        let py = slf.py();
        let b = slf
            .borrow_mut()
            .rt()?
            .fs_backend()
            .map_err(|s| raise(py, s))?;
        Ok(match b {
            FsBackend::Uring => "uring",
            FsBackend::Threads => "threads",
            FsBackend::Auto => "auto",
        }
        .into())
    }

    /// Opens `path` (bytes, as `os.fsencode` makes them) with `open(2)` flags and mode;
    /// returns (future resolving to the file's handle, user_data for `cancel`).
    fn fs_open(
        slf: &Bound<'_, Self>,
        path: &[u8],
        flags: i32,
        mode: u32,
    ) -> PyResult<(Py<PyAny>, u64)> {
        let p = path_of(path);
        Driver::file_waiter(slf, |rt, u| rt.fs_open(p, flags, mode, u), WHAT_HANDLE)
    }

    /// Reads up to `n` bytes at `offset` (-1: at the file position); the future resolves to
    /// the bytes read (empty at end of file).
    fn fs_read(
        slf: &Bound<'_, Self>,
        handle: u64,
        n: usize,
        offset: i64,
    ) -> PyResult<(Py<PyAny>, u64)> {
        let h = Handle::from_raw(handle);
        let buf = ReadBuf::with_capacity(n);
        let off = offset_of(offset);
        Driver::file_waiter(slf, |rt, u| rt.fs_read(h, buf, off, u), WHAT_BYTES)
    }

    /// The `n` bytes at `offset` read now, without an op, when the page cache holds all of
    /// them (io_uring backend; `Runtime::fs_try_read`); else None, and the caller submits
    /// `fs_read`. None also for offset -1 (a position read) and once `INLINE_BUDGET` has
    /// passed since the first inline read after the driver last ran, so that a coroutine
    /// reading cached bytes in a loop still yields to the loop.
    fn fs_try_pread(
        slf: &Bound<'_, Self>,
        handle: u64,
        n: usize,
        offset: i64,
    ) -> PyResult<Option<Py<PyBytes>>> {
        let py = slf.py();
        let Ok(offset) = u64::try_from(offset) else {
            return Ok(None);
        };
        let Ok(len) = pyo3::ffi::Py_ssize_t::try_from(n) else {
            return Ok(None);
        };
        let mut d = slf.borrow_mut();
        let now = Instant::now();
        match d.inline_since {
            Some(t) if now.duration_since(t) > INLINE_BUDGET => return Ok(None),
            Some(_) => {}
            None => d.inline_since = Some(now),
        }
        if n == 0 {
            return Ok(None);
        }
        // SAFETY: a new bytes object of `len` uninitialised bytes (NULL source), owned by
        // `bytes` from here; it is filled below before anyone else sees it.
        let bytes = unsafe {
            Bound::from_owned_ptr_or_err(
                py,
                pyo3::ffi::PyBytes_FromStringAndSize(std::ptr::null(), len),
            )?
        };
        // SAFETY: `bytes` is a bytes object of `n` bytes that only this function holds, so
        // its buffer may be written (CPython's documented way to fill a new bytes object).
        let buf = unsafe {
            std::slice::from_raw_parts_mut(
                pyo3::ffi::PyBytes_AsString(bytes.as_ptr()).cast::<u8>(),
                n,
            )
        };
        let h = Handle::from_raw(handle);
        if !d.rt()?.fs_try_read(h, buf, offset).unwrap_or(false) {
            return Ok(None);
        }
        Ok(Some(bytes.cast_into::<PyBytes>()?.unbind()))
    }

    /// Writes `data` at `offset` (-1: at the file position, or the end with O_APPEND); the
    /// future resolves to the count written.
    fn fs_write(
        slf: &Bound<'_, Self>,
        handle: u64,
        data: &[u8],
        offset: i64,
    ) -> PyResult<(Py<PyAny>, u64)> {
        let h = Handle::from_raw(handle);
        let buf = WriteBuf::from_vec(data.to_vec());
        let off = offset_of(offset);
        Driver::file_waiter(slf, |rt, u| rt.fs_write(h, buf, off, u), WHAT_COUNT)
    }

    /// fsync (or fdatasync); the future resolves to None.
    fn fs_fsync(slf: &Bound<'_, Self>, handle: u64, datasync: bool) -> PyResult<(Py<PyAny>, u64)> {
        let h = Handle::from_raw(handle);
        Driver::file_waiter(slf, |rt, u| rt.fs_fsync(h, datasync, u), WHAT_NONE)
    }

    /// Stats an open file; the future resolves to a stat tuple.
    fn fs_fstat(slf: &Bound<'_, Self>, handle: u64) -> PyResult<(Py<PyAny>, u64)> {
        let h = Handle::from_raw(handle);
        Driver::file_waiter(slf, |rt, u| rt.fs_fstat(h, u), WHAT_STAT)
    }

    /// Stats `path` (following symlinks); the future resolves to a stat tuple.
    fn fs_stat(slf: &Bound<'_, Self>, path: &[u8]) -> PyResult<(Py<PyAny>, u64)> {
        let p = path_of(path);
        Driver::file_waiter(slf, |rt, u| rt.fs_stat(p, u), WHAT_STAT)
    }

    /// Truncates (or extends) an open file to `len` bytes; the future resolves to None.
    fn fs_truncate(slf: &Bound<'_, Self>, handle: u64, len: u64) -> PyResult<(Py<PyAny>, u64)> {
        let h = Handle::from_raw(handle);
        Driver::file_waiter(slf, |rt, u| rt.fs_truncate(h, len, u), WHAT_NONE)
    }

    /// Closes a file; the future resolves to None.
    fn fs_close(slf: &Bound<'_, Self>, handle: u64) -> PyResult<(Py<PyAny>, u64)> {
        let h = Handle::from_raw(handle);
        Driver::file_waiter(slf, |rt, u| rt.fs_close(h, u), WHAT_NONE)
    }

    /// Reads the whole of `path`; the future resolves to its bytes.
    fn fs_read_file(slf: &Bound<'_, Self>, path: &[u8]) -> PyResult<(Py<PyAny>, u64)> {
        let p = path_of(path);
        Driver::file_waiter(slf, |rt, u| rt.fs_read_file(p, u), WHAT_BYTES)
    }

    /// Writes `data` as the whole of `path` (opened with `flags` and `mode`); the future
    /// resolves to the count written.
    fn fs_write_file(
        slf: &Bound<'_, Self>,
        path: &[u8],
        data: &[u8],
        flags: i32,
        mode: u32,
    ) -> PyResult<(Py<PyAny>, u64)> {
        let p = path_of(path);
        let buf = WriteBuf::from_vec(data.to_vec());
        Driver::file_waiter(
            slf,
            |rt, u| rt.fs_write_file(p, buf, flags, mode, u),
            WHAT_COUNT,
        )
    }
}
