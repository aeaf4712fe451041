//! The contract's first rule under a seeded random workload: every accepted submission
//! ends in exactly one completion, no rejected submission ends in any, and no completion
//! carries an unknown user_data — through cancels, deadlines, closes, full queues and
//! `shutdown_all`; name lookups and connects by name among them, some on a resolver that
//! never answers (ended only by cancel, deadline or shutdown). About a third of the
//! connections are Unix sockets (abstract names), the rest TCP; beside them a few UDP
//! sockets send datagrams to one another under single and multi-shot receives. On both
//! backends.
//!
//! Reproduce a failure with the seed it prints: `POLYIO_SEED=<seed> cargo test -p
//! polyio-core --test exactly_once`. `POLYIO_EVENTS=<n>` sets the number of random events
//! (default 12,000; `make soak` runs 10^6).

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use polyio_core::{
    AddrInfo, Backend, Completion, FLAG_MORE, Handle, ListenOptions, LookupHints, OpCode, Options,
    Query, ReadBuf, Resolve, Runtime, Status, UdpOptions, WriteBuf,
};

const DEFAULT_EVENTS: usize = 12_000;
const MAX_OPS: usize = 64;
const MAX_CONNS: usize = 16;
const MAX_PEERS: usize = 6;
const DEFAULT_SEED: u64 = 0x9e37_79b9_7f4a_7c15;

/// splitmix64: tiny, seedable, good enough to pick events.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo)
    }

    fn pick<T: Copy>(&mut self, v: &[T]) -> Option<T> {
        if v.is_empty() {
            None
        } else {
            Some(v[self.below(v.len())])
        }
    }
}

/// A number from the environment (decimal or `0x` hex), or `default` when unset.
fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(s) => {
            let s = s.trim().replace('_', "");
            let parsed = match s.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => s.parse(),
            };
            parsed.unwrap_or_else(|_| panic!("{name}={s:?} is not a number"))
        }
        Err(_) => default,
    }
}

fn seed() -> u64 {
    env_number("POLYIO_SEED", DEFAULT_SEED)
}

fn events() -> usize {
    env_number("POLYIO_EVENTS", DEFAULT_EVENTS as u64) as usize
}

/// Answers `stall.test` never (until the lookup is abandoned) and every other name with
/// 127.0.0.1.
struct TestResolver;

impl Resolve for TestResolver {
    fn resolve(&self, q: &Query) -> Result<Vec<AddrInfo>, Status> {
        if q.host.as_deref() == Some("stall.test") {
            let start = Instant::now();
            while !q.abandoned() && start.elapsed() < Duration::from_secs(60) {
                std::thread::sleep(Duration::from_millis(1));
            }
            return Err(Status::NameTryAgain);
        }
        let port = q
            .service
            .as_deref()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Ok(vec![AddrInfo {
            family: libc::AF_INET,
            socktype: libc::SOCK_STREAM,
            protocol: libc::IPPROTO_TCP,
            addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
            canonname: None,
        }])
    }
}

/// Prints the seed if the test panics.
struct SeedReport {
    seed: u64,
    backend: Backend,
    event: usize,
}

impl Drop for SeedReport {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "exactly_once failed on {:?} at event {} with POLYIO_SEED={:#x}",
                self.backend, self.event, self.seed
            );
        }
    }
}

#[derive(Debug)]
struct Pending {
    op: OpCode,
    /// The connection (read, write, shutdown) or listener (accept) it was queued on.
    target: Handle,
    /// Read capacity or write length.
    len: usize,
    /// `cancel` returned Ok for it: its completion must be `Canceled`.
    canceled: bool,
    /// Its connection was closed, or the runtime shut down: `Canceled` is allowed.
    may_cancel: bool,
    /// A deadline was set on it: `TimedOut` is allowed.
    deadline: bool,
    /// A multi-shot read or receive: completions flagged MORE, then its one last completion.
    multi: bool,
}

