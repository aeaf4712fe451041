//! The Rust worker of `make bench-files` (`tests/bench/files/run.py` drives it): runs one
//! workload for one row and prints `{"secs": .., "cpu": ..}`, every byte verified. Rows:
//! polyio's core API through io_uring and through its blocking pool, `tokio::fs`, and plain
//! blocking calls on one thread.
//!
//! Usage: `bench-files ROW WORKLOAD DIR COUNT`, DIR laid out by run.py: `pattern.bin` (the
//! bytes every file is cut from), `small/<i>`, `big`, `offsets.bin` (u64 LE), `out/`.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use polyio_core::{Completion, FsBackend, Handle, Options, ReadBuf, Runtime, WriteBuf};

const IN_FLIGHT: usize = 64;
const SMALL: usize = 4096;
const CHUNK: usize = 64 * 1024;
/// The pattern's period (a prime, so no read lines up with it by chance); `pattern.bin`
/// holds `PERIOD + CHUNK` bytes so that any read of at most `CHUNK` bytes is one slice.
const PERIOD: u64 = 1_048_573;

/// The bytes and paths every row works on.
struct Setup {
    pattern: Vec<u8>,
    dir: PathBuf,
    small: Vec<PathBuf>,
    big: PathBuf,
    big_len: u64,
    offsets: Vec<u64>,
    writes: usize,
}

impl Setup {
    /// What `len` bytes of the big file at `offset` hold.
    fn big_at(&self, offset: u64, len: usize) -> &[u8] {
        let at = (offset % PERIOD) as usize;
        &self.pattern[at..at + len]
    }

    /// What small file `i` (read or written) holds.
    fn small_file(&self, i: usize) -> &[u8] {
        let at = (i as u64 * 4099 % PERIOD) as usize;
        &self.pattern[at..at + SMALL]
    }

    fn out(&self, i: usize) -> PathBuf {
        self.dir.join("out").join(i.to_string())
    }
}

fn setup(dir: &Path, count: usize) -> Setup {
    let raw = fs::read(dir.join("offsets.bin")).unwrap();
    let offsets = raw
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .take(count)
        .collect();
    let big = dir.join("big");
    Setup {
        pattern: fs::read(dir.join("pattern.bin")).unwrap(),
        dir: dir.to_path_buf(),
        small: (0..count)
            .map(|i| dir.join("small").join(i.to_string()))
            .collect(),
        big_len: fs::metadata(&big).unwrap().len(),
        big,
        offsets,
        writes: count,
    }
}

// ---- polyio (core API, caller-owned buffers) ----------------------------------------

struct Polyio {
    rt: Runtime,
    out: Vec<Completion>,
}

impl Polyio {
    fn new(fs: FsBackend) -> Polyio {
        let mut rt = Runtime::new(Options {
            fs_backend: fs,
            ..Options::default()
        })
        .unwrap();
        assert_eq!(rt.fs_backend(), Ok(fs));
        Polyio {
            rt,
            out: Vec::new(),
        }
    }

    /// Reaps at least one completion; returns them.
    fn reap(&mut self) -> Vec<Completion> {
        self.out.clear();
        while self
            .rt
            .reap(&mut self.out, 256, Some(Duration::from_secs(10)))
            == 0
        {}
        std::mem::take(&mut self.out)
    }

    fn open(&mut self, p: &Path, flags: i32) -> Handle {
        self.rt.fs_open(p, flags, 0o644, u64::MAX).unwrap();
        let c = self.reap().pop().unwrap();
        assert!(c.result >= 0, "{c:?}");
        c.handle
    }

    fn read_files(&mut self, s: &Setup) {
        let mut next = 0;
        let mut live = 0;
        while next < s.small.len() || live > 0 {
            while live < IN_FLIGHT && next < s.small.len() {
                self.rt.fs_read_file(&s.small[next], next as u64).unwrap();
                next += 1;
                live += 1;
            }
            for c in self.reap() {
                live -= 1;
                assert_eq!(c.result, SMALL as i64);
                assert!(c.buf.as_deref() == Some(s.small_file(c.user_data as usize)));
            }
        }
    }

