//! Files on both file backends (io_uring and the blocking pool), each also under the
//! reactor-thread backend: contents by hash, short reads at EOF, offsets past EOF and past
//! 2 GiB, O_APPEND, concurrent reads, cancel and deadlines (raw and owned buffers), errors,
//! stat, whole-file ops, and freeing a runtime with file ops in flight.

mod common;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::Reaper;
use polyio_core::{
    Backend, Completion, FileStat, FsBackend, Handle, OpCode, Options, ReadBuf, Runtime, Status,
    WriteBuf,
};

/// Every combination a file op runs under.
const SETUPS: [(Backend, FsBackend); 3] = [
    (Backend::Epoll, FsBackend::Uring),
    (Backend::Epoll, FsBackend::Threads),
    (Backend::Thread, FsBackend::Uring),
];

fn runtime(backend: Backend, fs: FsBackend) -> Runtime {
    let mut rt = Runtime::new(Options {
        backend,
        fs_backend: fs,
        ..Options::default()
    })
    .expect("runtime");
    assert_eq!(
        rt.stats().fs_backend,
        FsBackend::Auto,
        "chosen on first use"
    );
    assert_eq!(rt.fs_backend(), Ok(fs));
    assert_eq!(rt.stats().fs_backend, fs);
    rt
}

/// Runs `f` on a fresh runtime and temp dir for every setup.
fn each(f: impl Fn(&mut Runtime, &mut Reaper, &Path)) {
    for (backend, fs) in SETUPS {
        eprintln!("setup: {backend:?} {fs:?}");
        let dir = tempfile::tempdir().unwrap();
        let mut rt = runtime(backend, fs);
        let mut r = Reaper::new();
        f(&mut rt, &mut r, dir.path());
    }
}

/// Deterministic pseudo-random bytes.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// FNV-1a, for comparing contents by hash.
fn hash(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf29ce484222325, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x100000001b3)
    })
}

fn ok(c: &Completion) -> i64 {
    assert_eq!(c.status(), Status::Ok, "{c:?}");
    c.result
}

fn open(rt: &mut Runtime, r: &mut Reaper, path: &Path, flags: i32) -> Handle {
    rt.fs_open(path, flags, 0o644, 1).unwrap();
    let c = r.wait(rt, 1);
    assert_eq!(c.op, OpCode::FsOpen);
    assert_eq!(ok(&c), 0);
    assert_ne!(c.handle, Handle::NONE);
    c.handle
}

fn read_at(rt: &mut Runtime, r: &mut Reaper, h: Handle, cap: usize, off: Option<u64>) -> Vec<u8> {
    rt.fs_read(h, ReadBuf::with_capacity(cap), off, 2).unwrap();
    let c = r.wait(rt, 2);
    assert_eq!(c.op, OpCode::FsRead);
    let n = ok(&c) as usize;
    assert_eq!(c.handle, h);
    let buf = c.buf.expect("owned buffer back");
    assert_eq!(buf.len(), n);
    buf
}

fn write_at(rt: &mut Runtime, r: &mut Reaper, h: Handle, data: &[u8], off: Option<u64>) {
    rt.fs_write(h, WriteBuf::from_vec(data.to_vec()), off, 3)
        .unwrap();
    let c = r.wait(rt, 3);
    assert_eq!(c.op, OpCode::FsWrite);
    assert_eq!(ok(&c) as usize, data.len());
    assert_eq!(c.buf.as_deref(), Some(data), "buffer handed back");
}

fn close(rt: &mut Runtime, r: &mut Reaper, h: Handle) {
    rt.fs_close(h, 4).unwrap();
    let c = r.wait(rt, 4);
    assert_eq!(c.op, OpCode::FsClose);
    assert_eq!(ok(&c), 0);
}

fn stat(rt: &mut Runtime, r: &mut Reaper, path: &Path) -> Result<FileStat, Status> {
    rt.fs_stat(path, 5).unwrap();
    let c = r.wait(rt, 5);
    assert_eq!(c.op, OpCode::FsStat);
    match c.status() {
        Status::Ok => Ok(*c.stat.expect("stat")),
        s => Err(s),
    }
}

