//! The stream path every stream kind shares (as uvloop's `stream.pyx` under `tcp.pyx` and
//! `pipe.pyx`): wrapping a connected handle as a connection, accepting on a listener, and
//! settling a connection's completions.
//!
//! Reading: one multi-shot core read is armed while there is demand (stream: the buffer is
//! below twice the limit or a reader waits; protocol: not paused). Writing: `write()`
//! buffers (a large write with nothing ahead of it goes to the kernel at once; a smaller
//! `bytes` with nothing ahead is held, not copied); the driver's flush, once per loop
//! iteration, sends what the kernel takes (`try_write`) and queues the rest as one core
//! write; water marks drive `pause_writing`/`drain()`.

use std::os::fd::{FromRawFd, OwnedFd};

use polyio_core::{Completion, FLAG_MORE, FLAG_PARTIAL, Handle, OpCode, READ_SIZE, Status};
use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::conn::{
    Conn, FlushAction, Mode, OP_READ, OP_SHUTDOWN, OP_WRITE, PROTOCOL_READ_SIZE, callback_failed,
    close, fatal, force_close, with_driver,
};
use crate::driver::{self, Driver, Kind, op_of, ud};
use crate::errors::raise;
use crate::sock::peer_or_local;

const CANCELED: i64 = Status::Canceled as i64;

/// A connection, registered under its id for as long as it is open.
static STREAM: Kind = Kind {
    settle,
    flush,
    detach,
};

fn settle(_: &Bound<'_, Driver>, obj: &Bound<'_, PyAny>, c: Completion) -> PyResult<()> {
    let conn = obj.cast::<Conn>()?;
    match (op_of(c.user_data), c.op) {
        (OP_READ, OpCode::Read) => on_read(conn, c.result, c.buf, c.flags & FLAG_MORE != 0),
        (OP_WRITE, OpCode::Write) => on_write(conn, c.result, c.buf, c.flags & FLAG_PARTIAL != 0),
        (OP_SHUTDOWN, OpCode::Shutdown) => on_shutdown(conn),
        _ => Ok(()),
    }
}

fn flush(d: &Bound<'_, Driver>, obj: &Bound<'_, PyAny>) -> PyResult<()> {
    let conn = obj.cast::<Conn>()?;
    let py = obj.py();
    let action = {
        let mut d = d.borrow_mut();
        let Ok(rt) = d.rt() else { return Ok(()) };
        let mut s = conn.borrow_mut();
        let action = s.flush(py, rt);
        if s.wbuf.is_empty() && s.wbuf.capacity() > 0 {
            // Everything went out: the buffer goes back to the driver, not kept idle here.
            d.keep_write_buf(std::mem::take(&mut s.wbuf));
        }
        action
    };
    match action {
        Some(FlushAction::Fatal(code)) => fatal(conn, code),
        Some(FlushAction::Wrote) => wrote(conn),
        None => Ok(()),
    }
}

/// The driver closed with the connection still open: its socket is gone with the runtime.
/// Warns `ResourceWarning: unclosed transport ...`, as asyncio's transports do when the
/// closed loop lets them go.
fn detach(obj: &Bound<'_, PyAny>) {
    let Ok(conn) = obj.cast::<Conn>() else { return };
    let py = obj.py();
    if !conn.borrow().closing {
        let msg = conn
            .repr()
            .map(|r| format!("unclosed transport {r}"))
            .unwrap_or_else(|_| "unclosed transport".into());
        let category = py.get_type::<pyo3::exceptions::PyResourceWarning>();
        if let Ok(msg) = std::ffi::CString::new(msg) {
            if let Err(e) = PyErr::warn(py, &category, &msg, 1) {
                e.write_unraisable(py, Some(obj));
            }
        }
    }
    let writer = conn.borrow_mut().detach();
    drop(writer); // its __del__ borrows the connection
}

/// Queues the connection's buffered writes (or write_eof) for the driver's next flush.
pub fn mark_dirty(c: &Bound<'_, Conn>, s: &mut Conn) -> PyResult<()> {
    if s.dirty {
        return Ok(());
    }
    s.dirty = true;
    let py = c.py();
    let me = c.clone().into_any().unbind();
    with_driver(py, &s.drv, |d| d.mark_dirty(py, me, &STREAM)).transpose()?;
    Ok(())
}

