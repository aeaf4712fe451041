//! The io_uring file backend: one ring per runtime, created on first use, no SQPOLL. Its fd
//! is registered with tokio like any socket, so finished work makes the backend fd readable
//! and the turn reaps completions itself (one fd for the consumer, no thread hop).
//! Submissions queue during the consumer's calls and go to the kernel once per turn.
//!
//! Memory the kernel uses (buffers, paths, statx records) lives in the ring's entry for that
//! submission until its completion arrives, whatever happened to the op meanwhile: a
//! cancelled op that owns its buffer completes at once and its buffer stays parked here; one
//! that reads into (or writes from) the caller's raw memory completes only when the kernel
//! is done with that memory. Dropping the ring cancels what is in flight and waits for the
//! kernel's completions (at most `DRAIN_LIMIT`; past it the ring and its memory are leaked
//! rather than freed under the kernel).
//!
//! Credentials: requests run with the credentials of the thread that submits them, except
//! work the kernel hands to its io-wq workers, which were created with the credentials the
//! process had when they started. A process that changes uid or gid after its first file op
//! should create a new runtime (or use the `Threads` backend).

use std::ffi::CString;
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use io_uring::{IoUring, opcode, squeue, types};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::types::{FileStat, RawStat, STATX_MASK};
use crate::buf::{ReadBuf, ReadInner, WriteBuf, WriteInner};
use crate::handle::Handle;
use crate::idmap::IdMap;
use crate::op::OpState;
use crate::status::Status;

/// How long dropping a ring (or shutting down) waits for the kernel to give back memory.
pub(crate) const DRAIN_LIMIT: Duration = Duration::from_secs(10);
/// Submission queue entries (the completion queue gets twice as many; overflow is kept by
/// the kernel, `IORING_FEAT_NODROP`).
const RING_ENTRIES: u32 = 256;
/// Completion queue entries: room for many submission batches before the kernel has to keep
/// completions aside (which `reap` then fetches).
const CQ_ENTRIES: u32 = 4096;
/// `IORING_ENTER_GETEVENTS`.
const ENTER_GETEVENTS: u32 = 1;
/// Rounds of fetching overflowed completions per reap (the rest wait for the next turn).
const MAX_OVERFLOW_FLUSHES: usize = 8;
/// The first read of a whole file whose size `fstat` does not tell (procfs, pipes).
const UNSIZED_READ: usize = 16 * 1024;
/// The most one read or write submission moves.
const MAX_IO: usize = 1 << 30;

/// The ring's fd, borrowed by tokio's registration.
struct RingFd(RawFd);