struct World {
    rt: Runtime,
    rng: Rng,
    next_ud: u64,
    pending: HashMap<u64, Pending>,
    done: HashSet<u64>,
    rejected: HashSet<u64>,
    reaped: u64,
    /// Of `reaped`, the MORE completions of multi-shot reads.
    reaped_more: u64,
    listener: Handle,
    port: u16,
    dead_port: u16,
    unix_listener: Handle,
    unix_name: Vec<u8>,
    /// An abstract name nothing listens on: connects to it are refused.
    dead_name: Vec<u8>,
    conns: Vec<Handle>,
    /// Open UDP sockets (a few, sending to one another).
    udps: Vec<Handle>,
    closed: Vec<Handle>,
    peers: Vec<TcpStream>,
    shutting_down: bool,
    queued_at_shutdown: u64,
    peak: usize,
    tally: HashMap<String, usize>,
}

impl World {
    fn new(backend: Backend, seed: u64) -> World {
        let mut rt = Runtime::new(Options {
            backend,
            max_ops: MAX_OPS,
            ..Options::default()
        })
        .expect("runtime");
        assert_eq!(rt.backend(), backend);
        rt.set_resolver(Arc::new(TestResolver));
        let listener = rt
            .tcp_listen("127.0.0.1", 0, ListenOptions::default())
            .unwrap();
        let port = rt.local_addr(listener).unwrap().port();
        // A port nothing listens on (most likely): connects to it are refused.
        let dead = rt
            .tcp_listen("127.0.0.1", 0, ListenOptions::default())
            .unwrap();
        let dead_port = rt.local_addr(dead).unwrap().port();
        rt.close(dead).unwrap();
        let tag = format!("\0polyio-exactly-once-{}-{backend:?}", std::process::id());
        let unix_name = format!("{tag}-live").into_bytes();
        let dead_name = format!("{tag}-dead").into_bytes();
        let unix_listener = rt
            .unix_listen(&unix_name, ListenOptions::default())
            .unwrap();
        World {
            rt,
            rng: Rng(seed),
            next_ud: 1,
            pending: HashMap::new(),
            done: HashSet::new(),
            rejected: HashSet::new(),
            reaped: 0,
            reaped_more: 0,
            listener,
            port,
            dead_port,
            unix_listener,
            unix_name,
            dead_name,
            conns: Vec::new(),
            udps: Vec::new(),
            closed: Vec::new(),
            peers: Vec::new(),
            shutting_down: false,
            queued_at_shutdown: 0,
            peak: 0,
            tally: HashMap::new(),
        }
    }

    fn count(&mut self, what: String) {
        *self.tally.entry(what).or_default() += 1;
    }

    fn ud(&mut self) -> u64 {
        let ud = self.next_ud;
        self.next_ud += 1;
        ud
    }

    /// Records a submission's outcome. `ok_errors` lists the errors it may legitimately
    /// return besides `QueueFull` (always possible: the runtime is kept near its limit).
    fn submitted(
        &mut self,
        ud: u64,
        r: Result<(), Status>,
        op: OpCode,
        target: Handle,
        len: usize,
        ok_errors: &[Status],
    ) {
        match r {
            Ok(()) => {
                self.count(format!("submit {op:?} ok"));
                self.pending.insert(
                    ud,
                    Pending {
                        op,
                        target,
                        len,
                        canceled: false,
                        may_cancel: false,
                        deadline: false,
                        multi: false,
                    },
                );
            }
            Err(e) => {
                assert!(
                    e == Status::QueueFull || ok_errors.contains(&e),
                    "{op:?} ud {ud} on {target:?} refused with {e:?}"
                );
                self.count(format!("submit {op:?} {e:?}"));
                self.rejected.insert(ud);
            }
        }
    }

    fn check_invariants(&mut self) {
        let s = self.rt.stats();
        self.peak = self.peak.max(s.in_flight);
        let queued = s.completions - self.reaped;
        let (in_flight, pending) = (s.in_flight as u64, self.pending.len() as u64);
        // Queued completions may include MORE ones of multi-shot reads, so exact equality
        // holds when nothing is queued.
        assert!(
            in_flight + queued >= pending && in_flight <= pending,
            "in flight {in_flight} + queued completions {queued} vs accepted and not yet \
             reaped {pending}"
        );
        if queued == 0 {
            assert_eq!(
                in_flight, pending,
                "in flight != accepted and not yet reaped"
            );
        }
    }