const RW_CREATE: i32 = libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC;

#[test]
fn write_then_read_back_by_hash_at_offsets_and_position() {
    each(|rt, r, dir| {
        let path = dir.join("a");
        let data = noise(300_000, 7);
        let h = open(rt, r, &path, RW_CREATE);
        write_at(rt, r, h, &data[..100_000], Some(0));
        write_at(rt, r, h, &data[100_000..], Some(100_000));
        let back = read_at(rt, r, h, 400_000, Some(0));
        assert_eq!(hash(&back), hash(&data));
        assert_eq!(back, data);
        // At the file position: the writes above used offsets, so it is still 0.
        let first = read_at(rt, r, h, 1000, None);
        assert_eq!(first, data[..1000]);
        let second = read_at(rt, r, h, 1000, None);
        assert_eq!(second, data[1000..2000], "the position advanced");
        rt.fs_truncate(h, 1000, 12).unwrap();
        let c = r.wait(rt, 12);
        assert_eq!((c.op, ok(&c)), (OpCode::FsTruncate, 0));
        close(rt, r, h);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            data[..1000],
            "as std::fs reads it"
        );
        assert_eq!(rt.stats().in_flight, 0);
    });
}

#[test]
fn short_reads_at_eof_and_past_it() {
    each(|rt, r, dir| {
        let path = dir.join("short");
        std::fs::write(&path, b"hello world").unwrap();
        let h = open(rt, r, &path, libc::O_RDONLY);
        assert_eq!(read_at(rt, r, h, 100, Some(6)), b"world", "short at EOF");
        assert_eq!(read_at(rt, r, h, 100, Some(11)), b"", "0 at EOF");
        assert_eq!(read_at(rt, r, h, 100, Some(1 << 40)), b"", "0 far past EOF");
        close(rt, r, h);
    });
}

#[test]
fn try_read_takes_cached_bytes_only_on_io_uring() {
    each(|rt, r, dir| {
        let path = dir.join("cached");
        let data = noise(3 * 4096, 7);
        std::fs::write(&path, &data).unwrap();
        let h = open(rt, r, &path, libc::O_RDONLY);
        let mut buf = vec![0u8; 4096];
        let uring = rt.stats().fs_backend == FsBackend::Uring;
        assert_eq!(
            rt.fs_try_read(h, &mut buf, 4096),
            Ok(uring),
            "a cached range"
        );
        if uring {
            assert_eq!(buf, data[4096..8192]);
        }
        assert_eq!(
            rt.fs_try_read(h, &mut buf, 10_000),
            Ok(false),
            "short: past the end"
        );
        assert_eq!(
            rt.fs_try_read(h, &mut buf, 1 << 40),
            Ok(false),
            "far past the end"
        );
        assert_eq!(
            rt.fs_try_read(h, &mut buf, u64::MAX),
            Err(Status::InvalidArgument)
        );
        assert_eq!(
            rt.stats().completions,
            1,
            "no op, no completion: only the open's"
        );
        close(rt, r, h);
        assert_eq!(rt.fs_try_read(h, &mut buf, 0), Err(Status::BadHandle));
        // A FIFO has no offsets: never read here, its bytes stay for the op.
        let (f, fpath) = fifo(rt, r, dir);
        feed(&fpath);
        assert_eq!(rt.fs_try_read(f, &mut buf[..64], 0), Ok(false));
        assert_eq!(read_at(rt, r, f, 64, None), vec![0xAA; 64]);
        close(rt, r, f);
    });
}

#[test]
fn offsets_past_two_gib_on_a_sparse_file() {
    each(|rt, r, dir| {
        let path = dir.join("sparse");
        let far = 5u64 << 30; // 5 GiB
        let data = noise(4096, 9);
        let h = open(rt, r, &path, RW_CREATE);
        write_at(rt, r, h, &data, Some(far));
        assert_eq!(read_at(rt, r, h, 8192, Some(far)), data);
        assert_eq!(
            read_at(rt, r, h, 16, Some(far - 16)),
            vec![0u8; 16],
            "a hole"
        );
        rt.fs_fstat(h, 6).unwrap();
        let c = r.wait(rt, 6);
        assert_eq!(c.stat.expect("stat").size, far + 4096);
        close(rt, r, h);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), far + 4096);
    });
}