impl Conn {
    /// Cancels the multi-shot read, if one runs; its CANCELED completion settles in a run
    /// (after the chunks it read before, which are buffered or delivered as usual).
    pub(crate) fn cancel_read(&mut self, py: Python<'_>) -> PyResult<()> {
        let drv = self.drv.as_ref().map(|d| d.clone_ref(py));
        with_driver(py, &drv, |d| {
            self.stop_reading(d);
            d.poke(py)
        })
        .transpose()?;
        Ok(())
    }

    fn stop_reading(&mut self, d: &mut Driver) {
        if self.reading && !self.stopping {
            self.stopping = true;
            if let Ok(rt) = d.rt() {
                let _ = rt.cancel(ud(self.id, OP_READ));
            }
        }
    }

    /// A stream buffer past its read-ahead limit, with nobody waiting: stop reading.
    fn over_limit(&self) -> bool {
        match self.mode {
            Mode::Stream { limit } => {
                self.reading && !self.stopping && self.waiter.is_none() && self.avail() > 2 * limit
            }
            Mode::Protocol(_) => false,
        }
    }

    fn wants_read(&self) -> bool {
        if self.lost || self.closing || self.eof || self.reading {
            return false;
        }
        match self.mode {
            Mode::Stream { limit } => self.waiter.is_some() || self.avail() <= 2 * limit,
            Mode::Protocol(_) => !self.user_paused,
        }
    }

    /// Starts the multi-shot read if there is demand; stops a stream's above its limit.
    pub(crate) fn pump_read(&mut self, d: &mut Driver) -> Result<(), Status> {
        if self.reading {
            if self.over_limit() {
                self.stop_reading(d);
            }
            return Ok(());
        }
        if !self.wants_read() {
            if self.is_stream() && !self.eof {
                self.limit_paused = true;
            }
            return Ok(());
        }
        self.limit_paused = false;
        let cap = if self.is_stream() {
            READ_SIZE
        } else {
            PROTOCOL_READ_SIZE
        };
        let rt = d.rt().map_err(|_| Status::Shutdown)?;
        rt.read_multishot(self.h, cap, ud(self.id, OP_READ))?;
        self.reading = true;
        Ok(())
    }

    /// Hands a read buffer back to the runtime, for its next multi-shot read.
    fn recycle_read(&self, py: Python<'_>, v: Vec<u8>) {
        with_driver(py, &self.drv, |d| {
            if let Ok(rt) = d.rt() {
                rt.recycle(v);
            }
        });
    }
}

/// Starts reading (a stream right away; a transport after `connection_made`).
pub fn start_reading(c: &Bound<'_, Conn>) -> PyResult<()> {
    let py = c.py();
    let r = {
        let mut s = c.borrow_mut();
        let drv = s.drv.as_ref().map(|d| d.clone_ref(py));
        with_driver(py, &drv, |d| {
            let r = s.pump_read(d);
            let _ = d.poke(py);
            r
        })
    };
    match r {
        Some(Err(st)) => fatal(c, i64::from(st.code())),
        _ => Ok(()),
    }
}

fn restart_read(c: &Bound<'_, Conn>) -> PyResult<()> {
    let py = c.py();
    let r = {
        let mut s = c.borrow_mut();
        let drv = s.drv.as_ref().map(|d| d.clone_ref(py));
        with_driver(py, &drv, |d| s.pump_read(d))
    };
    match r {
        Some(Err(st)) => fatal(c, i64::from(st.code())),
        _ => Ok(()),
    }
}

/// Answers a waiting StreamReader call if the buffer (or EOF, or an error) now can.
fn wake_waiter(c: &Bound<'_, Conn>) -> PyResult<()> {
    let py = c.py();
    let (fut, r) = {
        let mut s = c.borrow_mut();
        let Some((req, fut)) = s.waiter.take() else {
            return Ok(());
        };
        if fut
            .bind(py)
            .call_method0(intern!(py, "done"))?
            .is_truthy()?
        {
            return Ok(()); // cancelled: the bytes stay buffered for the next read
        }
        match s.satisfy(py, &req) {
            Some(r) => {
                with_driver(py, &s.drv, |d| d.expect_writes = true);
                (fut, r)
            }
            None => {
                s.waiter = Some((req, fut));
                return Ok(());
            }
        }
    };
    // Not done: checked above, and nothing since could run Python code.
    driver::resolve(py, &fut, r)
}

