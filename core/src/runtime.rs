//! The runtime: submission, the completion queue, the turn that drives tokio from the
//! consumer's thread, timers and deadlines, cancellation and shutdown. Every submission that
//! returns `Ok` ends in exactly one completion; one that returns an error ends in none.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::{Domain, SockRef, Socket, TcpKeepalive, Type};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use crate::backend::{Backend, find_epoll_with};
use crate::buf::{ReadBuf, ReadInner, WriteBuf, WriteInner};
use crate::handle::{Handle, Table};
use crate::status::Status;
use crate::wake::{self, DrivingGuard, RuntimeWaker, Shared};

/// The completion was posted during the submit call itself (the inline fast path).
pub const FLAG_INLINE: u32 = 1;
/// More completions follow for the same operation (a multi-shot read); its last completion
/// comes without this flag.
pub const FLAG_MORE: u32 = 2;

/// How many iovecs one vectored write gathers from queued writes.
const MAX_IOV: usize = 64;
/// Rounds of ready-queue draining per turn: bounds a turn when wakers keep re-firing.
const READY_ROUNDS: usize = 4;
/// Full buffers a multi-shot read takes in a row before it lets other sockets go first.
const MULTISHOT_BURST: usize = 4;
/// Read buffers kept for multi-shot reads (see `Runtime::recycle`).
const MAX_SPARE_BUFS: usize = 64;

/// What kind of operation a completion ends.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpCode {
    Connect = 1,
    Accept = 2,
    Read = 3,
    Write = 4,
    Shutdown = 5,
    Timer = 6,
}

/// One finished operation.
#[derive(Debug)]
pub struct Completion {
    /// The value given at submission.
    pub user_data: u64,
    pub op: OpCode,
    /// `>= 0`: success (bytes read or written, 0 at EOF); `< 0`: a [`Status`] code.
    pub result: i64,
    /// `FLAG_*` bits.
    pub flags: u32,
    /// The connection the op used, or for connect and accept the new connection.
    pub handle: Handle,
    /// An owned buffer given to a read (holding the bytes read) or a write, handed back.
    pub buf: Option<Vec<u8>>,
}

impl Completion {
    /// `Status::Ok` for a success, else the error.
    pub fn status(&self) -> Status {
        if self.result >= 0 {
            Status::Ok
        } else {
            Status::from_code(self.result).unwrap_or(Status::IoError)
        }
    }
}

/// Runtime settings.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub backend: Backend,
    /// Upper bound on operations in flight plus completions not yet reaped; past it a submit
    /// fails with `QueueFull`.
    pub max_ops: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            backend: Backend::Auto,
            max_ops: 1 << 16,
        }
    }
}

/// Listener settings.
#[derive(Clone, Copy, Debug, Default)]
pub struct ListenOptions {
    /// Accept queue length; 0 means the default (511, as libuv and Node).
    pub backlog: u32,
    /// Sets `SO_REUSEPORT`, so several runtimes (one per core) can share a port.
    pub reuse_port: bool,
    /// Sets `IPV6_V6ONLY` on an IPv6 listener (ignored for IPv4), so that it can share its
    /// port with an IPv4 listener, as asyncio binds `host=None` (one listener per family).
    /// Off: the system default (on Linux, `::` also accepts IPv4, as Node and libuv).
    pub ipv6_only: bool,
}

/// Counters, for tests and tuning.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    /// Completions posted during the submit call (the inline fast path).
    pub inline_completions: u64,
    /// Completions posted in all.
    pub completions: u64,
    /// Turns run.
    pub turns: u64,
    /// Operations submitted and not yet completed.
    pub in_flight: usize,
}

type TimerKey = (Instant, u64);

#[derive(Clone, Copy, Debug)]
enum TimerTarget {
    /// A timer op: completes with 0.
    Fire(Handle),
    /// A deadline on another op: completes it with `TimedOut`.
    Deadline(Handle),
}

type ConnectFuture = Pin<Box<dyn Future<Output = Result<TcpStream, Status>> + Send>>;

enum OpState {
    Read(ReadBuf),
    /// A multi-shot read: each chunk (at most `cap` bytes) completes with FLAG_MORE.
    ReadMulti {
        cap: usize,
    },
    Write {
        buf: WriteBuf,
        done: usize,
    },
    Shutdown,
    Accept,
    Connect {
        fut: ConnectFuture,
        waker: Waker,
    },
    Timer(TimerKey),
}

struct Op {
    user_data: u64,
    code: OpCode,
    /// The resource whose queue holds this op (`NONE` for connect and timers).
    target: Handle,
    state: OpState,
    deadline: Option<TimerKey>,
}

struct Conn {
    stream: TcpStream,
    reads: VecDeque<Handle>,
    writes: VecDeque<Handle>,
    read_waker: Waker,
    write_waker: Waker,
}

struct Listener {
    listener: TcpListener,
    accepts: VecDeque<Handle>,
    waker: Waker,
}

enum Resource {
    Conn(Conn),
    Listener(Listener),
}

// Waker keys: the low two bits say what to progress, the rest is a handle's slot and
// generation (48 bits; the runtime id is implied).
const KEY_READ: u64 = 0;
const KEY_WRITE: u64 = 1;
const KEY_ACCEPT: u64 = 2;
const KEY_CONNECT: u64 = 3;
const KEY_HANDLE_MASK: u64 = (1 << 48) - 1;

fn key(kind: u64, h: Handle) -> u64 {
    ((h.into_raw() & KEY_HANDLE_MASK) << 2) | kind
}

/// Operations, timers and completions: everything a progress step may touch besides the
/// resource it is progressing.
struct Queue {
    ops: Table<Op>,
    timers: BTreeMap<TimerKey, TimerTarget>,
    timer_seq: u64,
    completions: VecDeque<Completion>,
    in_submit: bool,
    stats: Stats,
    /// Buffers for multi-shot reads, handed back by the consumer.
    spare_bufs: Vec<Vec<u8>>,
}

impl Queue {
    fn add_timer(&mut self, at: Instant, target: TimerTarget) -> TimerKey {
        self.timer_seq += 1;
        let k = (at, self.timer_seq);
        self.timers.insert(k, target);
        k
    }

