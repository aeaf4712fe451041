//! The driver: one polyio-core runtime per asyncio event loop, driven from the loop's thread.
//!
//! The runtime's backend fd sits in `loop.add_reader`; its next timeout in one
//! `loop.call_at` handle. Each callback runs a bounded turn and settles every completion of
//! the batch (futures, stream buffers, protocol callbacks) before returning. Writes are
//! buffered per connection and flushed once per loop iteration, one vectored write each.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::{Duration, Instant};

use polyio_core::{Completion, FLAG_MORE, Handle, ListenOptions, OpCode, Options, Runtime, Status};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use pyo3::{PyTraverseError, PyVisit};

use crate::conn::{self, Conn, Mode};
use crate::errors::status_err;
use crate::sock::TransportSocket;

/// Completions settled per turn before the loop gets control back.
const TURN_BATCH: usize = 1024;
/// Turn-and-drain rounds per callback: inline completions of re-submitted reads and flushed
/// writes are settled in the same callback, within this bound.
const ROUNDS: usize = 4;

// user_data: an id from `Driver::next_id` in the high bits, what it is in the low two.
pub const KIND_READ: u64 = 0;
pub const KIND_WRITE: u64 = 1;
pub const KIND_SHUTDOWN: u64 = 2;
const KIND_WAITER: u64 = 3;

pub fn ud(id: u64, kind: u64) -> u64 {
    (id << 2) | kind
}

/// Hashes the driver's ids (a counter): one multiply instead of SipHash on every completion.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

enum Waiter {
    /// Resolves with the new connection's handle.
    Connect(Py<PyAny>, String),
    Timer(Py<PyAny>, Py<PyAny>),
    /// Called as `cb(handle, status)` for each accepted connection (status 0) or failure.
    Accept(Py<PyAny>),
}

/// The core runtime, shareable by reference as pyclass fields must be.
#[derive(Debug)]
struct Engine(Runtime);

// SAFETY: `Runtime` is `Send` but not `Sync`. Every access goes through the `Driver` pyclass,
// and this module declares `gil_used = true` (and is built for the GIL-only abi3): the GIL
// serializes all access, so no two threads ever touch the runtime at once.
unsafe impl Sync for Engine {}

impl std::ops::Deref for Engine {
    type Target = Runtime;
    fn deref(&self) -> &Runtime {
        &self.0
    }
}

impl std::ops::DerefMut for Engine {
    fn deref_mut(&mut self) -> &mut Runtime {
        &mut self.0
    }
}

/// One event loop's polyio runtime. Internal: `polyio` creates one per loop.
#[pyclass(module = "polyio._polyio")]
pub struct Driver {
    rt: Option<Engine>,
    pub(crate) loop_: Py<PyAny>,
    call_soon: Py<PyAny>,
    create_future: Py<PyAny>,
    /// `asyncio.Future` and a `{"loop": loop}` to call it with, when the loop's
    /// `create_future` makes exactly that (asyncio's loops and uvloop): the same future,
    /// without the loop method call and a keyword dict per future.
    future_type: Option<(Py<PyAny>, Py<PyDict>)>,
    run_cb: Option<Py<PyAny>>,
    flush_cb: Option<Py<PyAny>>,
    timer_cb: Option<Py<PyAny>>,
    conns: IdMap<Py<Conn>>,
    waiters: IdMap<Waiter>,
    next_id: u64,
    dirty: Vec<Py<Conn>>,
    flush_scheduled: bool,
    run_scheduled: bool,
    in_run: bool,
    /// A run resolved a stream read: tasks will run next iteration and likely write.
    pub(crate) expect_writes: bool,
    timer: Option<(Instant, Py<PyAny>)>,
    out: Vec<Completion>,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("runtime", &self.rt)
            .field("conns", &self.conns.len())
            .field("waiters", &self.waiters.len())
            .finish()
    }
}

impl Driver {
    pub(crate) fn rt(&mut self) -> PyResult<&mut Runtime> {
        self.rt
            .as_deref_mut()
            .ok_or_else(|| PyRuntimeError::new_err("polyio: the driver of this loop is closed"))
    }

