//! The runtime: a current-thread tokio runtime plus polyio's handle table and completion
//! queue, driven by its consumer's thread. This module holds creation, the backend fd, the
//! turn and reap that drive tokio, and the dispatch of ready keys to each kind's progress
//! step; `queue` holds the op table and completions, `timer` timers and deadlines, `cancel`
//! cancellation and shutdown, `ids` runtime ids, `lost` a backend fd closed under it. Each kind of I/O adds its submissions in
//! its own `impl Runtime` block (`stream.rs`, `tcp.rs`, ...).

mod cancel;
mod ids;
mod lost;
mod queue;
mod timer;

use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::task::Poll;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;

use crate::backend::{Backend, find_tokio_epoll};
use crate::fs::state::FsState;
use crate::fs::types::FsBackend;
use crate::handle::{Handle, Table};
use crate::op::{Completion, Key, Op, OpCode, OpState};
use crate::resolve::{self, AddrInfo, Resolve};
use crate::socket::Resource;
use crate::status::Status;
use crate::task::{Done, Task, TaskFuture};
use crate::wake::{self, DrivingGuard, RuntimeWaker, Shared};

use ids::IdLease;
use lost::{PollingGuard, fd_closed};
pub(crate) use queue::Queue;
pub use queue::Stats;
use queue::TimerTarget;

/// A finished task's completion: result, handle, a lookup's addresses.
type Settled = (usize, Handle, Option<Box<[AddrInfo]>>);

/// Rounds of ready-queue draining per turn: bounds a turn when wakers keep re-firing.
const READY_ROUNDS: usize = 4;

/// Runtime settings.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub backend: Backend,
    /// Upper bound on operations in flight plus completions not yet reaped; past it a submit
    /// fails with `QueueFull`.
    pub max_ops: usize,
    /// How files are read and written (`Auto`: io_uring where it works, unless
    /// `POLYIO_FS_BACKEND=threads` is set when the runtime is created).
    pub fs_backend: FsBackend,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            backend: Backend::Auto,
            max_ops: 1 << 16,
            fs_backend: FsBackend::Auto,
        }
    }
}

/// A borrowed fd that tokio may register but never closes.
struct FdRef(RawFd);