    /// Queues a completion, flagged inline when posted during a submit call.
    fn post(&mut self, mut c: Completion) {
        if self.in_submit {
            c.flags |= FLAG_INLINE;
            self.stats.inline_completions += 1;
        }
        self.stats.completions += 1;
        self.completions.push_back(c);
    }

    /// Posts a completion flagged MORE for op `id`, which stays in flight.
    fn post_more(&mut self, id: Handle, n: usize, handle: Handle, buf: Vec<u8>) {
        let Some(op) = self.ops.get(id) else { return };
        let c = Completion {
            user_data: op.user_data,
            op: op.code,
            result: n as i64,
            flags: FLAG_MORE,
            handle,
            buf: Some(buf),
        };
        self.post(c);
    }

    /// Keeps `buf` for a later multi-shot read, up to `MAX_SPARE_BUFS` of them.
    fn spare(&mut self, buf: Vec<u8>) {
        if buf.capacity() > 0 && self.spare_bufs.len() < MAX_SPARE_BUFS {
            self.spare_bufs.push(buf);
        }
    }

    /// A buffer of at least `cap` bytes for a multi-shot read.
    fn take_buf(&mut self, cap: usize) -> Vec<u8> {
        let mut v = self.spare_bufs.pop().unwrap_or_default();
        v.clear();
        v.reserve(cap);
        v
    }

    /// Removes op `id` and posts its one completion.
    fn finish(&mut self, id: Handle, result: Result<usize, Status>, handle: Handle) {
        let Some(op) = self.ops.remove(id) else {
            return;
        };
        if let Some(k) = op.deadline {
            self.timers.remove(&k);
        }
        let buf = match op.state {
            OpState::Read(ReadBuf(ReadInner::Owned(v))) => Some(v),
            OpState::Write {
                buf: WriteBuf(WriteInner::Owned(v)),
                ..
            } => Some(v),
            OpState::Timer(k) => {
                self.timers.remove(&k);
                None
            }
            _ => None,
        };
        // A failed connect or accept names no connection, whatever the reason.
        let handle = match (&result, op.code) {
            (Err(_), OpCode::Connect | OpCode::Accept) => Handle::NONE,
            _ => handle,
        };
        let result = match result {
            Ok(n) => n as i64,
            Err(s) => i64::from(s.code()),
        };
        self.post(Completion {
            user_data: op.user_data,
            op: op.code,
            result,
            flags: 0,
            handle,
            buf,
        });
    }
}

/// Runtime ids in use. An id is never shared by two live runtimes, so a handle from another
/// live runtime never resolves; ids are handed out round-robin, so a freed runtime's id comes
/// back only after 65,534 others.
struct LiveIds {
    last: u16,
    live: Vec<u64>,
}

static LIVE_IDS: Mutex<LiveIds> = Mutex::new(LiveIds {
    last: 0,
    live: Vec::new(),
});

/// A runtime id, released when dropped.
struct IdLease(u16);

impl IdLease {
    fn take() -> Result<IdLease, Status> {
        let mut ids = LIVE_IDS.lock().unwrap_or_else(PoisonError::into_inner);
        if ids.live.is_empty() {
            ids.live = vec![0; 1 << 10];
        }
        let mut id = ids.last;
        for _ in 0..=u16::MAX {
            id = id.wrapping_add(1);
            let (word, bit) = (usize::from(id) / 64, id % 64);
            if id != 0 && ids.live[word] & (1 << bit) == 0 {
                ids.live[word] |= 1 << bit;
                ids.last = id;
                return Ok(IdLease(id));
            }
        }
        // 65,535 runtimes alive at once.
        Err(Status::QueueFull)
    }
}

impl Drop for IdLease {
    fn drop(&mut self) {
        let mut ids = LIVE_IDS.lock().unwrap_or_else(PoisonError::into_inner);
        let (word, bit) = (usize::from(self.0) / 64, self.0 % 64);
        ids.live[word] &= !(1 << bit);
    }
}

/// A borrowed fd that tokio may register but never closes.
struct FdRef(RawFd);

impl AsRawFd for FdRef {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

struct Reactor {
    stop: Arc<Notify>,
    thread: JoinHandle<()>,
}

/// One consumer's engine: a current-thread tokio runtime, polyio's handle table and its
/// completion queue. Use it from one thread at a time; only [`RuntimeWaker`] is for any
/// thread.
pub struct Runtime {
    id: u16,
    backend: Backend,
    backend_fd: RawFd,
    shared: Arc<Shared>,
    resources: Table<Resource>,
    q: Queue,
    max_ops: usize,
    scratch: Vec<u64>,
    /// The last turn skipped polling I/O (see `turn`).
    skipped_io: bool,
    shut_down: bool,
    /// Registers our eventfd with tokio (epoll backend); dropped before `tokio`.
    sentinel: Option<AsyncFd<FdRef>>,
    reactor: Option<Reactor>,
    tokio: Arc<tokio::runtime::Runtime>,
    /// Keeps `id` reserved until the runtime is gone.
    _id: IdLease,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("id", &self.id)
            .field("backend", &self.backend)
            .field("in_flight", &self.q.ops.len())
            .field("completions", &self.q.completions.len())
            .finish()
    }
}

impl Runtime {
    /// Creates a runtime. Fails only if the OS refuses resources (fds, threads), or with
    /// `QueueFull` when 65,535 runtimes are alive at once.
    pub fn new(options: Options) -> Result<Runtime, Status> {
        if options.max_ops == 0 {
            return Err(Status::InvalidArgument);
        }
        let lease = IdLease::take()?;
        let id = lease.0;
        let shared = Arc::new(Shared::new(id)?);
        let tokio = Arc::new(
            tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .thread_name("polyio-blocking")
                .max_blocking_threads(64)
                .build()?,
        );
        let mut rt = Runtime {
            id,
            backend: Backend::Thread,
            backend_fd: shared.event_fd(),
            shared,
            resources: Table::new(id),
            q: Queue {
                ops: Table::new(id),
                timers: BTreeMap::new(),
                timer_seq: 0,
                completions: VecDeque::new(),
                in_submit: false,
                stats: Stats::default(),
                spare_bufs: Vec::new(),
            },
            max_ops: options.max_ops,
            scratch: Vec::new(),
            skipped_io: false,
            shut_down: false,
            sentinel: None,
            reactor: None,
            tokio,
            _id: lease,
        };
        if options.backend != Backend::Thread {
            match rt.attach_epoll() {
                Ok(()) => return Ok(rt),
                Err(e) if options.backend == Backend::Epoll => return Err(e),
                Err(_) => {}
            }
        }
        rt.start_reactor()?;
        Ok(rt)
    }

