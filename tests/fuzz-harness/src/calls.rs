//! The C ABI under a fuzzed sequence of calls on loopback: TCP connect/accept/read/write/
//! shutdown/close (with outside peers that write, read and reset), timers, UDP send and
//! receive, files, cancel, deadline, turn, reap, runtime shutdown and free, payload release.
//! A ledger checks the contract: exactly one completion per accepted submission (multi-shot:
//! MORE ones, then one last), none for a refused one, a status each op may end with, and no
//! buffer written outside its bounds or after its completion (guard bytes around every read
//! buffer, poison beyond the bytes read, snapshots re-checked after the runtime is freed; under
//! cargo-fuzz, AddressSanitizer sees a write buffer read after its completion freed it).

use std::collections::{HashMap, HashSet};
use std::ffi::{CStr, CString};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use polyio::completion::{
    POLYIO_COMPLETION_MORE, POLYIO_COMPLETION_PARTIAL, polyio_addr, polyio_buffer_release,
    polyio_completion, polyio_op,
};
use polyio::runtime::{
    polyio_options, polyio_options_init, polyio_runtime, polyio_runtime_free, polyio_runtime_new,
    polyio_runtime_shutdown, polyio_runtime_stats, polyio_stats, polyio_turn,
};
use polyio::status::polyio_status as S;

use crate::input::Input;

/// Bytes around each read buffer that nothing may write.
const GUARD: usize = 32;
/// What a read buffer holds before its read: a read may change only its first `result` bytes.
const POISON: u8 = 0xA5;
/// Every byte written (by polyio or by an outside peer) is in `DATA..DATA + 16`, so a read
/// that returns anything else returned bytes nobody wrote.
const DATA: u8 = 0x40;
/// Calls per input at most (the rest of a long input is ignored).
const MAX_STEPS: usize = 256;
/// Connections kept open at most (more are closed as they come).
const MAX_CONNS: usize = 8;

/// A read buffer with guard bytes on both sides.
#[derive(Debug)]
struct Guarded {
    mem: Box<[u8]>,
    cap: usize,
}

impl Guarded {
    fn new(cap: usize) -> Guarded {
        Guarded {
            mem: vec![POISON; cap + 2 * GUARD].into_boxed_slice(),
            cap,
        }
    }

    fn ptr(&mut self) -> *mut u8 {
        self.mem[GUARD..].as_mut_ptr()
    }

    fn data(&self) -> &[u8] {
        &self.mem[GUARD..GUARD + self.cap]
    }

    /// Panics unless the guards hold poison and nothing past `filled` bytes was written.
    fn check(&self, filled: usize, what: &str) {
        assert!(
            filled <= self.cap,
            "{what}: {filled} bytes in a {}-byte buffer",
            self.cap
        );
        assert!(
            self.mem[..GUARD].iter().all(|&b| b == POISON),
            "{what}: wrote before its buffer"
        );
        assert!(
            self.mem[GUARD + self.cap..].iter().all(|&b| b == POISON),
            "{what}: wrote past its buffer"
        );
        assert!(
            self.data()[filled..].iter().all(|&b| b == POISON),
            "{what}: wrote past the {filled} bytes it reported"
        );
    }
}

/// Where a pending operation stands in the ledger.
#[derive(Debug)]
struct Pending {
    op: polyio_op,
    /// The handle it was queued on (0 for connect and timers).
    target: u64,
    /// The buffer of a read, receive or file read (kept alive until the completion).
    buf: Option<Guarded>,
    /// The bytes of a write or send (freed at the completion).
    data: Option<Box<[u8]>>,
    /// A multi-shot read or receive.
    multi: bool,
    /// `polyio_cancel` said OK: its completion must be CANCELED.
    canceled: bool,
    /// Its handle was closed or the runtime shut down: CANCELED is allowed.
    may_cancel: bool,
    /// A deadline was set: TIMED_OUT is allowed.
    deadline: bool,
}

/// Bytes a buffer held when its operation completed; checked again after the runtime is
/// freed (nothing may write it in between).
#[derive(Debug)]
struct Retired {
    buf: Guarded,
    snapshot: Box<[u8]>,
    what: String,
}

