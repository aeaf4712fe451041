//! One TCP connection: an asyncio transport (protocol mode) or the buffer behind a
//! StreamReader/StreamWriter pair (stream mode), with asyncio's semantics.
//!
//! Reading: one core read is in flight while there is demand (stream: the buffer is below
//! twice the limit or a reader waits; protocol: not paused). Writing: `write()` appends to a
//! buffer that the driver flushes once per loop iteration as one core write (the core gathers
//! queued writes into one sendmsg); water marks drive `pause_writing`/`drain()`.

use polyio_core::{Handle, Status, WriteBuf};
use pyo3::exceptions::{PyConnectionResetError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyMemoryView, PyType};
use pyo3::{PyTraverseError, PyVisit};

use crate::drain::Drain;
use crate::driver::{self, Driver, KIND_READ, KIND_SHUTDOWN, KIND_WRITE, ud};
use crate::errors::{incomplete_read, limit_overrun, status_err};
use crate::sock::TransportSocket;

static TRANSPORT_CLASS: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// asyncio's default stream limit (64 KiB).
pub const DEFAULT_LIMIT: usize = 1 << 16;
/// Bytes one read may deliver. (256 KiB, what asyncio's transports ask for, measured
/// slower here: at 100 KiB messages the kernel's copy into the larger buffer cost twice
/// the system time.)
const READ_SIZE: usize = 1 << 16;
/// asyncio's default write-buffer water marks.
const HIGH_WATER: usize = 64 * 1024;
/// Writes at least this large go to the kernel at once when nothing waits ahead of them.
const WRITE_THROUGH: usize = 16 * 1024;
/// Largest write buffer kept around for reuse.
const KEEP_WRITE_CAP: usize = 1 << 20;
const CANCELED: i64 = Status::Canceled as i64;

#[derive(Debug)]
pub enum Mode {
    Stream { limit: usize },
    Protocol(Py<PyAny>),
}

/// What a waiting StreamReader call wants.
enum Req {
    Read(isize),
    Line,
    Exactly(usize),
    Until(Vec<u8>),
}

impl Req {
    fn name(&self) -> &'static str {
        match self {
            Req::Read(_) => "read",
            Req::Line | Req::Until(_) => "readuntil",
            Req::Exactly(_) => "readexactly",
        }
    }
}

/// What the driver must do after flushing a connection.
#[derive(Debug)]
pub enum FlushAction {
    Fatal(i64),
    /// Bytes were sent at once: resume a paused writer, finish a close.
    Wrote,
}

/// A polyio TCP connection: the transport, and the stream buffer in stream mode. Internal;
/// `polyio` wraps it in StreamReader/StreamWriter or hands it to a protocol as its transport.
#[pyclass(module = "polyio._polyio")]
pub struct Conn {
    drv: Option<Py<Driver>>,
    id: u64,
    h: Handle,
    mode: Mode,
    // read side
    rbuf: Vec<u8>,
    rpos: usize,
    /// A multi-shot read is armed (until its last completion, without FLAG_MORE).
    reading: bool,
    /// Its cancel is on the way.
    stopping: bool,
    /// A waiting read was cancelled: no core read until the next read call.
    idle: bool,
    limit_paused: bool,
    user_paused: bool,
    stash_eof: bool,
    eof: bool,
    exc: Option<PyErr>,
    waiter: Option<(Req, Py<PyAny>)>,
    // write side
    wbuf: Vec<u8>,
    spare_w: Vec<u8>,
    inflight: usize,
    dirty: bool,
    high: usize,
    low: usize,
    write_paused: bool,
    drain_waiters: Vec<Py<PyAny>>,
    eof_requested: bool,
    eof_sent: bool,
    shutdown_pending: bool,
    /// asyncio's `_conn_lost`: writes are counted and dropped while it is non-zero.
    conn_lost: u32,
    // lifetime
    closing: bool,
    lost: bool,
    lost_exc: Option<PyErr>,
    closed_waiters: Vec<Py<PyAny>>,
    peername: Option<Py<PyAny>>,
    sockname: Option<Py<PyAny>>,
    /// The protocol's bound `data_received`, looked up once when reading starts and again
    /// on `set_protocol` (as uvloop does), not once per read.
    on_data: Option<Py<PyAny>>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("handle", &self.h)
            .field("mode", &self.mode)
            .field("buffered", &self.avail())
            .field("write_size", &self.write_size())
            .field("closing", &self.closing)
            .field("lost", &self.lost)
            .finish()
    }
}

impl Conn {
    pub fn new(drv: Py<Driver>, id: u64, h: Handle, mode: Mode) -> Conn {
        Conn {
            drv: Some(drv),
            id,
            h,
            mode,
            rbuf: Vec::new(),
            rpos: 0,
            reading: false,
            stopping: false,
            idle: false,
            limit_paused: false,
            user_paused: false,
            stash_eof: false,
            eof: false,
            exc: None,
            waiter: None,
            wbuf: Vec::new(),
            spare_w: Vec::new(),
            inflight: 0,
            dirty: false,
            high: HIGH_WATER,
            low: HIGH_WATER / 4,
            write_paused: false,
            drain_waiters: Vec::new(),
            eof_requested: false,
            eof_sent: false,
            shutdown_pending: false,
            conn_lost: 0,
            closing: false,
            lost: false,
            lost_exc: None,
            closed_waiters: Vec::new(),
            peername: None,
            sockname: None,
            on_data: None,
        }
    }

