//! The driver: one polyio-core runtime per asyncio event loop, driven from the loop's thread.
//!
//! The runtime's backend fd sits in `loop.add_reader`; its next timeout in one
//! `loop.call_at` handle. Each callback runs a bounded turn and hands every completion of
//! the batch to the kind that submitted it (a [`Kind`] registered under the op's id), then
//! runs the flushes kinds asked for, once per loop iteration. The driver knows no kind.

use std::time::{Duration, Instant};

use polyio_core::{Completion, IdMap, Options, Runtime};
use pyo3::exceptions::PyRuntimeError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use pyo3::{PyTraverseError, PyVisit};

use crate::errors::raise;

/// Completions settled per turn before the loop gets control back.
/// Write buffers a driver keeps for reuse, and the largest it keeps.
const WRITE_BUFS_KEPT: usize = 16;
const WRITE_BUF_MAX: usize = 256 * 1024;

const TURN_BATCH: usize = 1024;
/// Turn-and-drain rounds per callback: inline completions of re-submitted reads and flushed
/// writes are settled in the same callback, within this bound.
const ROUNDS: usize = 4;

/// user_data: an id from [`Driver::new_id`] in the high bits, and in the low two bits what
/// the kind that owns the id says the op is (a connection has a read, a write and a
/// shutdown under one id).
pub fn ud(id: u64, op: u64) -> u64 {
    (id << 2) | op
}

/// The kind's part of a user_data (see [`ud`]).
pub fn op_of(user_data: u64) -> u64 {
    user_data & 3
}