/// A completion of the multi-shot read: a chunk (`more`: it keeps reading), or its end.
fn on_read(c: &Bound<'_, Conn>, result: i64, buf: Option<Vec<u8>>, more: bool) -> PyResult<()> {
    let py = c.py();
    let proto;
    let mut deliver = None;
    {
        let mut s = c.borrow_mut();
        if !more {
            s.reading = false;
            s.stopping = false;
        }
        if s.lost {
            return Ok(());
        }
        if result == CANCELED {
            // Paused, limited, or a read call was cancelled: restart_read decides.
        } else if result < 0 {
            drop(s);
            return fatal(c, result);
        } else if result == 0 {
            if !s.is_stream() && (s.user_paused || s.closing) {
                s.stash_eof = true;
            } else {
                s.eof = true;
            }
        } else if let Some(data) = buf {
            let spare = if s.is_stream() || s.user_paused || s.closing || s.avail() > 0 {
                s.rbuf.append(data)
            } else {
                deliver = Some(PyBytes::new(py, &data).into_any().unbind());
                data
            };
            s.recycle_read(py, spare);
        }
        proto = s.protocol(py);
    }
    match proto {
        None => wake_waiter(c)?,
        Some(p) => {
            let eof_now = result == 0 && c.borrow().eof;
            if let Some(data) = deliver {
                data_received(c, &p, data)?;
            } else if eof_now {
                return protocol_eof(c, &p);
            }
        }
    }
    if more && !c.borrow().over_limit() {
        return Ok(()); // still reading, and it should
    }
    restart_read(c)
}

/// The protocol's bound `data_received`, kept in `Conn::on_data` (None: looked up per call,
/// so that a protocol without one fails where asyncio's would).
pub fn data_received_of(py: Python<'_>, p: &Py<PyAny>) -> Option<Py<PyAny>> {
    p.bind(py)
        .getattr(intern!(py, "data_received"))
        .ok()
        .map(Bound::unbind)
}

/// Calls `protocol.data_received(data)`; a callback that raises aborts the connection.
fn data_received(c: &Bound<'_, Conn>, p: &Py<PyAny>, data: Py<PyAny>) -> PyResult<()> {
    let py = c.py();
    let cb = c.borrow().on_data.as_ref().map(|f| f.clone_ref(py));
    let r = match cb {
        Some(f) => f.bind(py).call1((data,)),
        None => p
            .bind(py)
            .call_method1(intern!(py, "data_received"), (data,)),
    };
    match r {
        Ok(_) => Ok(()),
        Err(e) => callback_failed(c, "data_received", e),
    }
}

fn protocol_eof(c: &Bound<'_, Conn>, p: &Py<PyAny>) -> PyResult<()> {
    let py = c.py();
    match p.bind(py).call_method0(intern!(py, "eof_received")) {
        Err(e) => callback_failed(c, "eof_received", e),
        Ok(keep_open) => {
            if !keep_open.is_truthy().unwrap_or(false) {
                close(c)?;
            }
            Ok(())
        }
    }
}

/// Deliver data (and EOF) that arrived while reading was paused.
pub fn deliver_stash(c: &Bound<'_, Conn>) -> PyResult<()> {
    let py = c.py();
    let (data, eof, proto) = {
        let mut s = c.borrow_mut();
        if s.lost || s.closing || s.user_paused {
            return Ok(());
        }
        let n = s.avail();
        let data = (n > 0).then(|| s.rbuf.take(py, n));
        let eof = std::mem::take(&mut s.stash_eof);
        if eof {
            s.eof = true;
        }
        (data, eof, s.protocol(py))
    };
    let Some(p) = proto else { return Ok(()) };
    if let Some(d) = data {
        data_received(c, &p, d)?;
    }
    if eof {
        return protocol_eof(c, &p);
    }
    restart_read(c)
}

/// A core write ended. One that failed after sending part of its bytes (`partial`) broke
/// the stream's framing: the connection is aborted, as Node's `stream.addAbortSignal`
/// destroys a stream whose write was aborted, never left open to carry a truncated message.
fn on_write(c: &Bound<'_, Conn>, result: i64, buf: Option<Vec<u8>>, partial: bool) -> PyResult<()> {
    {
        let mut s = c.borrow_mut();
        if let Some(v) = buf {
            s.inflight = s.inflight.saturating_sub(v.len());
            // To the driver's few spares, for any connection's next buffered write.
            with_driver(c.py(), &s.drv, |d| d.keep_write_buf(v));
        }
        if s.lost {
            return Ok(());
        }
        if partial {
            drop(s);
            return fatal(c, i64::from(Status::ConnectionAborted.code()));
        }
        if result == CANCELED {
            return Ok(());
        }
        if result < 0 {
            drop(s);
            return fatal(c, result);
        }
    }
    wrote(c)
}