    fn avail(&self) -> usize {
        self.rbuf.len() - self.rpos
    }

    fn write_size(&self) -> usize {
        self.wbuf.len() + self.inflight
    }

    fn is_stream(&self) -> bool {
        matches!(self.mode, Mode::Stream { .. })
    }

    fn limit(&self) -> usize {
        match self.mode {
            Mode::Stream { limit } => limit,
            Mode::Protocol(_) => usize::MAX / 4,
        }
    }

    fn protocol(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        match &self.mode {
            Mode::Protocol(p) => Some(p.clone_ref(py)),
            Mode::Stream { .. } => None,
        }
    }

    /// The runtime was dropped under us (the driver closed): forget everything.
    pub fn detach(&mut self) {
        self.lost = true;
        self.conn_lost = self.conn_lost.max(1);
        self.closing = true;
        self.drv = None;
        self.waiter = None;
        self.drain_waiters.clear();
        self.closed_waiters.clear();
        self.on_data = None;
    }

    fn take(&mut self, py: Python<'_>, n: usize) -> Py<PyAny> {
        let b = PyBytes::new(py, &self.rbuf[self.rpos..self.rpos + n]);
        self.rpos += n;
        if self.rpos == self.rbuf.len() {
            self.rbuf.clear();
            self.rpos = 0;
        }
        b.into_any().unbind()
    }

    /// Buffers `data`; returns a buffer to hand back to the runtime (`data` itself, or the
    /// old buffer it replaced).
    #[must_use]
    fn append(&mut self, mut data: Vec<u8>) -> Vec<u8> {
        if self.avail() == 0 {
            // Swap the read buffer in: no copy.
            self.rbuf.clear();
            self.rpos = 0;
            std::mem::swap(&mut self.rbuf, &mut data);
        } else {
            if self.rpos > 0 && self.rpos >= self.rbuf.len() / 2 {
                self.rbuf.drain(..self.rpos);
                self.rpos = 0;
            }
            self.rbuf.extend_from_slice(&data);
        }
        data
    }

    /// Puts `data` back at the front of the buffer (a read resolved, then cancelled).
    fn unread(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        if self.rpos >= data.len() {
            self.rpos -= data.len();
            let at = self.rpos;
            self.rbuf[at..at + data.len()].copy_from_slice(data);
        } else {
            let mut v = Vec::with_capacity(data.len() + self.avail());
            v.extend_from_slice(data);
            v.extend_from_slice(&self.rbuf[self.rpos..]);
            self.rbuf = v;
            self.rpos = 0;
        }
    }

    /// Hands a read buffer back to the runtime, for its next multi-shot read.
    fn recycle_read(&self, py: Python<'_>, v: Vec<u8>) {
        with_driver(py, &self.drv, |d| {
            if let Ok(rt) = d.rt() {
                rt.recycle(v);
            }
        });
    }

    /// Tries to answer `req` from the buffer: `None` means more bytes are needed.
    fn satisfy(&mut self, py: Python<'_>, req: &Req) -> Option<PyResult<Py<PyAny>>> {
        if let Some(e) = &self.exc {
            return Some(Err(e.clone_ref(py)));
        }
        let avail = self.avail();
        match req {
            Req::Read(0) => Some(Ok(PyBytes::new(py, b"").into_any().unbind())),
            Req::Read(n) if *n < 0 => self.eof.then(|| Ok(self.take(py, avail))),
            Req::Read(n) => {
                if avail > 0 {
                    Some(Ok(self.take(py, avail.min(*n as usize))))
                } else if self.eof {
                    Some(Ok(PyBytes::new(py, b"").into_any().unbind()))
                } else {
                    None
                }
            }
            Req::Exactly(n) => {
                if avail >= *n {
                    Some(Ok(self.take(py, *n)))
                } else if self.eof {
                    let partial = self.take(py, avail);
                    Some(Err(incomplete_read(py, partial, Some(*n))))
                } else {
                    None
                }
            }
            Req::Until(sep) => self.until(py, sep),
            Req::Line => match self.until(py, b"\n")? {
                Ok(v) => Some(Ok(v)),
                Err(e) if e.is_instance_of::<pyo3::exceptions::PyEOFError>(py) => {
                    // IncompleteReadError: readline returns the partial line.
                    Some(e.value(py).getattr("partial").map(|p| p.unbind()))
                }
                Err(e) => {
                    // LimitOverrunError: drop the line (or the buffer), raise ValueError.
                    let consumed: usize = e
                        .value(py)
                        .getattr("consumed")
                        .and_then(|c| c.extract())
                        .unwrap_or(0);
                    let rest = &self.rbuf[self.rpos..];
                    if rest.get(consumed) == Some(&b'\n') {
                        self.rpos += consumed + 1;
                    } else {
                        self.rpos = self.rbuf.len();
                    }
                    if self.rpos >= self.rbuf.len() {
                        self.rbuf.clear();
                        self.rpos = 0;
                    }
                    let msg = e
                        .value(py)
                        .getattr("args")
                        .and_then(|a| a.get_item(0))
                        .map(|m| m.to_string())
                        .unwrap_or_default();
                    Some(Err(PyValueError::new_err(msg)))
                }
            },
        }
    }