#[test]
fn append_mode_writes_at_the_end() {
    each(|rt, r, dir| {
        let path = dir.join("log");
        std::fs::write(&path, b"one\n").unwrap();
        let h = open(rt, r, &path, libc::O_WRONLY | libc::O_APPEND);
        write_at(rt, r, h, b"two\n", None);
        write_at(rt, r, h, b"three\n", None);
        close(rt, r, h);
        let flags = libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT;
        rt.fs_write_file(
            &path,
            WriteBuf::from_vec(b"four\n".to_vec()),
            flags,
            0o644,
            7,
        )
        .unwrap();
        assert_eq!(ok(&r.wait(rt, 7)), 5);
        assert_eq!(std::fs::read(&path).unwrap(), b"one\ntwo\nthree\nfour\n");
    });
}

#[test]
fn concurrent_reads_of_one_file() {
    each(|rt, r, dir| {
        let path = dir.join("many");
        let data = noise(64 * 4096, 3);
        std::fs::write(&path, &data).unwrap();
        let h = open(rt, r, &path, libc::O_RDONLY);
        for i in 0..64u64 {
            rt.fs_read(h, ReadBuf::with_capacity(4096), Some(i * 4096), 100 + i)
                .unwrap();
        }
        for i in 0..64u64 {
            let c = r.wait(rt, 100 + i);
            let at = (i * 4096) as usize;
            assert_eq!(ok(&c), 4096);
            assert_eq!(hash(c.buf.as_deref().unwrap()), hash(&data[at..at + 4096]));
        }
        close(rt, r, h);
        assert_eq!(rt.stats().in_flight, 0);
    });
}

#[test]
fn raw_buffers_read_and_write() {
    each(|rt, r, dir| {
        let path = dir.join("raw");
        let data = noise(10_000, 5);
        let h = open(rt, r, &path, RW_CREATE);
        // SAFETY: `data` outlives the write's completion, reaped below.
        let wb = unsafe { WriteBuf::raw(data.as_ptr(), data.len()) };
        rt.fs_write(h, wb, Some(0), 10).unwrap();
        let c = r.wait(rt, 10);
        assert_eq!(ok(&c), 10_000);
        assert!(c.buf.is_none());
        let mut back = vec![0u8; 12_000];
        // SAFETY: `back` outlives the read's completion, reaped below.
        let rb = unsafe { ReadBuf::raw(back.as_mut_ptr(), back.len()) };
        rt.fs_read(h, rb, Some(0), 11).unwrap();
        let c = r.wait(rt, 11);
        assert_eq!(ok(&c), 10_000);
        assert!(c.buf.is_none());
        assert_eq!(back[..10_000], data[..]);
        close(rt, r, h);
    });
}

#[test]
fn whole_file_reads_and_writes() {
    each(|rt, r, dir| {
        let path = dir.join("whole");
        for (i, len) in [0usize, 1, 4096, 4097, 3 << 20].into_iter().enumerate() {
            let data = noise(len, i as u64 + 1);
            let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC;
            rt.fs_write_file(&path, WriteBuf::from_vec(data.clone()), flags, 0o600, 20)
                .unwrap();
            let c = r.wait(rt, 20);
            assert_eq!(c.op, OpCode::FsWriteFile);
            assert_eq!(ok(&c) as usize, len);
            assert_eq!(std::fs::read(&path).unwrap(), data);
            rt.fs_read_file(&path, 21).unwrap();
            let c = r.wait(rt, 21);
            assert_eq!(c.op, OpCode::FsReadFile);
            assert_eq!(ok(&c) as usize, len);
            assert_eq!(hash(c.buf.as_deref().unwrap()), hash(&data));
        }
        // A file whose size stat does not tell.
        rt.fs_read_file(Path::new("/proc/self/status"), 22).unwrap();
        let c = r.wait(rt, 22);
        let text = String::from_utf8(c.buf.unwrap()).unwrap();
        assert!(text.starts_with("Name:"), "{text}");
        assert!(text.contains("VmRSS"), "read to the end: {text}");
        // A raw buffer is copied at submission.
        let data = noise(5000, 11);
        // SAFETY: `data` outlives the submit call (the op copies it).
        let wb = unsafe { WriteBuf::raw(data.as_ptr(), data.len()) };
        rt.fs_write_file(&path, wb, libc::O_WRONLY | libc::O_TRUNC, 0, 23)
            .unwrap();
        let c = r.wait(rt, 23);
        assert_eq!(ok(&c), 5000);
        assert!(c.buf.is_none());
        assert_eq!(std::fs::read(&path).unwrap(), data);
    });
}