struct World {
    rt: *mut polyio_runtime,
    next_ud: u64,
    pending: HashMap<u64, Pending>,
    done: HashSet<u64>,
    reaped: u64,
    listener: u64,
    port: u16,
    dead_port: u16,
    conns: Vec<u64>,
    udps: Vec<(u64, polyio_addr)>,
    files: Vec<u64>,
    closed: Vec<u64>,
    peers: Vec<TcpStream>,
    retired: Vec<Retired>,
    /// Payloads lent by MORE completions and not yet released.
    lent: Vec<u64>,
    released: Vec<u64>,
    shut_down: bool,
    /// Completions queued when the runtime shut down: they stand as they were; every later
    /// one is a cancellation.
    queued_at_shutdown: u64,
    dir: PathBuf,
}

/// Runs `data` as a program of C calls and checks the contract; panics on a violation.
pub fn calls(data: &[u8]) {
    let mut input = Input::new(data);
    let Some(mut w) = World::new(&mut input) else {
        return;
    };
    let mut steps = 0;
    while !input.is_empty() && steps < MAX_STEPS {
        w.step(&mut input);
        w.check_counters();
        steps += 1;
    }
    w.finish();
}

/// A per-process scratch directory for the file operations.
fn scratch_dir() -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed) % 4;
    let dir = std::env::temp_dir().join(format!("polyio-fuzz-{}-{n}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    dir
}

fn status(code: i64) -> String {
    // SAFETY: polyio_status_name takes any code and returns a static string.
    let name = unsafe { CStr::from_ptr(polyio::status::polyio_status_name(code as i32)) };
    name.to_string_lossy().into_owned()
}

fn is(code: i64, s: S) -> bool {
    code == s as i64
}

/// Bytes an operation may have read: what writers write (and, from a file, zeros of a hole).
fn plausible(bytes: &[u8], zeros: bool) -> bool {
    bytes
        .iter()
        .all(|&b| (DATA..DATA + 16).contains(&b) || (zeros && b == 0))
}

/// `POLYIO_FUZZ_TRACE=1` prints each step and completion (to read a failing input).
fn trace() -> bool {
    static TRACE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("POLYIO_FUZZ_TRACE").is_some())
}

fn is_file_op(op: polyio_op) -> bool {
    op as u32 >= polyio_op::FsOpen as u32
}

impl World {
    fn new(input: &mut Input) -> Option<World> {
        let mut opts = std::mem::MaybeUninit::<polyio_options>::uninit();
        // SAFETY: `opts` is writable memory for one polyio_options; init fills it.
        let mut opts = unsafe {
            polyio_options_init(opts.as_mut_ptr());
            opts.assume_init()
        };
        opts.backend = u32::from(input.byte() % 3);
        opts.max_ops = 2 + u32::from(input.byte() % 62);
        opts.fs_backend = u32::from(input.byte() % 3);
        let mut rt = ptr::null_mut();
        // SAFETY: valid options and out-pointer.
        let r = unsafe { polyio_runtime_new(&opts, &mut rt) };
        if r != S::Ok {
            // io_uring asked for where the kernel refuses it, say.
            assert!(rt.is_null(), "out-param written on failure");
            return None;
        }
        let mut w = World {
            rt,
            next_ud: 1,
            pending: HashMap::new(),
            done: HashSet::new(),
            reaped: 0,
            listener: 0,
            port: 0,
            dead_port: 0,
            conns: Vec::new(),
            udps: Vec::new(),
            files: Vec::new(),
            closed: Vec::new(),
            peers: Vec::new(),
            retired: Vec::new(),
            lent: Vec::new(),
            released: Vec::new(),
            shut_down: false,
            queued_at_shutdown: 0,
            dir: scratch_dir(),
        };
        w.listener = w.listen().expect("listen on 127.0.0.1");
        w.port = w.tcp_port(w.listener);
        let dead = w.listen().expect("listen on 127.0.0.1");
        w.dead_port = w.tcp_port(dead);
        w.close(dead);
        for _ in 0..2 {
            w.open_udp();
        }
        for i in 0..2 {
            let _ = std::fs::remove_file(w.dir.join(format!("f{i}")));
        }
        Some(w)
    }

    fn ud(&mut self) -> u64 {
        let ud = self.next_ud;
        self.next_ud += 1;
        ud
    }

    fn listen(&mut self) -> Option<u64> {
        let mut h = 0;
        // SAFETY: live runtime, NUL-terminated host, writable out-param.
        let r = unsafe {
            polyio::tcp::polyio_tcp_listen(self.rt, c"127.0.0.1".as_ptr(), 0, 0, 0, &mut h)
        };
        (r == S::Ok).then_some(h)
    }