impl AsRawFd for RingFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// What one submission is doing, and the memory it lends the kernel.
enum Step {
    Open(#[allow(dead_code)] CString),
    /// `None`: the caller's raw memory.
    Read(Option<Vec<u8>>),
    Write(Option<Vec<u8>>),
    /// A vectored read into the caller's raw buffers (`iov` names them).
    Readv(#[allow(dead_code)] IoVecs),
    /// A vectored write: its buffers, and the `iov` naming them (`raw`: some are the
    /// caller's memory).
    Writev {
        _bufs: Vec<WriteBuf>,
        _iov: IoVecs,
        raw: bool,
    },
    /// fsync, fdatasync or close: no memory.
    Plain,
    Stat(
        #[allow(dead_code)] CString,
        Box<libc::statx>,
        Option<RawStat>,
    ),
    ReadFileOpen(#[allow(dead_code)] CString),
    ReadFileRead {
        fd: OwnedFd,
        data: Vec<u8>,
        regular: bool,
    },
    WriteFileOpen {
        _path: CString,
        data: Vec<u8>,
        give_back: bool,
    },
    WriteFileWrite {
        fd: OwnedFd,
        data: Vec<u8>,
        done: usize,
        give_back: bool,
    },
    WriteFileClose {
        data: Vec<u8>,
        give_back: bool,
    },
    /// An `ASYNC_CANCEL` or a close nobody waits for.
    Detached,
}

impl Step {
    /// Whether the kernel uses the caller's raw memory.
    fn is_raw(&self) -> bool {
        matches!(
            self,
            Step::Read(None) | Step::Write(None) | Step::Readv(_) | Step::Writev { raw: true, .. }
        )
    }
}

/// The iovec array a vectored submission hands the kernel (kept until its completion).
pub(crate) struct IoVecs(#[allow(dead_code)] Vec<libc::iovec>);

// SAFETY: the iovecs are plain addresses only the kernel dereferences, of memory the entry
// owns (a write's buffers) or the caller keeps valid under `fs_readv`'s contract; the array
// itself is only touched by the thread driving the runtime.
unsafe impl Send for IoVecs {}

/// One submission in flight.
pub(crate) struct Entry {
    /// The op it serves; `NONE` once that op completed without it (cancel, deadline).
    pub(crate) op: Handle,
    /// The file the op uses, for its completion.
    pub(crate) file: Handle,
    step: Step,
    /// A cancel or deadline asked for while the kernel used raw memory: the status the op
    /// completes with if the kernel reports it cancelled.
    cancel: Option<Status>,
}

/// How a submission's completion settles its op.
pub(crate) enum Outcome {
    /// The op goes on in a new submission (a whole-file op's next step), tagged so.
    Pending(u64),
    Fail(Status),
    Done(Finished, usize),
}

/// A finished op's result.
pub(crate) enum Finished {
    Opened(OwnedFd),
    /// The op state to finish with (it holds the buffer or stat to hand back).
    State(OpState),
    /// Nothing to hand back.
    Count,
}

pub(crate) struct Ring {
    /// Dropped first, while the ring's fd is still open.
    registration: Option<AsyncFd<RingFd>>,
    waker: Waker,
    entries: IdMap<Entry>,
    next_tag: u64,
    /// A submission was queued since the last `first_queued`.
    announce: bool,
    /// Dropped in `Drop` only once the kernel gave back every entry's memory.
    ring: ManuallyDrop<IoUring>,
}

fn errno_status(res: i32) -> Status {
    Status::from_errno(-res)
}

impl Ring {
    /// Sets up a ring and registers its fd with tokio (call inside tokio's context).
    pub(crate) fn new(waker: Waker) -> Result<Ring, Status> {
        let ring = IoUring::builder()
            .setup_clamp()
            .setup_cqsize(CQ_ENTRIES)
            .build(RING_ENTRIES)?;
        // SAFETY: the ring's fd stays open while registered: `registration` is dropped
        // first in `Drop`, and the ring after it (or never).
        let registration = unsafe {
            AsyncFd::register_with_interest(RingFd(ring.as_raw_fd()), Interest::READABLE)
        }
        .map_err(|e| Status::from(e.into_parts().1))?;
        Ok(Ring {
            registration: Some(registration),
            waker,
            entries: IdMap::default(),
            next_tag: 0,
            announce: false,
            ring: ManuallyDrop::new(ring),
        })
    }

    pub(crate) fn next_tag(&mut self) -> u64 {
        self.next_tag += 1;
        self.next_tag
    }

    /// Submissions queued and not yet given to the kernel.
    pub(crate) fn queued(&mut self) -> usize {
        self.ring.submission().len()
    }

    /// True once after the first submission queued since the last call: the runtime then
    /// queues the ring's key, so the next turn submits.
    pub(crate) fn first_queued(&mut self) -> bool {
        std::mem::take(&mut self.announce)
    }

    /// Queues `sqe` for entry `tag` with `step`.
    fn push(&mut self, tag: u64, step: Step, sqe: squeue::Entry) -> Result<(), Status> {
        let sqe = sqe.user_data(tag);
        // SAFETY: every pointer in `sqe` points into `step`'s memory (heap buffers, a
        // CString, a boxed statx, which moving `step` does not move) or the caller's raw
        // memory; the entry keeps `step` alive until the kernel's completion.
        let mut pushed = unsafe { self.ring.submission().push(&sqe) }.is_ok();
        if !pushed {
            self.submit();
            // SAFETY: as above.
            pushed = unsafe { self.ring.submission().push(&sqe) }.is_ok();
        }
        if !pushed {
            return Err(Status::QueueFull);
        }
        self.entries.insert(
            tag,
            Entry {
                op: Handle::NONE,
                file: Handle::NONE,
                step,
                cancel: None,
            },
        );
        self.announce = true;
        Ok(())
    }

    /// Names the op (and file) entry `tag` serves.
    pub(crate) fn bind(&mut self, tag: u64, op: Handle, file: Handle) {
        if let Some(e) = self.entries.get_mut(&tag) {
            e.op = op;
            e.file = file;
        }
    }

    pub(crate) fn open(
        &mut self,
        tag: u64,
        path: CString,
        flags: i32,
        mode: u32,
    ) -> Result<(), Status> {
        let sqe = opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), path.as_ptr())
            .flags(flags)
            .mode(mode)
            .build();
        self.push(tag, Step::Open(path), sqe)
    }

    pub(crate) fn read(
        &mut self,
        tag: u64,
        fd: &Arc<OwnedFd>,
        buf: ReadBuf,
        offset: Option<u64>,
    ) -> Result<(), Status> {
        let (ptr, len, step) = match buf.0 {
            ReadInner::Owned(mut v) => {
                let cap = v.capacity() - v.len();
                // SAFETY: `len <= capacity`: the spare capacity starts here.
                let p = unsafe { v.as_mut_ptr().add(v.len()) };
                (p, cap, Step::Read(Some(v)))
            }
            ReadInner::Raw(p, len) => (p, len, Step::Read(None)),
        };
        let sqe = opcode::Read::new(types::Fd(fd.as_raw_fd()), ptr, io_len(len))
            .offset(offset.unwrap_or(u64::MAX))
            .build();
        self.push(tag, step, sqe)
    }

    pub(crate) fn write(
        &mut self,
        tag: u64,
        fd: &Arc<OwnedFd>,
        buf: WriteBuf,
        offset: Option<u64>,
    ) -> Result<(), Status> {
        let (ptr, len, step) = match buf.0 {
            WriteInner::Owned(v) => (v.as_ptr(), v.len(), Step::Write(Some(v))),
            WriteInner::Raw(p, len) => (p, len, Step::Write(None)),
        };
        let sqe = opcode::Write::new(types::Fd(fd.as_raw_fd()), ptr, io_len(len))
            .offset(offset.unwrap_or(u64::MAX))
            .build();
        self.push(tag, step, sqe)
    }

    /// A vectored read into `iov` (the caller's raw buffers).
    pub(crate) fn readv(
        &mut self,
        tag: u64,
        fd: &Arc<OwnedFd>,
        iov: Vec<libc::iovec>,
        offset: Option<u64>,
    ) -> Result<(), Status> {
        let sqe = opcode::Readv::new(types::Fd(fd.as_raw_fd()), iov.as_ptr(), iov.len() as u32)
            .offset(offset.unwrap_or(u64::MAX))
            .build();
        self.push(tag, Step::Readv(IoVecs(iov)), sqe)
    }

    /// A vectored write of `bufs`.
    pub(crate) fn writev(
        &mut self,
        tag: u64,
        fd: &Arc<OwnedFd>,
        bufs: Vec<WriteBuf>,
        offset: Option<u64>,
    ) -> Result<(), Status> {
        let raw = bufs.iter().any(|b| matches!(b.0, WriteInner::Raw(..)));
        let iov: Vec<libc::iovec> = bufs
            .iter()
            .map(|b| {
                let s = b.as_slice();
                libc::iovec {
                    iov_base: s.as_ptr() as *mut libc::c_void,
                    iov_len: s.len(),
                }
            })
            .collect();
        let sqe = opcode::Writev::new(types::Fd(fd.as_raw_fd()), iov.as_ptr(), iov.len() as u32)
            .offset(offset.unwrap_or(u64::MAX))
            .build();
        let step = Step::Writev {
            _bufs: bufs,
            _iov: IoVecs(iov),
            raw,
        };
        self.push(tag, step, sqe)
    }

    pub(crate) fn fsync(
        &mut self,
        tag: u64,
        fd: &Arc<OwnedFd>,
        datasync: bool,
    ) -> Result<(), Status> {
        let flags = if datasync {
            types::FsyncFlags::DATASYNC
        } else {
            types::FsyncFlags::empty()
        };
        let sqe = opcode::Fsync::new(types::Fd(fd.as_raw_fd()))
            .flags(flags)
            .build();
        self.push(tag, Step::Plain, sqe)
    }

    /// Stats `path`, or with `fd` the open file (and an empty path).
    pub(crate) fn stat(
        &mut self,
        tag: u64,
        fd: Option<&Arc<OwnedFd>>,
        path: CString,
        dest: Option<RawStat>,
    ) -> Result<(), Status> {
        // SAFETY: statx is plain data; all zeroes is a valid value.
        let mut out: Box<libc::statx> = Box::new(unsafe { std::mem::zeroed() });
        let (dirfd, flags) = match fd {
            Some(fd) => (fd.as_raw_fd(), libc::AT_EMPTY_PATH),
            None => (libc::AT_FDCWD, 0),
        };
        let sqe = opcode::Statx::new(
            types::Fd(dirfd),
            path.as_ptr(),
            (&mut *out as *mut libc::statx).cast::<types::statx>(),
        )
        .flags(flags)
        .mask(STATX_MASK)
        .build();
        self.push(tag, Step::Stat(path, out, dest), sqe)
    }

    pub(crate) fn close(&mut self, tag: u64, fd: Arc<OwnedFd>) -> Result<(), Status> {
        let sqe = match Arc::try_unwrap(fd) {
            Ok(fd) => opcode::Close::new(types::Fd(fd.into_raw_fd())).build(),
            // Someone else still holds the fd (not on this backend): it closes with them.
            Err(_) => opcode::Nop::new().build(),
        };
        self.push(tag, Step::Plain, sqe)
    }

    pub(crate) fn read_file(&mut self, tag: u64, path: CString) -> Result<(), Status> {
        let sqe = opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), path.as_ptr())
            .flags(libc::O_RDONLY | libc::O_CLOEXEC)
            .build();
        self.push(tag, Step::ReadFileOpen(path), sqe)
    }

