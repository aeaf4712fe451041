//! Files: open, read and write at an offset or at the current position, fsync, stat, close,
//! and whole-file reads and writes, each one op under the exactly-once contract. Two
//! backends give the same results: io_uring (`uring.rs`: one ring per runtime, its fd in the
//! backend fd's set) and the blocking pool (`threads.rs`: task ops), chosen on first use.

pub(crate) mod state;
mod threads;
pub(crate) mod types;
mod uring;

use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

use crate::buf::{ReadBuf, ReadInner, WriteBuf, WriteInner};
use crate::handle::Handle;
use crate::op::{Key, Op, OpCode, OpState};
use crate::runtime::Runtime;
use crate::socket::{OpenFile, Resource};
use crate::status::Status;

use types::{FileDone, FileResult, RawStat};
pub use types::{FileStat, FsBackend, MAX_IOV};

/// Where an offset-taking op reads or writes.
fn offset_arg(offset: Option<u64>) -> Result<Option<u64>, Status> {
    match offset {
        Some(o) if o > i64::MAX as u64 => Err(Status::InvalidArgument),
        o => Ok(o),
    }
}

fn c_path(path: &Path) -> Result<CString, Status> {
    let bytes = path.as_os_str().as_bytes();
    if bytes.is_empty() {
        return Err(Status::NotFound);
    }
    CString::new(bytes).map_err(|_| Status::InvalidArgument)
}

impl Runtime {
    /// The file backend this runtime uses, choosing it (and creating the ring) if no file op
    /// did yet. Fails only when [`FsBackend::Uring`] was asked for and io_uring is not there.
    pub fn fs_backend(&mut self) -> Result<FsBackend, Status> {
        if self.fs.chosen != FsBackend::Auto {
            return Ok(self.fs.chosen);
        }
        let want = self.fs.want;
        if want != FsBackend::Threads {
            let waker = self.waker_for(Key::Ring);
            let ring = {
                let _e = self.tokio.enter();
                uring::Ring::new(waker)
            };
            match ring {
                Ok(ring) => {
                    self.fs.ring = Some(Box::new(ring));
                    self.fs.chosen = FsBackend::Uring;
                    return Ok(FsBackend::Uring);
                }
                Err(e) if want == FsBackend::Uring => return Err(e),
                Err(_) => {}
            }
        }
        self.fs.chosen = FsBackend::Threads;
        Ok(FsBackend::Threads)
    }

    /// Admits a file op and makes sure a backend is chosen.
    fn fs_admit(&mut self) -> Result<FsBackend, Status> {
        self.admit()?;
        self.fs_backend()
    }

    /// The open file behind `h`: `BadHandle` for none, `InvalidArgument` for a socket.
    fn file(&self, h: Handle) -> Result<&Arc<OwnedFd>, Status> {
        match self.resources.get(h) {
            Some(Resource::File(f)) => Ok(&f.fd),
            Some(_) => Err(Status::InvalidArgument),
            None => Err(Status::BadHandle),
        }
    }

    /// Opens `path` with `open(2)` `flags` (`O_CLOEXEC` is always added) and `mode` (for
    /// `O_CREAT`). Completes with 0 and the new file's handle in `Completion::handle`, or an
    /// error (`NotFound`, `PermissionDenied`, ...). Close it with [`fs_close`](Self::fs_close)
    /// (or [`close`](Self::close), which posts no completion).
    pub fn fs_open(
        &mut self,
        path: &Path,
        flags: i32,
        mode: u32,
        user_data: u64,
    ) -> Result<(), Status> {
        let path = c_path(path)?;
        let flags = flags | libc::O_CLOEXEC;
        match self.fs_admit()? {
            FsBackend::Threads => {
                let fut = threads::open(&self.tokio, path, flags, mode);
                self.submit_task(user_data, OpCode::FsOpen, fut)
            }
            _ => self.ring_submit(user_data, OpCode::FsOpen, Handle::NONE, |ring, tag| {
                ring.open(tag, path, flags, mode)
            }),
        }
    }