    fn on_completion(&mut self, c: Completion) {
        self.reaped += 1;
        let ud = c.user_data;
        if c.flags & FLAG_MORE != 0 {
            let p = self
                .pending
                .get(&ud)
                .unwrap_or_else(|| panic!("a MORE completion for no pending op: {c:?}"));
            assert!(p.multi && c.op == p.op, "{c:?} {p:?}");
            if c.op == OpCode::Recv {
                // A datagram (maybe empty, maybe cut to the cap), with its source.
                assert!(c.result >= 0 && c.result as usize <= p.len, "{c:?}");
                assert!(c.addr.is_some(), "{c:?}");
            } else {
                assert!(c.result > 0 && c.result as usize <= p.len, "{c:?}");
            }
            assert_eq!(c.buf.as_ref().map(Vec::len), Some(c.result as usize));
            if self.shutting_down {
                assert!(
                    self.queued_at_shutdown > 0,
                    "MORE after shutdown_all: {c:?}"
                );
                self.queued_at_shutdown -= 1;
            }
            self.count(format!("complete {:?} MORE", c.op));
            self.reaped_more += 1;
            if let Some(buf) = c.buf {
                self.rt.recycle(buf);
            }
            return;
        }
        assert!(!self.done.contains(&ud), "a second completion: {c:?}");
        assert!(
            !self.rejected.contains(&ud),
            "a completion for a rejected submission: {c:?}"
        );
        let p = self
            .pending
            .remove(&ud)
            .unwrap_or_else(|| panic!("a completion with an unknown user_data: {c:?}"));
        self.done.insert(ud);
        assert_eq!(c.op, p.op, "{c:?} {p:?}");
        let status = c.status();
        assert!(
            c.result >= 0 || Status::from_code(c.result).is_some(),
            "unknown result code: {c:?}"
        );
        if c.op == OpCode::Read && c.result == 0 {
            self.count("complete Read EOF".into());
        } else {
            self.count(format!("complete {:?} {status:?}", c.op));
        }
        if p.canceled {
            assert_eq!(status, Status::Canceled, "cancel said Ok: {c:?}");
        }
        if self.shutting_down {
            // Completions posted before `shutdown_all` come first; every later one is a
            // cancellation.
            if self.queued_at_shutdown > 0 {
                self.queued_at_shutdown -= 1;
            } else {
                assert_eq!(status, Status::Canceled, "after shutdown_all: {c:?}");
            }
        }
        if status == Status::Canceled {
            assert!(
                p.canceled || p.may_cancel,
                "canceled by nobody: {c:?} {p:?}"
            );
        }
        if status == Status::TimedOut {
            assert!(p.deadline, "timed out without a deadline: {c:?} {p:?}");
        }
        match c.op {
            OpCode::Read if p.multi => {
                assert_eq!(c.handle, p.target, "{c:?}");
                assert!(
                    c.buf.is_none(),
                    "a multi-shot read's last completion: {c:?}"
                );
                assert!(c.result <= 0, "a multi-shot read's last completion: {c:?}");
            }
            OpCode::Read => {
                assert_eq!(c.handle, p.target, "{c:?}");
                let buf = c.buf.as_ref().expect("an owned read buffer comes back");
                if c.result >= 0 {
                    assert!(c.result as usize <= p.len, "{c:?}");
                    assert_eq!(buf.len(), c.result as usize, "{c:?}");
                } else {
                    assert!(buf.is_empty(), "{c:?}");
                }
            }
            OpCode::Write => {
                assert_eq!(c.handle, p.target, "{c:?}");
                assert_eq!(c.buf.as_ref().map(Vec::len), Some(p.len), "{c:?}");
                if c.result >= 0 {
                    assert_eq!(c.result as usize, p.len, "a short write: {c:?}");
                }
            }
            OpCode::Shutdown => {
                assert_eq!(c.handle, p.target, "{c:?}");
                assert!(c.result <= 0, "{c:?}");
            }
            OpCode::Timer => {
                assert_eq!(c.handle, Handle::NONE, "{c:?}");
                assert!(c.result <= 0, "{c:?}");
            }
            OpCode::Lookup => {
                assert_eq!(c.handle, Handle::NONE, "{c:?}");
                if c.result >= 0 {
                    assert_eq!(c.result, 1, "{c:?}");
                    assert_eq!(c.addrs.as_ref().map(|a| a.len()), Some(1), "{c:?}");
                } else {
                    assert!(c.addrs.is_none(), "{c:?}");
                }
            }
            OpCode::FsOpen
            | OpCode::FsRead
            | OpCode::FsWrite
            | OpCode::FsFsync
            | OpCode::FsStat
            | OpCode::FsClose
            | OpCode::FsReadFile
            | OpCode::FsWriteFile
            | OpCode::FsTruncate => panic!("no file ops in this mix: {c:?}"),
            OpCode::Accept | OpCode::Connect => {
                if c.result >= 0 {
                    assert_eq!(c.result, 0, "{c:?}");
                    assert_ne!(c.handle, Handle::NONE, "{c:?}");
                    if self.shutting_down {
                        // Connected before the shutdown, closed by it.
                        assert_eq!(self.rt.local_addr(c.handle), Err(Status::BadHandle));
                    } else if self.conns.len() < MAX_CONNS {
                        self.conns.push(c.handle);
                    } else {
                        self.close(c.handle);
                    }
                }
            }
            OpCode::Recv if p.multi => {
                assert_eq!(c.handle, p.target, "{c:?}");
                assert!(c.buf.is_none() && c.addr.is_none(), "{c:?}");
                assert!(
                    c.result < 0,
                    "a multi-shot receive ends only with an error: {c:?}"
                );
            }
            OpCode::Recv => {
                assert_eq!(c.handle, p.target, "{c:?}");
                let buf = c.buf.as_ref().expect("an owned receive buffer comes back");
                if c.result >= 0 {
                    assert!(c.result as usize <= p.len, "{c:?}");
                    assert_eq!(buf.len(), c.result as usize, "{c:?}");
                    assert!(c.addr.is_some(), "{c:?}");
                } else {
                    assert!(buf.is_empty() && c.addr.is_none(), "{c:?}");
                }
            }
            OpCode::Send => {
                assert_eq!(c.handle, p.target, "{c:?}");
                assert_eq!(c.buf.as_ref().map(Vec::len), Some(p.len), "{c:?}");
                if c.result >= 0 {
                    assert_eq!(c.result as usize, p.len, "a datagram goes whole: {c:?}");
                }
            }
        }
    }