    fn attach_epoll(&mut self) -> Result<(), Status> {
        let sentinel = {
            let _e = self.tokio.enter();
            // SAFETY: the eventfd lives in `self.shared`, which outlives `self.sentinel`
            // (dropped first in `Drop`), so the fd stays open while registered.
            unsafe {
                AsyncFd::register_with_interest(FdRef(self.shared.event_fd()), Interest::READABLE)
            }
            .map_err(|e| Status::from(e.into_parts().1))?
        };
        match find_epoll_with(self.shared.event_fd()) {
            Some(fd) => {
                self.sentinel = Some(sentinel);
                self.backend = Backend::Epoll;
                self.backend_fd = fd;
                Ok(())
            }
            None => Err(Status::NotFound),
        }
    }

    fn start_reactor(&mut self) -> Result<(), Status> {
        let stop = Arc::new(Notify::new());
        let (tokio, stop2) = (self.tokio.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("polyio-reactor".into())
            .spawn(move || tokio.block_on(stop2.notified()))?;
        self.backend = Backend::Thread;
        self.backend_fd = self.shared.event_fd();
        self.reactor = Some(Reactor { stop, thread });
        Ok(())
    }

    /// This runtime's id (part of every handle it issues).
    pub fn id(&self) -> u16 {
        self.id
    }

    /// The backend in use (never `Auto`).
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// An fd that is readable whenever the runtime has work. Watch it for readability (level
    /// triggered), then run a [`turn`](Self::turn). Owned by the runtime: do not close it.
    pub fn backend_fd(&self) -> RawFd {
        self.backend_fd
    }

    /// How long the consumer may sleep before the next turn: `Some(ZERO)` when completions
    /// or progress are waiting, the time to the earliest timer or deadline, or `None` when
    /// only I/O (the backend fd) can bring work.
    pub fn next_timeout(&self) -> Option<Duration> {
        if !self.q.completions.is_empty() || self.shared.has_ready() {
            return Some(Duration::ZERO);
        }
        self.q
            .timers
            .first_key_value()
            .map(|((at, _), _)| at.saturating_duration_since(Instant::now()))
    }

    /// A handle that wakes this runtime from any thread.
    pub fn waker(&self) -> RuntimeWaker {
        RuntimeWaker {
            shared: self.shared.clone(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        Stats {
            in_flight: self.q.ops.len(),
            ..self.q.stats
        }
    }

    /// One bounded, non-blocking turn: polls I/O with a zero timeout, progresses every
    /// operation that became ready, fires due timers, then moves up to `max` completions
    /// into `out` (the rest wait for the next call). Returns how many it moved.
    pub fn turn(&mut self, out: &mut Vec<Completion>, max: usize) -> usize {
        self.q.stats.turns += 1;
        let _driving = DrivingGuard::new(self.id);
        // With completions already waiting (typically one posted inline by the consumer's
        // last submit), this turn can hand them over without an epoll_wait; never twice in a
        // row, so a consumer whose ops keep completing inline cannot starve other sockets.
        let skip_io = !self.q.completions.is_empty() && !self.skipped_io;
        self.skipped_io = skip_io;
        if self.backend == Backend::Epoll && !skip_io {
            // One pass of tokio's scheduler: `yield_now` defers, so the scheduler parks with
            // a zero timeout (epoll_wait(0)), dispatching I/O wakers into our ready queue.
            self.tokio.block_on(tokio::task::yield_now());
        }
        let _enter = self.tokio.enter();
        self.shared.drain_signal();
        self.process_ready();
        self.fire_timers(Instant::now());
        self.pop_completions(out, max)
    }

    /// Runs turns until at least one completion is available, then returns up to `max`.
    /// Blocks at most `timeout` (`None`: without limit). Returns 0 on timeout, when woken by
    /// [`RuntimeWaker::wake`], and at once when nothing is in flight (nothing could ever
    /// complete).
    pub fn reap(
        &mut self,
        out: &mut Vec<Completion>,
        max: usize,
        timeout: Option<Duration>,
    ) -> usize {
        let deadline = timeout.map(|t| Instant::now().checked_add(t).unwrap_or_else(far_future));
        loop {
            let idle = self.q.ops.len() == 0 && self.q.completions.is_empty();
            // Nothing due now: sleep on the backend fd first, so that the turn after it finds
            // work (one wakeup costs one poll and one epoll_wait, not an idle turn as well).
            let mut wait = self.next_timeout();
            if !idle && max > 0 && wait != Some(Duration::ZERO) {
                if let Some(d) = deadline {
                    let left = d.saturating_duration_since(Instant::now());
                    wait = Some(wait.map_or(left, |w| w.min(left)));
                }
                if wait != Some(Duration::ZERO) {
                    poll_readable(self.backend_fd, wait);
                }
            }
            let n = self.turn(out, max);
            let woken = self.shared.take_woken();
            if n > 0 || max == 0 || woken || idle {
                return n;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return 0;
            }
        }
    }

    /// Moves up to `max` completions that are already posted (for example inline ones from
    /// submit calls) into `out`, without polling I/O or firing timers. Returns how many it
    /// moved. Lets a consumer settle inline completions at once, without a full turn.
    pub fn drain(&mut self, out: &mut Vec<Completion>, max: usize) -> usize {
        self.pop_completions(out, max)
    }

    fn pop_completions(&mut self, out: &mut Vec<Completion>, max: usize) -> usize {
        let n = max.min(self.q.completions.len());
        out.extend(self.q.completions.drain(..n));
        n
    }

    fn process_ready(&mut self) {
        let mut batch = std::mem::take(&mut self.scratch);
        for _ in 0..READY_ROUNDS {
            self.shared.take_ready(&mut batch);
            if batch.is_empty() {
                break;
            }
            for k in batch.drain(..) {
                let h = Handle::from_raw(((k >> 2) & KEY_HANDLE_MASK) | (u64::from(self.id) << 48));
                match k & 3 {
                    KEY_READ => self.progress_read(h),
                    KEY_WRITE => self.progress_write(h),
                    KEY_ACCEPT => self.progress_accept(h),
                    _ => self.progress_connect(h),
                }
            }
        }
        self.scratch = batch;
    }

    fn fire_timers(&mut self, now: Instant) {
        while let Some(entry) = self.q.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            match entry.remove() {
                TimerTarget::Fire(op) => self.q.finish(op, Ok(0), Handle::NONE),
                TimerTarget::Deadline(op) => {
                    if let Some(o) = self.q.ops.get_mut(op) {
                        o.deadline = None;
                    }
                    self.cancel_op(op, Status::TimedOut);
                }
            }
        }
    }

    /// Runs `f` as part of a submit call: completions it posts are flagged inline. Inside
    /// tokio's context, for progress that may register new sockets (accept, connect).
    fn inline(&mut self, f: impl FnOnce(&mut Runtime)) {
        let _driving = DrivingGuard::new(self.id);
        let tokio = self.tokio.clone();
        let _enter = tokio.enter();
        self.inline_io(f);
    }

    /// [`inline`](Self::inline) for reads and writes on a registered socket: polling its
    /// readiness needs no runtime context and fires no waker, so this skips entering tokio's
    /// context (two thread-local swaps per submit, on the hot path).
    fn inline_io(&mut self, f: impl FnOnce(&mut Runtime)) {
        self.q.in_submit = true;
        f(self);
        self.q.in_submit = false;
    }

    fn admit(&self) -> Result<(), Status> {
        if self.shut_down {
            return Err(Status::Shutdown);
        }
        if self.q.ops.len() + self.q.completions.len() >= self.max_ops {
            return Err(Status::QueueFull);
        }
        Ok(())
    }

    fn new_op(
        &mut self,
        user_data: u64,
        code: OpCode,
        target: Handle,
        state: OpState,
    ) -> Result<Handle, Status> {
        self.q
            .ops
            .insert(Op {
                user_data,
                code,
                target,
                state,
                deadline: None,
            })
            .ok_or(Status::QueueFull)
    }

    fn conn_mut(&mut self, h: Handle) -> Result<&mut Conn, Status> {
        match self.resources.get_mut(h) {
            Some(Resource::Conn(c)) => Ok(c),
            Some(Resource::Listener(_)) => Err(Status::InvalidArgument),
            None => Err(Status::BadHandle),
        }
    }

    fn add_conn(&mut self, stream: TcpStream) -> Result<Handle, Status> {
        let noop = Waker::noop().clone();
        let h = self
            .resources
            .insert(Resource::Conn(Conn {
                stream,
                reads: VecDeque::new(),
                writes: VecDeque::new(),
                read_waker: noop.clone(),
                write_waker: noop,
            }))
            .ok_or(Status::QueueFull)?;
        let (rw, ww) = (
            wake::waker(&self.shared, key(KEY_READ, h)),
            wake::waker(&self.shared, key(KEY_WRITE, h)),
        );
        if let Some(Resource::Conn(c)) = self.resources.get_mut(h) {
            c.read_waker = rw;
            c.write_waker = ww;
        }
        Ok(h)
    }

    // ---- submissions -------------------------------------------------------------------

    /// Connects to `host:port`. `host` is an IPv4 or IPv6 literal (brackets allowed) or a name,
    /// resolved on tokio's blocking pool. Completes with `result = 0` and the new
    /// connection's handle, or an error (`ConnectionRefused`, `NameNotResolved`, ...).
    pub fn tcp_connect(&mut self, host: &str, port: u16, user_data: u64) -> Result<(), Status> {
        self.admit()?;
        if port == 0 || host.is_empty() || host.len() > 1024 || host.contains('\0') {
            return Err(Status::InvalidArgument);
        }
        let fut: ConnectFuture = match ip_literal(host) {
            Some(ip) => Box::pin(connect_addrs(vec![SocketAddr::new(ip, port)])),
            None => {
                let host = host.to_owned();
                Box::pin(async move {
                    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
                        .await
                        .map_err(|_| Status::NameNotResolved)?
                        .collect();
                    connect_addrs(addrs).await
                })
            }
        };
        let noop = Waker::noop().clone();
        let id = self.new_op(
            user_data,
            OpCode::Connect,
            Handle::NONE,
            OpState::Connect { fut, waker: noop },
        )?;
        let w = wake::waker(&self.shared, key(KEY_CONNECT, id));
        if let Some(Op {
            state: OpState::Connect { waker, .. },
            ..
        }) = self.q.ops.get_mut(id)
        {
            *waker = w;
        }
        self.inline(|rt| rt.progress_connect(id));
        Ok(())
    }

    /// Binds and listens on `host:port` (port 0: an ephemeral port; see
    /// [`local_addr`](Self::local_addr)). Sets `SO_REUSEADDR`. Synchronous: no completion.
    pub fn tcp_listen(
        &mut self,
        host: &str,
        port: u16,
        options: ListenOptions,
    ) -> Result<Handle, Status> {
        if self.shut_down {
            return Err(Status::Shutdown);
        }
        if host.is_empty() || host.contains('\0') || options.backlog > i32::MAX as u32 {
            return Err(Status::InvalidArgument);
        }
        let addr = match ip_literal(host) {
            Some(ip) => SocketAddr::new(ip, port),
            None => (host, port)
                .to_socket_addrs()
                .map_err(|_| Status::NameNotResolved)?
                .next()
                .ok_or(Status::NameNotResolved)?,
        };
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        socket.set_reuse_address(true)?;
        if options.ipv6_only && addr.is_ipv6() {
            socket.set_only_v6(true)?;
        }
        if options.reuse_port {
            socket.set_reuse_port(true)?;
        }
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        let backlog = if options.backlog == 0 {
            511
        } else {
            options.backlog as i32
        };
        socket.listen(backlog)?;
        let listener = {
            let _e = self.tokio.enter();
            TcpListener::from_std(socket.into())?
        };
        let h = self
            .resources
            .insert(Resource::Listener(Listener {
                listener,
                accepts: VecDeque::new(),
                waker: Waker::noop().clone(),
            }))
            .ok_or(Status::QueueFull)?;
        let w = wake::waker(&self.shared, key(KEY_ACCEPT, h));
        if let Some(Resource::Listener(l)) = self.resources.get_mut(h) {
            l.waker = w;
        }
        Ok(h)
    }

    /// Accepts one connection on `listener`. Completes with `result = 0` and the new
    /// connection's handle. Several accepts may be queued; they complete in order.
    pub fn accept(&mut self, listener: Handle, user_data: u64) -> Result<(), Status> {
        self.admit()?;
        match self.resources.get(listener) {
            Some(Resource::Listener(_)) => {}
            Some(Resource::Conn(_)) => return Err(Status::InvalidArgument),
            None => return Err(Status::BadHandle),
        }
        let id = self.new_op(user_data, OpCode::Accept, listener, OpState::Accept)?;
        let first = match self.resources.get_mut(listener) {
            Some(Resource::Listener(l)) => {
                l.accepts.push_back(id);
                l.accepts.len() == 1
            }
            _ => false,
        };
        if first {
            self.inline(|rt| rt.progress_accept(listener));
        }
        Ok(())
    }

    /// Reads up to `buf.capacity()` bytes. Completes with the count, 0 at end of stream.
    /// Queued reads complete in order; a cancelled read takes no bytes.
    pub fn read(&mut self, h: Handle, buf: ReadBuf, user_data: u64) -> Result<(), Status> {
        self.admit()?;
        if buf.capacity() == 0 || buf.capacity() > isize::MAX as usize {
            return Err(Status::InvalidArgument);
        }
        self.queue_read(h, user_data, OpState::Read(buf))
    }

    /// Reads continuously, as libuv's `uv_read_start`: every chunk read (at most `cap`
    /// bytes) completes with its count and an owned buffer holding it, flagged
    /// [`FLAG_MORE`], and the operation stays armed, so a consumer that keeps reading does
    /// not submit a read per chunk. It ends with one completion without `FLAG_MORE`: 0 at end
    /// of stream, an error, or `Canceled` (by [`cancel`](Self::cancel) with its `user_data`,
    /// or [`close`](Self::close)); every byte read before that was in an earlier completion.
    /// It queues with single reads, in order. Hand the buffers back with
    /// [`recycle`](Self::recycle) to spare an allocation per chunk.
    pub fn read_multishot(&mut self, h: Handle, cap: usize, user_data: u64) -> Result<(), Status> {
        self.admit()?;
        if cap == 0 || cap > isize::MAX as usize {
            return Err(Status::InvalidArgument);
        }
        self.queue_read(h, user_data, OpState::ReadMulti { cap })
    }

    /// Appends a read (single or multi-shot) to `h`'s read queue; at the front, it starts
    /// inline.
    fn queue_read(&mut self, h: Handle, user_data: u64, state: OpState) -> Result<(), Status> {
        self.conn_mut(h)?;
        let id = self.new_op(user_data, OpCode::Read, h, state)?;
        let conn = self.conn_mut(h)?;
        conn.reads.push_back(id);
        if conn.reads.len() == 1 {
            self.inline_io(|rt| rt.progress_read(h));
        }
        Ok(())
    }

    /// Gives a completion's buffer back for later multi-shot reads (a few are kept).
    pub fn recycle(&mut self, buf: Vec<u8>) {
        self.q.spare(buf);
    }

    /// Writes all of `buf`. Completes with its length once every byte is with the kernel.
    /// Queued writes go out in order, gathered into vectored writes.
    pub fn write(&mut self, h: Handle, buf: WriteBuf, user_data: u64) -> Result<(), Status> {
        self.admit()?;
        if buf.len() > isize::MAX as usize {
            return Err(Status::InvalidArgument);
        }
        self.queue_write(h, user_data, OpCode::Write, OpState::Write { buf, done: 0 })
    }

    /// Writes what the kernel takes of `bufs` now, in order, without an operation and so
    /// without a completion (libuv's `uv_try_write`). Returns the bytes taken: 0 when the
    /// socket is not writable now or when writes or a shutdown are already queued on `h`
    /// (bytes written now would overtake them). Queue the rest with [`write`](Self::write).
    /// Errors (`BrokenPipe`, `ConnectionReset`, ...) mean the connection failed.
    pub fn try_write(&mut self, h: Handle, bufs: &[&[u8]]) -> Result<usize, Status> {
        if self.shut_down {
            return Err(Status::Shutdown);
        }
        let conn = self.conn_mut(h)?;
        if !conn.writes.is_empty() || bufs.iter().all(|b| b.is_empty()) {
            return Ok(0);
        }
        let mut iov = Iovecs::new();
        for b in bufs.iter().filter(|b| !b.is_empty()) {
            if !iov.push(b) {
                break;
            }
        }
        let fd = conn.stream.as_raw_fd();
        // SAFETY: the iovecs borrow `bufs`, alive for the whole call.
        match conn.stream.try_io(Interest::WRITABLE, || unsafe {
            send_iov(fd, iov.as_slice())
        }) {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(Status::from(e)),
        }
    }

    /// Shuts down the write side once every queued write is sent (the peer reads EOF).
    /// Completes with 0.
    pub fn shutdown(&mut self, h: Handle, user_data: u64) -> Result<(), Status> {
        self.admit()?;
        self.queue_write(h, user_data, OpCode::Shutdown, OpState::Shutdown)
    }

    /// Appends a write or shutdown to `h`'s write queue; at the front, it starts inline.
    fn queue_write(
        &mut self,
        h: Handle,
        user_data: u64,
        code: OpCode,
        state: OpState,
    ) -> Result<(), Status> {
        self.conn_mut(h)?;
        let id = self.new_op(user_data, code, h, state)?;
        let conn = self.conn_mut(h)?;
        conn.writes.push_back(id);
        if conn.writes.len() == 1 {
            self.inline_io(|rt| rt.progress_write(h));
        }
        Ok(())
    }

    /// Writes and shutdowns queued on connection `h` that have not completed: 0 when the
    /// kernel took every byte (a write that completed inline), 0 for a stale handle.
    pub fn pending_writes(&self, h: Handle) -> usize {
        match self.resources.get(h) {
            Some(Resource::Conn(c)) => c.writes.len(),
            _ => 0,
        }
    }

    /// Closes a connection or listener now. Its pending operations complete with
    /// `Canceled`; the handle is stale from here on. No completion of its own.
    pub fn close(&mut self, h: Handle) -> Result<(), Status> {
        let resource = self.resources.remove(h).ok_or(Status::BadHandle)?;
        let pending: Vec<Handle> = match &resource {
            Resource::Conn(c) => c.reads.iter().chain(c.writes.iter()).copied().collect(),
            Resource::Listener(l) => l.accepts.iter().copied().collect(),
        };
        for op in pending {
            self.q.finish(op, Err(Status::Canceled), h);
        }
        drop(resource);
        Ok(())
    }

    /// A one-shot timer: completes with 0 after `ms` milliseconds (0: on the next turn).
    /// `InvalidArgument` when `ms` exceeds `i64::MAX`.
    pub fn timer(&mut self, ms: u64, user_data: u64) -> Result<(), Status> {
        self.admit()?;
        let at = instant_after(ms)?;
        let id = self.new_op(
            user_data,
            OpCode::Timer,
            Handle::NONE,
            OpState::Timer((at, 0)),
        )?;
        let k = self.q.add_timer(at, TimerTarget::Fire(id));
        if let Some(op) = self.q.ops.get_mut(id) {
            op.state = OpState::Timer(k);
        }
        Ok(())
    }

    /// Cancels every pending operation submitted with `user_data`: each completes with
    /// `Canceled`. `NotFound` when none is pending (it may have completed already).
    pub fn cancel(&mut self, user_data: u64) -> Result<(), Status> {
        let ids = self.q.ops.find(|op| op.user_data == user_data);
        if ids.is_empty() {
            return Err(Status::NotFound);
        }
        for id in ids {
            self.cancel_op(id, Status::Canceled);
        }
        Ok(())
    }

    /// Gives every pending operation submitted with `user_data` a deadline `ms` from now
    /// (replacing an earlier one); one still pending then completes with `TimedOut`.
    /// `NotFound` when none is pending.
    pub fn deadline(&mut self, user_data: u64, ms: u64) -> Result<(), Status> {
        let at = instant_after(ms)?;
        let ids = self.q.ops.find(|op| op.user_data == user_data);
        if ids.is_empty() {
            return Err(Status::NotFound);
        }
        for id in ids {
            let old = self.q.ops.get_mut(id).and_then(|op| op.deadline.take());
            if let Some(k) = old {
                self.q.timers.remove(&k);
            }
            let k = self.q.add_timer(at, TimerTarget::Deadline(id));
            if let Some(op) = self.q.ops.get_mut(id) {
                op.deadline = Some(k);
            }
        }
        Ok(())
    }

    fn cancel_op(&mut self, id: Handle, status: Status) {
        let Some(op) = self.q.ops.get(id) else { return };
        let target = op.target;
        let mut requeue = None;
        match self.resources.get_mut(target) {
            Some(Resource::Conn(c)) => {
                // Only when another op waits behind it: a spurious key would make
                // `next_timeout` report work (ZERO) on an idle runtime.
                if c.reads.front() == Some(&id) && c.reads.len() > 1 {
                    requeue = Some(key(KEY_READ, target));
                }
                if c.writes.front() == Some(&id) && c.writes.len() > 1 {
                    requeue = Some(key(KEY_WRITE, target));
                }
                c.reads.retain(|o| *o != id);
                c.writes.retain(|o| *o != id);
            }
            Some(Resource::Listener(l)) => {
                if l.accepts.front() == Some(&id) && l.accepts.len() > 1 {
                    requeue = Some(key(KEY_ACCEPT, target));
                }
                l.accepts.retain(|o| *o != id);
            }
            None => {}
        }
        self.q.finish(id, Err(status), target);
        // The next op in that queue may be ready already: let the next turn look.
        if let Some(k) = requeue {
            let _driving = DrivingGuard::new(self.id);
            self.shared.push(k);
        }
    }

    /// Cancels everything: every pending operation completes with `Canceled`, every
    /// connection and listener is closed, and later submissions fail with `Shutdown`.
    /// The completions stay queued for [`turn`](Self::turn) / [`reap`](Self::reap).
    pub fn shutdown_all(&mut self) {
        self.shut_down = true;
        for id in self.q.ops.handles() {
            self.cancel_op(id, Status::Canceled);
        }
        for h in self.resources.handles() {
            let _ = self.close(h);
        }
        self.q.timers.clear();
    }

    /// Whether [`shutdown_all`](Self::shutdown_all) has run.
    pub fn is_shut_down(&self) -> bool {
        self.shut_down
    }

    // ---- socket options ----------------------------------------------------------------

    fn with_socket<T>(
        &self,
        h: Handle,
        f: impl FnOnce(SockRef<'_>) -> io::Result<T>,
    ) -> Result<T, Status> {
        match self.resources.get(h) {
            Some(Resource::Conn(c)) => f(SockRef::from(&c.stream)).map_err(Status::from),
            Some(Resource::Listener(l)) => f(SockRef::from(&l.listener)).map_err(Status::from),
            None => Err(Status::BadHandle),
        }
    }

    /// Sets or clears `TCP_NODELAY` on a connection.
    pub fn set_nodelay(&mut self, h: Handle, on: bool) -> Result<(), Status> {
        self.conn_mut(h)?;
        self.with_socket(h, |s| s.set_tcp_nodelay(on))
    }

    /// Turns TCP keepalive off (`None`) or on with the given idle time before probes.
    pub fn set_keepalive(&mut self, h: Handle, idle: Option<Duration>) -> Result<(), Status> {
        self.conn_mut(h)?;
        match idle {
            None => self.with_socket(h, |s| s.set_keepalive(false)),
            Some(d) if d.is_zero() || d.as_secs() > i32::MAX as u64 => Err(Status::InvalidArgument),
            Some(d) => self.with_socket(h, |s| {
                s.set_tcp_keepalive(&TcpKeepalive::new().with_time(d))
            }),
        }
    }

    /// The local address of a connection or listener.
    pub fn local_addr(&self, h: Handle) -> Result<SocketAddr, Status> {
        self.with_socket(h, |s| s.local_addr())
            .and_then(|a| a.as_socket().ok_or(Status::IoError))
    }

    /// The socket's file descriptor, for options the runtime does not wrap (`setsockopt`).
    /// The runtime keeps owning it: the caller must not close it, and it is invalid once the
    /// handle is closed.
    pub fn raw_fd(&self, h: Handle) -> Result<RawFd, Status> {
        self.with_socket(h, |s| Ok(s.as_raw_fd()))
    }

    /// The peer address of a connection.
    pub fn peer_addr(&self, h: Handle) -> Result<SocketAddr, Status> {
        match self.resources.get(h) {
            Some(Resource::Listener(_)) => Err(Status::NotConnected),
            _ => self
                .with_socket(h, |s| s.peer_addr())
                .and_then(|a| a.as_socket().ok_or(Status::IoError)),
        }
    }

    // ---- progress ----------------------------------------------------------------------

    fn progress_read(&mut self, h: Handle) {
        let Some(Resource::Conn(conn)) = self.resources.get_mut(h) else {
            return;
        };
        let q = &mut self.q;
        let mut bursts = 0;
        while let Some(&id) = conn.reads.front() {
            let multi = match q.ops.get(id) {
                Some(Op {
                    state: OpState::Read(_),
                    ..
                }) => None,
                Some(Op {
                    state: OpState::ReadMulti { cap },
                    ..
                }) => Some(*cap),
                _ => {
                    conn.reads.pop_front();
                    continue;
                }
            };
            let mut cx = Context::from_waker(&conn.read_waker);
            match conn.stream.poll_read_ready(&mut cx) {
                Poll::Pending => return,
                Poll::Ready(Err(e)) => {
                    conn.reads.pop_front();
                    q.finish(id, Err(Status::from(e)), h);
                    continue;
                }
                Poll::Ready(Ok(())) => {}
            }
            let Some(cap) = multi else {
                let Some(Op {
                    state: OpState::Read(buf),
                    ..
                }) = q.ops.get_mut(id)
                else {
                    return;
                };
                match recv_into(&conn.stream, buf, usize::MAX) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    r => {
                        conn.reads.pop_front();
                        q.finish(id, r.map_err(Status::from), h);
                    }
                }
                continue;
            };
            let mut buf = ReadBuf::from_vec(q.take_buf(cap));
            let r = recv_into(&conn.stream, &mut buf, cap);
            let ReadBuf(ReadInner::Owned(v)) = buf else {
                return;
            };
            match r {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => q.spare(v),
                Ok(n) if n > 0 => {
                    q.post_more(id, n, h, v);
                    if n == cap {
                        // Maybe more waiting: take a few more, then let other sockets go
                        // first and come back in the next round of this turn.
                        bursts += 1;
                        if bursts == MULTISHOT_BURST {
                            self.shared.push(key(KEY_READ, h));
                            return;
                        }
                    }
                }
                r => {
                    // End of stream or an error: the last completion.
                    q.spare(v);
                    conn.reads.pop_front();
                    q.finish(id, r.map_err(Status::from), h);
                }
            }
        }
    }

    fn progress_write(&mut self, h: Handle) {
        let Some(Resource::Conn(conn)) = self.resources.get_mut(h) else {
            return;
        };
        let q = &mut self.q;
        while let Some(&id) = conn.writes.front() {
            let Some(op) = q.ops.get_mut(id) else {
                conn.writes.pop_front();
                continue;
            };
            match &op.state {
                OpState::Shutdown => {
                    conn.writes.pop_front();
                    let r = SockRef::from(&conn.stream).shutdown(std::net::Shutdown::Write);
                    q.finish(id, r.map(|_| 0).map_err(Status::from), h);
                    continue;
                }
                OpState::Write { buf, done } if *done == buf.len() => {
                    let n = buf.len();
                    conn.writes.pop_front();
                    q.finish(id, Ok(n), h);
                    continue;
                }
                _ => {}
            }
            let mut cx = Context::from_waker(&conn.write_waker);
            match conn.stream.poll_write_ready(&mut cx) {
                Poll::Pending => return,
                Poll::Ready(Err(e)) => {
                    conn.writes.pop_front();
                    q.finish(id, Err(Status::from(e)), h);
                    continue;
                }
                Poll::Ready(Ok(())) => {}
            }
            // Gather the queued writes (up to the first shutdown) into one sendmsg.
            let mut iov = Iovecs::new();
            for &wid in &conn.writes {
                match q.ops.get(wid) {
                    Some(Op {
                        state: OpState::Write { buf, done },
                        ..
                    }) if iov.push(&buf.as_slice()[*done..]) => {}
                    _ => break,
                }
            }
            let fd = conn.stream.as_raw_fd();
            // SAFETY: the iovecs borrow buffers owned by queued ops, alive for the whole call.
            let sent = conn.stream.try_io(Interest::WRITABLE, || unsafe {
                send_iov(fd, iov.as_slice())
            });
            match sent {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => {
                    conn.writes.pop_front();
                    q.finish(id, Err(Status::from(e)), h);
                }
                Ok(mut n) => {
                    while n > 0 {
                        let Some(&wid) = conn.writes.front() else {
                            break;
                        };
                        let Some(Op {
                            state: OpState::Write { buf, done },
                            ..
                        }) = q.ops.get_mut(wid)
                        else {
                            break;
                        };
                        let take = n.min(buf.len() - *done);
                        *done += take;
                        n -= take;
                        if *done == buf.len() {
                            let len = buf.len();
                            conn.writes.pop_front();
                            q.finish(wid, Ok(len), h);
                        }
                    }
                }
            }
        }
    }

    fn progress_accept(&mut self, h: Handle) {
        loop {
            let Some(Resource::Listener(l)) = self.resources.get_mut(h) else {
                return;
            };
            let Some(&id) = l.accepts.front() else { return };
            let mut cx = Context::from_waker(&l.waker);
            let accepted = match l.listener.poll_accept(&mut cx) {
                Poll::Pending => return,
                Poll::Ready(r) => r,
            };
            l.accepts.pop_front();
            match accepted
                .map_err(Status::from)
                .and_then(|(stream, _)| self.add_conn(stream))
            {
                Ok(conn) => self.q.finish(id, Ok(0), conn),
                Err(s) => self.q.finish(id, Err(s), Handle::NONE),
            }
        }
    }

    fn progress_connect(&mut self, id: Handle) {
        let Some(Op {
            state: OpState::Connect { fut, waker },
            ..
        }) = self.q.ops.get_mut(id)
        else {
            return;
        };
        let mut cx = Context::from_waker(waker);
        let stream = match fut.as_mut().poll(&mut cx) {
            Poll::Pending => return,
            Poll::Ready(r) => r,
        };
        match stream.and_then(|s| self.add_conn(s)) {
            Ok(conn) => self.q.finish(id, Ok(0), conn),
            Err(s) => self.q.finish(id, Err(s), Handle::NONE),
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if !self.shut_down {
            self.shutdown_all();
        }
        self.q.completions.clear();
        {
            // Sockets deregister from tokio's driver as they drop.
            let _e = self.tokio.enter();
            self.sentinel = None;
        }
        if let Some(reactor) = self.reactor.take() {
            reactor.stop.notify_one();
            let _ = reactor.thread.join();
        }
        // Dropping the last `Arc` of the tokio runtime joins its blocking threads.
    }
}

/// The IP address `host` spells, with or without IPv6 brackets (`"::1"`, `"[::1]"`).
fn ip_literal(host: &str) -> Option<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

async fn connect_addrs(addrs: Vec<SocketAddr>) -> Result<TcpStream, Status> {
    let mut last = Status::NameNotResolved;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => return Ok(s),
            Err(e) => last = Status::from(e),
        }
    }
    Err(last)
}

/// The instant `ms` milliseconds from now. A delay with the top bit set is a negative
/// number in disguise (a C caller passing -1): `InvalidArgument`, as is one past the clock's
/// range. `Instant::checked_add` alone does not catch `u64::MAX` ms on Linux.
fn instant_after(ms: u64) -> Result<Instant, Status> {
    if ms > i64::MAX as u64 {
        return Err(Status::InvalidArgument);
    }
    Instant::now()
        .checked_add(Duration::from_millis(ms))
        .ok_or(Status::InvalidArgument)
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86400 * 365 * 30)
}