    /// Reads up to `buf.capacity()` bytes of file `h` at `offset` (`None`: at the file's
    /// position, which advances). Completes with the count, short or 0 at end of file; an
    /// owned buffer comes back in `Completion::buf` holding the bytes read. A read cancelled
    /// (or timed out) never writes into its buffer after its completion.
    pub fn fs_read(
        &mut self,
        h: Handle,
        buf: ReadBuf,
        offset: Option<u64>,
        user_data: u64,
    ) -> Result<(), Status> {
        let offset = offset_arg(offset)?;
        if buf.capacity() > isize::MAX as usize {
            return Err(Status::InvalidArgument);
        }
        let backend = self.fs_admit()?;
        let fd = self.file(h)?.clone();
        match backend {
            FsBackend::Threads => {
                let fut = threads::read(&self.tokio, h, fd, buf, offset);
                self.submit_task(user_data, OpCode::FsRead, fut)
            }
            _ => self.ring_submit(user_data, OpCode::FsRead, h, |ring, tag| {
                ring.read(tag, &fd, buf, offset)
            }),
        }
    }

    /// Reads all of `buf` from file `h` at `offset` now, on the calling thread, when the page
    /// cache holds every byte of it (`preadv2` with `RWF_NOWAIT`, which never waits for
    /// storage): `Ok(true)`, no op and no completion. `Ok(false)`: nothing is promised about
    /// `buf`'s contents; submit [`fs_read`](Self::fs_read) instead. That is the answer for a
    /// range not wholly cached or past the end of the file (a short read), for a file system
    /// without `RWF_NOWAIT`, for any error (the op reports it), and on the blocking-pool
    /// backend, whose users asked for every read to run on the pool. This is what an
    /// io_uring read does first inside the kernel, without a submission and a completion.
    pub fn fs_try_read(&mut self, h: Handle, buf: &mut [u8], offset: u64) -> Result<bool, Status> {
        let offset = i64::try_from(offset).map_err(|_| Status::InvalidArgument)?;
        let fd = self.file(h)?;
        if self.fs.chosen != FsBackend::Uring || buf.is_empty() {
            return Ok(false);
        }
        let iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: one iovec naming `buf`, which is valid for writes of its length; the fd is
        // open (the runtime holds it). The call never blocks on storage (RWF_NOWAIT).
        let n = unsafe {
            libc::preadv2(
                std::os::fd::AsRawFd::as_raw_fd(&**fd),
                &iov,
                1,
                offset,
                libc::RWF_NOWAIT,
            )
        };
        Ok(n >= 0 && n as usize == buf.len())
    }

    /// Writes `buf` to file `h` at `offset` (`None`: at the file's position, or at its end
    /// with `O_APPEND`). Completes with the count written (one `pwrite`: it may be short);
    /// an owned buffer comes back in `Completion::buf`.
    pub fn fs_write(
        &mut self,
        h: Handle,
        buf: WriteBuf,
        offset: Option<u64>,
        user_data: u64,
    ) -> Result<(), Status> {
        let offset = offset_arg(offset)?;
        let backend = self.fs_admit()?;
        let fd = self.file(h)?.clone();
        match backend {
            FsBackend::Threads => {
                let fut = threads::write(&self.tokio, h, fd, buf, offset);
                self.submit_task(user_data, OpCode::FsWrite, fut)
            }
            _ => self.ring_submit(user_data, OpCode::FsWrite, h, |ring, tag| {
                ring.write(tag, &fd, buf, offset)
            }),
        }
    }