/// Bytes left the write buffer: resume a paused writer below the low-water mark (asyncio's
/// `resume_writing`, drain waiters), and finish a close once everything is sent.
fn wrote(c: &Bound<'_, Conn>) -> PyResult<()> {
    let py = c.py();
    let (resume, finalize, proto, waiters) = {
        let mut s = c.borrow_mut();
        if s.lost {
            return Ok(());
        }
        let size = s.write_size(py);
        let resume = s.bp.shrank(size);
        let waiters = if resume {
            std::mem::take(&mut s.drain_waiters)
        } else {
            Vec::new()
        };
        (resume, s.closing && s.drained(), s.protocol(py), waiters)
    };
    if resume {
        if let Some(p) = &proto {
            if let Err(e) = p.bind(py).call_method0(intern!(py, "resume_writing")) {
                return callback_failed(c, "resume_writing", e);
            }
        }
        for w in waiters {
            driver::set_result(py, &w, Ok(py.None()))?;
        }
    }
    if finalize {
        force_close(c, None)?;
    }
    Ok(())
}

fn on_shutdown(c: &Bound<'_, Conn>) -> PyResult<()> {
    let finalize = {
        let mut s = c.borrow_mut();
        s.shutdown_pending = false;
        !s.lost && s.closing && s.drained()
    };
    if finalize {
        force_close(c, None)?;
    }
    Ok(())
}

/// An accept's waiter: `callback(handle, status)`.
static ACCEPT: Kind = Kind {
    settle: settle_accept,
    flush: driver::no_flush,
    detach: driver::no_detach,
};

fn settle_accept(_: &Bound<'_, Driver>, cb: &Bound<'_, PyAny>, c: Completion) -> PyResult<()> {
    let status = if c.result < 0 { c.result } else { 0 };
    cb.call1((c.handle.into_raw(), status))?;
    Ok(())
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
    let mut c = Conn::new(py, slf.clone().unbind(), id, h, mode);
    {
        // Kept from connection time, as asyncio's transports keep them.
        let d = slf.borrow();
        c.peername = peer_or_local(py, &d, h, true);
        c.sockname = peer_or_local(py, &d, h, false);
    }
    let conn = Py::new(py, c)?;
    slf.borrow_mut()
        .register(id, conn.clone_ref(py).into_any(), &STREAM);
    if start {
        start_reading(conn.bind(py))?;
    }
    Ok(conn)
}

/// `fd` as an owned fd: the Python caller detached it from its socket object and gives it up.
fn owned_fd(fd: i32) -> PyResult<OwnedFd> {
    if fd < 0 {
        return Err(PyValueError::new_err("fd must not be negative"));
    }
    // SAFETY: the caller owns `fd` (it came from `socket.detach()`) and hands it over: nothing
    // else closes it from here on.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[pymethods]
impl Driver {
    /// Takes over the connected stream socket `fd` (TCP or Unix), whose owner gave it up
    /// (`socket.detach()`): returns its connection handle. The fd is closed on an error.
    fn adopt_stream(slf: &Bound<'_, Self>, fd: i32) -> PyResult<u64> {
        let owned = owned_fd(fd)?;
        let mut d = slf.borrow_mut();
        let h = d
            .rt()?
            .adopt_stream(owned)
            .map_err(|s| raise(slf.py(), s))?;
        Ok(h.into_raw())
    }

    /// Takes over the listening stream socket `fd` (TCP or Unix), whose owner gave it up
    /// (`socket.detach()`): returns its listener handle. The fd is closed on an error.
    fn adopt_listener(slf: &Bound<'_, Self>, fd: i32) -> PyResult<u64> {
        let owned = owned_fd(fd)?;
        let mut d = slf.borrow_mut();
        let h = d
            .rt()?
            .adopt_listener(owned)
            .map_err(|s| raise(slf.py(), s))?;
        Ok(h.into_raw())
    }

    /// Submits one accept on `listener`; `callback(handle, status)` gets its outcome.
    fn accept(slf: &Bound<'_, Self>, listener: u64, callback: Py<PyAny>) -> PyResult<u64> {
        let py = slf.py();
        let mut d = slf.borrow_mut();
        let id = d.new_id();
        let u = ud(id, 0);
        d.rt()?
            .accept(Handle::from_raw(listener), u)
            .map_err(|s| raise(py, s))?;
        d.register_once(id, callback, &ACCEPT);
        d.poke(py)?;
        Ok(u)
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
}