    fn new_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    pub(crate) fn new_future<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match &self.future_type {
            Some((t, kw)) => t.bind(py).call((), Some(kw.bind(py))),
            None => self.create_future.bind(py).call0(),
        }
    }

    pub(crate) fn call_soon(&self, py: Python<'_>, f: &Py<PyAny>, arg: Py<PyAny>) -> PyResult<()> {
        self.call_soon.bind(py).call1((f, arg))?;
        Ok(())
    }

    pub(crate) fn call_soon0(&self, py: Python<'_>, f: &Py<PyAny>) -> PyResult<()> {
        self.call_soon.bind(py).call1((f,))?;
        Ok(())
    }

    /// Queues `conn` for the next flush; schedules the flush unless a run will do it.
    pub(crate) fn mark_dirty(&mut self, py: Python<'_>, conn: Py<Conn>) -> PyResult<()> {
        self.dirty.push(conn);
        if !self.in_run && !self.flush_scheduled {
            if let Some(cb) = &self.flush_cb {
                self.call_soon.bind(py).call1((cb,))?;
                self.flush_scheduled = true;
            }
        }
        Ok(())
    }

    /// After a submission outside a run: inline completions wait in the core queue, so make
    /// sure a run comes soon.
    pub(crate) fn poke(&mut self, py: Python<'_>) -> PyResult<()> {
        if self.in_run || self.run_scheduled {
            return Ok(());
        }
        let Some(rt) = self.rt.as_ref() else {
            return Ok(());
        };
        if rt.next_timeout() == Some(Duration::ZERO) {
            if let Some(cb) = &self.run_cb {
                self.call_soon.bind(py).call1((cb,))?;
                self.run_scheduled = true;
            }
        }
        Ok(())
    }

    pub(crate) fn forget_conn(&mut self, id: u64) {
        self.conns.remove(&id);
    }

    /// Turns (the first round) and drains, settles each batch, flushes; bounded by ROUNDS.
    fn pump(slf: &Bound<'_, Driver>, turn_first: bool) -> PyResult<()> {
        let py = slf.py();
        let mut batch = {
            let mut d = slf.borrow_mut();
            d.in_run = true;
            std::mem::take(&mut d.out)
        };
        let mut result = Ok(());
        for round in 0..ROUNDS {
            {
                let mut d = slf.borrow_mut();
                let Some(rt) = d.rt.as_mut() else { break };
                if round == 0 && turn_first {
                    rt.turn(&mut batch, TURN_BATCH);
                } else {
                    rt.drain(&mut batch, TURN_BATCH);
                }
            }
            let settled = batch.len();
            for c in batch.drain(..) {
                if let Err(e) = dispatch(slf, c) {
                    result = Err(e);
                }
            }
            if let Err(e) = flush_dirty(slf) {
                result = Err(e);
            }
            if settled == 0 && round > 0 {
                break;
            }
        }
        let mut d = slf.borrow_mut();
        d.out = batch;
        d.in_run = false;
        // Writes queued by callbacks of this run that came after its last flush; or, when
        // this run woke tasks blocked in a stream read, the writes they are about to make:
        // queued after their wakeups, the flush runs in the same loop iteration as they do
        // (no extra iteration, as uvloop's check-phase write queue).
        let expect = std::mem::take(&mut d.expect_writes);
        if (expect || !d.dirty.is_empty()) && !d.flush_scheduled {
            if let Some(cb) = d.flush_cb.as_ref() {
                d.call_soon.bind(py).call1((cb,))?;
                d.flush_scheduled = true;
            }
        }
        d.reschedule(py)?;
        result
    }

    fn reschedule(&mut self, py: Python<'_>) -> PyResult<()> {
        let Some(rt) = self.rt.as_ref() else {
            return Ok(());
        };
        match rt.next_timeout() {
            None => Ok(()),
            Some(Duration::ZERO) => {
                if !self.run_scheduled {
                    if let Some(cb) = &self.run_cb {
                        self.call_soon.bind(py).call1((cb,))?;
                        self.run_scheduled = true;
                    }
                }
                Ok(())
            }
            Some(d) => {
                let at = Instant::now() + d;
                if let Some((t, _)) = &self.timer {
                    if *t <= at {
                        return Ok(()); // an earlier (or equal) wakeup is already set
                    }
                }
                if let Some((_, h)) = self.timer.take() {
                    h.bind(py).call_method0(intern!(py, "cancel"))?;
                }
                let Some(cb) = &self.timer_cb else {
                    return Ok(());
                };
                let lp = self.loop_.bind(py);
                let now: f64 = lp.call_method0(intern!(py, "time"))?.extract()?;
                let h = lp.call_method1(intern!(py, "call_at"), (now + d.as_secs_f64(), cb))?;
                self.timer = Some((at, h.unbind()));
                Ok(())
            }
        }
    }
}