/// How the driver reaches the objects of one kind of I/O (a connection, a timer, a
/// connect, ...): each kind's module defines one as a `static`.
#[derive(Debug)]
pub struct Kind {
    /// Settles one completion of an op submitted under the object's id.
    pub settle: fn(&Bound<'_, Driver>, &Bound<'_, PyAny>, Completion) -> PyResult<()>,
    /// Runs the flush the object asked for with [`Driver::mark_dirty`].
    pub flush: fn(&Bound<'_, Driver>, &Bound<'_, PyAny>) -> PyResult<()>,
    /// The driver closed: the runtime, its ops and its sockets are gone.
    pub detach: fn(&Bound<'_, PyAny>),
}

/// For kinds with nothing to flush.
pub fn no_flush(_: &Bound<'_, Driver>, _: &Bound<'_, PyAny>) -> PyResult<()> {
    Ok(())
}

/// For kinds with nothing to forget when the driver closes.
pub fn no_detach(_: &Bound<'_, PyAny>) {}

/// An object registered under an id, and its kind.
struct Target {
    obj: Py<PyAny>,
    kind: &'static Kind,
    /// Forgotten at its first completion (a one-shot op's waiter).
    once: bool,
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
    targets: IdMap<Target>,
    next_id: u64,
    dirty: Vec<(Py<PyAny>, &'static Kind)>,
    /// The previous flush's list, kept for its capacity.
    spare_dirty: Vec<(Py<PyAny>, &'static Kind)>,
    flush_scheduled: bool,
    run_scheduled: bool,
    in_run: bool,
    /// A run resolved a stream read: tasks will run next iteration and likely write.
    pub(crate) expect_writes: bool,
    timer: Option<(Instant, Py<PyAny>)>,
    out: Vec<Completion>,
    /// When `fs_try_pread` first answered inline since the driver last ran (it stops after
    /// a budget, so that reading cached bytes never keeps the loop from running).
    pub(crate) inline_since: Option<Instant>,
    /// Write buffers shared by every connection: one flushed goes back here, so an idle
    /// connection keeps none.
    write_bufs: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("runtime", &self.rt)
            .field("targets", &self.targets.len())
            .finish()
    }
}

impl Driver {
    /// An empty write buffer, reused when one was given back.
    pub(crate) fn take_write_buf(&mut self) -> Vec<u8> {
        self.write_bufs.pop().unwrap_or_default()
    }

    /// Keeps an emptied write buffer for a later write (a few, and small ones only).
    pub(crate) fn keep_write_buf(&mut self, mut v: Vec<u8>) {
        if v.capacity() <= WRITE_BUF_MAX && self.write_bufs.len() < WRITE_BUFS_KEPT {
            v.clear();
            self.write_bufs.push(v);
        }
    }

    pub(crate) fn rt(&mut self) -> PyResult<&mut Runtime> {
        self.rt
            .as_deref_mut()
            .ok_or_else(|| PyRuntimeError::new_err("polyio: the driver of this loop is closed"))
    }

    /// The runtime, or None once the driver is closed.
    pub(crate) fn runtime(&self) -> Option<&Runtime> {
        self.rt.as_deref()
    }

    pub(crate) fn new_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Registers `obj` under `id`: completions of ops submitted under it go to
    /// `kind.settle` until [`Driver::forget`].
    pub(crate) fn register(&mut self, id: u64, obj: Py<PyAny>, kind: &'static Kind) {
        let once = false;
        self.targets.insert(id, Target { obj, kind, once });
    }

    /// Registers the waiter of one op submitted under `id`: forgotten at its completion.
    pub(crate) fn register_once(&mut self, id: u64, obj: Py<PyAny>, kind: &'static Kind) {
        let once = true;
        self.targets.insert(id, Target { obj, kind, once });
    }

    /// Later completions under `id` (cancelled ops of a closed object) are dropped.
    pub(crate) fn forget(&mut self, id: u64) {
        self.targets.remove(&id);
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

    /// Queues `obj` for `kind.flush` at the next flush; schedules the flush unless a run
    /// will do it. The caller queues an object once per flush.
    pub(crate) fn mark_dirty(
        &mut self,
        py: Python<'_>,
        obj: Py<PyAny>,
        kind: &'static Kind,
    ) -> PyResult<()> {
        self.dirty.push((obj, kind));
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

    /// Turns (the first round) and drains, settles each batch, flushes; bounded by ROUNDS.
    fn pump(slf: &Bound<'_, Driver>, turn_first: bool) -> PyResult<()> {
        let py = slf.py();
        let mut batch = {
            let mut d = slf.borrow_mut();
            d.in_run = true;
            d.inline_since = None;
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

    /// Arms the loop for the runtime's next timeout: a run soon when it is due now, else one
    /// `call_at` handle (kept when an earlier one is set).
    pub(crate) fn reschedule(&mut self, py: Python<'_>) -> PyResult<()> {
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

/// Runs every flush queued with `mark_dirty`; one queued during these flushes waits for
/// the next.
fn flush_dirty(slf: &Bound<'_, Driver>) -> PyResult<()> {
    let py = slf.py();
    let mut list = {
        let mut d = slf.borrow_mut();
        if d.dirty.is_empty() {
            return Ok(());
        }
        let spare = std::mem::take(&mut d.spare_dirty);
        std::mem::replace(&mut d.dirty, spare)
    };
    let mut result = Ok(());
    for (obj, kind) in list.drain(..) {
        if let Err(e) = (kind.flush)(slf, obj.bind(py)) {
            result = Err(e);
        }
    }
    slf.borrow_mut().spare_dirty = list;
    result
}

/// Hands a completion to the kind registered under its id.
fn dispatch(slf: &Bound<'_, Driver>, c: Completion) -> PyResult<()> {
    let py = slf.py();
    let id = c.user_data >> 2;
    let target = {
        let mut d = slf.borrow_mut();
        match d.targets.get(&id) {
            Some(t) if t.once => d.targets.remove(&id).map(|t| (t.obj, t.kind)),
            Some(t) => Some((t.obj.clone_ref(py), t.kind)),
            None => None, // forgotten: a cancelled op of a closed object
        }
    };
    match target {
        Some((obj, kind)) => (kind.settle)(slf, obj.bind(py), c),
        None => Ok(()),
    }
}

/// Settles `fut` with `r` unless it is done already (cancelled).
pub(crate) fn set_result(py: Python<'_>, fut: &Py<PyAny>, r: PyResult<Py<PyAny>>) -> PyResult<()> {
    if fut
        .bind(py)
        .call_method0(intern!(py, "done"))?
        .is_truthy()?
    {
        return Ok(());
    }
    resolve(py, fut, r)
}

/// Settles `fut`, which the caller knows is not done.
pub(crate) fn resolve(py: Python<'_>, fut: &Py<PyAny>, r: PyResult<Py<PyAny>>) -> PyResult<()> {
    let fut = fut.bind(py);
    match r {
        Ok(v) => fut.call_method1(intern!(py, "set_result"), (v,))?,
        Err(e) => fut.call_method1(intern!(py, "set_exception"), (e.into_value(py),))?,
    };
    Ok(())
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
        for t in self.targets.values() {
            visit.call(&t.obj)?;
        }
        for (obj, _) in &self.dirty {
            visit.call(obj)?;
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
        self.targets.clear();
        self.dirty.clear();
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
            targets: IdMap::default(),
            next_id: 0,
            dirty: Vec::new(),
            spare_dirty: Vec::new(),
            inline_since: None,
            flush_scheduled: false,
            run_scheduled: false,
            in_run: false,
            expect_writes: false,
            timer: None,
            out: Vec::with_capacity(64),
            write_bufs: Vec::new(),
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

    /// Runs the queued flushes (buffered writes; scheduled with call_soon once per loop
    /// iteration).
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

    /// Closes a listener (or a connection nobody wrapped). Pending accepts complete with
    /// CANCELED.
    fn close_handle(slf: &Bound<'_, Self>, handle: u64) -> PyResult<()> {
        let py = slf.py();
        let mut d = slf.borrow_mut();
        if let Some(rt) = d.rt.as_mut() {
            let _ = rt.close(polyio_core::Handle::from_raw(handle));
        }
        d.poke(py)
    }

    /// Cancels everything, closes every socket, unregisters from the loop.
    fn close(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let (rt, lp, timer, targets, cbs) = {
            let mut d = slf.borrow_mut();
            let cbs = (d.run_cb.take(), d.flush_cb.take(), d.timer_cb.take());
            (
                d.rt.take(),
                d.loop_.clone_ref(py),
                d.timer.take(),
                std::mem::take(&mut d.targets),
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
        for t in targets.values() {
            (t.kind.detach)(t.obj.bind(py));
        }
        drop((targets, cbs));
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
