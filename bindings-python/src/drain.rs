//! `StreamWriter.drain()` without a Python coroutine: a native awaitable that is also a
//! coroutine to asyncio (it has `send`, `throw` and `close`, so `asyncio.iscoroutine` holds
//! and `create_task` takes it). The usual case, nothing to wait for, is one shared object
//! whose `await` ends at once, with no allocation and no frame.

use pyo3::exceptions::{PyBaseException, PyConnectionResetError, PyRuntimeError, PyStopIteration};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::{PyTraverseError, PyVisit};

use crate::conn::Conn;

static DONE: PyOnceLock<Py<Drain>> = PyOnceLock::new();

enum State {
    /// Nothing to wait for (the shared object; never changes).
    Done,
    /// Raise this when awaited, as asyncio's drain raises the reader's or the connection's
    /// error.
    Raise(PyErr),
    /// The transport is closing: yield to the loop once (so that a pending
    /// `connection_lost` runs first, as asyncio does), then look again.
    Closing(Py<Conn>),
    /// Look again after that yield.
    Recheck(Py<Conn>),
    /// Wait for the writer to drop below its low-water mark.
    Wait(Py<PyAny>),
    /// Awaited to the end.
    Finished,
}

/// What `StreamWriter.drain()` returns: await it (or hand it to `create_task`).
#[pyclass(module = "polyio._polyio")]
pub struct Drain {
    state: State,
}

impl std::fmt::Debug for Drain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::Done => "done",
            State::Raise(_) => "raise",
            State::Closing(_) | State::Recheck(_) => "closing",
            State::Wait(_) => "wait",
            State::Finished => "finished",
        };
        f.debug_struct("Drain").field("state", &state).finish()
    }
}

impl Drain {
    /// The awaitable for `conn`'s drain, as things stand now.
    pub fn of(conn: &Bound<'_, Conn>) -> PyResult<Py<PyAny>> {
        let py = conn.py();
        let state = match drain_state(conn, false) {
            Ok(DrainState::Ready) => return done(py),
            Ok(DrainState::Closing) => State::Closing(conn.clone().unbind()),
            Ok(DrainState::Wait(fut)) => State::Wait(fut),
            Err(e) => State::Raise(e),
        };
        Ok(Py::new(py, Drain { state })?.into_any())
    }
}

/// Where StreamWriter.drain stands.
enum DrainState {
    /// Nothing to wait for.
    Ready,
    /// Closing, not yet looked at after a yield to the loop.
    Closing,
    /// Wait for this future (resolved below the low-water mark, or with the error).
    Wait(Py<PyAny>),
}

/// asyncio's drain logic: the reader's error, then (unless `yielded` already) a closing
/// transport, then a lost connection, then the water marks.
fn drain_state(c: &Bound<'_, Conn>, yielded: bool) -> PyResult<DrainState> {
    let py = c.py();
    let mut s = c.borrow_mut();
    if let Some(e) = &s.exc {
        return Err(e.clone_ref(py));
    }
    if s.closing && !yielded {
        return Ok(DrainState::Closing);
    }
    if s.lost {
        return Err(PyConnectionResetError::new_err("Connection lost"));
    }
    if !s.bp.is_paused() {
        return Ok(DrainState::Ready);
    }
    let Some(drv) = s.drv.as_ref().map(|d| d.clone_ref(py)) else {
        return Ok(DrainState::Ready);
    };
    let fut = drv.bind(py).borrow().new_future(py)?.unbind();
    s.drain_waiters.push(fut.clone_ref(py));
    Ok(DrainState::Wait(fut))
}

fn done(py: Python<'_>) -> PyResult<Py<PyAny>> {
    let d = DONE.get_or_try_init(py, || Py::new(py, Drain { state: State::Done }))?;
    Ok(d.clone_ref(py).into_any())
}

/// One step: `Some(x)` yields `x` to the task, `None` ends the await.
fn step(slf: &Bound<'_, Drain>) -> PyResult<Option<Py<PyAny>>> {
    let py = slf.py();
    let mut d = slf.borrow_mut();
    loop {
        match std::mem::replace(&mut d.state, State::Finished) {
            State::Done => {
                d.state = State::Done;
                return Ok(None);
            }
            State::Finished => {
                return Err(PyRuntimeError::new_err(
                    "cannot reuse already awaited coroutine",
                ));
            }
            State::Raise(e) => return Err(e),
            State::Closing(c) => {
                d.state = State::Recheck(c);
                return Ok(Some(py.None())); // a bare yield: the task runs again next turn
            }
            State::Recheck(c) => match drain_state(c.bind(py), true)? {
                DrainState::Ready | DrainState::Closing => return Ok(None),
                DrainState::Wait(fut) => d.state = State::Wait(fut),
            },
            State::Wait(fut) => {
                let f = fut.bind(py);
                if f.call_method0(intern!(py, "done"))?.is_truthy()? {
                    f.call_method0(intern!(py, "result"))?; // raises the connection's error
                    return Ok(None);
                }
                // What Future.__await__ does before yielding, so the task waits on it.
                f.setattr(intern!(py, "_asyncio_future_blocking"), true)?;
                d.state = State::Wait(fut.clone_ref(py));
                return Ok(Some(fut));
            }
        }
    }
}

#[pymethods]
impl Drain {
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        match &self.state {
            State::Closing(c) | State::Recheck(c) => visit.call(c),
            State::Wait(f) => visit.call(f),
            _ => Ok(()),
        }
    }

    fn __clear__(&mut self) {
        if !matches!(self.state, State::Done) {
            self.state = State::Finished;
        }
    }

    fn __await__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(slf: &Bound<'_, Self>) -> PyResult<Option<Py<PyAny>>> {
        step(slf)
    }

    /// Resumes it (the value is ignored, as drain's result is None).
    fn send(slf: &Bound<'_, Self>, value: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let _ = value;
        match step(slf)? {
            Some(v) => Ok(v),
            None => Err(PyStopIteration::new_err(())),
        }
    }

    /// Raises the given exception here (how a task cancels the await): it ends the await.
    #[pyo3(signature = (typ, val=None, _tb=None))]
    fn throw(
        slf: &Bound<'_, Self>,
        typ: &Bound<'_, PyAny>,
        val: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        {
            let mut d = slf.borrow_mut();
            if !matches!(d.state, State::Done) {
                d.state = State::Finished;
            }
        }
        let exc = match val {
            Some(v) if !v.is_none() => v.clone(),
            _ if typ.is_instance_of::<PyBaseException>() => typ.clone(),
            _ => typ.call0()?,
        };
        Err(PyErr::from_value(exc))
    }

    /// Ends it without waiting.
    fn close(&mut self) {
        if !matches!(self.state, State::Done) {
            self.state = State::Finished;
        }
    }
}