    /// Reads into several of the caller's buffers at once (`preadv(2)`), at `offset` (`None`:
    /// the file's position). Completes with the total count; as for a raw [`fs_read`]
    /// (Self::fs_read), no byte lands in a buffer after the completion.
    ///
    /// # Safety
    /// Each `(ptr, len)` of `iov` must be valid for writes and not accessed by anyone else
    /// until the op's completion is reaped (or the runtime is dropped).
    pub unsafe fn fs_readv(
        &mut self,
        h: Handle,
        iov: &[(*mut u8, usize)],
        offset: Option<u64>,
        user_data: u64,
    ) -> Result<(), Status> {
        let offset = offset_arg(offset)?;
        if iov.is_empty() || iov.len() > MAX_IOV {
            return Err(Status::InvalidArgument);
        }
        let backend = self.fs_admit()?;
        let fd = self.file(h)?.clone();
        match backend {
            FsBackend::Threads => {
                // SAFETY: the caller's promise, passed on: only the driving thread writes
                // into these buffers, when the op settles.
                let bufs = iov
                    .iter()
                    .map(|&(p, n)| unsafe { ReadBuf::raw(p, n) })
                    .collect();
                let fut = threads::readv(&self.tokio, h, fd, bufs, offset);
                self.submit_task(user_data, OpCode::FsRead, fut)
            }
            _ => {
                let iov = iov
                    .iter()
                    .map(|&(p, n)| libc::iovec {
                        iov_base: p.cast(),
                        iov_len: n,
                    })
                    .collect();
                self.ring_submit(user_data, OpCode::FsRead, h, |ring, tag| {
                    ring.readv(tag, &fd, iov, offset)
                })
            }
        }
    }

    /// Writes several buffers at once (`pwritev(2)`), at `offset` (`None`: the file's
    /// position, or its end with `O_APPEND`). Completes with the total count (one call: it may
    /// be short); the buffers are not handed back.
    pub fn fs_writev(
        &mut self,
        h: Handle,
        bufs: Vec<WriteBuf>,
        offset: Option<u64>,
        user_data: u64,
    ) -> Result<(), Status> {
        let offset = offset_arg(offset)?;
        if bufs.is_empty() || bufs.len() > MAX_IOV {
            return Err(Status::InvalidArgument);
        }
        let backend = self.fs_admit()?;
        let fd = self.file(h)?.clone();
        match backend {
            FsBackend::Threads => {
                let fut = threads::writev(&self.tokio, h, fd, bufs, offset);
                self.submit_task(user_data, OpCode::FsWrite, fut)
            }
            _ => self.ring_submit(user_data, OpCode::FsWrite, h, |ring, tag| {
                ring.writev(tag, &fd, bufs, offset)
            }),
        }
    }

    /// Flushes file `h` to storage: `fsync(2)`, or `fdatasync(2)` with `datasync`.
    /// Completes with 0.
    pub fn fs_fsync(&mut self, h: Handle, datasync: bool, user_data: u64) -> Result<(), Status> {
        let backend = self.fs_admit()?;
        let fd = self.file(h)?.clone();
        match backend {
            FsBackend::Threads => {
                let fut = threads::fsync(&self.tokio, h, fd, datasync);
                self.submit_task(user_data, OpCode::FsFsync, fut)
            }
            _ => self.ring_submit(user_data, OpCode::FsFsync, h, |ring, tag| {
                ring.fsync(tag, &fd, datasync)
            }),
        }
    }

    /// Stats `path` (following symlinks). Completes with 0 and `Completion::stat`.
    pub fn fs_stat(&mut self, path: &Path, user_data: u64) -> Result<(), Status> {
        self.stat_op(None, Some(path), None, user_data)
    }

    /// Stats open file `h`. Completes with 0 and `Completion::stat`.
    pub fn fs_fstat(&mut self, h: Handle, user_data: u64) -> Result<(), Status> {
        self.stat_op(Some(h), None, None, user_data)
    }

    /// [`fs_stat`](Self::fs_stat) writing the result to `out` (before the completion is
    /// posted) instead of `Completion::stat`.
    ///
    /// # Safety
    /// `out` must be valid for writes and not accessed by anyone else until the op's
    /// completion is reaped (or the runtime is dropped).
    pub unsafe fn fs_stat_into(
        &mut self,
        path: &Path,
        out: *mut FileStat,
        user_data: u64,
    ) -> Result<(), Status> {
        self.stat_op(None, Some(path), Some(RawStat(out)), user_data)
    }

    /// [`fs_fstat`](Self::fs_fstat) writing the result to `out`.
    ///
    /// # Safety
    /// As for [`fs_stat_into`](Self::fs_stat_into).
    pub unsafe fn fs_fstat_into(
        &mut self,
        h: Handle,
        out: *mut FileStat,
        user_data: u64,
    ) -> Result<(), Status> {
        self.stat_op(Some(h), None, Some(RawStat(out)), user_data)
    }