    fn tcp_port(&self, h: u64) -> u16 {
        let mut a = std::mem::MaybeUninit::<polyio_addr>::uninit();
        // SAFETY: live runtime, writable out-param.
        let r = unsafe { polyio::tcp::polyio_tcp_local_addr(self.rt, h, a.as_mut_ptr()) };
        assert_eq!(r, S::Ok);
        // SAFETY: written on success.
        unsafe { a.assume_init() }.port
    }

    fn open_udp(&mut self) {
        let mut h = 0;
        // SAFETY: live runtime, NUL-terminated ip, writable out-param.
        let r =
            unsafe { polyio::udp::polyio_udp_bind(self.rt, c"127.0.0.1".as_ptr(), 0, 0, &mut h) };
        if r != S::Ok {
            assert!(self.shut_down, "udp bind: {r:?}");
            return;
        }
        let mut a = std::mem::MaybeUninit::<polyio_addr>::uninit();
        // SAFETY: live runtime, writable out-param.
        let r = unsafe { polyio::udp::polyio_udp_local_addr(self.rt, h, a.as_mut_ptr()) };
        assert_eq!(r, S::Ok);
        // SAFETY: written on success.
        self.udps.push((h, unsafe { a.assume_init() }));
    }

    fn close(&mut self, h: u64) {
        // SAFETY: live runtime.
        let r = unsafe { polyio::stream::polyio_close(self.rt, h) };
        if trace() {
            eprintln!("  close {h:#x}: {r:?}");
        }
        if r == S::Ok {
            for p in self.pending.values_mut() {
                if p.target == h {
                    p.may_cancel = true;
                }
            }
            self.closed.push(h);
        } else {
            assert!(
                r == S::BadHandle || (self.shut_down && r == S::Shutdown),
                "close({h:#x}): {r:?}"
            );
        }
        self.conns.retain(|&c| c != h);
        self.udps.retain(|&(u, _)| u != h);
        self.files.retain(|&f| f != h);
    }

    /// A handle to aim at: mostly a live one of `live`, sometimes a closed or made-up one
    /// (which every call must refuse).
    fn target(&mut self, input: &mut Input, live: &[u64]) -> (u64, bool) {
        match input.below(16) {
            0 if !self.closed.is_empty() => {
                let h = self.closed[input.below(self.closed.len())];
                (h, true)
            }
            1 => {
                let h = input.u64();
                let known = live.contains(&h)
                    || self.conns.contains(&h)
                    || self.files.contains(&h)
                    || self.udps.iter().any(|&(u, _)| u == h)
                    || h == self.listener;
                (h, !known)
            }
            _ if !live.is_empty() => (live[input.below(live.len())], false),
            _ => (0, true),
        }
    }

    /// Records a submission's outcome; `bad` says the call had to refuse it.
    fn submitted(&mut self, ud: u64, r: S, p: Pending, bad: bool) {
        if trace() {
            eprintln!("  submit ud {ud} {:?} on {:#x}: {r:?}", p.op, p.target);
        }
        if r == S::Ok {
            assert!(!bad, "{:?} on a bad handle {:#x} accepted", p.op, p.target);
            assert!(!self.shut_down, "{:?} accepted after shutdown", p.op);
            self.pending.insert(ud, p);
        } else {
            assert!(r != S::Panic, "{:?}: PANIC", p.op);
            if self.shut_down {
                assert!(
                    r == S::Shutdown || r == S::BadHandle || r == S::InvalidArgument,
                    "{:?} after shutdown: {r:?}",
                    p.op
                );
            }
            // The buffer was never lent: dropping it is fine.
        }
    }

    fn pending(op: polyio_op, target: u64) -> Pending {
        Pending {
            op,
            target,
            buf: None,
            data: None,
            multi: false,
            canceled: false,
            may_cancel: false,
            deadline: false,
        }
    }

    /// Bytes to write: every one in `DATA..DATA + 16`.
    fn data(ud: u64, len: usize) -> Box<[u8]> {
        vec![DATA + (ud % 16) as u8; len].into_boxed_slice()
    }