#[test]
fn stat_and_fstat_match_std() {
    use std::os::unix::fs::MetadataExt;
    each(|rt, r, dir| {
        let path = dir.join("st");
        std::fs::write(&path, noise(1234, 2)).unwrap();
        let m = std::fs::metadata(&path).unwrap();
        let s = stat(rt, r, &path).unwrap();
        assert_eq!(s.size, 1234);
        assert_eq!((s.ino, s.dev, s.mode), (m.ino(), m.dev(), m.mode()));
        assert_eq!((s.mtime_sec, s.mtime_nsec), (m.mtime(), m.mtime_nsec()));
        assert!(s.is_file() && !s.is_dir());
        assert!(stat(rt, r, dir).unwrap().is_dir());
        let h = open(rt, r, &path, libc::O_RDONLY);
        rt.fs_fstat(h, 30).unwrap();
        let c = r.wait(rt, 30);
        assert_eq!(c.handle, h);
        assert_eq!(*c.stat.unwrap(), s);
        let mut into = FileStat::default();
        // SAFETY: `into` outlives the op, reaped below.
        unsafe { rt.fs_fstat_into(h, &mut into, 33) }.unwrap();
        let c = r.wait(rt, 33);
        assert_eq!(ok(&c), 0);
        assert!(c.stat.is_none());
        assert_eq!(into, s);
        let mut into = FileStat::default();
        // SAFETY: as above.
        unsafe { rt.fs_stat_into(dir, &mut into, 34) }.unwrap();
        assert_eq!(ok(&r.wait(rt, 34)), 0);
        assert!(into.is_dir());
        rt.fs_fsync(h, false, 31).unwrap();
        assert_eq!(ok(&r.wait(rt, 31)), 0);
        rt.fs_fsync(h, true, 32).unwrap();
        assert_eq!(ok(&r.wait(rt, 32)), 0);
        close(rt, r, h);
    });
}