    fn stat_op(
        &mut self,
        h: Option<Handle>,
        path: Option<&Path>,
        dest: Option<RawStat>,
        user_data: u64,
    ) -> Result<(), Status> {
        if dest.is_some_and(|d| d.0.is_null()) {
            return Err(Status::InvalidArgument);
        }
        let path = match path {
            Some(p) => c_path(p)?,
            None => CString::default(),
        };
        let backend = self.fs_admit()?;
        let (file, fd) = match h {
            Some(h) => (h, Some(self.file(h)?.clone())),
            None => (Handle::NONE, None),
        };
        match backend {
            FsBackend::Threads => {
                let fut = threads::stat(&self.tokio, file, fd, path, dest);
                self.submit_task(user_data, OpCode::FsStat, fut)
            }
            _ => self.ring_submit(user_data, OpCode::FsStat, file, |ring, tag| {
                ring.stat(tag, fd.as_ref(), path, dest)
            }),
        }
    }

    /// Truncates (or extends with zeroes) file `h` to `len` bytes (`ftruncate(2)`, on the
    /// blocking pool with either backend). Completes with 0.
    pub fn fs_truncate(&mut self, h: Handle, len: u64, user_data: u64) -> Result<(), Status> {
        if len > i64::MAX as u64 {
            return Err(Status::InvalidArgument);
        }
        self.fs_admit()?;
        let fd = self.file(h)?.clone();
        let fut = threads::truncate(&self.tokio, h, fd, len);
        self.submit_task(user_data, OpCode::FsTruncate, fut)
    }

    /// Closes file `h`: the handle is stale at once, and the op completes with `close(2)`'s
    /// result once the fd is closed. Ops still in flight on the file finish on their own
    /// (the kernel holds the file for them); with the blocking pool, the fd closes when the
    /// last of them is done, and the close then reports 0.
    pub fn fs_close(&mut self, h: Handle, user_data: u64) -> Result<(), Status> {
        let backend = self.fs_admit()?;
        self.file(h)?;
        let Some(Resource::File(file)) = self.resources.remove(h) else {
            return Err(Status::BadHandle);
        };
        match backend {
            FsBackend::Threads => {
                let fut = threads::close(&self.tokio, h, file.fd);
                self.submit_task(user_data, OpCode::FsClose, fut)
            }
            _ => {
                self.fs_flush();
                self.ring_submit(user_data, OpCode::FsClose, h, |ring, tag| {
                    ring.close(tag, file.fd)
                })
            }
        }
    }

    /// Reads the whole of `path` as one op (open, size, read to end of file, close).
    /// Completes with the length and the bytes in `Completion::buf`.
    pub fn fs_read_file(&mut self, path: &Path, user_data: u64) -> Result<(), Status> {
        let path = c_path(path)?;
        match self.fs_admit()? {
            FsBackend::Threads => {
                let fut = threads::read_file(&self.tokio, path);
                self.submit_task(user_data, OpCode::FsReadFile, fut)
            }
            _ => self.ring_submit(user_data, OpCode::FsReadFile, Handle::NONE, |ring, tag| {
                ring.read_file(tag, path)
            }),
        }
    }

    /// Writes `data` as the whole of `path` as one op (open with `flags`, typically
    /// `O_WRONLY | O_CREAT | O_TRUNC`, or `O_APPEND` to add; write all; close). Completes
    /// with the length written once the file is closed; an owned buffer comes back in
    /// `Completion::buf`. A raw buffer is copied at submission.
    pub fn fs_write_file(
        &mut self,
        path: &Path,
        data: WriteBuf,
        flags: i32,
        mode: u32,
        user_data: u64,
    ) -> Result<(), Status> {
        let path = c_path(path)?;
        let flags = flags | libc::O_CLOEXEC;
        let (data, give_back) = match data.0 {
            WriteInner::Owned(v) => (v, true),
            WriteInner::Raw(..) => (data.as_slice().to_vec(), false),
        };
        match self.fs_admit()? {
            FsBackend::Threads => {
                let fut = threads::write_file(&self.tokio, path, data, give_back, flags, mode);
                self.submit_task(user_data, OpCode::FsWriteFile, fut)
            }
            _ => self.ring_submit(user_data, OpCode::FsWriteFile, Handle::NONE, |ring, tag| {
                ring.write_file(tag, path, data, give_back, flags, mode)
            }),
        }
    }

