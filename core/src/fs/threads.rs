//! The blocking-pool file backend: each file op is a task op whose future awaits one job on
//! tokio's blocking pool; the job hands back plain data (`FileDone`). A job never touches
//! the caller's raw memory: a raw read lands in a buffer of its own, copied in when the op
//! settles (a cancelled op never settles), and a raw write is copied at submission.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::types::{FileDone, FileResult, FileStat, RawStat, STATX_MASK};
use crate::buf::{ReadBuf, ReadInner, WriteBuf, WriteInner};
use crate::handle::Handle;
use crate::status::Status;
use crate::task::{Done, TaskFuture};

type Pool = Arc<tokio::runtime::Runtime>;

/// Set when the op that started a job is gone (cancelled, timed out, shut down): a job
/// waiting for a pipe or device gives up instead of blocking the pool (and the runtime's
/// drop, which joins the pool) for ever.
struct Abandoned(Arc<AtomicBool>);

impl Drop for Abandoned {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// A task future that runs `job` on the blocking pool.
fn job(
    pool: &Pool,
    file: Handle,
    job: impl FnOnce(&AtomicBool) -> io::Result<FileResult> + Send + 'static,
) -> TaskFuture {
    let flag = Arc::new(AtomicBool::new(false));
    let abandoned = Abandoned(flag.clone());
    let handle = pool.spawn_blocking(move || job(&flag));
    Box::pin(async move {
        let _abandoned = abandoned;
        let result = handle.await.map_err(|_| Status::Panic)??;
        Ok(Done::File(FileDone { file, result }))
    })
}

/// For a pipe, FIFO or device: waits until `fd` is ready for `events` (a regular file always
/// is), checking `abandoned` every `POLL_SLICE_MS`. `ECANCELED` once it is set.
fn wait_ready(fd: &OwnedFd, events: libc::c_short, abandoned: &AtomicBool) -> io::Result<()> {
    // SAFETY: stat is plain data; fstat fills it from an open fd.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is open and `st` a live, writable record.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0
        || st.st_mode & libc::S_IFMT == libc::S_IFREG
    {
        return Ok(());
    }
    loop {
        if abandoned.load(Ordering::Acquire) {
            return Err(io::Error::from_raw_os_error(libc::ECANCELED));
        }
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events,
            revents: 0,
        };
        // SAFETY: one valid pollfd; EINTR just loops.
        if unsafe { libc::poll(&mut pfd, 1, POLL_SLICE_MS) } > 0 {
            return Ok(());
        }
    }
}

/// How often a job waiting for a pipe or device checks whether its op is gone.
const POLL_SLICE_MS: libc::c_int = 50;

/// The result of a syscall returning `-1` on error.
fn check(ret: libc::ssize_t) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

pub(super) fn open(pool: &Pool, path: CString, flags: i32, mode: u32) -> TaskFuture {
    job(pool, Handle::NONE, move |_| {
        // SAFETY: `path` is a NUL-terminated string that outlives the call.
        let fd = unsafe { libc::open(path.as_ptr(), flags, mode) };
        check(fd as libc::ssize_t)?;
        // SAFETY: a successful open's result is a new fd that we now own.
        Ok(FileResult::Opened(unsafe { OwnedFd::from_raw_fd(fd) }))
    })
}

/// One `pread` (or `read` at the file position) of up to `len` bytes at `ptr`.
///
/// # Safety
/// `ptr..ptr+len` is writable memory owned by the caller for the call.
unsafe fn read_at(
    fd: &OwnedFd,
    ptr: *mut u8,
    len: usize,
    offset: Option<u64>,
) -> io::Result<usize> {
    let fd = fd.as_raw_fd();
    // SAFETY: the caller guarantees `len` writable bytes at `ptr`.
    let ret = unsafe {
        match offset {
            Some(o) => libc::pread(fd, ptr.cast(), len, o as libc::off_t),
            None => libc::read(fd, ptr.cast(), len),
        }
    };
    check(ret)
}

/// One `pwrite` (or `write` at the file position) of `data`.
fn write_at(fd: &OwnedFd, data: &[u8], offset: Option<u64>) -> io::Result<usize> {
    let fd = fd.as_raw_fd();
    // SAFETY: `data` is a live slice for the call.
    let ret = unsafe {
        match offset {
            Some(o) => libc::pwrite(fd, data.as_ptr().cast(), data.len(), o as libc::off_t),
            None => libc::write(fd, data.as_ptr().cast(), data.len()),
        }
    };
    check(ret)
}