#[test]
fn errors_map_to_statuses() {
    each(|rt, r, dir| {
        let missing = dir.join("missing");
        rt.fs_open(&missing, libc::O_RDONLY, 0, 40).unwrap();
        let c = r.wait(rt, 40);
        assert_eq!(c.status(), Status::NotFound);
        assert_eq!(c.handle, Handle::NONE);
        rt.fs_read_file(&missing, 41).unwrap();
        assert_eq!(r.wait(rt, 41).status(), Status::NotFound);
        assert_eq!(stat(rt, r, &missing), Err(Status::NotFound));
        rt.fs_read_file(dir, 42).unwrap();
        let c = r.wait(rt, 42);
        assert_eq!(c.result, -i64::from(libc::EISDIR), "{c:?}");
        assert!(c.buf.is_none());
        rt.fs_open(dir, libc::O_WRONLY, 0, 43).unwrap();
        assert_eq!(r.wait(rt, 43).result, -i64::from(libc::EISDIR));
        // Creating inside a missing directory; exclusive create of an existing file.
        let flags = libc::O_WRONLY | libc::O_CREAT;
        rt.fs_write_file(
            &missing.join("x"),
            WriteBuf::from_vec(vec![1]),
            flags,
            0o644,
            44,
        )
        .unwrap();
        assert_eq!(r.wait(rt, 44).status(), Status::NotFound);
        std::fs::write(dir.join("e"), b"").unwrap();
        rt.fs_open(&dir.join("e"), flags | libc::O_EXCL, 0o644, 45)
            .unwrap();
        assert_eq!(r.wait(rt, 45).result, -i64::from(libc::EEXIST));
        // Reading a write-only file.
        let h = open(rt, r, &dir.join("e"), libc::O_WRONLY);
        rt.fs_read(h, ReadBuf::with_capacity(10), Some(0), 46)
            .unwrap();
        assert_eq!(r.wait(rt, 46).result, -i64::from(libc::EBADF));
        close(rt, r, h);
        // Submissions that fail post nothing.
        assert_eq!(
            rt.fs_read(h, ReadBuf::with_capacity(10), None, 47),
            Err(Status::BadHandle),
            "closed"
        );
        assert_eq!(rt.fs_close(h, 47), Err(Status::BadHandle));
        assert_eq!(
            rt.fs_open(Path::new("a\0b"), 0, 0, 47),
            Err(Status::InvalidArgument)
        );
        assert_eq!(
            rt.fs_read(h, ReadBuf::with_capacity(1), Some(u64::MAX), 47),
            Err(Status::InvalidArgument)
        );
        let mut out = Vec::new();
        rt.reap(&mut out, 16, Some(Duration::from_millis(20)));
        assert!(out.iter().all(|c| c.user_data != 47), "{out:?}");
        assert_eq!(rt.stats().in_flight, 0);
    });
}

#[test]
fn socket_calls_on_a_file_and_file_calls_on_a_socket_are_refused() {
    each(|rt, r, dir| {
        let path = dir.join("f");
        std::fs::write(&path, b"x").unwrap();
        let h = open(rt, r, &path, libc::O_RDONLY);
        assert_eq!(
            rt.read(h, ReadBuf::with_capacity(1), 50),
            Err(Status::InvalidArgument)
        );
        let (l, _) = common::listen(rt);
        assert_eq!(
            rt.fs_read(l, ReadBuf::with_capacity(1), None, 50),
            Err(Status::InvalidArgument)
        );
        // The generic close closes a file too (no completion).
        rt.close(h).unwrap();
        assert_eq!(rt.fs_fstat(h, 50), Err(Status::BadHandle));
    });
}

/// A FIFO opened read-write: reads on it block until someone writes.
fn fifo(rt: &mut Runtime, r: &mut Reaper, dir: &Path) -> (Handle, PathBuf) {
    let path = dir.join("fifo");
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    (open(rt, r, &path, libc::O_RDWR), path)
}

/// Unblocks every read still waiting on the FIFO (a pool thread must not stay stuck).
fn feed(path: &Path) {
    use std::io::Write;
    // Read-write: opening a FIFO write-only blocks while nobody reads it.
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    f.write_all(&[0xAA; 64]).unwrap();
}

#[test]
fn cancel_a_blocked_read_owned_and_raw() {
    each(|rt, r, dir| {
        let (h, path) = fifo(rt, r, dir);
        rt.fs_read(h, ReadBuf::with_capacity(16), None, 60).unwrap();
        let mut raw = vec![0u8; 16];
        // SAFETY: `raw` outlives the op's completion, reaped below, and is read only after.
        let rb = unsafe { ReadBuf::raw(raw.as_mut_ptr(), raw.len()) };
        rt.fs_read(h, rb, None, 61).unwrap();
        // Let both reach the kernel (or the pool) and block there.
        let mut out = Vec::new();
        rt.reap(&mut out, 16, Some(Duration::from_millis(50)));
        assert!(out.is_empty(), "{out:?}");
        rt.cancel(60).unwrap();
        rt.cancel(61).unwrap();
        let a = r.wait(rt, 60);
        let b = r.wait(rt, 61);
        assert_eq!(a.status(), Status::Canceled, "{a:?}");
        assert!(a.buf.is_none());
        assert_eq!(b.status(), Status::Canceled, "{b:?}");
        feed(&path);
        std::thread::sleep(Duration::from_millis(50));
        rt.reap(&mut out, 16, Some(Duration::from_millis(20)));
        assert!(out.is_empty(), "exactly once: {out:?}");
        assert_eq!(raw, vec![0u8; 16], "no byte lands after the completion");
        assert_eq!(rt.cancel(60), Err(Status::NotFound));
        close(rt, r, h);
    });
}