    // ---- the io_uring backend's side of the runtime -----------------------------------

    /// Adds an op whose kernel side is one ring submission that `push` queues under `tag`.
    fn ring_submit(
        &mut self,
        user_data: u64,
        code: OpCode,
        file: Handle,
        push: impl FnOnce(&mut uring::Ring, u64) -> Result<(), Status>,
    ) -> Result<(), Status> {
        let Some(ring) = self.fs.ring.as_mut() else {
            return Err(Status::IoError);
        };
        let tag = ring.next_tag();
        let id = self.new_op(user_data, code, Handle::NONE, OpState::Ring { tag })?;
        let Some(ring) = self.fs.ring.as_mut() else {
            return Err(Status::IoError);
        };
        if let Err(e) = push(ring, tag) {
            self.q.remove_silently(id);
            return Err(e);
        }
        ring.bind(tag, id, file);
        if ring.first_queued() {
            self.requeue(Key::Ring);
        }
        Ok(())
    }

    /// Submits the queued ring entries now (before an fd they name is closed).
    pub(crate) fn fs_flush(&mut self) {
        if let Some(ring) = self.fs.ring.as_mut() {
            ring.submit();
        }
    }

    /// The ring's progress step: submits what is queued, reaps what the kernel finished and
    /// settles it, a few rounds while chained steps queue more.
    pub(crate) fn progress_ring(&mut self) {
        let mut cqes = Vec::new();
        for _ in 0..4 {
            let Some(ring) = self.fs.ring.as_mut() else {
                return;
            };
            ring.arm();
            ring.submit();
            ring.reap(&mut cqes);
            if cqes.is_empty() {
                break;
            }
            for (tag, res) in cqes.drain(..) {
                self.ring_complete(tag, res);
            }
        }
        if self.fs.ring.as_mut().is_some_and(|r| r.queued() > 0) {
            self.requeue(Key::Ring);
        }
    }

    /// Settles the ring entry `tag` whose step ended with `res`.
    fn ring_complete(&mut self, tag: u64, res: i32) {
        let Some(ring) = self.fs.ring.as_mut() else {
            return;
        };
        let Some(entry) = ring.take(tag) else { return };
        let (id, file) = (entry.op, entry.file);
        if self.q.op(id).is_none() {
            ring.abandon(entry, res);
            return;
        }
        let q = &mut self.q;
        match ring.advance(entry, res, |cap| q.take_buf(cap)) {
            uring::Outcome::Pending(next_tag) => {
                if ring.first_queued() {
                    self.requeue(Key::Ring);
                }
                if let Some(op) = self.q.op_mut(id) {
                    op.state = OpState::Ring { tag: next_tag };
                }
            }
            uring::Outcome::Fail(s) => self.q.finish(id, Err(s), file),
            uring::Outcome::Done(uring::Finished::Opened(fd), _) => match self.add_file(fd) {
                Ok(h) => self.q.finish(id, Ok(0), h),
                Err(s) => self.q.finish(id, Err(s), Handle::NONE),
            },
            uring::Outcome::Done(uring::Finished::State(state), n) => {
                if let Some(op) = self.q.op_mut(id) {
                    op.state = state;
                }
                self.q.finish(id, Ok(n), file);
            }
            uring::Outcome::Done(uring::Finished::Count, n) => self.q.finish(id, Ok(n), file),
        }
    }

    fn add_file(&mut self, fd: OwnedFd) -> Result<Handle, Status> {
        self.resources
            .insert(Resource::File(OpenFile { fd: Arc::new(fd) }))
            .ok_or(Status::QueueFull)
    }