    pub(crate) fn write_file(
        &mut self,
        tag: u64,
        path: CString,
        data: Vec<u8>,
        give_back: bool,
        flags: i32,
        mode: u32,
    ) -> Result<(), Status> {
        let sqe = opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), path.as_ptr())
            .flags(flags)
            .mode(mode)
            .build();
        let step = Step::WriteFileOpen {
            _path: path,
            data,
            give_back,
        };
        self.push(tag, step, sqe)
    }

    /// Closes `fd` through the ring, nobody waiting; synchronously if the ring is full.
    fn close_detached(&mut self, fd: OwnedFd) {
        let raw = fd.into_raw_fd();
        let tag = self.next_tag();
        let sqe = opcode::Close::new(types::Fd(raw)).build();
        if self.push(tag, Step::Detached, sqe).is_err() {
            // SAFETY: `raw` came from an `OwnedFd` we owned; nothing else closes it.
            drop(unsafe { OwnedFd::from_raw_fd(raw) });
        }
    }

    /// Takes entry `tag` out (its completion arrived).
    pub(crate) fn take(&mut self, tag: u64) -> Option<Entry> {
        self.entries.remove(&tag)
    }

    /// Settles a completion `res` of `entry`, whose op is live. A whole-file read takes its
    /// buffer from `take_buf` (the runtime's released buffers, so steady reading neither
    /// grows nor trims the heap per file).
    pub(crate) fn advance(
        &mut self,
        entry: Entry,
        res: i32,
        take_buf: impl FnOnce(usize) -> Vec<u8>,
    ) -> Outcome {
        let Entry {
            op,
            file,
            step,
            cancel,
        } = entry;
        if res == -libc::ECANCELED
            && let Some(s) = cancel
        {
            return Outcome::Fail(s);
        }
        if res < 0 {
            match step {
                Step::ReadFileRead { fd, .. } | Step::WriteFileWrite { fd, .. } => {
                    self.close_detached(fd)
                }
                _ => {}
            }
            return Outcome::Fail(errno_status(res));
        }
        let n = res as usize;
        match step {
            Step::Open(_) => {
                // SAFETY: a successful openat's result is a new fd that we now own.
                Outcome::Done(Finished::Opened(unsafe { OwnedFd::from_raw_fd(res) }), 0)
            }
            Step::Read(Some(mut v)) => {
                // SAFETY: the kernel initialised `n` bytes of the spare capacity.
                unsafe { v.set_len(v.len() + n) };
                Outcome::Done(
                    Finished::State(OpState::Read(ReadBuf(ReadInner::Owned(v)))),
                    n,
                )
            }
            Step::Write(Some(v)) => Outcome::Done(
                Finished::State(OpState::Write {
                    buf: WriteBuf(WriteInner::Owned(v)),
                    done: n,
                }),
                n,
            ),
            Step::Read(None) | Step::Write(None) | Step::Readv(_) | Step::Writev { .. } => {
                Outcome::Done(Finished::Count, n)
            }
            Step::Plain => Outcome::Done(Finished::Count, 0),
            Step::Stat(_, out, None) => Outcome::Done(
                Finished::State(OpState::Stat(Box::new(FileStat::from_statx(&out)))),
                0,
            ),
            Step::Stat(_, out, Some(RawStat(dest))) => {
                // SAFETY: the op is live, so the caller of `fs_stat_into` still guarantees
                // `dest` is writable.
                unsafe { dest.write(FileStat::from_statx(&out)) };
                Outcome::Done(Finished::Count, 0)
            }
            Step::ReadFileOpen(_) => {
                // SAFETY: as for `Step::Open`.
                let fd = unsafe { OwnedFd::from_raw_fd(res) };
                // SAFETY: statx is plain data; fstat fills it from a valid fd.
                let mut st: libc::stat = unsafe { std::mem::zeroed() };
                // SAFETY: `fd` is open and `st` is a live, writable stat record.
                if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
                    return Outcome::Fail(std::io::Error::last_os_error().into());
                }
                let regular = st.st_mode & libc::S_IFMT == libc::S_IFREG;
                let cap = match usize::try_from(st.st_size) {
                    Ok(size) if regular && size > 0 => size.saturating_add(1),
                    _ => UNSIZED_READ,
                };
                let data = take_buf(cap);
                self.read_more(op, file, fd, data, regular)
            }
            Step::ReadFileRead {
                fd,
                mut data,
                regular,
            } => {
                let spare = data.capacity() - data.len();
                // SAFETY: the kernel initialised `n` bytes of the spare capacity.
                unsafe { data.set_len(data.len() + n) };
                if n == 0 || (regular && n < spare.min(MAX_IO)) {
                    self.close_detached(fd);
                    let len = data.len();
                    return Outcome::Done(
                        Finished::State(OpState::Read(ReadBuf(ReadInner::Owned(data)))),
                        len,
                    );
                }
                if data.len() == data.capacity() {
                    data.reserve(data.len().max(UNSIZED_READ));
                }
                self.read_more(op, file, fd, data, regular)
            }
            Step::WriteFileOpen {
                data, give_back, ..
            } => {
                // SAFETY: as for `Step::Open`.
                let fd = unsafe { OwnedFd::from_raw_fd(res) };
                self.write_more(op, file, fd, data, 0, give_back)
            }
            Step::WriteFileWrite {
                fd,
                data,
                done,
                give_back,
            } => {
                if n == 0 && done < data.len() {
                    self.close_detached(fd);
                    return Outcome::Fail(Status::IoError);
                }
                self.write_more(op, file, fd, data, done + n, give_back)
            }
            Step::WriteFileClose { data, give_back } => {
                let len = data.len();
                if give_back {
                    let state = OpState::Write {
                        buf: WriteBuf(WriteInner::Owned(data)),
                        done: len,
                    };
                    Outcome::Done(Finished::State(state), len)
                } else {
                    Outcome::Done(Finished::Count, len)
                }
            }
            Step::Detached => Outcome::Fail(Status::Canceled),
        }
    }

    /// A whole-file read's next read, into `data`'s spare capacity at its length.
    fn read_more(
        &mut self,
        op: Handle,
        file: Handle,
        fd: OwnedFd,
        mut data: Vec<u8>,
        regular: bool,
    ) -> Outcome {
        let tag = self.next_tag();
        let spare = data.capacity() - data.len();
        // SAFETY: `len <= capacity`: the spare capacity starts here.
        let ptr = unsafe { data.as_mut_ptr().add(data.len()) };
        let sqe = opcode::Read::new(types::Fd(fd.as_raw_fd()), ptr, io_len(spare))
            .offset(data.len() as u64)
            .build();
        let step = Step::ReadFileRead { fd, data, regular };
        match self.push(tag, step, sqe) {
            Ok(()) => {
                self.bind(tag, op, file);
                Outcome::Pending(tag)
            }
            Err(s) => Outcome::Fail(s),
        }
    }

    /// A whole-file write's next write (from `done`), or its close once all is written.
    fn write_more(
        &mut self,
        op: Handle,
        file: Handle,
        fd: OwnedFd,
        data: Vec<u8>,
        done: usize,
        give_back: bool,
    ) -> Outcome {
        let tag = self.next_tag();
        let pushed = if done < data.len() {
            // SAFETY: `done < len`, inside the buffer.
            let ptr = unsafe { data.as_ptr().add(done) };
            let sqe = opcode::Write::new(types::Fd(fd.as_raw_fd()), ptr, io_len(data.len() - done))
                .offset(u64::MAX)
                .build();
            let step = Step::WriteFileWrite {
                fd,
                data,
                done,
                give_back,
            };
            self.push(tag, step, sqe)
        } else {
            let sqe = opcode::Close::new(types::Fd(fd.into_raw_fd())).build();
            self.push(tag, Step::WriteFileClose { data, give_back }, sqe)
        };
        match pushed {
            Ok(()) => {
                self.bind(tag, op, file);
                Outcome::Pending(tag)
            }
            Err(s) => Outcome::Fail(s),
        }
    }

    /// Releases what a completion `res` of `entry` leaves when its op is gone: an fd it
    /// opened is closed; its memory is freed now that the kernel is done with it.
    pub(crate) fn abandon(&mut self, entry: Entry, res: i32) {
        match entry.step {
            Step::Open(_) | Step::ReadFileOpen(_) | Step::WriteFileOpen { .. } if res >= 0 => {
                // SAFETY: a successful openat's result is a new fd that nobody else owns.
                drop(unsafe { OwnedFd::from_raw_fd(res) });
            }
            Step::ReadFileRead { fd, .. } | Step::WriteFileWrite { fd, .. } => drop(fd),
            _ => {}
        }
    }

    /// Asks the kernel to cancel entry `tag`. True when the op must wait for the kernel's
    /// completion (the kernel uses the caller's raw memory); else the op is unbound from
    /// the entry (its memory stays parked here) and may complete now.
    pub(crate) fn cancel(&mut self, tag: u64, status: Status) -> bool {
        let Some(entry) = self.entries.get_mut(&tag) else {
            return false;
        };
        let defer = entry.step.is_raw();
        if defer {
            entry.cancel.get_or_insert(status);
        } else {
            entry.op = Handle::NONE;
        }
        let cancel_tag = self.next_tag();
        let sqe = opcode::AsyncCancel::new(tag).build();
        // A full ring: the submission simply runs to its end.
        let _ = self.push(cancel_tag, Step::Detached, sqe);
        defer
    }

    /// Clears the ring fd's readiness and re-arms the waker: a completion posted after this
    /// makes the next turn reap.
    pub(crate) fn arm(&mut self) {
        let Some(reg) = &self.registration else {
            return;
        };
        let mut cx = Context::from_waker(&self.waker);
        for _ in 0..2 {
            match reg.poll_read_ready(&mut cx) {
                Poll::Ready(Ok(mut guard)) => guard.clear_ready(),
                Poll::Ready(Err(_)) | Poll::Pending => break,
            }
        }
    }

    /// Gives the queued submissions to the kernel (page-cache reads usually complete in this
    /// call). A busy kernel leaves them queued for the next turn.
    pub(crate) fn submit(&mut self) {
        if self.ring.submission().is_empty() {
            return;
        }
        let _ = self.ring.submit();
    }

    /// Moves every completion the kernel posted into `out` as `(tag, result)`, including
    /// those it kept aside when the completion queue was full (it hands them over on an
    /// `io_uring_enter` that asks for events).
    pub(crate) fn reap(&mut self, out: &mut Vec<(u64, i32)>) {
        for _ in 0..MAX_OVERFLOW_FLUSHES {
            for cqe in self.ring.completion() {
                out.push((cqe.user_data(), cqe.result()));
            }
            if !self.ring.submission().cq_overflow() {
                return;
            }
            // SAFETY: submits nothing and waits for nothing (min_complete 0, no argument):
            // with GETEVENTS the kernel moves its overflowed completions into the queue.
            let _ = unsafe {
                self.ring
                    .submitter()
                    .enter::<libc::sigset_t>(0, 0, ENTER_GETEVENTS, None)
            };
        }
    }

    /// Submits, then waits until a completion is there or `deadline` passes. False once it
    /// has passed.
    pub(crate) fn wait(&mut self, deadline: Instant) -> bool {
        self.submit();
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        if self.ring.completion().is_empty() {
            let mut pfd = libc::pollfd {
                fd: self.ring.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = left.as_millis().clamp(1, 1000) as i32;
            // SAFETY: one valid pollfd; an error or EINTR just ends this wait early.
            unsafe { libc::poll(&mut pfd, 1, ms) };
        }
        true
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        self.registration = None;
        let tags: Vec<u64> = self
            .entries
            .iter()
            .filter(|(_, e)| !matches!(e.step, Step::Detached))
            .map(|(t, _)| *t)
            .collect();
        for tag in tags {
            self.cancel(tag, Status::Canceled);
        }
        let deadline = Instant::now() + DRAIN_LIMIT;
        let mut cqes = Vec::new();
        while !self.entries.is_empty() && self.wait(deadline) {
            self.reap(&mut cqes);
            for (tag, res) in cqes.drain(..) {
                if let Some(entry) = self.entries.remove(&tag) {
                    self.abandon(entry, res);
                }
            }
        }
        if self.entries.is_empty() {
            // SAFETY: dropped once, here; nothing uses the ring after this.
            unsafe { ManuallyDrop::drop(&mut self.ring) };
        } else {
            // The kernel still holds memory of these: leak it, and the ring (never dropped),
            // rather than free it under the kernel.
            std::mem::forget(std::mem::take(&mut self.entries));
        }
    }
}

/// A length for one read or write submission (io_uring takes 32 bits).
fn io_len(len: usize) -> u32 {
    len.min(MAX_IO) as u32
}