#[test]
fn deadline_times_out_a_blocked_read() {
    each(|rt, r, dir| {
        let (h, path) = fifo(rt, r, dir);
        rt.fs_read(h, ReadBuf::with_capacity(16), None, 70).unwrap();
        rt.deadline(70, 20).unwrap();
        let c = r.wait(rt, 70);
        assert_eq!(c.status(), Status::TimedOut, "{c:?}");
        feed(&path);
        // The FIFO still works for the next read. On the ring the timed-out read took no
        // bytes; on the blocking pool its job could not be stopped and may have taken some.
        let n = read_at(rt, r, h, 100, None).len();
        if rt.stats().fs_backend == FsBackend::Uring {
            assert_eq!(n, 64);
        } else {
            assert!(n == 64 || n == 48, "{n}");
        }
        close(rt, r, h);
    });
}

#[test]
fn cancel_before_the_turn_completes_exactly_once() {
    each(|rt, r, dir| {
        let path = dir.join("c");
        std::fs::write(&path, noise(8192, 4)).unwrap();
        let h = open(rt, r, &path, libc::O_RDONLY);
        rt.fs_read(h, ReadBuf::with_capacity(8192), Some(0), 80)
            .unwrap();
        rt.fs_read_file(&path, 81).unwrap();
        // On the blocking pool a job may finish before the cancel (and then completes
        // inline, at submission): the cancel finds nothing and the result stands.
        for ud in [80, 81] {
            let want = match rt.cancel(ud) {
                Ok(()) => Status::Canceled,
                Err(Status::NotFound) => Status::Ok,
                Err(e) => panic!("{e:?}"),
            };
            assert_eq!(r.wait(rt, ud).status(), want);
        }
        let mut out = Vec::new();
        for _ in 0..3 {
            rt.reap(&mut out, 16, Some(Duration::from_millis(10)));
        }
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(rt.stats().in_flight, 0);
        close(rt, r, h);
    });
}

#[test]
fn free_with_file_ops_in_flight_does_not_hang() {
    for (backend, fs) in SETUPS {
        let dir = tempfile::tempdir().unwrap();
        let mut rt = runtime(backend, fs);
        let mut r = Reaper::new();
        let path = dir.path().join("big");
        std::fs::write(&path, noise(1 << 20, 1)).unwrap();
        let h = open(&mut rt, &mut r, &path, libc::O_RDONLY);
        for i in 0..32 {
            rt.fs_read(h, ReadBuf::with_capacity(1 << 20), Some(0), 90 + i)
                .unwrap();
        }
        rt.fs_read_file(&path, 200).unwrap();
        let mut raw = vec![0u8; 64];
        let fifo_path = {
            // Blocked until cancelled (the ring cancels it in the kernel; a pool job that
            // waits for a pipe sees that its op is gone).
            let (f, p) = fifo(&mut rt, &mut r, dir.path());
            // SAFETY: `raw` outlives the runtime, dropped below.
            let rb = unsafe { ReadBuf::raw(raw.as_mut_ptr(), raw.len()) };
            rt.fs_read(f, rb, None, 201).unwrap();
            let mut out = Vec::new();
            rt.reap(&mut out, 64, Some(Duration::from_millis(20)));
            Some(p)
        };
        let start = Instant::now();
        drop(rt);
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{backend:?} {fs:?}"
        );
        if let Some(p) = fifo_path {
            feed(&p);
        }
        assert_eq!(raw, vec![0u8; 64]);
    }
}