pub(super) fn read(
    pool: &Pool,
    file: Handle,
    fd: Arc<OwnedFd>,
    buf: ReadBuf,
    offset: Option<u64>,
) -> TaskFuture {
    job(pool, file, move |abandoned| match buf.0 {
        ReadInner::Owned(mut v) => {
            wait_ready(&fd, libc::POLLIN, abandoned)?;
            let spare = v.capacity() - v.len();
            // SAFETY: the spare capacity of `v`, which this job owns.
            let n = unsafe { read_at(&fd, v.as_mut_ptr().add(v.len()), spare, offset)? };
            // SAFETY: `read` initialised `n` bytes of the spare capacity.
            unsafe { v.set_len(v.len() + n) };
            Ok(FileResult::ReadOwned(v))
        }
        ReadInner::Raw(_, len) => {
            wait_ready(&fd, libc::POLLIN, abandoned)?;
            let mut v = Vec::with_capacity(len);
            // SAFETY: `v`'s capacity, owned by this job.
            let n = unsafe { read_at(&fd, v.as_mut_ptr(), len, offset)? };
            // SAFETY: `read` initialised `n` bytes.
            unsafe { v.set_len(n) };
            Ok(FileResult::ReadRaw(buf, v))
        }
    })
}

pub(super) fn write(
    pool: &Pool,
    file: Handle,
    fd: Arc<OwnedFd>,
    buf: WriteBuf,
    offset: Option<u64>,
) -> TaskFuture {
    let (data, give_back) = match buf.0 {
        WriteInner::Owned(v) => (v, true),
        // Copied now: the job must not read the caller's memory after a cancel.
        WriteInner::Raw(..) => (buf.as_slice().to_vec(), false),
    };
    job(pool, file, move |abandoned| {
        wait_ready(&fd, libc::POLLOUT, abandoned)?;
        let n = write_at(&fd, &data, offset)?;
        Ok(if give_back {
            FileResult::Written(data, n)
        } else {
            FileResult::Count(n)
        })
    })
}

pub(super) fn readv(
    pool: &Pool,
    file: Handle,
    fd: Arc<OwnedFd>,
    bufs: Vec<ReadBuf>,
    offset: Option<u64>,
) -> TaskFuture {
    let total: usize = bufs.iter().map(ReadBuf::capacity).sum();
    job(pool, file, move |abandoned| {
        wait_ready(&fd, libc::POLLIN, abandoned)?;
        let mut data = Vec::with_capacity(total);
        // SAFETY: `data`'s capacity, owned by this job.
        let n = unsafe { read_at(&fd, data.as_mut_ptr(), total, offset)? };
        // SAFETY: `read` initialised `n` bytes.
        unsafe { data.set_len(n) };
        Ok(FileResult::ReadvRaw(bufs, data))
    })
}

pub(super) fn writev(
    pool: &Pool,
    file: Handle,
    fd: Arc<OwnedFd>,
    bufs: Vec<WriteBuf>,
    offset: Option<u64>,
) -> TaskFuture {
    // Gathered (and raw memory copied) now: the job must not read the caller's memory.
    let data: Vec<u8> = bufs
        .iter()
        .flat_map(|b| b.as_slice().iter().copied())
        .collect();
    job(pool, file, move |abandoned| {
        wait_ready(&fd, libc::POLLOUT, abandoned)?;
        Ok(FileResult::Count(write_at(&fd, &data, offset)?))
    })
}

pub(super) fn fsync(pool: &Pool, file: Handle, fd: Arc<OwnedFd>, datasync: bool) -> TaskFuture {
    job(pool, file, move |_| {
        // SAFETY: `fd` is open for the call.
        let ret = unsafe {
            if datasync {
                libc::fdatasync(fd.as_raw_fd())
            } else {
                libc::fsync(fd.as_raw_fd())
            }
        };
        check(ret as libc::ssize_t)?;
        Ok(FileResult::Count(0))
    })
}

/// `statx` of `path`, or with `fd` of the open file.
fn statx(fd: Option<&OwnedFd>, path: &CString) -> io::Result<FileStat> {
    // SAFETY: statx is plain data; all zeroes is a valid value.
    let mut out: libc::statx = unsafe { std::mem::zeroed() };
    let (dirfd, flags) = match fd {
        Some(fd) => (fd.as_raw_fd(), libc::AT_EMPTY_PATH),
        None => (libc::AT_FDCWD, 0),
    };
    // SAFETY: a NUL-terminated path and a live, writable statx record for the call.
    let ret = unsafe { libc::statx(dirfd, path.as_ptr(), flags, STATX_MASK, &mut out) };
    check(ret as libc::ssize_t)?;
    Ok(FileStat::from_statx(&out))
}

