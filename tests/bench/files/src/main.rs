//! `make bench-files`: the four file workloads, each run by every row side by side
//! in one process, every byte verified: polyio through io_uring and through its blocking
//! pool (the core API with caller buffers, what the C API does), `tokio::fs` (a blocking-pool
//! hop per call) and plain blocking calls on one thread. Writes `target/bench/files.json`.
//!
//! The workloads: read 10,000 files of 4 KiB, 64 in flight; random 4 KiB `pread`s on a
//! 1 GiB file, 64 in flight; a sequential read of that file in 64 KiB chunks; write + fsync
//! of 1,000 files of 4 KiB. `BENCH_FILES_SCALE` (default 1.0) scales every count and size
//! (a smoke run: 0.01).

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use polyio_core::{Completion, FsBackend, Handle, Options, ReadBuf, Runtime, WriteBuf};

const IN_FLIGHT: usize = 64;
const SMALL: usize = 4096;
const CHUNK: usize = 64 * 1024;

/// The byte at `offset` of every test file: verifiable without keeping a copy.
fn byte_at(seed: u64, offset: u64) -> u8 {
    let x = (offset / 8)
        .wrapping_add(seed)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (x >> (56 - 8 * (offset % 8).min(7))) as u8
}

fn fill(seed: u64, offset: u64, buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = byte_at(seed, offset + i as u64);
    }
}

fn verify(seed: u64, offset: u64, buf: &[u8]) {
    for (i, b) in buf.iter().enumerate() {
        assert_eq!(
            *b,
            byte_at(seed, offset + i as u64),
            "byte {} of seed {seed}",
            offset + i as u64
        );
    }
}

struct Setup {
    dir: PathBuf,
    small: Vec<PathBuf>,
    big: PathBuf,
    big_len: u64,
    preads: usize,
    writes: usize,
}

fn setup(scale: f64) -> Setup {
    let dir = PathBuf::from("target/bench/files-data");
    fs::create_dir_all(dir.join("small")).unwrap();
    fs::create_dir_all(dir.join("out")).unwrap();
    let n_small = ((10_000.0 * scale) as usize).max(64);
    let small: Vec<PathBuf> = (0..n_small)
        .map(|i| {
            let p = dir.join("small").join(format!("{i}"));
            if fs::metadata(&p).map(|m| m.len()).ok() != Some(SMALL as u64) {
                let mut b = vec![0u8; SMALL];
                fill(i as u64, 0, &mut b);
                fs::write(&p, b).unwrap();
            }
            p
        })
        .collect();
    let big_len = (((1u64 << 30) as f64 * scale) as u64 / CHUNK as u64).max(16) * CHUNK as u64;
    let big = dir.join("big");
    if fs::metadata(&big).map(|m| m.len()).ok() != Some(big_len) {
        let f = fs::File::create(&big).unwrap();
        let mut b = vec![0u8; CHUNK];
        for at in (0..big_len).step_by(CHUNK) {
            fill(u64::MAX, at, &mut b);
            f.write_all_at(&b, at).unwrap();
        }
    }
    // Warm the page cache.
    for p in &small {
        fs::read(p).unwrap();
    }
    fs::read(&big).unwrap();
    Setup {
        dir,
        small,
        big,
        big_len,
        preads: ((100_000.0 * scale) as usize).max(64),
        writes: ((1_000.0 * scale) as usize).max(64),
    }
}