    /// A connection that saw EOF or an error is closed, so the pool keeps live connections
    /// (connect and accept events refill it).
    fn retire_if_dead(&mut self, c: &Completion) {
        let dead = match c.op {
            OpCode::Read => c.result <= 0,
            OpCode::Write | OpCode::Shutdown => c.result < 0,
            _ => false,
        };
        let benign = matches!(c.status(), Status::Canceled | Status::TimedOut);
        if dead && !benign && !self.shutting_down && self.conns.contains(&c.handle) {
            self.close(c.handle);
        }
    }

    /// Accepts and closes, behind the runtime's back, what waits in the listeners' backlogs:
    /// connects outnumber accepts (cancelled accepts, connections past `MAX_CONNS`), and over
    /// 10^6 events a full backlog would leave later connects hanging in SYN retries.
    fn drain_backlogs(&mut self) {
        for l in [self.listener, self.unix_listener] {
            let fd = self.rt.raw_fd(l).unwrap();
            loop {
                // SAFETY: accept4 on a listening socket the runtime owns; each accepted fd
                // is ours and closed at once.
                let c = unsafe {
                    libc::accept4(
                        fd,
                        std::ptr::null_mut(),
                        std::ptr::null_mut(),
                        libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                    )
                };
                if c < 0 {
                    break;
                }
                // SAFETY: `c` is a new fd we own.
                unsafe { libc::close(c) };
                self.count("drained from a backlog".into());
            }
        }
    }

    fn open_pair(&mut self) {
        let (a, c) = (self.ud(), self.ud());
        let unix = self.rng.below(3) == 0;
        let l = if unix {
            self.unix_listener
        } else {
            self.listener
        };
        let r = self.rt.accept(l, a);
        self.submitted(a, r, OpCode::Accept, l, 0, &[]);
        self.connect(unix, true, c);
    }