    fn step(&mut self, input: &mut Input) {
        let kind = input.below(32);
        if trace() {
            eprintln!("step {kind} (next ud {})", self.next_ud);
        }
        match kind {
            // connect: the listener, or a port nothing listens on
            0 | 1 => {
                let port = if input.below(5) == 0 {
                    self.dead_port
                } else {
                    self.port
                };
                let ud = self.ud();
                // SAFETY: live runtime, NUL-terminated host.
                let r = unsafe {
                    polyio::tcp::polyio_tcp_connect(self.rt, c"127.0.0.1".as_ptr(), port, ud)
                };
                self.submitted(ud, r, World::pending(polyio_op::Connect, 0), false);
            }
            // accept
            2 | 3 => {
                let (l, bad) = if input.below(8) == 0 {
                    self.target(input, &[])
                } else {
                    (self.listener, false)
                };
                let ud = self.ud();
                // SAFETY: live runtime.
                let r = unsafe { polyio::tcp::polyio_accept(self.rt, l, ud) };
                self.submitted(ud, r, World::pending(polyio_op::Accept, l), bad);
            }
            // read
            4..=6 => {
                let conns = self.conns.clone();
                let (h, bad) = self.target(input, &conns);
                let cap = 1 + input.u16() as usize % 4096;
                let mut buf = Guarded::new(cap);
                let ud = self.ud();
                // SAFETY: `buf` has `cap` writable bytes and lives in the ledger until the
                // completion (or, refused, is dropped unread).
                let r = unsafe { polyio::stream::polyio_read(self.rt, h, buf.ptr(), cap, ud) };
                let mut p = World::pending(polyio_op::Read, h);
                p.buf = Some(buf);
                self.submitted(ud, r, p, bad);
            }
            // multi-shot read
            7 => {
                let conns = self.conns.clone();
                let (h, bad) = self.target(input, &conns);
                let cap = input.below(64) * 64;
                let ud = self.ud();
                // SAFETY: live runtime.
                let r = unsafe { polyio::stream::polyio_read_multishot(self.rt, h, cap, ud) };
                if cap == 0 {
                    assert!(r != S::Ok, "a multi-shot read of 0 bytes accepted");
                }
                let mut p = World::pending(polyio_op::Read, h);
                p.multi = true;
                self.submitted(ud, r, p, bad);
            }
            // write
            8..=10 => {
                let conns = self.conns.clone();
                let (h, bad) = self.target(input, &conns);
                let len = match input.below(8) {
                    0 => 0,
                    1 => 64 << 10 | input.u16() as usize,
                    _ => input.u16() as usize % 8192,
                };
                let ud = self.ud();
                let data = World::data(ud, len);
                // SAFETY: `data` holds `len` bytes and lives in the ledger until the completion.
                let r = unsafe { polyio::stream::polyio_write(self.rt, h, data.as_ptr(), len, ud) };
                let mut p = World::pending(polyio_op::Write, h);
                p.data = Some(data);
                self.submitted(ud, r, p, bad);
            }
            // try_write: no op, no completion
            11 => {
                let conns = self.conns.clone();
                let (h, bad) = self.target(input, &conns);
                let len = input.u16() as usize % 4096;
                let data = World::data(0, len);
                let mut written = usize::MAX;
                // SAFETY: `data` holds `len` bytes for the call; `written` is writable.
                let r = unsafe {
                    polyio::stream::polyio_try_write(self.rt, h, data.as_ptr(), len, &mut written)
                };
                if r == S::Ok {
                    assert!(!bad, "try_write on a bad handle {h:#x} accepted");
                    assert!(written <= len, "try_write wrote {written} of {len}");
                } else {
                    assert_eq!(
                        written,
                        usize::MAX,
                        "try_write wrote its out-param on {r:?}"
                    );
                }
            }
            // shutdown (write side)
            12 => {
                let conns = self.conns.clone();
                let (h, bad) = self.target(input, &conns);
                let ud = self.ud();
                // SAFETY: live runtime.
                let r = unsafe { polyio::stream::polyio_shutdown(self.rt, h, ud) };
                self.submitted(ud, r, World::pending(polyio_op::Shutdown, h), bad);
            }
            // close a connection, a UDP socket or a file (polyio_close takes any)
            13 => {
                let mut live = self.conns.clone();
                live.extend(self.udps.iter().map(|&(u, _)| u));
                live.extend(&self.files);
                let (h, _) = self.target(input, &live);
                self.close(h);
            }
            // timer
            14 | 15 => {
                let ms = u64::from(input.byte() % 8);
                let ud = self.ud();
                // SAFETY: live runtime.
                let r = unsafe { polyio::timer::polyio_timer(self.rt, ms, ud) };
                self.submitted(ud, r, World::pending(polyio_op::Timer, 0), false);
            }
            // cancel a pending, a finished or an unknown user_data
            16 | 17 => {
                let ud = self.pick_ud(input);
                // SAFETY: live runtime.
                let r = unsafe { polyio::cancel::polyio_cancel(self.rt, ud) };
                if r == S::Ok {
                    let p = self
                        .pending
                        .get_mut(&ud)
                        .unwrap_or_else(|| panic!("cancel({ud}) OK for nothing pending"));
                    p.canceled = true;
                    let file = is_file_op(p.op);
                    // SAFETY: live runtime.
                    let again = unsafe { polyio::cancel::polyio_cancel(self.rt, ud) };
                    // It completed during the call; except a file op on io_uring with the
                    // caller's buffer, pending until the kernel lets go of the buffer.
                    if !(file && again == S::Ok) {
                        assert_eq!(again, S::NotFound, "cancel({ud}) twice");
                    }
                } else {
                    assert_eq!(r, S::NotFound, "cancel({ud})");
                }
            }
            // deadline
            18 => {
                let ud = self.pick_ud(input);
                let ms = u64::from(input.byte() % 8);
                // SAFETY: live runtime.
                let r = unsafe { polyio::cancel::polyio_deadline(self.rt, ud, ms) };
                if r == S::Ok {
                    let p = self
                        .pending
                        .get_mut(&ud)
                        .unwrap_or_else(|| panic!("deadline({ud}) OK for nothing pending"));
                    p.deadline = true;
                } else {
                    assert_eq!(r, S::NotFound, "deadline({ud})");
                }
            }
            // turn
            19..=21 => {
                let max = input.below(16);
                self.turn(max);
            }
            // reap, waiting at most 1 ms
            22 => {
                let max = 1 + input.below(16);
                let mut out = vec![std::mem::MaybeUninit::<polyio_completion>::uninit(); max];
                // SAFETY: `out` has room for `max` completions.
                let n = unsafe {
                    polyio::runtime::polyio_reap(self.rt, out.as_mut_ptr().cast(), max, 1)
                };
                self.collect(&out, n, max);
            }
            // UDP send to one of the sockets
            23 => {
                let udps = self.udps.iter().map(|&(u, _)| u).collect::<Vec<_>>();
                let (h, bad) = self.target(input, &udps);
                let to = match self.udps.len() {
                    0 => None,
                    n => Some(self.udps[input.below(n)].1),
                };
                let len = input.u16() as usize % 1500;
                let ud = self.ud();
                let data = World::data(ud, len);
                let to_ptr = to.as_ref().map_or(ptr::null(), |a| a as *const polyio_addr);
                // SAFETY: `data` holds `len` bytes and lives in the ledger until the
                // completion; `to` is NULL or a valid record.
                let r = unsafe {
                    polyio::udp::polyio_udp_send(self.rt, h, data.as_ptr(), len, to_ptr, ud)
                };
                let mut p = World::pending(polyio_op::Send, h);
                p.data = Some(data);
                self.submitted(ud, r, p, bad);
            }
            // UDP receive, single or multi-shot
            24 => {
                let udps = self.udps.iter().map(|&(u, _)| u).collect::<Vec<_>>();
                let (h, bad) = self.target(input, &udps);
                let cap = 1 + input.u16() as usize % 2048;
                let ud = self.ud();
                if input.below(3) == 0 {
                    // SAFETY: live runtime.
                    let r = unsafe { polyio::udp::polyio_udp_recv_multishot(self.rt, h, cap, ud) };
                    let mut p = World::pending(polyio_op::Recv, h);
                    p.multi = true;
                    self.submitted(ud, r, p, bad);
                } else {
                    let mut buf = Guarded::new(cap);
                    // SAFETY: `buf` has `cap` writable bytes and lives in the ledger until
                    // the completion.
                    let r = unsafe { polyio::udp::polyio_udp_recv(self.rt, h, buf.ptr(), cap, ud) };
                    let mut p = World::pending(polyio_op::Recv, h);
                    p.buf = Some(buf);
                    self.submitted(ud, r, p, bad);
                }
            }
            // file open (one of two scratch files)
            25 => {
                let path = self.dir.join(format!("f{}", input.below(2)));
                let path = CString::new(path.into_os_string().into_encoded_bytes())
                    .expect("a temp path has no NUL");
                let flags = if input.below(2) == 0 {
                    libc::O_RDWR | libc::O_CREAT
                } else {
                    libc::O_RDONLY
                };
                let ud = self.ud();
                // SAFETY: live runtime, NUL-terminated path.
                let r =
                    unsafe { polyio::fs::polyio_fs_open(self.rt, path.as_ptr(), flags, 0o600, ud) };
                self.submitted(ud, r, World::pending(polyio_op::FsOpen, 0), false);
            }
            // file read
            26 => {
                let files = self.files.clone();
                let (h, bad) = self.target(input, &files);
                let cap = 1 + input.u16() as usize % 8192;
                let offset = if input.below(4) == 0 {
                    -1
                } else {
                    i64::from(input.u16())
                };
                let mut buf = Guarded::new(cap);
                let ud = self.ud();
                // SAFETY: `buf` has `cap` writable bytes and lives in the ledger until the
                // completion.
                let r =
                    unsafe { polyio::fs::polyio_fs_read(self.rt, h, buf.ptr(), cap, offset, ud) };
                let mut p = World::pending(polyio_op::FsRead, h);
                p.buf = Some(buf);
                self.submitted(ud, r, p, bad);
            }
            // file write
            27 => {
                let files = self.files.clone();
                let (h, bad) = self.target(input, &files);
                let len = input.u16() as usize % 8192;
                let offset = if input.below(4) == 0 {
                    -1
                } else {
                    i64::from(input.u16())
                };
                let ud = self.ud();
                let data = World::data(ud, len);
                // SAFETY: `data` holds `len` bytes and lives in the ledger until the completion.
                let r = unsafe {
                    polyio::fs::polyio_fs_write(self.rt, h, data.as_ptr(), len, offset, ud)
                };
                let mut p = World::pending(polyio_op::FsWrite, h);
                p.data = Some(data);
                self.submitted(ud, r, p, bad);
            }
            // file close (with its completion)
            28 => {
                let files = self.files.clone();
                let (h, bad) = self.target(input, &files);
                let ud = self.ud();
                // SAFETY: live runtime.
                let r = unsafe { polyio::fs::polyio_fs_close(self.rt, h, ud) };
                if r == S::Ok {
                    for p in self.pending.values_mut() {
                        if p.target == h {
                            p.may_cancel = true;
                        }
                    }
                    self.files.retain(|&f| f != h);
                    self.closed.push(h);
                }
                self.submitted(ud, r, World::pending(polyio_op::FsClose, h), bad);
            }
            // an outside peer: connect, write, read, or vanish with a reset
            29 => self.peer(input),
            // release a lent payload, one released already, or a made-up id
            30 => {
                let (id, fresh) = match input.below(4) {
                    0 if !self.released.is_empty() => {
                        (self.released[input.below(self.released.len())], false)
                    }
                    1 => (input.u64() | 1 << 63, false),
                    _ if !self.lent.is_empty() => {
                        let i = input.below(self.lent.len());
                        (self.lent.swap_remove(i), true)
                    }
                    _ => (0, false),
                };
                let r = polyio_buffer_release(id);
                if fresh {
                    assert_eq!(r, S::Ok, "release of lent payload {id}");
                    self.released.push(id);
                } else if id == 0 {
                    assert_eq!(r, S::InvalidArgument);
                } else {
                    assert_eq!(r, S::NotFound, "release of payload {id} not lent");
                }
            }
            // shut the runtime down (rarely): everything pending completes CANCELED
            _ => {
                if input.below(8) == 0 && !self.shut_down {
                    self.shutdown();
                } else {
                    self.open_udp_if_few();
                }
            }
        }
    }