pub(super) fn stat(
    pool: &Pool,
    file: Handle,
    fd: Option<Arc<OwnedFd>>,
    path: CString,
    dest: Option<RawStat>,
) -> TaskFuture {
    job(pool, file, move |_| {
        let st = statx(fd.as_deref(), &path)?;
        Ok(match dest {
            Some(d) => FileResult::StatRaw(d, st),
            None => FileResult::Stat(st),
        })
    })
}

pub(super) fn truncate(pool: &Pool, file: Handle, fd: Arc<OwnedFd>, len: u64) -> TaskFuture {
    job(pool, file, move |_| {
        // SAFETY: `fd` is open for the call.
        check(unsafe { libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) } as libc::ssize_t)?;
        Ok(FileResult::Count(0))
    })
}

pub(super) fn close(pool: &Pool, file: Handle, fd: Arc<OwnedFd>) -> TaskFuture {
    job(pool, file, move |_| {
        // The last holder closes it and reports; with jobs still using it, it closes when
        // the last of them is done.
        if let Ok(fd) = Arc::try_unwrap(fd) {
            // SAFETY: we own `fd`; `into_raw_fd` gave up its ownership to this close.
            check(unsafe { libc::close(fd.into_raw_fd()) } as libc::ssize_t)?;
        }
        Ok(FileResult::Count(0))
    })
}

pub(super) fn read_file(pool: &Pool, path: CString) -> TaskFuture {
    job(pool, Handle::NONE, move |_| {
        // SAFETY: `path` is a NUL-terminated string that outlives the call.
        let raw = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        check(raw as libc::ssize_t)?;
        // SAFETY: a successful open's result is a new fd that we now own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let st = statx(Some(&fd), &CString::default())?;
        let regular = st.is_file();
        let mut data: Vec<u8> = match usize::try_from(st.size) {
            Ok(size) if regular && size > 0 => Vec::with_capacity(size.saturating_add(1)),
            _ => Vec::with_capacity(16 * 1024),
        };
        loop {
            if data.len() == data.capacity() {
                data.reserve(data.len().max(16 * 1024));
            }
            let spare = data.capacity() - data.len();
            // SAFETY: `data`'s spare capacity, owned by this job.
            let n = unsafe {
                read_at(
                    &fd,
                    data.as_mut_ptr().add(data.len()),
                    spare,
                    Some(data.len() as u64),
                )?
            };
            // SAFETY: `read` initialised `n` bytes of the spare capacity.
            unsafe { data.set_len(data.len() + n) };
            if n == 0 || (regular && n < spare) {
                break;
            }
        }
        Ok(FileResult::Data(data))
    })
}

pub(super) fn write_file(
    pool: &Pool,
    path: CString,
    data: Vec<u8>,
    give_back: bool,
    flags: i32,
    mode: u32,
) -> TaskFuture {
    job(pool, Handle::NONE, move |_| {
        // SAFETY: `path` is a NUL-terminated string that outlives the call.
        let raw = unsafe { libc::open(path.as_ptr(), flags, mode) };
        check(raw as libc::ssize_t)?;
        let mut done = 0;
        while done < data.len() {
            // SAFETY: `raw` is open and ours until closed below.
            let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(raw) };
            let n = match write_all_step(fd, &data[done..]) {
                Ok(0) => Err(io::Error::from_raw_os_error(libc::EIO)),
                r => r,
            };
            match n {
                Ok(n) => done += n,
                Err(e) => {
                    // SAFETY: we own `raw`; closed once.
                    unsafe { libc::close(raw) };
                    return Err(e);
                }
            }
        }
        // SAFETY: we own `raw`; closed once.
        check(unsafe { libc::close(raw) } as libc::ssize_t)?;
        let len = data.len();
        Ok(if give_back {
            FileResult::Written(data, len)
        } else {
            FileResult::Count(len)
        })
    })
}

fn write_all_step(fd: std::os::fd::BorrowedFd<'_>, data: &[u8]) -> io::Result<usize> {
    // SAFETY: `data` is a live slice for the call.
    check(unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) })
}