    fn until(&mut self, py: Python<'_>, sep: &[u8]) -> Option<PyResult<Py<PyAny>>> {
        let limit = self.limit();
        let buf = &self.rbuf[self.rpos..];
        let found = if buf.len() >= sep.len() {
            buf.windows(sep.len()).position(|w| w == sep)
        } else {
            None
        };
        match found {
            Some(i) if i > limit => Some(Err(limit_overrun(
                py,
                "Separator is found, but chunk is longer than limit",
                i,
            ))),
            Some(i) => Some(Ok(self.take(py, i + sep.len()))),
            None => {
                if buf.len() >= sep.len() {
                    let offset = buf.len() + 1 - sep.len();
                    if offset > limit {
                        return Some(Err(limit_overrun(
                            py,
                            "Separator is not found, and chunk exceed the limit",
                            offset,
                        )));
                    }
                }
                if self.eof {
                    let chunk = self.take(py, self.avail());
                    return Some(Err(incomplete_read(py, chunk, None)));
                }
                None
            }
        }
    }

    /// Cancels the multi-shot read, if one runs; its CANCELED completion settles in a run
    /// (after the chunks it read before, which are buffered or delivered as usual).
    fn cancel_read(&mut self, py: Python<'_>) -> PyResult<()> {
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
                let _ = rt.cancel(ud(self.id, KIND_READ));
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
        if self.lost || self.closing || self.eof || self.reading || self.idle {
            return false;
        }
        match self.mode {
            Mode::Stream { limit } => self.waiter.is_some() || self.avail() <= 2 * limit,
            Mode::Protocol(_) => !self.user_paused,
        }
    }

    /// Starts the multi-shot read if there is demand; stops a stream's above its limit.
    fn pump_read(&mut self, d: &mut Driver) -> Result<(), Status> {
        if self.reading {
            if self.over_limit() {
                self.stop_reading(d);
            }
            return Ok(());
        }
        if !self.wants_read() {
            if self.is_stream() && !self.eof && !self.idle {
                self.limit_paused = true;
            }
            return Ok(());
        }
        self.limit_paused = false;
        let rt = d.rt().map_err(|_| Status::Shutdown)?;
        rt.read_multishot(self.h, READ_SIZE, ud(self.id, KIND_READ))?;
        self.reading = true;
        Ok(())
    }

    /// Hands buffered writes (and a pending write_eof) to the core.
    pub fn flush(&mut self, rt: &mut polyio_core::Runtime) -> Option<FlushAction> {
        self.dirty = false;
        if self.lost {
            return None;
        }
        let mut wrote = false;
        if !self.wbuf.is_empty() && self.inflight == 0 {
            // Nothing queued in the core: send what the kernel takes now, with no operation
            // (and no completion) for the usual case that it takes everything.
            match rt.try_write(self.h, &[&self.wbuf]) {
                Ok(0) => {}
                Ok(n) => {
                    wrote = true;
                    if n == self.wbuf.len() {
                        self.wbuf.clear();
                    } else {
                        self.wbuf.drain(..n);
                    }
                }
                Err(s) => return Some(FlushAction::Fatal(i64::from(s.code()))),
            }
        }
        if !self.wbuf.is_empty() {
            let v = std::mem::replace(&mut self.wbuf, std::mem::take(&mut self.spare_w));
            let n = v.len();
            self.inflight += n;
            if let Err(s) = rt.write(self.h, WriteBuf::from_vec(v), ud(self.id, KIND_WRITE)) {
                self.inflight -= n;
                return Some(FlushAction::Fatal(i64::from(s.code())));
            }
        }
        if self.eof_requested && !self.eof_sent {
            self.eof_sent = true;
            self.shutdown_pending = true;
            if let Err(s) = rt.shutdown(self.h, ud(self.id, KIND_SHUTDOWN)) {
                self.shutdown_pending = false;
                return Some(FlushAction::Fatal(i64::from(s.code())));
            }
        }
        // Bytes went out without a completion: what on_write would do, if it has work.
        (wrote && (self.write_paused || self.closing)).then_some(FlushAction::Wrote)
    }

    /// A large write with nothing buffered or queued ahead of it goes to the kernel now,
    /// straight from the caller's bytes (as asyncio's transports write at once); returns
    /// the part the kernel did not take, to be buffered. Copying a large write into the
    /// buffer would cost more than the one syscall batching would save.
    fn write_through<'a>(&self, py: Python<'_>, b: &'a [u8]) -> Result<&'a [u8], Status> {
        if b.len() < WRITE_THROUGH || !self.wbuf.is_empty() || self.inflight > 0 || self.lost {
            return Ok(b);
        }
        let h = self.h;
        let sent = with_driver(py, &self.drv, |d| match d.rt() {
            Ok(rt) => rt.try_write(h, &[b]),
            Err(_) => Ok(0),
        });
        Ok(&b[sent.unwrap_or(Ok(0))?..])
    }