    fn open_udp_if_few(&mut self) {
        if self.udps.len() < 2 && !self.shut_down {
            self.open_udp();
        }
    }

    fn pick_ud(&mut self, input: &mut Input) -> u64 {
        match input.below(4) {
            0 => input.u64(),
            1 if !self.done.is_empty() => {
                // A finished one: cancel and deadline must say NOT_FOUND.
                self.done
                    .iter()
                    .nth(input.below(self.done.len().min(256)))
                    .copied()
                    .unwrap_or(0)
            }
            _ if !self.pending.is_empty() => {
                let n = input.below(self.pending.len().min(256));
                self.pending.keys().nth(n).copied().unwrap_or(0)
            }
            _ => 0,
        }
    }

    fn peer(&mut self, input: &mut Input) {
        match input.below(4) {
            0 if self.peers.len() < 4 => {
                if let Ok(s) = TcpStream::connect(("127.0.0.1", self.port)) {
                    let _ = s.set_nonblocking(true);
                    self.peers.push(s);
                }
            }
            1 if !self.peers.is_empty() => {
                let i = input.below(self.peers.len());
                let n = 1 + input.u16() as usize % 16384;
                match self.peers[i].write(&vec![DATA + 15; n]) {
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(_) => drop(self.peers.remove(i)),
                }
            }
            2 if !self.peers.is_empty() => {
                let i = input.below(self.peers.len());
                let mut buf = vec![0u8; 64 << 10];
                match self.peers[i].read(&mut buf) {
                    Ok(n) => assert!(
                        plausible(&buf[..n], false),
                        "a peer read bytes nobody wrote"
                    ),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(_) => drop(self.peers.remove(i)),
                }
            }
            3 if !self.peers.is_empty() => {
                let i = input.below(self.peers.len());
                let s = self.peers.remove(i);
                if input.below(2) == 0 {
                    // SO_LINGER 0: closing sends a reset, not a FIN.
                    let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
                }
                drop(s);
            }
            _ => {}
        }
    }