    fn preads(&mut self, s: &Setup) {
        let offs = &s.offsets;
        let f = self.open(&s.big, libc::O_RDONLY);
        let mut bufs = vec![vec![0u8; SMALL]; IN_FLIGHT];
        let mut free: Vec<usize> = (0..IN_FLIGHT).collect();
        let mut slot_off = vec![0u64; IN_FLIGHT];
        let mut next = 0;
        let mut live = 0;
        while next < offs.len() || live > 0 {
            while let (Some(&slot), true) = (free.last(), next < offs.len()) {
                free.pop();
                slot_off[slot] = offs[next];
                // SAFETY: `bufs[slot]` is not touched until this read's completion.
                let rb = unsafe { ReadBuf::raw(bufs[slot].as_mut_ptr(), SMALL) };
                self.rt
                    .fs_read(f, rb, Some(offs[next]), slot as u64)
                    .unwrap();
                next += 1;
                live += 1;
            }
            for c in self.reap() {
                live -= 1;
                let slot = c.user_data as usize;
                assert_eq!(c.result, SMALL as i64);
                assert!(bufs[slot] == s.big_at(slot_off[slot], SMALL));
                free.push(slot);
            }
        }
        self.rt.close(f).unwrap();
    }

    fn sequential(&mut self, s: &Setup) {
        let f = self.open(&s.big, libc::O_RDONLY);
        let mut buf = vec![0u8; CHUNK];
        for at in (0..s.big_len).step_by(CHUNK) {
            // SAFETY: `buf` is not touched until the completion, reaped below.
            let rb = unsafe { ReadBuf::raw(buf.as_mut_ptr(), CHUNK) };
            self.rt.fs_read(f, rb, Some(at), 0).unwrap();
            let c = self.reap().pop().unwrap();
            assert_eq!(c.result, CHUNK as i64);
            assert!(buf == s.big_at(at, CHUNK));
        }
        self.rt.close(f).unwrap();
    }

    fn write_fsync(&mut self, s: &Setup) {
        for i in 0..s.writes {
            let data = s.small_file(i);
            let f = self.open(&s.out(i), libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC);
            // SAFETY: `data` outlives the write, reaped below.
            let wb = unsafe { WriteBuf::raw(data.as_ptr(), SMALL) };
            self.rt.fs_write(f, wb, Some(0), 1).unwrap();
            assert_eq!(self.reap().pop().unwrap().result, SMALL as i64);
            self.rt.fs_fsync(f, false, 2).unwrap();
            assert_eq!(self.reap().pop().unwrap().result, 0);
            self.rt.close(f).unwrap();
        }
    }
}

// ---- tokio::fs and plain blocking calls --------------------------------------------

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(64)
        .build()
        .unwrap()
}