fn flush_dirty(slf: &Bound<'_, Driver>) -> PyResult<()> {
    let py = slf.py();
    let mut follow = Vec::new();
    {
        let mut d = slf.borrow_mut();
        if d.dirty.is_empty() {
            return Ok(());
        }
        let d = &mut *d;
        let Some(rt) = d.rt.as_deref_mut() else {
            return Ok(());
        };
        // Drained in place: the list keeps its capacity, no allocation per flush.
        for c in d.dirty.drain(..) {
            let action = c.bind(py).borrow_mut().flush(rt);
            if let Some(a) = action {
                follow.push((c, a));
            }
        }
    }
    for (c, a) in follow {
        conn::after_flush(c.bind(py), a)?;
    }
    Ok(())
}

fn dispatch(slf: &Bound<'_, Driver>, c: Completion) -> PyResult<()> {
    let py = slf.py();
    let id = c.user_data >> 2;
    match c.user_data & 3 {
        KIND_WAITER => {
            let waiter = slf.borrow_mut().waiters.remove(&id);
            match waiter {
                Some(Waiter::Connect(fut, what)) => {
                    let fut = fut.bind(py);
                    let done = fut.call_method0(intern!(py, "done"))?.is_truthy()?;
                    if c.result >= 0 {
                        if done {
                            // Cancelled after the connection was made: do not leak it.
                            let _ = slf.borrow_mut().rt()?.close(c.handle);
                        } else {
                            fut.call_method1(intern!(py, "set_result"), (c.handle.into_raw(),))?;
                        }
                    } else if !done {
                        let ctx = format!("Connect call failed {what}");
                        let e = status_err(py, c.result, Some(&ctx));
                        fut.call_method1(intern!(py, "set_exception"), (e.into_value(py),))?;
                    }
                }
                Some(Waiter::Timer(fut, value)) => {
                    let fut = fut.bind(py);
                    if !fut.call_method0(intern!(py, "done"))?.is_truthy()? {
                        if c.result >= 0 {
                            fut.call_method1(intern!(py, "set_result"), (value,))?;
                        } else {
                            let e = status_err(py, c.result, None);
                            fut.call_method1(intern!(py, "set_exception"), (e.into_value(py),))?;
                        }
                    }
                }
                Some(Waiter::Accept(cb)) => {
                    let status = if c.result < 0 { c.result } else { 0 };
                    cb.bind(py).call1((c.handle.into_raw(), status))?;
                }
                None => {}
            }
            Ok(())
        }
        kind => {
            let conn = slf.borrow().conns.get(&id).map(|c| c.clone_ref(py));
            let Some(conn) = conn else {
                return Ok(()); // the connection is gone: a cancelled op's completion
            };
            let conn = conn.bind(py);
            match (kind, c.op) {
                (KIND_READ, OpCode::Read) => {
                    conn::on_read(conn, c.result, c.buf, c.flags & FLAG_MORE != 0)
                }
                (KIND_WRITE, OpCode::Write) => conn::on_write(conn, c.result, c.buf),
                (KIND_SHUTDOWN, OpCode::Shutdown) => conn::on_shutdown(conn, c.result),
                _ => Ok(()),
            }
        }
    }
}

pub(crate) fn addr_tuple(py: Python<'_>, a: std::net::SocketAddr) -> PyResult<Py<PyAny>> {
    Ok(match a {
        std::net::SocketAddr::V4(v4) => (v4.ip().to_string(), v4.port())
            .into_pyobject(py)?
            .into_any()
            .unbind(),
        std::net::SocketAddr::V6(v6) => {
            (v6.ip().to_string(), v6.port(), v6.flowinfo(), v6.scope_id())
                .into_pyobject(py)?
                .into_any()
                .unbind()
        }
    })
}

pub(crate) fn raise(py: Python<'_>, s: Status) -> PyErr {
    status_err(py, i64::from(s.code()), None)
}