#[test]
fn shutdown_completes_file_ops_with_canceled() {
    each(|rt, r, dir| {
        let (h, path) = fifo(rt, r, dir);
        rt.fs_read(h, ReadBuf::with_capacity(8), None, 95).unwrap();
        let mut out = Vec::new();
        rt.reap(&mut out, 8, Some(Duration::from_millis(20)));
        feed(&path);
        rt.shutdown_all();
        let c = r.wait(rt, 95);
        assert!(
            c.status() == Status::Canceled || c.result == 8,
            "canceled, or done before the shutdown: {c:?}"
        );
        assert_eq!(
            rt.fs_read_file(&path, 96),
            Err(Status::Shutdown),
            "refused after"
        );
        assert_eq!(rt.stats().in_flight, 0);
    });
}

#[test]
fn the_environment_picks_the_blocking_pool() {
    // Only this test sets the variable, and it reads it back through a fresh runtime.
    // SAFETY: no other test of this binary reads or writes POLYIO_FS_BACKEND.
    unsafe { std::env::set_var("POLYIO_FS_BACKEND", "threads") };
    let mut rt = Runtime::new(Options::default()).unwrap();
    // SAFETY: as above.
    unsafe { std::env::remove_var("POLYIO_FS_BACKEND") };
    assert_eq!(rt.fs_backend(), Ok(FsBackend::Threads), "read at creation");
    let mut rt2 = Runtime::new(Options::default()).unwrap();
    assert_eq!(
        rt2.fs_backend(),
        Ok(FsBackend::Uring),
        "io_uring by default here"
    );
    drop(rt);
}