/// 64 tasks, each reading the next file not yet taken.
fn tokio_read_files(s: &'static Setup) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    tokio_rt().block_on(async {
        let tasks: Vec<_> = (0..IN_FLIGHT)
            .map(|_| {
                tokio::spawn(async move {
                    loop {
                        let i = NEXT.fetch_add(1, Ordering::Relaxed);
                        let Some(p) = s.small.get(i) else { break };
                        assert!(tokio::fs::read(p).await.unwrap() == s.small_file(i));
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
}

fn tokio_preads(s: &Setup) {
    let big = std::sync::Arc::new(fs::File::open(&s.big).unwrap());
    tokio_rt().block_on(async {
        let mut live = tokio::task::JoinSet::new();
        for &o in &s.offsets {
            if live.len() == IN_FLIGHT {
                let (o, b): (u64, Vec<u8>) = live.join_next().await.unwrap().unwrap();
                assert!(b == s.big_at(o, SMALL));
            }
            let f = big.clone();
            live.spawn_blocking(move || {
                let mut b = vec![0u8; SMALL];
                f.read_exact_at(&mut b, o).unwrap();
                (o, b)
            });
        }
        while let Some(r) = live.join_next().await {
            let (o, b) = r.unwrap();
            assert!(b == s.big_at(o, SMALL));
        }
    });
}

fn tokio_sequential(s: &Setup) {
    use tokio::io::AsyncReadExt;
    tokio_rt().block_on(async {
        let mut f = tokio::fs::File::open(&s.big).await.unwrap();
        let mut buf = vec![0u8; CHUNK];
        for at in (0..s.big_len).step_by(CHUNK) {
            f.read_exact(&mut buf).await.unwrap();
            assert!(buf == s.big_at(at, CHUNK));
        }
    });
}

fn tokio_write_fsync(s: &Setup) {
    use tokio::io::AsyncWriteExt;
    tokio_rt().block_on(async {
        for i in 0..s.writes {
            let mut f = tokio::fs::File::create(s.out(i)).await.unwrap();
            f.write_all(s.small_file(i)).await.unwrap();
            f.sync_all().await.unwrap();
        }
    });
}

fn blocking_read_files(s: &Setup) {
    for (i, p) in s.small.iter().enumerate() {
        assert!(fs::read(p).unwrap() == s.small_file(i));
    }
}

fn blocking_preads(s: &Setup) {
    let f = fs::File::open(&s.big).unwrap();
    let mut b = vec![0u8; SMALL];
    for &o in &s.offsets {
        f.read_exact_at(&mut b, o).unwrap();
        assert!(b == s.big_at(o, SMALL));
    }
}

fn blocking_sequential(s: &Setup) {
    use std::io::Read;
    let mut f = fs::File::open(&s.big).unwrap();
    let mut buf = vec![0u8; CHUNK];
    for at in (0..s.big_len).step_by(CHUNK) {
        f.read_exact(&mut buf).unwrap();
        assert!(buf == s.big_at(at, CHUNK));
    }
}

fn blocking_write_fsync(s: &Setup) {
    use std::io::Write;
    for i in 0..s.writes {
        let mut f = fs::File::create(s.out(i)).unwrap();
        f.write_all(s.small_file(i)).unwrap();
        f.sync_all().unwrap();
    }
}

/// User + system CPU seconds of the whole process (every thread) so far.
fn cpu_secs() -> f64 {
    // SAFETY: an all-zero `rusage` is a valid value, and getrusage only writes into it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a live, writable rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, row, workload, dir, count] = &args[..] else {
        eprintln!("usage: bench-files ROW WORKLOAD DIR COUNT");
        std::process::exit(2);
    };
    let count: usize = count.parse().expect("COUNT is a number");
    let s: &'static Setup = Box::leak(Box::new(setup(Path::new(dir), count)));
    let backend = match row.as_str() {
        "polyio-core-uring" => Some(FsBackend::Uring),
        "polyio-core-threads" => Some(FsBackend::Threads),
        _ => None,
    };
    let mut p = backend.map(Polyio::new);
    let (cpu, t) = (cpu_secs(), Instant::now());
    match (p.as_mut(), row.as_str(), workload.as_str()) {
        (Some(p), _, "read_small_files") => p.read_files(s),
        (Some(p), _, "random_pread_4k") => p.preads(s),
        (Some(p), _, "sequential_64k") => p.sequential(s),
        (Some(p), _, "write_fsync_4k") => p.write_fsync(s),
        (None, "tokio-fs", "read_small_files") => tokio_read_files(s),
        (None, "tokio-fs", "random_pread_4k") => tokio_preads(s),
        (None, "tokio-fs", "sequential_64k") => tokio_sequential(s),
        (None, "tokio-fs", "write_fsync_4k") => tokio_write_fsync(s),
        (None, "rust-blocking", "read_small_files") => blocking_read_files(s),
        (None, "rust-blocking", "random_pread_4k") => blocking_preads(s),
        (None, "rust-blocking", "sequential_64k") => blocking_sequential(s),
        (None, "rust-blocking", "write_fsync_4k") => blocking_write_fsync(s),
        _ => {
            eprintln!("unknown row {row} or workload {workload}");
            std::process::exit(2);
        }
    }
    let secs = t.elapsed().as_secs_f64();
    println!("{{\"secs\": {secs:.6}, \"cpu\": {:.6}}}", cpu_secs() - cpu);
}