#[pymethods]
impl Driver {
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.loop_)?;
        visit.call(&self.call_soon)?;
        visit.call(&self.create_future)?;
        if let Some((t, kw)) = &self.future_type {
            visit.call(t)?;
            visit.call(kw)?;
        }
        for cb in [&self.run_cb, &self.flush_cb, &self.timer_cb] {
            visit.call(cb)?;
        }
        for c in self.conns.values().chain(self.dirty.iter()) {
            visit.call(c)?;
        }
        for w in self.waiters.values() {
            match w {
                Waiter::Connect(f, _) | Waiter::Accept(f) => visit.call(f)?,
                Waiter::Timer(f, v) => {
                    visit.call(f)?;
                    visit.call(v)?;
                }
            }
        }
        if let Some((_, h)) = &self.timer {
            visit.call(h)?;
        }
        Ok(())
    }

    fn __clear__(&mut self) {
        // Breaks the cycles (bound-method callbacks, connections); the runtime itself goes
        // when the object is freed.
        self.run_cb = None;
        self.flush_cb = None;
        self.timer_cb = None;
        self.conns.clear();
        self.dirty.clear();
        self.waiters.clear();
        self.timer = None;
        self.future_type = None;
    }

    #[new]
    fn new(py: Python<'_>, event_loop: Py<PyAny>) -> PyResult<Driver> {
        let rt = Runtime::new(Options::default()).map_err(|s| raise(py, s))?;
        let lp = event_loop.bind(py);
        Ok(Driver {
            rt: Some(Engine(rt)),
            call_soon: lp.getattr(intern!(py, "call_soon"))?.unbind(),
            create_future: lp.getattr(intern!(py, "create_future"))?.unbind(),
            future_type: plain_futures(lp)?,
            loop_: event_loop,
            run_cb: None,
            flush_cb: None,
            timer_cb: None,
            conns: IdMap::default(),
            waiters: IdMap::default(),
            next_id: 0,
            dirty: Vec::new(),
            flush_scheduled: false,
            run_scheduled: false,
            in_run: false,
            expect_writes: false,
            timer: None,
            out: Vec::with_capacity(64),
        })
    }

    /// The event loop this driver serves.
    #[getter(r#loop)]
    fn get_loop(&self, py: Python<'_>) -> Py<PyAny> {
        self.loop_.clone_ref(py)
    }

    /// Registers the backend fd with `loop.add_reader`. Call once, right after creation.
    fn start(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let run = slf.getattr(intern!(py, "run"))?.unbind();
        let flush = slf.getattr(intern!(py, "flush"))?.unbind();
        let timer = slf.getattr(intern!(py, "_on_timer"))?.unbind();
        let (lp, fd) = {
            let mut d = slf.borrow_mut();
            let fd = d.rt()?.backend_fd();
            d.run_cb = Some(run.clone_ref(py));
            d.flush_cb = Some(flush);
            d.timer_cb = Some(timer);
            (d.loop_.clone_ref(py), fd)
        };
        lp.bind(py)
            .call_method1(intern!(py, "add_reader"), (fd, run))?;
        Ok(())
    }

    /// The backend fd (for tests).
    fn fileno(&self) -> PyResult<i32> {
        Ok(self.rt.as_ref().map_or(-1, |rt| rt.backend_fd()))
    }

    /// Name of the backend in use: "epoll" or "thread".
    fn backend(&self) -> String {
        self.rt.as_ref().map_or_else(
            || "closed".into(),
            |rt| format!("{:?}", rt.backend()).to_lowercase(),
        )
    }

    /// One bounded turn: settles every completion that is ready (the add_reader callback).
    fn run(slf: &Bound<'_, Self>) -> PyResult<()> {
        slf.borrow_mut().run_scheduled = false;
        Driver::pump(slf, true)
    }

    /// Flushes buffered writes (scheduled with call_soon once per loop iteration).
    fn flush(slf: &Bound<'_, Self>) -> PyResult<()> {
        slf.borrow_mut().flush_scheduled = false;
        Driver::pump(slf, false)
    }

    fn _on_timer(slf: &Bound<'_, Self>) -> PyResult<()> {
        slf.borrow_mut().timer = None;
        Driver::pump(slf, true)
    }

    /// Counters: (inline completions, completions, turns, in flight).
    fn stats(&self) -> (u64, u64, u64, usize) {
        self.rt.as_ref().map_or((0, 0, 0, 0), |rt| {
            let s = rt.stats();
            (s.inline_completions, s.completions, s.turns, s.in_flight)
        })
    }

    /// Starts a connect; returns (future resolving to a handle, user_data for `cancel`).
    fn connect(slf: &Bound<'_, Self>, host: &str, port: u16) -> PyResult<(Py<PyAny>, u64)> {
        let py = slf.py();
        let mut d = slf.borrow_mut();
        let fut = d.new_future(py)?.unbind();
        let id = d.new_id();
        let u = ud(id, KIND_WAITER);
        d.rt()?
            .tcp_connect(host, port, u)
            .map_err(|s| raise(py, s))?;
        let what = format!("('{host}', {port})");
        d.waiters
            .insert(id, Waiter::Connect(fut.clone_ref(py), what));
        d.poke(py)?;
        Ok((fut, u))
    }

    /// Starts a timer; returns (future resolving to `result` after `delay` s, user_data).
    fn sleep(slf: &Bound<'_, Self>, delay: f64, result: Py<PyAny>) -> PyResult<(Py<PyAny>, u64)> {
        let py = slf.py();
        if delay.is_nan() {
            return Err(PyValueError::new_err("Invalid delay: NaN (not a number)"));
        }
        let ms = (delay.max(0.0) * 1000.0).ceil().min(i64::MAX as f64 / 2.0) as u64;
        let mut d = slf.borrow_mut();
        let fut = d.new_future(py)?.unbind();
        let id = d.new_id();
        let u = ud(id, KIND_WAITER);
        d.rt()?.timer(ms, u).map_err(|s| raise(py, s))?;
        d.waiters
            .insert(id, Waiter::Timer(fut.clone_ref(py), result));
        d.reschedule(py)?;
        Ok((fut, u))
    }

    /// Cancels the core operation submitted with `user_data` (a no-op once it completed).
    fn cancel(slf: &Bound<'_, Self>, user_data: u64) -> PyResult<()> {
        let py = slf.py();
        let mut d = slf.borrow_mut();
        if let Some(rt) = d.rt.as_mut() {
            let _ = rt.cancel(user_data);
        }
        // The CANCELED completion is queued; let a run settle it (and drop its waiter).
        d.poke(py)
    }

    /// The socket of a handle (a listener's, for `Server.sockets`), or None once closed.
    fn socket(slf: &Bound<'_, Self>, handle: u64) -> PyResult<Option<TransportSocket>> {
        TransportSocket::new(slf.py(), slf, Handle::from_raw(handle))
    }

    /// Binds and listens; returns the listener handle. `ipv6_only` sets `IPV6_V6ONLY` on an
    /// IPv6 listener, as asyncio's create_server does.
    fn listen(
        slf: &Bound<'_, Self>,
        host: &str,
        port: u16,
        backlog: u32,
        reuse_port: bool,
        ipv6_only: bool,
    ) -> PyResult<u64> {
        let py = slf.py();
        let opts = ListenOptions {
            backlog,
            reuse_port,
            ipv6_only,
        };
        let h = slf
            .borrow_mut()
            .rt()?
            .tcp_listen(host, port, opts)
            .map_err(|s| raise(py, s))?;
        Ok(h.into_raw())
    }

    /// Submits one accept on `listener`; `callback(handle, status)` gets its outcome.
    fn accept(slf: &Bound<'_, Self>, listener: u64, callback: Py<PyAny>) -> PyResult<u64> {
        let py = slf.py();
        let mut d = slf.borrow_mut();
        let id = d.new_id();
        let u = ud(id, KIND_WAITER);
        d.rt()?
            .accept(Handle::from_raw(listener), u)
            .map_err(|s| raise(py, s))?;
        d.waiters.insert(id, Waiter::Accept(callback));
        d.poke(py)?;
        Ok(u)
    }

    /// Closes a listener (or a connection nobody wrapped). Pending accepts complete with
    /// CANCELED.
    fn close_handle(slf: &Bound<'_, Self>, handle: u64) -> PyResult<()> {
        let py = slf.py();
        let mut d = slf.borrow_mut();
        if let Some(rt) = d.rt.as_mut() {
            let _ = rt.close(Handle::from_raw(handle));
        }
        d.poke(py)
    }

    /// The local address of a handle, as asyncio's `getsockname()` gives it.
    fn local_addr(slf: &Bound<'_, Self>, handle: u64) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let a = slf
            .borrow_mut()
            .rt()?
            .local_addr(Handle::from_raw(handle))
            .map_err(|s| raise(py, s))?;
        addr_tuple(py, a)
    }

    /// Wraps a connected handle as a stream connection (StreamReader buffer in Rust).
    fn stream(slf: &Bound<'_, Self>, handle: u64, limit: usize) -> PyResult<Py<Conn>> {
        if limit == 0 {
            return Err(PyValueError::new_err("Limit cannot be <= 0"));
        }
        new_conn(slf, handle, Mode::Stream { limit }, true)
    }

    /// Wraps a connected handle as a protocol transport. Reading starts with `start()`,
    /// after the caller ran `protocol.connection_made(transport)`.
    fn transport(slf: &Bound<'_, Self>, handle: u64, protocol: Py<PyAny>) -> PyResult<Py<Conn>> {
        new_conn(slf, handle, Mode::Protocol(protocol), false)
    }

    /// Cancels everything, closes every socket, unregisters from the loop.
    fn close(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let (rt, lp, timer, conns, waiters, cbs) = {
            let mut d = slf.borrow_mut();
            let cbs = (d.run_cb.take(), d.flush_cb.take(), d.timer_cb.take());
            (
                d.rt.take(),
                d.loop_.clone_ref(py),
                d.timer.take(),
                std::mem::take(&mut d.conns),
                std::mem::take(&mut d.waiters),
                cbs,
            )
        };
        let Some(rt) = rt else { return Ok(()) };
        let fd = rt.backend_fd();
        let lp = lp.bind(py);
        let closed = lp
            .call_method0(intern!(py, "is_closed"))
            .and_then(|c| c.is_truthy())
            .unwrap_or(true);
        if !closed {
            let _ = lp.call_method1(intern!(py, "remove_reader"), (fd,));
            if let Some((_, h)) = timer {
                let _ = h.bind(py).call_method0(intern!(py, "cancel"));
            }
        }
        // Dropping the runtime cancels every op and closes every socket before the fd goes.
        drop(rt);
        for c in conns.values() {
            c.bind(py).borrow_mut().detach();
        }
        drop((conns, waiters, cbs));
        Ok(())
    }

    fn is_closed(&self) -> bool {
        self.rt.is_none()
    }
}