    /// The hook `cancel_op` calls first: a ring op gets an `IORING_OP_ASYNC_CANCEL`. One whose
    /// memory the ring owns completes now (true is not returned) and its buffers stay parked
    /// until the kernel's completion; one using the caller's raw memory completes when the
    /// kernel is done with it (returns true: the caller must not finish it now).
    pub(crate) fn fs_cancel(&mut self, id: Handle, status: Status) -> bool {
        let Some(Op {
            state: OpState::Ring { tag },
            ..
        }) = self.q.op(id)
        else {
            return false;
        };
        let tag = *tag;
        match self.fs.ring.as_mut() {
            Some(ring) => {
                let defer = ring.cancel(tag, status);
                // At once, not at the next turn: a read of a pipe that waits must not take
                // bytes that arrive meanwhile.
                ring.submit();
                if ring.first_queued() {
                    self.requeue(Key::Ring);
                }
                defer
            }
            None => false,
        }
    }

    /// The hook `shutdown_all` calls first: cancels every ring op; waits (bounded) for the
    /// kernel to finish with callers' raw buffers, then completes those too.
    pub(crate) fn fs_shutdown(&mut self) {
        let ids: Vec<Handle> = self
            .q
            .op_ids()
            .into_iter()
            .filter(|id| matches!(self.q.op(*id).map(|o| &o.state), Some(OpState::Ring { .. })))
            .collect();
        for id in &ids {
            if !self.fs_cancel(*id, Status::Canceled) {
                self.q.finish(*id, Err(Status::Canceled), Handle::NONE);
            }
        }
        let deadline = std::time::Instant::now() + uring::DRAIN_LIMIT;
        while ids.iter().any(|id| self.q.op(*id).is_some()) {
            let Some(ring) = self.fs.ring.as_mut() else {
                break;
            };
            if !ring.wait(deadline) {
                break;
            }
            self.progress_ring();
        }
        // Past the limit: the kernel still holds them; nothing more can be done but report.
        for id in ids {
            self.q.finish(id, Err(Status::Canceled), Handle::NONE);
        }
    }

    /// Settles a file op that ran on the blocking pool (`Done::File`).
    pub(crate) fn settle_file(
        &mut self,
        id: Handle,
        done: FileDone,
    ) -> Result<(usize, Handle), Status> {
        let FileDone { file, result } = done;
        let (state, n) = match result {
            FileResult::Opened(fd) => return self.add_file(fd).map(|h| (0, h)),
            FileResult::Count(n) => return Ok((n, file)),
            FileResult::ReadOwned(v) => {
                let n = v.len();
                (OpState::Read(ReadBuf(ReadInner::Owned(v))), n)
            }
            FileResult::ReadRaw(ReadBuf(ReadInner::Raw(ptr, cap)), data) => {
                let n = data.len().min(cap);
                // SAFETY: the op is live (a cancelled task is dropped, never settled), so the
                // caller of `ReadBuf::raw` still guarantees `cap` writable bytes at `ptr`.
                unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), ptr, n) };
                return Ok((n, file));
            }
            FileResult::ReadvRaw(bufs, data) => {
                let mut at = 0;
                for b in bufs {
                    if let ReadInner::Raw(ptr, cap) = b.0 {
                        let n = (data.len() - at).min(cap);
                        // SAFETY: as for `ReadRaw`: the op is live and the caller of
                        // `fs_readv` keeps `cap` writable bytes at `ptr`.
                        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr().add(at), ptr, n) };
                        at += n;
                    }
                }
                return Ok((data.len(), file));
            }
            FileResult::ReadRaw(ReadBuf(ReadInner::Owned(v)), _) => {
                let n = v.len();
                (OpState::Read(ReadBuf(ReadInner::Owned(v))), n)
            }
            FileResult::Written(v, n) => (
                OpState::Write {
                    buf: WriteBuf(WriteInner::Owned(v)),
                    done: n,
                },
                n,
            ),
            FileResult::Stat(s) => (OpState::Stat(Box::new(s)), 0),
            FileResult::StatRaw(RawStat(dest), s) => {
                // SAFETY: the op is live (a cancelled task is never settled), so the caller
                // of `fs_stat_into` still guarantees `dest` is writable.
                unsafe { dest.write(s) };
                return Ok((0, file));
            }
            FileResult::Data(v) => {
                let n = v.len();
                (OpState::Read(ReadBuf(ReadInner::Owned(v))), n)
            }
        };
        if let Some(op) = self.q.op_mut(id) {
            op.state = state;
        }
        Ok((n, file))
    }
}