    /// Submits a connect, over Unix or TCP, to the live listener or to nobody.
    fn connect(&mut self, unix: bool, live: bool, ud: u64) {
        let r = match (unix, live) {
            (true, true) => self.rt.unix_connect(&self.unix_name, ud),
            (true, false) => self.rt.unix_connect(&self.dead_name, ud),
            (false, true) => self.rt.tcp_connect("127.0.0.1", self.port, ud),
            (false, false) => self.rt.tcp_connect("127.0.0.1", self.dead_port, ud),
        };
        let kind = if unix { "unix" } else { "tcp" };
        self.count(format!("connect {kind} live={live} {r:?}"));
        self.submitted(ud, r, OpCode::Connect, Handle::NONE, 0, &[]);
    }

    fn collect(&mut self, out: Vec<Completion>) {
        for c in out {
            self.retire_if_dead(&c);
            self.on_completion(c);
        }
    }

    fn close(&mut self, h: Handle) {
        for p in self.pending.values_mut() {
            if p.target == h {
                p.may_cancel = true;
            }
        }
        let before = self.rt.stats().in_flight;
        assert_eq!(self.rt.close(h), Ok(()));
        let n = before - self.rt.stats().in_flight;
        self.count(format!("close canceled {} in-flight ops", n.min(3)));
        // Its operations completed during the close: none can be canceled any more.
        let mut on_it: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.target == h)
            .map(|(ud, _)| *ud)
            .collect();
        on_it.sort_unstable();
        for ud in on_it {
            assert_eq!(
                self.rt.cancel(ud),
                Err(Status::NotFound),
                "ud {ud} outlived close"
            );
        }
        self.conns.retain(|c| *c != h);
        self.closed.push(h);
        if self.closed.len() > 32 {
            self.closed.remove(0);
        }
    }

    /// A handle for a read/write/shutdown: usually a live connection, sometimes a closed
    /// one, the listener or a made-up value. Returns it with the error it must get.
    fn conn_target(&mut self) -> (Handle, Option<Status>) {
        let roll = self.rng.below(100);
        if roll < 4 {
            if let Some(h) = self.rng.pick(&self.closed) {
                return (h, Some(Status::BadHandle));
            }
        }
        if roll < 5 {
            return (self.listener, Some(Status::InvalidArgument));
        }
        if roll < 6 {
            return (self.unix_listener, Some(Status::InvalidArgument));
        }
        if roll < 8 {
            return (Handle::from_raw(self.rng.next()), Some(Status::BadHandle));
        }
        match self.rng.pick(&self.conns) {
            Some(h) => (h, None),
            None => (Handle::NONE, Some(Status::BadHandle)),
        }
    }

    fn pick_ud(&mut self) -> u64 {
        let roll = self.rng.below(100);
        if roll < 70 && !self.pending.is_empty() {
            // HashMap order is random per process; sort a sample for reproducibility.
            let mut keys: Vec<u64> = self.pending.keys().copied().collect();
            keys.sort_unstable();
            keys[self.rng.below(keys.len())]
        } else if roll < 85 {
            self.rng.range(1, self.next_ud as usize) as u64
        } else {
            // Never used.
            u64::MAX - self.rng.below(1000) as u64
        }
    }

    /// A UDP socket on 127.0.0.1, kept in `udps`.
    fn open_udp(&mut self) {
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
        match self.rt.udp_bind(addr, UdpOptions::default()) {
            Ok(h) => self.udps.push(h),
            Err(e) => assert_eq!(e, Status::Shutdown),
        }
    }

    /// A handle for a UDP op: usually a live UDP socket, sometimes a closed one, a
    /// connection or listener, or a made-up value. Returns it with the error it must get.
    fn udp_target(&mut self) -> (Handle, Option<Status>) {
        let roll = self.rng.below(100);
        if roll < 4 {
            if let Some(h) = self.rng.pick(&self.closed) {
                return (h, Some(Status::BadHandle));
            }
        }
        if roll < 6 {
            return (self.listener, Some(Status::InvalidArgument));
        }
        if roll < 8 {
            if let Some(h) = self.rng.pick(&self.conns) {
                return (h, Some(Status::InvalidArgument));
            }
        }
        match self.rng.pick(&self.udps) {
            Some(h) => (h, None),
            None => (Handle::NONE, Some(Status::BadHandle)),
        }
    }

    /// One UDP event: a receive (single or multi-shot), a send to another socket, or a
    /// close and re-bind.
    fn udp_step(&mut self) {
        match self.rng.below(10) {
            0..=3 => {
                let (h, bad) = self.udp_target();
                let cap = self.rng.range(1, 2048);
                let ud = self.ud();
                let multi = self.rng.below(4) == 0;
                let r = if multi {
                    self.rt.udp_recv_multishot(h, cap, ud)
                } else {
                    self.rt.udp_recv(h, ReadBuf::with_capacity(cap), ud)
                };
                let errs = bad.map(|e| vec![e]).unwrap_or_default();
                if bad.is_some() {
                    assert!(r.is_err(), "receive on a bad target {h:?} accepted");
                }
                self.submitted(ud, r, OpCode::Recv, h, cap, &errs);
                if let Some(p) = self.pending.get_mut(&ud) {
                    p.multi = multi;
                }
            }
            4..=8 => {
                let (h, bad) = self.udp_target();
                let to = self
                    .rng
                    .pick(&self.udps)
                    .and_then(|t| self.rt.local_addr(t).ok())
                    .unwrap_or_else(|| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9));
                let len = self.rng.range(0, 1500);
                let ud = self.ud();
                let r = self
                    .rt
                    .udp_send(h, WriteBuf::from_vec(vec![ud as u8; len]), Some(to), ud);
                let errs = bad.map(|e| vec![e]).unwrap_or_default();
                if bad.is_some() {
                    assert!(r.is_err(), "send on a bad target {h:?} accepted");
                }
                self.submitted(ud, r, OpCode::Send, h, len, &errs);
            }
            _ => {
                if let Some(h) = self.rng.pick(&self.udps) {
                    self.close(h);
                    self.udps.retain(|u| *u != h);
                }
                self.open_udp();
            }
        }
        self.check_invariants();
    }

    fn step(&mut self) {
        if self.rng.below(8) == 0 {
            return self.udp_step();
        }
        let ev = self.rng.below(1000);
        match ev {
            // read
            0..=149 => {
                let (h, bad) = self.conn_target();
                let cap = if self.rng.below(10) == 0 {
                    self.rng.range(1, 8)
                } else {
                    self.rng.range(1, 32 << 10)
                };
                let ud = self.ud();
                let multi = self.rng.below(5) == 0;
                let r = if multi {
                    self.rt.read_multishot(h, cap, ud)
                } else {
                    self.rt.read(h, ReadBuf::with_capacity(cap), ud)
                };
                let errs = bad.map(|e| vec![e]).unwrap_or_default();
                if bad.is_some() {
                    assert!(r.is_err(), "read on a bad target {h:?} accepted");
                }
                self.submitted(ud, r, OpCode::Read, h, cap, &errs);
                if let Some(p) = self.pending.get_mut(&ud) {
                    p.multi = multi;
                }
            }
            // write
            150..=269 => {
                let (h, bad) = self.conn_target();
                let len = match self.rng.below(100) {
                    0 => self.rng.range(1 << 20, 4 << 20),
                    1..=4 => self.rng.range(256 << 10, 1 << 20),
                    5..=19 => self.rng.range(4 << 10, 64 << 10),
                    20..=22 => 0,
                    _ => self.rng.range(1, 4 << 10),
                };
                let ud = self.ud();
                let r = self
                    .rt
                    .write(h, WriteBuf::from_vec(vec![ud as u8; len]), ud);
                let errs = bad.map(|e| vec![e]).unwrap_or_default();
                if bad.is_some() {
                    assert!(r.is_err(), "write on a bad target {h:?} accepted");
                }
                self.submitted(ud, r, OpCode::Write, h, len, &errs);
            }
            // shutdown (write side)
            270..=274 => {
                let (h, bad) = self.conn_target();
                let ud = self.ud();
                let r = self.rt.shutdown(h, ud);
                let errs = bad.map(|e| vec![e]).unwrap_or_default();
                self.submitted(ud, r, OpCode::Shutdown, h, 0, &errs);
            }
            // timer
            275..=374 => {
                let ms = self.rng.below(21) as u64;
                let ud = self.ud();
                let r = self.rt.timer(ms, ud);
                self.submitted(ud, r, OpCode::Timer, Handle::NONE, 0, &[]);
            }
            // accept (kept ahead of connects, so the backlog stays short)
            375..=454 => {
                let waiting = self
                    .pending
                    .values()
                    .filter(|p| p.op == OpCode::Accept)
                    .count();
                if waiting < 4 && self.conns.len() < MAX_CONNS {
                    let ud = self.ud();
                    let l = if self.rng.below(3) == 0 {
                        self.unix_listener
                    } else {
                        self.listener
                    };
                    let r = self.rt.accept(l, ud);
                    self.submitted(ud, r, OpCode::Accept, l, 0, &[]);
                }
            }
            // connect (while there is room for more connections)
            455..=504 => {
                if self.conns.len() + 2 > MAX_CONNS {
                    return self.check_invariants();
                }
                let ud = self.ud();
                let live = self.rng.below(10) != 0;
                let unix = self.rng.below(3) == 0;
                self.connect(unix, live, ud);
            }
            // cancel by user_data
            505..=604 => {
                let ud = self.pick_ud();
                let r = self.rt.cancel(ud);
                self.count(format!("cancel {r:?}"));
                match r {
                    Ok(()) => {
                        let p = self
                            .pending
                            .get_mut(&ud)
                            .unwrap_or_else(|| panic!("cancel({ud}) Ok for no pending op"));
                        p.canceled = true;
                        // It completed during the call.
                        assert_eq!(self.rt.cancel(ud), Err(Status::NotFound));
                    }
                    Err(e) => {
                        assert_eq!(e, Status::NotFound);
                    }
                }
            }
            // deadline
            605..=664 => {
                let ud = self.pick_ud();
                let ms = self.rng.below(30) as u64;
                let r = self.rt.deadline(ud, ms);
                self.count(format!("deadline {r:?}"));
                match r {
                    Ok(()) => {
                        let p = self
                            .pending
                            .get_mut(&ud)
                            .unwrap_or_else(|| panic!("deadline({ud}) Ok for no pending op"));
                        p.deadline = true;
                    }
                    Err(e) => assert_eq!(e, Status::NotFound),
                }
            }
            // close a connection, then open a new pair
            665..=686 => {
                if let Some(h) = self.rng.pick(&self.conns) {
                    self.close(h);
                    if self.conns.len() + 2 <= MAX_CONNS {
                        self.open_pair();
                    }
                } else if let Some(h) = self.rng.pick(&self.closed) {
                    assert_eq!(self.rt.close(h), Err(Status::BadHandle));
                }
            }
            // an outside peer writes
            687..=726 => {
                if !self.peers.is_empty() {
                    let i = self.rng.below(self.peers.len());
                    let n = self.rng.range(1, 8 << 10);
                    match self.peers[i].write(&vec![0xa5; n]) {
                        Ok(_) => {}
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                        Err(_) => drop(self.peers.remove(i)),
                    }
                }
            }
            // an outside peer reads what it was sent
            727..=766 => {
                if !self.peers.is_empty() {
                    let i = self.rng.below(self.peers.len());
                    let mut buf = vec![0u8; 64 << 10];
                    for _ in 0..8 {
                        match self.peers[i].read(&mut buf) {
                            Ok(0) => {
                                drop(self.peers.remove(i));
                                break;
                            }
                            Ok(_) => {}
                            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                            Err(_) => {
                                drop(self.peers.remove(i));
                                break;
                            }
                        }
                    }
                }
            }
            // a new outside peer (accepted by a pending or later accept)
            767..=786 => {
                let waiting = self
                    .pending
                    .values()
                    .filter(|p| p.op == OpCode::Accept)
                    .count();
                if waiting > 0 && self.conns.len() < MAX_CONNS {
                    let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), self.port);
                    let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
                        self.count("outside peer could not connect".into());
                        return self.check_invariants();
                    };
                    s.set_nonblocking(true).unwrap();
                    self.peers.push(s);
                    if self.peers.len() > MAX_PEERS {
                        drop(self.peers.remove(0));
                    }
                }
            }
            // a name lookup: answered, or never (until cancelled, timed out or shut down)
            787..=816 => {
                let host = if self.rng.below(3) == 0 {
                    "stall.test"
                } else {
                    "fast.test"
                };
                let ud = self.ud();
                let hints = LookupHints::default();
                let r = self.rt.getaddrinfo(Some(host), Some("80"), hints, ud);
                self.submitted(ud, r, OpCode::Lookup, Handle::NONE, 0, &[]);
            }
            // a connect by name (through a lookup)
            817..=826 => {
                if self.conns.len() + 2 > MAX_CONNS {
                    return self.check_invariants();
                }
                let host = if self.rng.below(4) == 0 {
                    "stall.test"
                } else {
                    "fast.test"
                };
                let ud = self.ud();
                let port = self.port;
                let r = self.rt.tcp_connect(host, port, ud);
                self.submitted(ud, r, OpCode::Connect, Handle::NONE, 0, &[]);
            }
            // turn
            827..=936 => {
                let max = self.rng.range(1, 64);
                let mut out = Vec::new();
                let n = self.rt.turn(&mut out, max);
                assert_eq!(n, out.len());
                assert!(n <= max);
                self.collect(out);
            }
            // reap with a short timeout
            937..=976 => {
                let max = self.rng.range(1, 64);
                let ms = self.rng.below(3) as u64;
                let mut out = Vec::new();
                let n = self.rt.reap(&mut out, max, Some(Duration::from_millis(ms)));
                assert_eq!(n, out.len());
                assert!(n <= max);
                self.collect(out);
            }
            // a turn that hands out nothing (completions stay queued)
            _ => {
                let mut out = Vec::new();
                assert_eq!(self.rt.turn(&mut out, 0), 0);
            }
        }
        self.check_invariants();
    }

    fn finish(&mut self) {
        self.shutting_down = true;
        for p in self.pending.values_mut() {
            p.may_cancel = true;
        }
        self.queued_at_shutdown = self.rt.stats().completions - self.reaped;
        self.rt.shutdown_all();
        assert_eq!(self.rt.stats().in_flight, 0);
        self.check_invariants();
        // Later submissions are refused and post nothing.
        for _ in 0..5 {
            let ud = self.ud();
            let r = self.rt.timer(0, ud);
            assert_eq!(r, Err(Status::Shutdown));
            self.rejected.insert(ud);
        }
        let ud = self.ud();
        let port = self.port;
        assert_eq!(
            self.rt.tcp_connect("127.0.0.1", port, ud),
            Err(Status::Shutdown)
        );
        self.rejected.insert(ud);
        let ud = self.ud();
        assert_eq!(
            self.rt.unix_connect(&self.unix_name, ud),
            Err(Status::Shutdown)
        );
        self.rejected.insert(ud);

        let start = Instant::now();
        loop {
            let mut out = Vec::new();
            let max = self.rng.range(1, 256);
            let n = self.rt.turn(&mut out, max);
            self.collect(out);
            self.check_invariants();
            if n == 0 {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "drain stuck");
        }
        let mut out = Vec::new();
        assert_eq!(
            self.rt.reap(&mut out, 64, Some(Duration::from_millis(30))),
            0
        );
        assert!(out.is_empty(), "{out:?}");
        assert!(
            self.pending.is_empty(),
            "accepted submissions without a completion: {:?}",
            self.pending
        );
        assert_eq!(self.rt.stats().completions, self.reaped);
        assert_eq!(self.done.len() as u64 + self.reaped_more, self.reaped);
        assert!(self.done.is_disjoint(&self.rejected));
    }
}

fn run(backend: Backend) {
    let seed = seed();
    let events = events();
    let mut report = SeedReport {
        seed,
        backend,
        event: 0,
    };
    let mut w = World::new(backend, seed);
    // A few pairs to start with.
    for _ in 0..4 {
        w.open_pair();
    }
    for _ in 0..3 {
        w.open_udp();
    }
    for i in 0..events {
        report.event = i;
        if i % 4096 == 4095 {
            w.drain_backlogs();
        }
        w.step();
    }
    report.event = events;
    w.finish();

    let accepted = w.done.len();
    assert!(
        accepted > events / 4,
        "too few accepted submissions: {accepted}"
    );
    let mut tally: Vec<_> = w.tally.into_iter().collect();
    tally.sort();
    eprintln!(
        "{backend:?} seed {seed:#x}: {accepted} completions, {} rejected, peak {} in flight",
        w.rejected.len(),
        w.peak
    );
    for (k, v) in tally {
        eprintln!("  {k}: {v}");
    }
}

#[test]
fn exactly_once_epoll() {
    run(Backend::Epoll);
}

#[test]
fn exactly_once_thread() {
    run(Backend::Thread);
}