impl AsRawFd for FdRef {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// The fallback backend's thread, which drives tokio's I/O driver.
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
    pub(crate) shared: Arc<Shared>,
    pub(crate) resources: Table<Resource>,
    pub(crate) q: Queue,
    max_ops: usize,
    scratch: Vec<u64>,
    /// The last turn skipped polling I/O (see `turn`).
    skipped_io: bool,
    shut_down: bool,
    /// The backend fd was closed under the runtime (see `lose_backend`): tokio's driver is
    /// not polled again.
    backend_lost: bool,
    /// The eventfd registered with tokio (epoll backend), so that a wake from another
    /// thread makes tokio's epoll, the backend fd, readable. Dropped before `tokio`.
    wake_registration: Option<AsyncFd<FdRef>>,
    reactor: Option<Reactor>,
    /// Files: the chosen backend and the io_uring ring. Dropped before `tokio`.
    pub(crate) fs: FsState,
    pub(crate) tokio: Arc<tokio::runtime::Runtime>,
    /// Answers name lookups (on the detached pool: nothing here waits for them).
    pub(crate) resolver: Arc<dyn Resolve>,
    /// Keeps `id` reserved until the runtime is gone.
    _id: IdLease,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("id", &self.id)
            .field("backend", &self.backend)
            .field("in_flight", &self.q.in_flight())
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
            q: Queue::new(id),
            max_ops: options.max_ops,
            scratch: Vec::new(),
            skipped_io: false,
            shut_down: false,
            backend_lost: false,
            wake_registration: None,
            reactor: None,
            fs: FsState::new(options.fs_backend),
            tokio,
            resolver: resolve::default_resolver(),
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
        let registration = {
            let _e = self.tokio.enter();
            // SAFETY: the eventfd lives in `self.shared`, which outlives `self.wake_registration`
            // (dropped first in `Drop`), so the fd stays open while registered.
            unsafe {
                AsyncFd::register_with_interest(FdRef(self.shared.event_fd()), Interest::READABLE)
            }
            .map_err(|e| Status::from(e.into_parts().1))?
        };
        self.backend_fd = find_tokio_epoll(&self.tokio)?;
        lost::install_hook();
        self.wake_registration = Some(registration);
        self.backend = Backend::Epoll;
        Ok(())
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
            in_flight: self.q.in_flight(),
            fs_backend: self.fs.backend(),
            ..self.q.stats
        }
    }

    /// One bounded, non-blocking turn: polls I/O with a zero timeout, progresses every
    /// operation that became ready, fires due timers, then moves up to `max` completions
    /// into `out` (the rest wait for the next call). Returns how many it moved.
    pub fn turn(&mut self, out: &mut Vec<Completion>, max: usize) -> usize {
        // With completions already waiting (typically one posted inline by the consumer's
        // last submit), this turn can hand them over without an epoll_wait; never twice in a
        // row, so a consumer whose ops keep completing inline cannot starve other sockets.
        let skip_io = !self.q.completions.is_empty() && !self.skipped_io;
        self.skipped_io = skip_io;
        self.turn_inner(out, max, !skip_io)
    }

    /// A turn that polls I/O (one `epoll_wait(0)` on the epoll backend) only if `poll_io`.
    fn turn_inner(&mut self, out: &mut Vec<Completion>, max: usize, poll_io: bool) -> usize {
        self.q.stats.turns += 1;
        let _driving = DrivingGuard::new(self.id);
        if self.backend == Backend::Epoll && poll_io && !self.backend_lost {
            // One pass of tokio's scheduler: `yield_now` defers, so the scheduler parks with
            // a zero timeout (epoll_wait(0)), dispatching I/O wakers into our ready queue.
            let (tokio, fd) = (&self.tokio, self.backend_fd);
            let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let _polling = PollingGuard::new(fd);
                tokio.block_on(tokio::task::yield_now())
            }));
            if let Err(panic) = polled {
                // tokio panics when its epoll fd is gone; anything else is a bug to report.
                if !fd_closed(self.backend_fd) {
                    std::panic::resume_unwind(panic);
                }
                self.lose_backend(true);
            }
        }
        self.shared.drain_signal();
        self.process_ready();
        if !self.q.timers.is_empty() {
            // A timer may poll a task or cancel one: inside tokio's context.
            let _enter = self.tokio.enter();
            self.fire_timers(Instant::now());
        }
        self.pop_completions(out, max)
    }

    /// Runs turns until at least one completion is available, then returns up to `max`.
    /// Blocks at most `timeout` (`None`: without limit). Returns 0 on timeout, when woken by
    /// [`RuntimeWaker::wake`], and at once when nothing is in flight (nothing could ever
    /// complete). A wake made while no reap was waiting is remembered: the next reap
    /// returns at once (with whatever completions are ready), even if turns ran between.
    pub fn reap(
        &mut self,
        out: &mut Vec<Completion>,
        max: usize,
        timeout: Option<Duration>,
    ) -> usize {
        let deadline = timeout.map(|t| Instant::now().checked_add(t).unwrap_or_else(far_future));
        loop {
            let idle = self.q.in_flight() == 0 && self.q.completions.is_empty();
            // Nothing due now: sleep first, so that the turn after it finds work. Without a
            // time limit on the epoll backend the sleep is tokio's own epoll_wait; with one
            // (a timer, a deadline, `timeout`) it is a poll on the backend fd, and the turn
            // after it runs an epoll_wait(0).
            let mut wait = self.next_timeout();
            // A wake made while nobody was in `reap` is remembered: this reap returns at once,
            // even if turns drained the backend fd since.
            if self.shared.is_woken() {
                wait = Some(Duration::ZERO);
            }
            if !idle && max > 0 && wait != Some(Duration::ZERO) {
                if let Some(d) = deadline {
                    let left = d.saturating_duration_since(Instant::now());
                    wait = Some(wait.map_or(left, |w| w.min(left)));
                }
                if wait.is_none() && self.backend == Backend::Epoll && !self.backend_lost {
                    // Park in tokio's own epoll_wait: the I/O it wakes for is dispatched
                    // there, so the turn after it needs no epoll_wait of its own (one
                    // syscall per wakeup, not a poll and an epoll_wait).
                    let parked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        self.park_in_reactor()
                    }));
                    if let Err(panic) = parked {
                        self.shared.unpark();
                        // tokio panics when its epoll fd is gone; anything else is a bug.
                        if !fd_closed(self.backend_fd) {
                            std::panic::resume_unwind(panic);
                        }
                        self.lose_backend(true);
                        continue;
                    }
                    let n = self.turn_inner(out, max, false);
                    self.skipped_io = false;
                    if n > 0 || self.shared.take_woken() {
                        return n;
                    }
                    continue;
                }
                if wait != Some(Duration::ZERO)
                    && !poll_readable(self.backend_fd, wait)
                    && !self.backend_lost
                {
                    self.lose_backend(false);
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

    /// Blocks in tokio's driver (its epoll_wait, no timeout) until a waker queues a key or
    /// the eventfd is signaled (a wake from another thread); the I/O events it waits for
    /// are dispatched to their wakers on the way out.
    fn park_in_reactor(&mut self) {
        let _driving = DrivingGuard::new(self.id);
        let _polling = PollingGuard::new(self.backend_fd);
        let shared = self.shared.clone();
        self.tokio
            .block_on(std::future::poll_fn(|cx| shared.poll_parked(cx)));
        shared.unpark();
    }

    /// Moves up to `max` completions that are already posted (for example inline ones from
    /// submit calls) into `out`, without polling I/O or firing timers. Returns how many it
    /// moved. Lets a consumer settle inline completions at once, without a full turn.
    pub fn drain(&mut self, out: &mut Vec<Completion>, max: usize) -> usize {
        self.pop_completions(out, max)
    }

    /// A caller closed the backend fd under the runtime (a bug in the caller). The runtime
    /// cannot wait for I/O any more, so it shuts down: every op in flight completes with
    /// `Canceled`, later submissions fail with `Shutdown`. Unless its owner is gone
    /// (`driver_dropped`: tokio's driver panicked on it and was dropped while unwinding,
    /// after `lost`'s hook had put /dev/null there for it to close), /dev/null takes the
    /// fd's number, so that tokio and polyio, which own it, close an open file when they
    /// drop (the number may meanwhile name someone else's file; nothing can tell).
    fn lose_backend(&mut self, driver_dropped: bool) {
        self.backend_lost = true;
        if !driver_dropped && fd_closed(self.backend_fd) {
            lost::put_dev_null_on(self.backend_fd);
        }
        if !self.shut_down {
            self.shutdown_all();
        }
    }

    fn pop_completions(&mut self, out: &mut Vec<Completion>, max: usize) -> usize {
        let n = max.min(self.q.completions.len());
        out.extend(self.q.completions.drain(..n));
        n
    }

    /// Progresses what the wakers queued: each key names a resource queue or a task. Reads
    /// and writes on registered sockets run outside tokio's context (polling readiness needs
    /// none, and entering costs two thread-local swaps per turn); accepts (which register
    /// the new socket), tasks and the ring run inside it.
    fn process_ready(&mut self) {
        let mut batch = std::mem::take(&mut self.scratch);
        for _ in 0..READY_ROUNDS {
            self.shared.take_ready(&mut batch);
            if batch.is_empty() {
                break;
            }
            for raw in batch.drain(..) {
                match Key::decode(raw, self.id) {
                    Some(Key::Read(h)) => self.progress_read(h),
                    Some(Key::Write(h)) => self.progress_write(h),
                    Some(Key::Accept(h)) => {
                        let _enter = self.tokio.enter();
                        self.progress_accept(h);
                    }
                    Some(Key::Task(id)) => {
                        let _enter = self.tokio.enter();
                        self.progress_task(id);
                    }
                    Some(Key::Recv(h)) => self.progress_recv(h),
                    Some(Key::Send(h)) => self.progress_send(h),
                    Some(Key::Ring) => {
                        let _enter = self.tokio.enter();
                        self.progress_ring();
                    }
                    None => {}
                }
            }
        }
        self.scratch = batch;
    }

    /// Queues `key` for the next turn's progress (from the driving thread: no wakeup).
    pub(crate) fn requeue(&self, key: Key) {
        let _driving = DrivingGuard::new(self.id);
        self.shared.push(key.encode());
    }

    /// The wakers that queue `keys[0]` and `keys[1]`, in one allocation (a connection's).
    pub(crate) fn waker_pair(&self, keys: [Key; 2]) -> (std::task::Waker, std::task::Waker) {
        wake::waker_pair(&self.shared, keys.map(Key::encode))
    }

    /// A waker that queues `key` for the next turn.
    pub(crate) fn waker_for(&self, key: Key) -> std::task::Waker {
        wake::waker(&self.shared, key.encode())
    }

    /// Runs `f` as part of a submit call: completions it posts are flagged inline. Inside
    /// tokio's context, for progress that may register new sockets (accept, connect).
    pub(crate) fn inline(&mut self, f: impl FnOnce(&mut Runtime)) {
        let _driving = DrivingGuard::new(self.id);
        let tokio = self.tokio.clone();
        let _enter = tokio.enter();
        self.inline_io(f);
    }

    /// [`inline`](Self::inline) for reads and writes on a registered socket: polling its
    /// readiness needs no runtime context and fires no waker, so this skips entering tokio's
    /// context (two thread-local swaps per submit, on the hot path).
    pub(crate) fn inline_io(&mut self, f: impl FnOnce(&mut Runtime)) {
        self.q.in_submit = true;
        f(self);
        self.q.in_submit = false;
    }

    /// Fails a submission that must not start: `Shutdown` after shutdown, `QueueFull` when
    /// ops in flight plus unreaped completions reach `max_ops`.
    pub(crate) fn admit(&self) -> Result<(), Status> {
        if self.shut_down {
            return Err(Status::Shutdown);
        }
        if self.q.in_flight() + self.q.completions.len() >= self.max_ops {
            return Err(Status::QueueFull);
        }
        Ok(())
    }

    /// Fails with `Shutdown` after shutdown (for calls that post no completion).
    pub(crate) fn live(&self) -> Result<(), Status> {
        if self.shut_down {
            return Err(Status::Shutdown);
        }
        Ok(())
    }

    pub(crate) fn new_op(
        &mut self,
        user_data: u64,
        code: OpCode,
        target: Handle,
        state: OpState,
    ) -> Result<Handle, Status> {
        self.q.insert(Op::new(user_data, code, target, state))
    }

    /// Submits `fut` as a task op: polled now (inline) and whenever its waker fires, it
    /// completes with what it produces.
    pub(crate) fn submit_task(
        &mut self,
        user_data: u64,
        code: OpCode,
        fut: TaskFuture,
    ) -> Result<(), Status> {
        let id = self.new_op(
            user_data,
            code,
            Handle::NONE,
            OpState::Task(Box::new(Task::new(fut))),
        )?;
        let w = self.waker_for(Key::Task(id));
        if let Some(Op {
            state: OpState::Task(task),
            ..
        }) = self.q.op_mut(id)
        {
            task.set_waker(w);
        }
        self.inline(|rt| rt.progress_task(id));
        Ok(())
    }

    pub(crate) fn progress_task(&mut self, id: Handle) {
        let Some(Op {
            state: OpState::Task(task),
            ..
        }) = self.q.op_mut(id)
        else {
            return;
        };
        let done = match task.poll() {
            (Poll::Ready(r), _) => r,
            (Poll::Pending, None) => return,
            (Poll::Pending, Some(at)) => {
                // Polled again at `at`: one timer per task, the latest request replacing it.
                let old = task.wake_timer.take();
                if let Some(k) = old {
                    self.q.timers.remove(&k);
                }
                let k = self.q.add_timer(at, TimerTarget::WakeTask(id));
                if let Some(Op {
                    state: OpState::Task(task),
                    ..
                }) = self.q.op_mut(id)
                {
                    task.wake_timer = Some(k);
                }
                return;
            }
        };
        match done.and_then(|d| self.settle(id, d)) {
            Ok((n, h, addrs)) => self.q.finish_with(id, Ok(n), h, addrs),
            Err(s) => self.q.finish(id, Err(s), Handle::NONE),
        }
    }

    /// What a finished task's output becomes: the completion's result, handle and addresses.
    fn settle(&mut self, id: Handle, done: Done) -> Result<Settled, Status> {
        match done {
            Done::Stream(s) => self.add_conn(s).map(|h| (0, h, None)),
            Done::Addrs(a) => Ok((a.len(), Handle::NONE, Some(a.into_boxed_slice()))),
            Done::File(f) => self.settle_file(id, f).map(|(n, h)| (n, h, None)),
        }
    }

    /// Closes a connection, listener or UDP socket now. Its pending operations complete with
    /// `Canceled`; the handle is stale from here on. No completion of its own.
    pub fn close(&mut self, h: Handle) -> Result<(), Status> {
        let resource = self.resources.remove(h).ok_or(Status::BadHandle)?;
        let pending: Vec<Handle> = match &resource {
            Resource::Conn(c) => c.reads.iter().chain(c.writes.iter()).collect(),
            Resource::Listener(l) => l.accepts.iter().collect(),
            Resource::Udp(u) => u.recvs.iter().chain(u.sends.iter()).collect(),
            // Its ops in flight finish on their own: the kernel holds the file once they are
            // submitted, so submit the ones still queued before the fd closes.
            Resource::File(_) => {
                self.fs_flush();
                Vec::new()
            }
        };
        for op in pending {
            self.q.finish(op, Err(Status::Canceled), h);
        }
        drop(resource);
        Ok(())
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if !self.backend_lost && fd_closed(self.backend_fd) {
            self.lose_backend(false);
        }
        if !self.shut_down {
            self.shutdown_all();
        }
        self.q.completions.clear();
        {
            // Sockets deregister from tokio's driver as they drop.
            let _e = self.tokio.enter();
            self.wake_registration = None;
        }
        if let Some(reactor) = self.reactor.take() {
            reactor.stop.notify_one();
            let _ = reactor.thread.join();
        }
        // Dropping the last `Arc` of the tokio runtime joins its blocking threads; nothing
        // runs there (name lookups run on the detached pool, abandoned by the shutdown).
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86400 * 365 * 30)
}

/// Waits until `fd` is readable or `timeout` passes (`None`: no limit). False when `fd` is
/// not open (`POLLNVAL`).
fn poll_readable(fd: RawFd, timeout: Option<Duration>) -> bool {
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
    let n = unsafe { libc::poll(&mut pfd, 1, ms) };
    !(n == 1 && pfd.revents & libc::POLLNVAL != 0)
}