    fn shutdown(&mut self) {
        for p in self.pending.values_mut() {
            p.may_cancel = true;
        }
        self.queued_at_shutdown = self.stats().completions - self.reaped;
        // SAFETY: live runtime.
        assert_eq!(unsafe { polyio_runtime_shutdown(self.rt) }, S::Ok);
        self.shut_down = true;
        self.conns.clear();
        self.udps.clear();
        self.files.clear();
    }

    fn turn(&mut self, max: usize) -> usize {
        let mut out = vec![std::mem::MaybeUninit::<polyio_completion>::uninit(); max];
        // SAFETY: `out` has room for `max` completions.
        let n = unsafe { polyio_turn(self.rt, out.as_mut_ptr().cast(), max) };
        self.collect(&out, n, max);
        n
    }

    fn collect(&mut self, out: &[std::mem::MaybeUninit<polyio_completion>], n: usize, max: usize) {
        assert!(n <= max, "{n} completions into room for {max}");
        for c in &out[..n] {
            // SAFETY: polyio wrote the first `n` records.
            let c = unsafe { c.assume_init() };
            self.on_completion(c);
        }
    }

    fn on_completion(&mut self, c: polyio_completion) {
        if trace() {
            eprintln!(
                "  completion ud {} op {} result {} flags {}",
                c.user_data, c.op, c.result, c.flags
            );
        }
        self.reaped += 1;
        let ud = c.user_data;
        let what = format!(
            "ud {ud} op {} result {} ({})",
            c.op,
            c.result,
            status(c.result)
        );
        assert!(
            c.result >= 0 || status(c.result) != "UNKNOWN",
            "{what}: unknown status"
        );
        if c.flags & POLYIO_COMPLETION_MORE != 0 {
            let p = self
                .pending
                .get(&ud)
                .unwrap_or_else(|| panic!("{what}: MORE for nothing pending"));
            assert!(p.multi && c.op == p.op as u32, "{what}: MORE for {p:?}");
            assert!(c.result >= 0, "{what}: MORE with an error");
            assert_eq!(c.payload_len as i64, c.result, "{what}");
            if self.shut_down {
                assert!(self.queued_at_shutdown > 0, "{what}: MORE after shutdown");
                self.queued_at_shutdown -= 1;
            }
            if c.payload_len > 0 {
                assert!(!c.payload.is_null(), "{what}");
                // SAFETY: a lent payload of `payload_len` bytes, valid until released.
                let bytes = unsafe { std::slice::from_raw_parts(c.payload, c.payload_len) };
                assert!(plausible(bytes, false), "{what}: bytes nobody wrote");
                self.lent.push(c.payload_id);
            } else {
                assert!(c.payload.is_null() && c.payload_id == 0, "{what}");
            }
            return;
        }
        assert!(!self.done.contains(&ud), "{what}: a second completion");
        let mut p = self
            .pending
            .remove(&ud)
            .unwrap_or_else(|| panic!("{what}: a completion nothing submitted"));
        self.done.insert(ud);
        assert_eq!(c.op, p.op as u32, "{what}: for {p:?}");
        assert!(
            c.payload.is_null() && c.payload_id == 0,
            "{what}: a payload"
        );
        assert!(c.addrinfo.is_null(), "{what}: an addrinfo");
        if p.canceled {
            // A file op on io_uring that the kernel finished first reports what the kernel
            // answered (its count, or its error such as EBADF for a write to a read-only
            // file), or a deadline's TIMED_OUT that came first: `polyio_cancel`'s doc.
            let raced = is_file_op(p.op);
            assert!(is(c.result, S::Canceled) || raced, "{what}: cancel said OK");
        }
        if self.shut_down {
            if self.queued_at_shutdown > 0 {
                self.queued_at_shutdown -= 1;
            } else if !is_file_op(p.op) {
                // A file op the kernel (io_uring) finished before the shutdown's cancel
                // reached it reports what it did (as core's fs tests allow): the bytes moved.
                assert!(is(c.result, S::Canceled), "{what}: after shutdown");
            }
        }
        if is(c.result, S::Canceled) {
            assert!(
                p.canceled || p.may_cancel,
                "{what}: canceled by nobody ({p:?})"
            );
        }
        if is(c.result, S::TimedOut) && p.op != polyio_op::Connect {
            assert!(p.deadline, "{what}: timed out without a deadline");
        }
        if c.flags & POLYIO_COMPLETION_PARTIAL != 0 {
            assert!(c.result < 0, "{what}: PARTIAL on success");
        }
        if let Some(buf) = p.buf.take() {
            let filled = c.result.max(0) as usize;
            buf.check(filled, &what);
            let zeros = p.op == polyio_op::FsRead;
            assert!(
                plausible(&buf.data()[..filled], zeros),
                "{what}: bytes nobody wrote"
            );
            let snapshot = buf.mem.clone();
            self.retired.push(Retired {
                buf,
                snapshot,
                what,
            });
            return;
        }
        if let Some(mut data) = p.data.take() {
            if c.result >= 0 {
                assert_eq!(c.result as usize, data.len(), "{what}: a short write");
            }
            // Scribble, then free: a later read of it sends junk or trips AddressSanitizer.
            data.fill(0xDD);
            drop(data);
            return;
        }
        match p.op {
            polyio_op::Connect | polyio_op::Accept | polyio_op::FsOpen if c.result >= 0 => {
                assert_eq!(c.result, 0, "{what}");
                assert_ne!(c.handle, 0, "{what}: no handle");
                if self.shut_down {
                    // Opened before the shutdown, closed by it.
                    // SAFETY: live runtime.
                    let r = unsafe { polyio::stream::polyio_close(self.rt, c.handle) };
                    assert!(
                        r == S::BadHandle || r == S::Shutdown,
                        "{what}: close: {r:?}"
                    );
                } else if p.op == polyio_op::FsOpen {
                    self.files.push(c.handle);
                } else if self.conns.len() < MAX_CONNS {
                    self.conns.push(c.handle);
                } else {
                    self.close(c.handle);
                }
            }
            polyio_op::Read if p.multi => {
                assert!(c.result <= 0, "{what}: a multi-shot read's last completion");
            }
            polyio_op::Recv if p.multi => {
                assert!(
                    c.result < 0,
                    "{what}: a multi-shot receive ends with an error"
                );
            }
            polyio_op::Timer | polyio_op::Shutdown | polyio_op::FsClose => {
                assert!(c.result <= 0, "{what}");
            }
            _ => {}
        }
    }