/// EACCES needs a process without root's override: the test re-runs itself as `nobody`.
#[test]
fn unreadable_file_is_permission_denied() {
    use std::os::unix::process::CommandExt;
    if let Ok(path) = std::env::var("POLYIO_TEST_EACCES") {
        for (backend, fs) in SETUPS {
            let mut rt = runtime(backend, fs);
            let mut r = Reaper::new();
            rt.fs_open(Path::new(&path), libc::O_RDONLY, 0, 1).unwrap();
            assert_eq!(r.wait(&mut rt, 1).status(), Status::PermissionDenied);
            rt.fs_read_file(Path::new(&path), 2).unwrap();
            assert_eq!(r.wait(&mut rt, 2).status(), Status::PermissionDenied);
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret");
    std::fs::write(&path, b"no").unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "unreadable_file_is_permission_denied",
        "--nocapture",
    ])
    .env("POLYIO_TEST_EACCES", &path);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        cmd.uid(65534).gid(65534);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn vectored_reads_and_writes() {
    each(|rt, r, dir| {
        let path = dir.join("v");
        let h = open(rt, r, &path, RW_CREATE);
        let (a, b, c) = (noise(1000, 1), noise(5000, 2), noise(3, 3));
        // SAFETY: `c` outlives the write's completion, reaped below.
        let raw = unsafe { WriteBuf::raw(c.as_ptr(), c.len()) };
        let bufs = vec![
            WriteBuf::from_vec(a.clone()),
            WriteBuf::from_vec(b.clone()),
            raw,
        ];
        rt.fs_writev(h, bufs, Some(10), 110).unwrap();
        let done = r.wait(rt, 110);
        assert_eq!((done.op, ok(&done)), (OpCode::FsWrite, 6003));
        let want: Vec<u8> = [vec![0u8; 10], a, b, c].concat();
        assert_eq!(std::fs::read(&path).unwrap(), want);
        let (mut x, mut y) = (vec![0u8; 2000], vec![0u8; 9000]);
        let iov = [(x.as_mut_ptr(), x.len()), (y.as_mut_ptr(), y.len())];
        // SAFETY: `x` and `y` outlive the read's completion, reaped below.
        unsafe { rt.fs_readv(h, &iov, Some(5), 111) }.unwrap();
        let done = r.wait(rt, 111);
        assert_eq!((done.op, ok(&done)), (OpCode::FsRead, 6008));
        assert_eq!(x[..], want[5..2005]);
        assert_eq!(y[..4008], want[2005..]);
        assert_eq!(
            rt.fs_writev(h, Vec::new(), None, 112),
            Err(Status::InvalidArgument)
        );
        // SAFETY: an empty list names no memory.
        let empty = unsafe { rt.fs_readv(h, &[], None, 112) };
        assert_eq!(empty, Err(Status::InvalidArgument));
        close(rt, r, h);
    });
}

#[test]
fn more_ops_than_the_rings_queues_hold_all_complete() {
    each(|rt, r, dir| {
        let path = dir.join("many");
        let data = noise(4096, 8);
        std::fs::write(&path, &data).unwrap();
        let h = open(rt, r, &path, libc::O_RDONLY);
        // More than the completion queue holds (4096), submitted in one turn.
        let n = 5000u64;
        for i in 0..n {
            rt.fs_read(h, ReadBuf::with_capacity(16), Some(i % 4000), 1000 + i)
                .unwrap();
        }
        for i in 0..n {
            let c = r.wait(rt, 1000 + i);
            let at = (i % 4000) as usize;
            assert_eq!(c.buf.as_deref(), Some(&data[at..at + 16]));
        }
        assert_eq!(rt.stats().in_flight, 0);
        close(rt, r, h);
    });
}

/// The contract under a seeded random mix of file ops, cancels, deadlines, turns and a final
/// shutdown: every accepted submission ends in exactly one completion, none of a refused one.
#[test]
fn random_file_ops_complete_exactly_once() {
    each(|rt, r, dir| {
        let path = dir.join("mix");
        let data = noise(1 << 20, 6);
        std::fs::write(&path, &data).unwrap();
        let (fifo_h, _fifo) = fifo(rt, r, dir);
        let h = open(rt, r, &path, libc::O_RDWR);
        assert!(r.backlog.is_empty());
        let mut seed: u64 = 0x1234_5678;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut pending: std::collections::HashSet<u64> = Default::default();
        let mut seen: std::collections::HashSet<u64> = Default::default();
        let mut collect = |out: Vec<Completion>, pending: &mut std::collections::HashSet<u64>| {
            for c in out {
                assert!(pending.remove(&c.user_data), "unexpected or twice: {c:?}");
                assert!(seen.insert(c.user_data));
                if c.op == OpCode::FsRead && c.result > 0 {
                    if let Some(b) = &c.buf {
                        assert_eq!(b.len() as i64, c.result);
                    }
                }
            }
        };
        for ud in 10_000..12_000u64 {
            let accepted = match next(10) {
                0..=2 => {
                    let off = next(1 << 20);
                    rt.fs_read(h, ReadBuf::with_capacity(4096), Some(off), ud)
                }
                3 => rt.fs_read_file(&path, ud),
                4 => rt.fs_fstat(h, ud),
                5 => rt.fs_write(h, WriteBuf::from_vec(vec![7; 100]), Some(next(1 << 20)), ud),
                6 => rt.fs_read(fifo_h, ReadBuf::with_capacity(8), None, ud),
                7 => rt.fs_stat(&path, ud),
                _ => rt.timer(next(3), ud),
            };
            if accepted.is_ok() {
                pending.insert(ud);
            }
            match next(6) {
                0 => {
                    let victim = 10_000 + next(ud - 9_999);
                    let was = pending.contains(&victim);
                    let r = rt.cancel(victim);
                    assert!(r.is_ok() || r == Err(Status::NotFound), "{r:?}");
                    if !was {
                        assert_eq!(r, Err(Status::NotFound));
                    }
                }
                1 => {
                    let _ = rt.deadline(ud, next(3));
                }
                2 => {
                    let mut out = Vec::new();
                    rt.turn(&mut out, 64);
                    collect(out, &mut pending);
                }
                3 => {
                    let mut out = Vec::new();
                    rt.reap(&mut out, 64, Some(Duration::from_millis(1)));
                    collect(out, &mut pending);
                }
                _ => {}
            }
        }
        rt.shutdown_all();
        assert_eq!(rt.stats().in_flight, 0);
        let mut out = Vec::new();
        while rt.turn(&mut out, 1024) > 0 {}
        collect(out, &mut pending);
        assert!(pending.is_empty(), "never completed: {pending:?}");
    });
}