    fn drained(&self) -> bool {
        self.write_size() == 0 && !self.shutdown_pending && !self.dirty
    }
}

fn with_driver<T>(
    py: Python<'_>,
    drv: &Option<Py<Driver>>,
    f: impl FnOnce(&mut Driver) -> T,
) -> Option<T> {
    drv.as_ref().map(|d| f(&mut d.bind(py).borrow_mut()))
}

fn set_result(py: Python<'_>, fut: &Py<PyAny>, r: PyResult<Py<PyAny>>) -> PyResult<()> {
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
fn resolve(py: Python<'_>, fut: &Py<PyAny>, r: PyResult<Py<PyAny>>) -> PyResult<()> {
    let fut = fut.bind(py);
    match r {
        Ok(v) => fut.call_method1(intern!(py, "set_result"), (v,))?,
        Err(e) => fut.call_method1(intern!(py, "set_exception"), (e.into_value(py),))?,
    };
    Ok(())
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
    resolve(py, &fut, r)
}

/// A completion of the multi-shot read: a chunk (`more`: it keeps reading), or its end.
pub fn on_read(c: &Bound<'_, Conn>, result: i64, buf: Option<Vec<u8>>, more: bool) -> PyResult<()> {
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
                s.append(data)
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
fn data_received_of(py: Python<'_>, p: &Py<PyAny>) -> Option<Py<PyAny>> {
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

/// A protocol callback raised: report it as asyncio does and abort the connection.
fn callback_failed(c: &Bound<'_, Conn>, what: &str, e: PyErr) -> PyResult<()> {
    let py = c.py();
    let (lp, proto) = {
        let s = c.borrow();
        (
            s.drv.as_ref().map(|d| d.borrow(py).loop_.clone_ref(py)),
            s.protocol(py),
        )
    };
    if let Some(lp) = lp {
        let ctx = PyDict::new(py);
        ctx.set_item(
            "message",
            format!("Fatal error: protocol.{what}() call failed."),
        )?;
        ctx.set_item("exception", e.clone_ref(py).into_value(py))?;
        ctx.set_item("transport", c)?;
        ctx.set_item("protocol", proto)?;
        lp.bind(py)
            .call_method1(intern!(py, "call_exception_handler"), (ctx,))?;
    }
    force_close(c, Some(e))
}

pub fn on_write(c: &Bound<'_, Conn>, result: i64, buf: Option<Vec<u8>>) -> PyResult<()> {
    {
        let mut s = c.borrow_mut();
        if let Some(mut v) = buf {
            s.inflight = s.inflight.saturating_sub(v.len());
            if v.capacity() <= KEEP_WRITE_CAP && v.capacity() > s.spare_w.capacity() {
                v.clear();
                s.spare_w = v;
            }
        }
        if s.lost || result == CANCELED {
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
        let resume = s.write_paused && s.write_size() <= s.low;
        if resume {
            s.write_paused = false;
        }
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
            set_result(py, &w, Ok(py.None()))?;
        }
    }
    if finalize {
        force_close(c, None)?;
    }
    Ok(())
}

pub fn on_shutdown(c: &Bound<'_, Conn>, _result: i64) -> PyResult<()> {
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

pub fn after_flush(c: &Bound<'_, Conn>, a: FlushAction) -> PyResult<()> {
    match a {
        FlushAction::Fatal(code) => fatal(c, code),
        FlushAction::Wrote => wrote(c),
    }
}

fn fatal(c: &Bound<'_, Conn>, code: i64) -> PyResult<()> {
    let e = status_err(c.py(), code, None);
    force_close(c, Some(e))
}

/// Where StreamWriter.drain stands.
pub enum DrainState {
    /// Nothing to wait for.
    Ready,
    /// Closing, not yet looked at after a yield to the loop.
    Closing,
    /// Wait for this future (resolved below the low-water mark, or with the error).
    Wait(Py<PyAny>),
}

/// asyncio's drain logic: the reader's error, then (unless `yielded` already) a closing
/// transport, then a lost connection, then the water marks.
pub fn drain_state(c: &Bound<'_, Conn>, yielded: bool) -> PyResult<DrainState> {
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
    if !s.write_paused {
        return Ok(DrainState::Ready);
    }
    let Some(drv) = s.drv.as_ref().map(|d| d.clone_ref(py)) else {
        return Ok(DrainState::Ready);
    };
    let fut = drv.bind(py).borrow().new_future(py)?.unbind();
    s.drain_waiters.push(fut.clone_ref(py));
    Ok(DrainState::Wait(fut))
}

/// The connection is gone (closed, aborted or failed): close the socket, settle every
/// waiter, and tell the protocol (via call_soon, as asyncio does).
fn force_close(c: &Bound<'_, Conn>, exc: Option<PyErr>) -> PyResult<()> {
    let py = c.py();
    let (drv, proto, fut, drains, closers, paused) = {
        let mut s = c.borrow_mut();
        if s.lost {
            return Ok(());
        }
        s.lost = true;
        s.closing = true;
        s.conn_lost = s.conn_lost.max(1);
        s.wbuf.clear();
        let drv = s.drv.take();
        if let Some(d) = &drv {
            let mut d = d.bind(py).borrow_mut();
            if let Ok(rt) = d.rt() {
                let _ = rt.close(s.h);
            }
            d.forget_conn(s.id);
            // close() posted CANCELED completions for its pending ops: let a run reap them.
            let _ = d.poke(py);
        }
        let paused = s.write_paused;
        let proto = match &s.mode {
            Mode::Stream { .. } => {
                match &exc {
                    Some(e) => {
                        if s.exc.is_none() {
                            s.exc = Some(e.clone_ref(py));
                        }
                    }
                    None => s.eof = true,
                }
                None
            }
            Mode::Protocol(p) => Some(p.clone_ref(py)),
        };
        s.lost_exc = exc.as_ref().map(|e| e.clone_ref(py));
        let fut = s.waiter.take();
        (
            drv,
            proto,
            fut,
            std::mem::take(&mut s.drain_waiters),
            std::mem::take(&mut s.closed_waiters),
            paused,
        )
    };
    let exc_value = || -> PyResult<Py<PyAny>> {
        Ok(match &exc {
            Some(e) => e.clone_ref(py).into_value(py).into_any(),
            None => py.None(),
        })
    };
    if let Some((req, fut)) = fut {
        let r = c.borrow_mut().satisfy(py, &req);
        if let Some(r) = r {
            set_result(py, &fut, r)?;
        }
    }
    if paused {
        for w in drains {
            let r = match &exc {
                Some(e) => Err(e.clone_ref(py)),
                None => Ok(py.None()),
            };
            set_result(py, &w, r)?;
        }
    }
    for w in closers {
        let r = match &exc {
            Some(e) => Err(e.clone_ref(py)),
            None => Ok(py.None()),
        };
        set_result(py, &w, r)?;
    }
    if let (Some(p), Some(d)) = (proto, drv) {
        let lost = p.bind(py).getattr(intern!(py, "connection_lost"))?.unbind();
        d.bind(py).borrow().call_soon(py, &lost, exc_value()?)?;
        d.bind(py).borrow_mut().poke(py)?;
    }
    Ok(())
}

/// Closes after the write buffer is flushed (asyncio's `transport.close()`).
///
/// The buffer is flushed now. As in asyncio, whose `write()` sends at once what the kernel
/// takes: if the kernel took everything, later writes are counted and dropped (`_conn_lost`);
/// if some is still queued, later writes join the queue and go out before the close.
fn close(c: &Bound<'_, Conn>) -> PyResult<()> {
    let py = c.py();
    let (finalize, failed) = {
        let mut s = c.borrow_mut();
        if s.closing {
            return Ok(());
        }
        s.closing = true;
        let drv = s.drv.as_ref().map(|d| d.clone_ref(py));
        let failed = with_driver(py, &drv, |d| {
            let mut failed = None;
            if let Ok(rt) = d.rt() {
                if s.reading {
                    let _ = rt.cancel(ud(s.id, KIND_READ));
                }
                if let Some(FlushAction::Fatal(code)) = s.flush(rt) {
                    failed = Some(code);
                } else if rt.pending_writes(s.h) == 0 {
                    s.conn_lost += 1;
                }
            }
            let _ = d.poke(py);
            failed
        })
        .flatten();
        (s.drained(), failed)
    };
    if let Some(code) = failed {
        return fatal(c, code);
    }
    if finalize {
        force_close(c, None)?;
    }
    Ok(())
}

/// After asyncio's threshold (`LOG_THRESHOLD_FOR_CONNLOST_WRITES`), each write to a lost
/// connection logs this warning on asyncio's logger, as asyncio's transports do.
const LOG_THRESHOLD_FOR_CONNLOST_WRITES: u32 = 5;

fn warn_lost_write(py: Python<'_>) -> PyResult<()> {
    py.import(intern!(py, "asyncio.log"))?
        .getattr(intern!(py, "logger"))?
        .call_method1(intern!(py, "warning"), ("socket.send() raised exception.",))?;
    Ok(())
}

fn bytes_of(data: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(b) = data.cast::<PyBytes>() {
        return Ok(b.as_bytes().to_vec());
    }
    if let Ok(b) = data.cast::<PyByteArray>() {
        return Ok(b.to_vec());
    }
    if data.is_instance_of::<PyMemoryView>() {
        let b = data.py().get_type::<PyBytes>().call1((data,))?;
        return Ok(b.cast::<PyBytes>()?.as_bytes().to_vec());
    }
    Err(PyTypeError::new_err(format!(
        "data argument must be a bytes-like object, not {:?}",
        data.get_type().name()?.to_string()
    )))
}

fn append_write(c: &Bound<'_, Conn>, chunks: &[Bound<'_, PyAny>]) -> PyResult<()> {
    let py = c.py();
    let pause = {
        let mut s = c.borrow_mut();
        if s.eof_requested || s.conn_lost > 0 {
            // The rare paths, in asyncio's order: TypeError, write_eof, empty, lost.
            let mut added = 0;
            for data in chunks {
                added += match data.cast::<PyBytes>() {
                    Ok(b) => b.as_bytes().len(),
                    Err(_) => bytes_of(data)?.len(),
                };
            }
            if s.eof_requested {
                return Err(PyRuntimeError::new_err(
                    "Cannot call write() after write_eof()",
                ));
            }
            if added == 0 {
                return Ok(());
            }
            let warn = s.conn_lost >= LOG_THRESHOLD_FOR_CONNLOST_WRITES;
            s.conn_lost += 1;
            drop(s);
            return if warn { warn_lost_write(py) } else { Ok(()) };
        }
        let mut added = 0;
        let mut failed = None;
        for data in chunks {
            if let Ok(b) = data.cast::<PyBytes>() {
                let b = b.as_bytes();
                added += b.len();
                let rest = match s.write_through(py, b) {
                    Ok(rest) => rest,
                    Err(st) => {
                        failed = Some(st);
                        break;
                    }
                };
                s.wbuf.extend_from_slice(rest);
            } else {
                let v = bytes_of(data)?;
                added += v.len();
                s.wbuf.extend_from_slice(&v);
            }
        }
        if let Some(st) = failed {
            drop(s);
            return fatal(c, i64::from(st.code()));
        }
        if added == 0 || s.lost || (s.wbuf.is_empty() && !s.eof_requested) {
            return Ok(()); // nothing left to flush: it all went out at once
        }
        if !s.dirty {
            s.dirty = true;
            let me = c.clone().unbind();
            with_driver(py, &s.drv, |d| d.mark_dirty(py, me)).transpose()?;
        }
        if !s.write_paused && s.write_size() > s.high {
            s.write_paused = true;
            s.protocol(py)
        } else {
            None
        }
    };
    if let Some(p) = pause {
        if let Err(e) = p.bind(py).call_method0(intern!(py, "pause_writing")) {
            return callback_failed(c, "pause_writing", e);
        }
    }
    Ok(())
}

/// Deliver data (and EOF) that arrived while reading was paused.
fn deliver_stash(c: &Bound<'_, Conn>) -> PyResult<()> {
    let py = c.py();
    let (data, eof, proto) = {
        let mut s = c.borrow_mut();
        if s.lost || s.closing || s.user_paused {
            return Ok(());
        }
        let n = s.avail();
        let data = (n > 0).then(|| s.take(py, n));
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

fn stream_op(c: &Bound<'_, Conn>, req: Req) -> PyResult<Py<PyAny>> {
    let py = c.py();
    let mut s = c.borrow_mut();
    if let Some((_, fut)) = &s.waiter {
        if !fut
            .bind(py)
            .call_method0(intern!(py, "done"))?
            .is_truthy()?
        {
            return Err(PyRuntimeError::new_err(format!(
                "{}() called while another coroutine is already waiting for incoming data",
                req.name()
            )));
        }
        s.waiter = None;
    }
    if !s.is_stream() {
        return Err(PyRuntimeError::new_err("not a stream connection"));
    }
    if s.idle {
        // The read after a cancelled one: resume reading (below, after the fast path).
        s.idle = false;
        s.limit_paused = true;
    }
    let drv = s.drv.as_ref().map(|d| d.clone_ref(py));
    if let Some(r) = s.satisfy(py, &req) {
        if s.limit_paused && s.avail() <= s.limit() {
            if let Some(Err(st)) = with_driver(py, &drv, |d| {
                let r = s.pump_read(d);
                let _ = d.poke(py);
                r
            }) {
                drop(s);
                fatal(c, i64::from(st.code()))?;
            }
        }
        return r;
    }
    let Some(drv) = drv else {
        return Err(PyRuntimeError::new_err(
            "polyio: the driver of this loop is closed",
        ));
    };
    let fut = drv.bind(py).borrow().new_future(py)?.unbind();
    s.waiter = Some((req, fut.clone_ref(py)));
    let r = {
        let mut d = drv.bind(py).borrow_mut();
        let r = s.pump_read(&mut d);
        let _ = d.poke(py);
        r
    };
    if let Err(st) = r {
        drop(s);
        fatal(c, i64::from(st.code()))?;
    }
    Ok(fut)
}

#[pymethods]
impl Conn {
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.drv)?;
        if let Mode::Protocol(p) = &self.mode {
            visit.call(p)?;
        }
        if let Some((_, f)) = &self.waiter {
            visit.call(f)?;
        }
        for f in self.drain_waiters.iter().chain(self.closed_waiters.iter()) {
            visit.call(f)?;
        }
        visit.call(&self.peername)?;
        visit.call(&self.sockname)?;
        visit.call(&self.on_data)?;
        Ok(())
    }

    fn __clear__(&mut self) {
        self.drv = None;
        self.on_data = None;
        self.waiter = None;
        self.drain_waiters.clear();
        self.closed_waiters.clear();
        // Drops the protocol (the transport <-> protocol cycle); the object is garbage anyway.
        if let Mode::Protocol(_) = self.mode {
            self.mode = Mode::Stream {
                limit: DEFAULT_LIMIT,
            };
        }
    }

    // ---- transport -------------------------------------------------------------------

    /// Buffers `data`; it goes out with the loop iteration's flush.
    fn write(slf: &Bound<'_, Self>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        append_write(slf, std::slice::from_ref(data))
    }

    fn writelines(slf: &Bound<'_, Self>, list_of_data: &Bound<'_, PyAny>) -> PyResult<()> {
        let chunks: Vec<Bound<'_, PyAny>> = list_of_data.try_iter()?.collect::<PyResult<_>>()?;
        append_write(slf, &chunks)
    }

    fn write_eof(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let mut s = slf.borrow_mut();
        if s.closing || s.eof_requested {
            return Ok(());
        }
        s.eof_requested = true;
        if !s.dirty {
            s.dirty = true;
            let me = slf.clone().unbind();
            with_driver(py, &s.drv, |d| d.mark_dirty(py, me)).transpose()?;
        }
        Ok(())
    }

    fn can_write_eof(&self) -> bool {
        true
    }

    fn close(slf: &Bound<'_, Self>) -> PyResult<()> {
        close(slf)
    }

    fn abort(slf: &Bound<'_, Self>) -> PyResult<()> {
        force_close(slf, None)
    }

    fn is_closing(&self) -> bool {
        self.closing
    }

    fn pause_reading(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let mut s = slf.borrow_mut();
        if s.closing || s.user_paused {
            return Ok(());
        }
        s.user_paused = true;
        s.cancel_read(py)
    }

    fn resume_reading(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let stash = {
            let mut s = slf.borrow_mut();
            if s.closing || !s.user_paused {
                return Ok(());
            }
            s.user_paused = false;
            s.avail() > 0 || s.stash_eof
        };
        if stash {
            let cb = slf.getattr(intern!(py, "_deliver_stash"))?.unbind();
            let drv = slf.borrow().drv.as_ref().map(|d| d.clone_ref(py));
            if let Some(d) = drv {
                d.bind(py).borrow().call_soon0(py, &cb)?;
            }
            Ok(())
        } else {
            start_reading(slf)
        }
    }

    fn _deliver_stash(slf: &Bound<'_, Self>) -> PyResult<()> {
        deliver_stash(slf)
    }

    fn is_reading(&self) -> bool {
        !self.user_paused && !self.closing
    }

    fn get_write_buffer_size(&self) -> usize {
        self.write_size()
    }

    #[pyo3(signature = (high=None, low=None))]
    fn set_write_buffer_limits(&mut self, high: Option<i64>, low: Option<i64>) -> PyResult<()> {
        let high = high.unwrap_or_else(|| low.map_or(HIGH_WATER as i64, |l| 4 * l));
        let low = low.unwrap_or(high / 4);
        if !(high >= low && low >= 0) {
            return Err(PyValueError::new_err(format!(
                "high ({high:?}) must be >= low ({low:?}) must be >= 0"
            )));
        }
        self.high = high as usize;
        self.low = low as usize;
        Ok(())
    }

    fn get_write_buffer_limits(&self) -> (usize, usize) {
        (self.low, self.high)
    }

    #[pyo3(signature = (name, default=None))]
    fn get_extra_info(
        &mut self,
        py: Python<'_>,
        name: &str,
        default: Option<Py<PyAny>>,
    ) -> Py<PyAny> {
        let default = default.unwrap_or_else(|| py.None());
        let (peer, cache) = match name {
            "peername" => (true, &self.peername),
            "sockname" => (false, &self.sockname),
            "socket" => {
                let Some(d) = self.drv.as_ref() else {
                    return default;
                };
                return match TransportSocket::new(py, d.bind(py), self.h) {
                    Ok(Some(s)) => Py::new(py, s).map_or(default, |s| s.into_any()),
                    _ => default,
                };
            }
            _ => return default,
        };
        if let Some(v) = cache {
            return v.clone_ref(py);
        }
        let h = self.h;
        let v = with_driver(py, &self.drv, |d| driver::peer_or_local(py, d, h, peer)).flatten();
        match v {
            Some(v) => {
                if peer {
                    self.peername = Some(v.clone_ref(py));
                } else {
                    self.sockname = Some(v.clone_ref(py));
                }
                v
            }
            None => default,
        }
    }

    /// `polyio.Transport`, a subclass of `asyncio.Transport`: what `isinstance` consults
    /// when the real type (this native class) is not a subclass, so that
    /// `isinstance(transport, asyncio.Transport)` holds (unittest.mock's `spec` works the
    /// same way). A native class cannot also derive from asyncio's `BaseTransport`, whose
    /// `__slots__` give it a conflicting layout; a Python wrapper could, at the price of a
    /// generic attribute lookup on every `transport.write`.
    #[getter(__class__)]
    fn class(&self, py: Python<'_>) -> PyResult<Py<PyType>> {
        TRANSPORT_CLASS
            .import(py, "polyio._api", "Transport")
            .map(|t| t.clone().unbind())
    }

    fn get_protocol(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.protocol(py)
    }

    fn set_protocol(&mut self, py: Python<'_>, protocol: Py<PyAny>) -> PyResult<()> {
        match self.mode {
            Mode::Protocol(_) => {
                self.on_data = data_received_of(py, &protocol);
                self.mode = Mode::Protocol(protocol);
                Ok(())
            }
            Mode::Stream { .. } => Err(PyRuntimeError::new_err(
                "a stream connection has no protocol to replace",
            )),
        }
    }

    /// Begins reading (after `protocol.connection_made`).
    fn start(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let proto = slf.borrow().protocol(py);
        if let Some(p) = proto {
            slf.borrow_mut().on_data = data_received_of(py, &p);
        }
        start_reading(slf)
    }

    /// The handle's raw value (for tests).
    fn handle(&self) -> u64 {
        self.h.into_raw()
    }

    // ---- stream reader: each returns bytes now, or a future that resolves to them -----

    #[pyo3(signature = (n=-1), text_signature = "(self, /, n=-1)")]
    fn read(slf: &Bound<'_, Self>, n: isize) -> PyResult<Py<PyAny>> {
        stream_op(slf, Req::Read(n))
    }

    fn readline(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        stream_op(slf, Req::Line)
    }

    fn readexactly(slf: &Bound<'_, Self>, n: isize) -> PyResult<Py<PyAny>> {
        if n < 0 {
            return Err(PyValueError::new_err(
                "readexactly size can not be less than zero",
            ));
        }
        if let Some(e) = &slf.borrow().exc {
            return Err(e.clone_ref(slf.py()));
        }
        if n == 0 {
            return Ok(PyBytes::new(slf.py(), b"").into_any().unbind());
        }
        stream_op(slf, Req::Exactly(n as usize))
    }

    #[pyo3(signature = (separator=None))]
    fn readuntil(
        slf: &Bound<'_, Self>,
        separator: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let sep = match separator {
            None => b"\n".to_vec(),
            Some(s) => bytes_of(s)?,
        };
        if sep.is_empty() {
            return Err(PyValueError::new_err(
                "Separator should be at least one-byte string",
            ));
        }
        stream_op(slf, Req::Until(sep))
    }

    /// The task awaiting `fut` (a future from read/readline/readexactly/readuntil) was
    /// cancelled: cancel the core read and stop reading until the next read call. Bytes the
    /// future was resolved with before the cancel reached the task go back to the buffer.
    fn _cancelled(slf: &Bound<'_, Self>, fut: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let mut s = slf.borrow_mut();
        if matches!(&s.waiter, Some((_, f)) if f.is(fut)) {
            s.waiter = None;
        }
        if !fut.call_method0(intern!(py, "done"))?.is_truthy()? {
            fut.call_method0(intern!(py, "cancel"))?;
        } else if !fut.call_method0(intern!(py, "cancelled"))?.is_truthy()? {
            let exc = fut.call_method0(intern!(py, "exception"))?;
            let data = if exc.is_none() {
                Some(fut.call_method0(intern!(py, "result"))?)
            } else if exc.is_instance_of::<pyo3::exceptions::PyEOFError>() {
                Some(exc.getattr(intern!(py, "partial"))?) // IncompleteReadError
            } else {
                None
            };
            if let Some(d) = data {
                if let Ok(b) = d.cast::<PyBytes>() {
                    s.unread(b.as_bytes());
                }
            }
        }
        if s.lost || s.closing || s.eof {
            return Ok(());
        }
        s.idle = true;
        s.limit_paused = false;
        s.cancel_read(py)
    }

    fn at_eof(&self) -> bool {
        self.eof && self.avail() == 0
    }

    fn exception(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.exc
            .as_ref()
            .map(|e| e.clone_ref(py).into_value(py).into_any())
    }

    /// Bytes buffered for the reader (for tests).
    fn buffered(&self) -> usize {
        self.avail()
    }

    // ---- stream writer ---------------------------------------------------------------

    /// StreamWriter.drain: an awaitable that ends at once when the write buffer is at or
    /// below the high-water mark, else once it drops below the low-water mark. Awaiting it
    /// raises the reader's error, or ConnectionResetError once the connection is lost.
    fn drain(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        Drain::of(slf)
    }

    /// None once the connection is closed (raising its error, if it failed); else a future
    /// that resolves when it is.
    fn wait_closed(slf: &Bound<'_, Self>) -> PyResult<Option<Py<PyAny>>> {
        let py = slf.py();
        let mut s = slf.borrow_mut();
        if s.lost {
            return match &s.lost_exc {
                Some(e) => Err(e.clone_ref(py)),
                None => Ok(None),
            };
        }
        let Some(drv) = s.drv.as_ref().map(|d| d.clone_ref(py)) else {
            return Ok(None);
        };
        let fut = drv.bind(py).borrow().new_future(py)?.unbind();
        s.closed_waiters.push(fut.clone_ref(py));
        Ok(Some(fut))
    }
}