/// One `recv` of at most `max` bytes into `buf`'s free space (a short read clears tokio's
/// readiness, as its own `poll_read` does, so that the next read waits for the next event
/// instead of trying a recv that would only say EAGAIN). Returns the bytes read; an owned
/// buffer grows by them.
fn recv_into(stream: &TcpStream, buf: &mut ReadBuf, max: usize) -> io::Result<usize> {
    let (ptr, len) = match &mut buf.0 {
        ReadInner::Owned(v) => (
            v.spare_capacity_mut().as_mut_ptr().cast::<u8>(),
            (v.capacity() - v.len()).min(max),
        ),
        ReadInner::Raw(ptr, len) => (*ptr, (*len).min(max)),
    };
    let fd = stream.as_raw_fd();
    let mut short = None;
    let r = stream.try_io(Interest::READABLE, || {
        // SAFETY: `ptr..ptr+len` is writable: a Vec's spare capacity, or raw memory its
        // submitter guaranteed until this op completes.
        let n = unsafe { libc::recv(fd, ptr.cast(), len, 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        if n > 0 && n < len {
            short = Some(n);
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    });
    let r = short.map_or(r, Ok);
    if let (Ok(n), ReadInner::Owned(v)) = (&r, &mut buf.0) {
        // SAFETY: recv initialised `n` bytes of the spare capacity.
        unsafe { v.set_len(v.len() + n) };
    }
    r
}

/// Up to `MAX_IOV` iovecs on the stack, left uninitialised past the ones pushed (a zeroed
/// array would cost a 1 KiB memset per write).
struct Iovecs<'a> {
    iov: [std::mem::MaybeUninit<libc::iovec>; MAX_IOV],
    n: usize,
    _bufs: std::marker::PhantomData<&'a [u8]>,
}

impl<'a> Iovecs<'a> {
    fn new() -> Iovecs<'a> {
        Iovecs {
            iov: [std::mem::MaybeUninit::uninit(); MAX_IOV],
            n: 0,
            _bufs: std::marker::PhantomData,
        }
    }

    /// Adds `b`; false when full.
    fn push(&mut self, b: &'a [u8]) -> bool {
        if self.n == MAX_IOV {
            return false;
        }
        self.iov[self.n].write(libc::iovec {
            iov_base: b.as_ptr() as *mut _,
            iov_len: b.len(),
        });
        self.n += 1;
        true
    }

    fn as_slice(&self) -> &[libc::iovec] {
        // SAFETY: the first `n` entries were written by `push`.
        unsafe { std::slice::from_raw_parts(self.iov.as_ptr().cast(), self.n) }
    }
}

/// One `send` (a single buffer) or `sendmsg` (several) on socket `fd`, with `MSG_NOSIGNAL`
/// (EPIPE instead of SIGPIPE).
///
/// # Safety
/// `fd` is an open socket and every iovec points at `iov_len` readable bytes.
unsafe fn send_iov(fd: RawFd, iov: &[libc::iovec]) -> io::Result<usize> {
    let n = if let [one] = iov {
        // SAFETY: the caller's guarantee; one buffer needs no msghdr.
        unsafe { libc::send(fd, one.iov_base, one.iov_len, libc::MSG_NOSIGNAL) }
    } else {
        // SAFETY: a zeroed msghdr is valid; it points at the caller's iovecs.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = iov.as_ptr() as *mut _;
        msg.msg_iovlen = iov.len() as _;
        // SAFETY: the caller's guarantee.
        unsafe { libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL) }
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Waits until `fd` is readable or `timeout` passes (`None`: no limit).
fn poll_readable(fd: RawFd, timeout: Option<Duration>) {
    let ms = match timeout {
        None => -1,
        // Round up so a consumer never wakes just before its timer is due and spins.
        Some(d) => d.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32,
    };
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd; EINTR and errors just end the wait early.
    unsafe { libc::poll(&mut pfd, 1, ms) };
}
