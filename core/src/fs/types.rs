//! The file ops' plain data: the backend choice, the stat record, and what a pool job hands
//! the runtime. Below everything else in `fs/`, so the op record and the task op can name
//! these types without importing the file ops themselves.

use std::os::fd::OwnedFd;

use crate::buf::ReadBuf;
use crate::handle::Handle;

/// The environment variable that picks the file backend of runtimes whose options say
/// `Auto` (read when the runtime is created): `threads` for the blocking pool, anything else
/// for io_uring where it works.
pub const FS_BACKEND_ENV: &str = "POLYIO_FS_BACKEND";

/// How a runtime reads and writes files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FsBackend {
    /// io_uring where the kernel allows it (setup can fail: old kernel,
    /// `kernel.io_uring_disabled`, a seccomp filter), else the blocking pool;
    /// `POLYIO_FS_BACKEND=threads` picks the blocking pool. In `Stats`: not chosen yet.
    #[default]
    Auto,
    /// One io_uring ring per runtime, created on first use; fails with the setup's error
    /// where io_uring is not available.
    Uring,
    /// tokio's blocking pool (as libuv's `uv_fs_*` and Node's `fs/promises`).
    Threads,
}

/// What a stat op reports (`statx(2)`'s basic fields). Times are seconds and nanoseconds
/// since the epoch; `birthtime` is 0 where the file system does not record it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileStat {
    pub dev: u64,
    pub ino: u64,
    /// File type and permission bits (`st_mode`).
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

impl FileStat {
    /// Whether this is a regular file.
    pub fn is_file(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFREG
    }

    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFDIR
    }

    pub(crate) fn from_statx(s: &libc::statx) -> FileStat {
        let dev = |major, minor| libc::makedev(major, minor);
        let born = s.stx_mask & libc::STATX_BTIME != 0;
        FileStat {
            dev: dev(s.stx_dev_major, s.stx_dev_minor),
            ino: s.stx_ino,
            mode: u32::from(s.stx_mode),
            nlink: s.stx_nlink,
            uid: s.stx_uid,
            gid: s.stx_gid,
            rdev: dev(s.stx_rdev_major, s.stx_rdev_minor),
            size: s.stx_size,
            blksize: u64::from(s.stx_blksize),
            blocks: s.stx_blocks,
            atime_sec: s.stx_atime.tv_sec,
            atime_nsec: i64::from(s.stx_atime.tv_nsec),
            mtime_sec: s.stx_mtime.tv_sec,
            mtime_nsec: i64::from(s.stx_mtime.tv_nsec),
            ctime_sec: s.stx_ctime.tv_sec,
            ctime_nsec: i64::from(s.stx_ctime.tv_nsec),
            birthtime_sec: if born { s.stx_btime.tv_sec } else { 0 },
            birthtime_nsec: if born {
                i64::from(s.stx_btime.tv_nsec)
            } else {
                0
            },
        }
    }
}

/// Where a stat op writes its result for a caller that gave raw memory (C).
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawStat(pub(crate) *mut FileStat);

// SAFETY: the pointer is written only by the thread driving the runtime, when the op
// settles; the caller of `fs_stat_into` keeps it valid and unaliased until then.
unsafe impl Send for RawStat {}

/// The most buffers one vectored op takes (`IOV_MAX`).
pub const MAX_IOV: usize = 1024;

/// The statx fields a stat op asks for.
pub(crate) const STATX_MASK: u32 = libc::STATX_BASIC_STATS | libc::STATX_BTIME;

/// What a file op on the blocking pool hands the runtime (`Done::File`).
pub(crate) struct FileDone {
    /// The file the op used (the completion's handle); `NONE` for path ops.
    pub(crate) file: Handle,
    pub(crate) result: FileResult,
}

pub(crate) enum FileResult {
    /// An open file, to register as a new handle.
    Opened(OwnedFd),
    /// A count (bytes written, or 0).
    Count(usize),
    /// A read into an owned buffer (its length is the count).
    ReadOwned(Vec<u8>),
    /// A read for a raw buffer: the bytes to copy into it now that the op is known to be
    /// live (the pool thread never writes into the caller's memory).
    ReadRaw(ReadBuf, Vec<u8>),
    /// A vectored read for raw buffers: the bytes to spread over them, in order.
    ReadvRaw(Vec<ReadBuf>, Vec<u8>),
    /// A write from an owned buffer, handed back.
    Written(Vec<u8>, usize),
    Stat(FileStat),
    /// A stat for raw memory, written when the op settles.
    StatRaw(RawStat, FileStat),
    /// A whole file's bytes.
    Data(Vec<u8>),
}