/// `(asyncio.Future, {"loop": lp})` if `lp.create_future()` makes a plain `asyncio.Future`.
fn plain_futures(lp: &Bound<'_, PyAny>) -> PyResult<Option<(Py<PyAny>, Py<PyDict>)>> {
    let py = lp.py();
    let future = py
        .import(intern!(py, "asyncio"))?
        .getattr(intern!(py, "Future"))?;
    let probe = lp.call_method0(intern!(py, "create_future"))?;
    if !probe.get_type().is(&future) {
        return Ok(None);
    }
    let kw = PyDict::new(py);
    kw.set_item(intern!(py, "loop"), lp)?;
    Ok(Some((future.unbind(), kw.unbind())))
}

fn new_conn(slf: &Bound<'_, Driver>, handle: u64, mode: Mode, start: bool) -> PyResult<Py<Conn>> {
    let py = slf.py();
    let h = Handle::from_raw(handle);
    let id = {
        let mut d = slf.borrow_mut();
        let id = d.new_id();
        // As asyncio does for every TCP transport.
        let _ = d.rt()?.set_nodelay(h, true);
        id
    };
    let conn = Py::new(py, Conn::new(slf.clone().unbind(), id, h, mode))?;
    slf.borrow_mut().conns.insert(id, conn.clone_ref(py));
    if start {
        conn::start_reading(conn.bind(py))?;
    }
    Ok(conn)
}

pub(crate) fn peer_or_local(
    py: Python<'_>,
    d: &mut Driver,
    h: Handle,
    peer: bool,
) -> Option<Py<PyAny>> {
    let rt = d.rt.as_ref()?;
    let a = if peer {
        rt.peer_addr(h)
    } else {
        rt.local_addr(h)
    };
    a.ok().and_then(|a| addr_tuple(py, a).ok())
}