    fn stats(&self) -> polyio_stats {
        let mut s = std::mem::MaybeUninit::<polyio_stats>::uninit();
        // SAFETY: live runtime, writable out-param.
        let r = unsafe { polyio_runtime_stats(self.rt, s.as_mut_ptr()) };
        assert_eq!(r, S::Ok);
        // SAFETY: written on success.
        unsafe { s.assume_init() }
    }

    /// In flight plus queued completions account for every accepted, unfinished submission.
    fn check_counters(&self) {
        let s = self.stats();
        let queued = s.completions - self.reaped;
        let pending = self.pending.len() as u64;
        assert!(
            s.in_flight <= pending && s.in_flight + queued >= pending,
            "in flight {} + queued {queued} vs pending {pending}",
            s.in_flight
        );
    }

    fn finish(mut self) {
        if !self.shut_down {
            self.shutdown();
        }
        assert_eq!(self.stats().in_flight, 0, "in flight after shutdown");
        let mut rounds = 0;
        while self.turn(64) > 0 {
            rounds += 1;
            assert!(rounds < 100_000, "completions without end");
        }
        assert!(
            self.pending.is_empty(),
            "accepted submissions without a completion: {:?}",
            self.pending.keys().collect::<Vec<_>>()
        );
        assert_eq!(
            self.stats().completions,
            self.reaped,
            "completions never handed out"
        );
        // SAFETY: live runtime, not used afterwards.
        unsafe { polyio_runtime_free(self.rt) };
        for r in &self.retired {
            assert!(
                r.buf.mem == r.snapshot,
                "{}: its buffer changed after its completion",
                r.what
            );
        }
        for id in self.lent.drain(..) {
            assert_eq!(
                polyio_buffer_release(id),
                S::Ok,
                "release of lent payload {id} after free"
            );
        }
        for id in &self.released {
            assert_eq!(polyio_buffer_release(*id), S::NotFound);
        }
    }
}