/// Deterministic offsets for the random preads (4 KiB aligned).
fn offsets(s: &Setup) -> Vec<u64> {
    let slots = s.big_len / SMALL as u64;
    let mut x = 0x1234_5678_9abc_def0u64;
    (0..s.preads)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % slots) * SMALL as u64
        })
        .collect()
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
                verify(c.user_data, 0, c.buf.as_deref().unwrap());
            }
        }
    }

    fn preads(&mut self, s: &Setup, offs: &[u64]) {
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
                verify(u64::MAX, slot_off[slot], &bufs[slot]);
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
            verify(u64::MAX, at, &buf);
        }
        self.rt.close(f).unwrap();
    }

    fn write_fsync(&mut self, s: &Setup, tag: &str) {
        let mut data = vec![0u8; SMALL];
        fill(7, 0, &mut data);
        for i in 0..s.writes {
            let p = s.dir.join("out").join(format!("{tag}-{i}"));
            let f = self.open(&p, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC);
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

fn tokio_read_files(s: &Setup) {
    tokio_rt().block_on(async {
        let mut next = 0;
        while next < s.small.len() {
            let end = (next + IN_FLIGHT).min(s.small.len());
            let jobs: Vec<_> = (next..end)
                .map(|i| {
                    let p = s.small[i].clone();
                    tokio::spawn(async move { (i, tokio::fs::read(p).await.unwrap()) })
                })
                .collect();
            for j in jobs {
                let (i, b) = j.await.unwrap();
                verify(i as u64, 0, &b);
            }
            next = end;
        }
    });
}

fn tokio_preads(s: &Setup, offs: &[u64]) {
    let big = std::sync::Arc::new(fs::File::open(&s.big).unwrap());
    tokio_rt().block_on(async {
        for batch in offs.chunks(IN_FLIGHT) {
            let jobs: Vec<_> = batch
                .iter()
                .map(|&o| {
                    let f = big.clone();
                    tokio::task::spawn_blocking(move || {
                        let mut b = vec![0u8; SMALL];
                        f.read_exact_at(&mut b, o).unwrap();
                        (o, b)
                    })
                })
                .collect();
            for j in jobs {
                let (o, b) = j.await.unwrap();
                verify(u64::MAX, o, &b);
            }
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
            verify(u64::MAX, at, &buf);
        }
    });
}

fn tokio_write_fsync(s: &Setup) {
    use tokio::io::AsyncWriteExt;
    let mut data = vec![0u8; SMALL];
    fill(7, 0, &mut data);
    tokio_rt().block_on(async {
        for i in 0..s.writes {
            let mut f = tokio::fs::File::create(s.dir.join("out").join(format!("tokio-{i}")))
                .await
                .unwrap();
            f.write_all(&data).await.unwrap();
            f.sync_all().await.unwrap();
        }
    });
}

fn blocking_read_files(s: &Setup) {
    for (i, p) in s.small.iter().enumerate() {
        verify(i as u64, 0, &fs::read(p).unwrap());
    }
}

fn blocking_preads(s: &Setup, offs: &[u64]) {
    let f = fs::File::open(&s.big).unwrap();
    let mut b = vec![0u8; SMALL];
    for &o in offs {
        f.read_exact_at(&mut b, o).unwrap();
        verify(u64::MAX, o, &b);
    }
}

fn blocking_sequential(s: &Setup) {
    use std::io::Read;
    let mut f = fs::File::open(&s.big).unwrap();
    let mut buf = vec![0u8; CHUNK];
    for at in (0..s.big_len).step_by(CHUNK) {
        f.read_exact(&mut buf).unwrap();
        verify(u64::MAX, at, &buf);
    }
}

fn blocking_write_fsync(s: &Setup) {
    use std::io::Write;
    let mut data = vec![0u8; SMALL];
    fill(7, 0, &mut data);
    for i in 0..s.writes {
        let mut f = fs::File::create(s.dir.join("out").join(format!("blocking-{i}"))).unwrap();
        f.write_all(&data).unwrap();
        f.sync_all().unwrap();
    }
}

fn time(f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64()
}

fn main() {
    let scale: f64 = std::env::var("BENCH_FILES_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    let s = setup(scale);
    let offs = offsets(&s);
    let counts = [
        s.small.len(),
        offs.len(),
        (s.big_len / CHUNK as u64) as usize,
        s.writes,
    ];
    let names = [
        "read_small_files",
        "random_pread_4k",
        "sequential_64k",
        "write_fsync_4k",
    ];
    let mut rows: Vec<(&str, [f64; 4])> = Vec::new();
    for (name, fsb) in [
        ("polyio-uring", FsBackend::Uring),
        ("polyio-threads", FsBackend::Threads),
    ] {
        let mut p = Polyio::new(fsb);
        let t = [
            time(|| p.read_files(&s)),
            time(|| p.preads(&s, &offs)),
            time(|| p.sequential(&s)),
            time(|| p.write_fsync(&s, name)),
        ];
        rows.push((name, t));
    }
    rows.push((
        "tokio-fs",
        [
            time(|| tokio_read_files(&s)),
            time(|| tokio_preads(&s, &offs)),
            time(|| tokio_sequential(&s)),
            time(|| tokio_write_fsync(&s)),
        ],
    ));
    rows.push((
        "blocking",
        [
            time(|| blocking_read_files(&s)),
            time(|| blocking_preads(&s, &offs)),
            time(|| blocking_sequential(&s)),
            time(|| blocking_write_fsync(&s)),
        ],
    ));
    let mut json = String::from("{\n  \"scale\": ");
    json += &format!("{scale},\n  \"rows\": {{\n");
    println!(
        "{:<16} {:>18} {:>18} {:>18} {:>18}   (ops/s)",
        "", names[0], names[1], names[2], names[3]
    );
    for (ri, (name, t)) in rows.iter().enumerate() {
        let ops: Vec<f64> = t.iter().zip(counts).map(|(t, n)| n as f64 / t).collect();
        println!(
            "{name:<16} {:>18.0} {:>18.0} {:>18.0} {:>18.0}",
            ops[0], ops[1], ops[2], ops[3]
        );
        let cells: Vec<String> = names
            .iter()
            .zip(&ops)
            .map(|(n, o)| format!("\"{n}\": {o:.1}"))
            .collect();
        json += &format!(
            "    \"{name}\": {{{}}}{}\n",
            cells.join(", "),
            if ri + 1 < rows.len() { "," } else { "" }
        );
    }
    json += "  }\n}\n";
    fs::create_dir_all("target/bench").unwrap();
    fs::write("target/bench/files.json", json).unwrap();
    println!("wrote target/bench/files.json");
}
