//! One stream connection (TCP today; every stream kind shares it): the state behind an
//! asyncio transport (protocol mode) or a StreamReader/StreamWriter pair (stream mode), and
//! how it ends (`close`, `abort`, a failure), with asyncio's semantics.
//!
//! The completions that drive it are settled in `stream`; the Python-facing methods live in
//! `transport` (the transport API) and `reader` (the StreamReader/StreamWriter API).

use polyio_core::{Backpressure, Handle, Runtime, Status, WriteBuf};
use pyo3::exceptions::PyTypeError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyMemoryView};
use pyo3::{PyTraverseError, PyVisit};

use crate::driver::{self, Driver, ud};
use crate::errors::status_err;
use crate::readbuf::{ReadBuffer, Req};

/// asyncio's default stream limit (64 KiB).
pub const DEFAULT_LIMIT: usize = 1 << 16;
/// Writes at least this large go to the kernel at once when nothing waits ahead of them.
const WRITE_THROUGH: usize = 16 * 1024;
/// What one read asks for on a protocol connection: 128 KiB, so that a message of up to
/// that size comes in one `recv`, one `data_received` and one `write` back (at 64 KiB a
/// 100 KiB echo cost two of each). asyncio and uvloop ask for 256 KiB; here that raised the
/// peak RSS of 1,000 connections echoing 100 KiB by a quarter (each completion waiting to be
/// settled holds its own read buffer) for no fewer syscalls at 100 KiB. A stream connection
/// keeps the core's `READ_SIZE`: its buffer holds the read buffer until the application
/// takes the bytes (at 256 KiB the same run's peak grew by 45%).
pub(crate) const PROTOCOL_READ_SIZE: usize = 128 * 1024;

// The connection's ops under its id (see `driver::ud`).
pub(crate) const OP_READ: u64 = 0;
pub(crate) const OP_WRITE: u64 = 1;
pub(crate) const OP_SHUTDOWN: u64 = 2;

#[derive(Debug)]
pub enum Mode {
    Stream { limit: usize },
    Protocol(Py<PyAny>),
}

/// What must happen after flushing a connection.
#[derive(Debug)]
pub enum FlushAction {
    Fatal(i64),
    /// Bytes were sent at once: resume a paused writer, finish a close.
    Wrote,
}

/// A polyio stream connection: the transport, and the stream buffer in stream mode.
/// Internal; `polyio` wraps it in StreamReader/StreamWriter or hands it to a protocol as
/// its transport.
#[pyclass(module = "polyio._polyio")]
pub struct Conn {
    pub(crate) drv: Option<Py<Driver>>,
    pub(crate) id: u64,
    pub(crate) h: Handle,
    pub(crate) mode: Mode,
    // read side
    pub(crate) rbuf: ReadBuffer,
    /// A multi-shot read is armed (until its last completion, without FLAG_MORE).
    pub(crate) reading: bool,
    /// Its cancel is on the way.
    pub(crate) stopping: bool,
    pub(crate) limit_paused: bool,
    pub(crate) user_paused: bool,
    pub(crate) stash_eof: bool,
    pub(crate) eof: bool,
    /// The stream's error (boxed, as `lost_exc`: rare, and a `PyErr` inline would add
    /// ~50 bytes to every connection).
    pub(crate) exc: Option<Box<PyErr>>,
    pub(crate) waiter: Option<(Req, Py<PyAny>)>,
    // write side
    /// A `bytes` written with nothing buffered or queued ahead of it, held (not copied)
    /// until the flush sends it, with its length; `wbuf` holds what was written after it.
    pub(crate) held: Option<(Py<PyBytes>, usize)>,
    pub(crate) wbuf: Vec<u8>,
    /// Bytes handed to the core in write ops not yet completed.
    pub(crate) inflight: usize,
    /// Queued for the driver's next flush.
    pub(crate) dirty: bool,
    pub(crate) bp: Backpressure,
    pub(crate) drain_waiters: Vec<Py<PyAny>>,
    pub(crate) eof_requested: bool,
    pub(crate) eof_sent: bool,
    pub(crate) shutdown_pending: bool,
    /// asyncio's `_conn_lost`: writes are counted and dropped while it is non-zero.
    pub(crate) conn_lost: u32,
    // lifetime
    pub(crate) closing: bool,
    pub(crate) lost: bool,
    pub(crate) lost_exc: Option<Box<PyErr>>,
    pub(crate) closed_waiters: Vec<Py<PyAny>>,
    /// The addresses at connection time, as asyncio's transports keep them after the close.
    pub(crate) peername: Option<Py<PyAny>>,
    pub(crate) sockname: Option<Py<PyAny>>,
    /// `get_extra_info('socket')`, made at the first ask and kept after the close.
    pub(crate) socket: Option<Py<PyAny>>,
    /// The driver, kept after the close for `get_extra_info('socket')` alone.
    pub(crate) home: Option<Py<Driver>>,
    /// A server connection's StreamWriter, kept alive while the connection is open (as
    /// asyncio's `StreamReaderProtocol._stream_writer`), so that a handler that drops it
    /// does not close the connection.
    pub(crate) stream_writer: Option<Py<PyAny>>,
    /// The protocol's bound `data_received`, looked up once when reading starts and again
    /// on `set_protocol` (as uvloop does), not once per read.
    pub(crate) on_data: Option<Py<PyAny>>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("handle", &self.h)
            .field("mode", &self.mode)
            .field("buffered", &self.avail())
            .field("write_backlog", &self.backlog())
            .field("closing", &self.closing)
            .field("lost", &self.lost)
            .finish()
    }
}

impl Conn {
    pub fn new(py: Python<'_>, drv: Py<Driver>, id: u64, h: Handle, mode: Mode) -> Conn {
        let home = drv.clone_ref(py);
        Conn {
            drv: Some(drv),
            id,
            h,
            mode,
            rbuf: ReadBuffer::default(),
            reading: false,
            stopping: false,
            limit_paused: false,
            user_paused: false,
            stash_eof: false,
            eof: false,
            exc: None,
            waiter: None,
            held: None,
            wbuf: Vec::new(),
            inflight: 0,
            dirty: false,
            bp: Backpressure::default(),
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
            socket: None,
            home: Some(home),
            stream_writer: None,
            on_data: None,
        }
    }

    /// Bytes buffered for the reader.
    pub(crate) fn avail(&self) -> usize {
        self.rbuf.avail()
    }

    /// Nothing buffered here, held or handed to the core: a write now would be first.
    fn nothing_ahead(&self) -> bool {
        self.held.is_none() && self.wbuf.is_empty() && self.inflight == 0
    }

    /// Something buffered or held for the next flush.
    pub(crate) fn has_buffered(&self) -> bool {
        self.held.is_some() || !self.wbuf.is_empty()
    }

    /// Held or buffered here, plus handed to the core in writes not yet completed.
    fn backlog(&self) -> usize {
        self.held_len() + self.wbuf.len() + self.inflight
    }

    /// The bytes of a held write.
    fn held_len(&self) -> usize {
        self.held.as_ref().map_or(0, |(_, n)| *n)
    }

    /// The write backlog asyncio's `get_write_buffer_size` reports: held or buffered here,
    /// plus what the kernel has not yet taken of the writes handed to the core (a queued
    /// write the kernel took part of counts its rest).
    pub(crate) fn write_size(&self, py: Python<'_>) -> usize {
        let here = self.held_len() + self.wbuf.len();
        if self.inflight == 0 {
            return here;
        }
        let unsent = self.drv.as_ref().and_then(|d| {
            let d = d.bind(py).try_borrow().ok()?;
            Some(d.runtime()?.unsent_bytes(self.h))
        });
        here + unsent.unwrap_or(self.inflight)
    }

    pub(crate) fn is_stream(&self) -> bool {
        matches!(self.mode, Mode::Stream { .. })
    }

    pub(crate) fn limit(&self) -> usize {
        match self.mode {
            Mode::Stream { limit } => limit,
            Mode::Protocol(_) => usize::MAX / 4,
        }
    }

    pub(crate) fn protocol(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        match &self.mode {
            Mode::Protocol(p) => Some(p.clone_ref(py)),
            Mode::Stream { .. } => None,
        }
    }

    /// The runtime was dropped under us (the driver closed): forget everything. Returns the
    /// kept StreamWriter, for the caller to drop once it no longer borrows the connection.
    #[must_use]
    pub fn detach(&mut self) -> Option<Py<PyAny>> {
        self.lost = true;
        self.conn_lost = self.conn_lost.max(1);
        self.closing = true;
        self.drv = None;
        self.waiter = None;
        self.drain_waiters.clear();
        self.closed_waiters.clear();
        self.on_data = None;
        self.stream_writer.take()
    }

    /// Tries to answer `req` from the buffer, the stream's error or its EOF: `None` means
    /// more bytes are needed.
    pub(crate) fn satisfy(&mut self, py: Python<'_>, req: &Req) -> Option<PyResult<Py<PyAny>>> {
        if let Some(e) = &self.exc {
            return Some(Err(e.clone_ref(py)));
        }
        let (eof, limit) = (self.eof, self.limit());
        let r = self.rbuf.satisfy(py, req, eof, limit);
        if r.is_some() {
            if let Some(v) = self.rbuf.take_spare() {
                self.give_back_read_buf(py, v);
            }
        }
        r
    }

    /// Hands an emptied read buffer to the runtime for its next multi-shot read (dropped
    /// instead when the driver is busy or gone).
    fn give_back_read_buf(&self, py: Python<'_>, v: Vec<u8>) {
        if let Some(d) = &self.drv {
            if let Ok(mut d) = d.bind(py).try_borrow_mut() {
                if let Ok(rt) = d.rt() {
                    rt.recycle(v);
                }
            }
        }
    }

    /// Hands buffered writes (and a pending write_eof) to the core.
    pub fn flush(&mut self, py: Python<'_>, rt: &mut Runtime) -> Option<FlushAction> {
        self.dirty = false;
        if self.lost {
            return None;
        }
        let mut wrote = false;
        let held = self.held.take();
        let first = held.as_ref().map_or(&[][..], |(b, _)| b.as_bytes(py));
        let mut first_sent = 0;
        if (!first.is_empty() || !self.wbuf.is_empty()) && self.inflight == 0 {
            // Nothing queued in the core: send what the kernel takes now, with no operation
            // (and no completion) for the usual case that it takes everything.
            match rt.try_write(self.h, &[first, &self.wbuf]) {
                Ok(0) => {}
                Ok(n) => {
                    wrote = true;
                    first_sent = n.min(first.len());
                    let n = n - first_sent;
                    if n == self.wbuf.len() {
                        self.wbuf.clear();
                    } else {
                        self.wbuf.drain(..n);
                    }
                }
                Err(s) => return Some(FlushAction::Fatal(i64::from(s.code()))),
            }
        }
        let first = &first[first_sent..];
        if !first.is_empty() || !self.wbuf.is_empty() {
            // The rest is one core write op: it goes out in order behind any queued before.
            let v = if first.is_empty() {
                std::mem::take(&mut self.wbuf)
            } else {
                // The held bytes the kernel did not take, then the buffer: copied now.
                let mut v = Vec::with_capacity(first.len() + self.wbuf.len());
                v.extend_from_slice(first);
                v.extend_from_slice(&self.wbuf);
                self.wbuf.clear();
                v
            };
            let n = v.len();
            self.inflight += n;
            if let Err(s) = rt.write(self.h, WriteBuf::from_vec(v), ud(self.id, OP_WRITE)) {
                self.inflight -= n;
                return Some(FlushAction::Fatal(i64::from(s.code())));
            }
        }
        if self.eof_requested && !self.eof_sent {
            self.eof_sent = true;
            self.shutdown_pending = true;
            if let Err(s) = rt.shutdown(self.h, ud(self.id, OP_SHUTDOWN)) {
                self.shutdown_pending = false;
                return Some(FlushAction::Fatal(i64::from(s.code())));
            }
        }
        // Bytes went out without a completion: what on_write would do, if it has work.
        (wrote && (self.bp.is_paused() || self.closing)).then_some(FlushAction::Wrote)
    }

    /// Appends `b` to the write buffer, taking one from the driver's spares if this
    /// connection holds none (it gives it back once flushed).
    pub(crate) fn buffer_write(&mut self, py: Python<'_>, b: &[u8]) {
        if b.is_empty() {
            return;
        }
        if self.wbuf.capacity() == 0 {
            if let Some(v) = with_driver(py, &self.drv, Driver::take_write_buf) {
                self.wbuf = v;
            }
        }
        self.wbuf.extend_from_slice(b);
    }

    /// A large write with nothing buffered or queued ahead of it goes to the kernel now,
    /// straight from the caller's bytes (as asyncio's transports write at once); returns
    /// the part the kernel did not take, to be buffered. Copying a large write into the
    /// buffer would cost more than the one syscall batching would save.
    pub(crate) fn write_through<'a>(
        &self,
        py: Python<'_>,
        b: &'a [u8],
    ) -> Result<&'a [u8], Status> {
        if b.len() < WRITE_THROUGH || !self.nothing_ahead() || self.lost {
            return Ok(b);
        }
        let h = self.h;
        let sent = with_driver(py, &self.drv, |d| match d.rt() {
            Ok(rt) => rt.try_write(h, &[b]),
            Err(_) => Ok(0),
        });
        Ok(&b[sent.unwrap_or(Ok(0))?..])
    }

    /// Buffers a `bytes` write of which the kernel took nothing: held, not copied, when
    /// nothing is buffered or queued ahead of it (the flush sends it from the caller's
    /// bytes, with whatever is written after it), else appended to the write buffer.
    pub(crate) fn buffer_bytes(&mut self, py: Python<'_>, data: &Bound<'_, PyBytes>) {
        let n = data.as_bytes().len();
        if n > 0 && self.nothing_ahead() {
            self.held = Some((data.clone().unbind(), n));
        } else {
            self.buffer_write(py, data.as_bytes());
        }
    }

    /// Nothing left to send: no backlog, no shutdown on the way, no flush queued.
    pub(crate) fn drained(&self) -> bool {
        self.backlog() == 0 && !self.shutdown_pending && !self.dirty
    }
}

/// `f` on the driver, or None once the connection lost it.
pub(crate) fn with_driver<T>(
    py: Python<'_>,
    drv: &Option<Py<Driver>>,
    f: impl FnOnce(&mut Driver) -> T,
) -> Option<T> {
    drv.as_ref().map(|d| f(&mut d.bind(py).borrow_mut()))
}

/// The bytes of a bytes-like object (`bytes`, `bytearray`, `memoryview`), copied.
pub(crate) fn bytes_of(data: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
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

/// The connection failed with status `code`: abort it with that error.
pub(crate) fn fatal(c: &Bound<'_, Conn>, code: i64) -> PyResult<()> {
    let e = status_err(c.py(), code, None);
    force_close(c, Some(e))
}

/// A protocol callback raised: report it as asyncio does and abort the connection.
pub(crate) fn callback_failed(c: &Bound<'_, Conn>, what: &str, e: PyErr) -> PyResult<()> {
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

/// The connection is gone (closed, aborted or failed): close the socket, settle every
/// waiter, and tell the protocol (via call_soon, as asyncio does).
pub(crate) fn force_close(c: &Bound<'_, Conn>, exc: Option<PyErr>) -> PyResult<()> {
    let py = c.py();
    let (drv, proto, fut, drains, closers, paused, _writer) = {
        let mut s = c.borrow_mut();
        if s.lost {
            return Ok(());
        }
        s.lost = true;
        s.closing = true;
        s.conn_lost = s.conn_lost.max(1);
        s.held = None;
        s.wbuf.clear();
        let drv = s.drv.take();
        if let Some(d) = &drv {
            let mut d = d.bind(py).borrow_mut();
            if let Ok(rt) = d.rt() {
                let _ = rt.close(s.h);
            }
            d.forget(s.id);
            // close() posted CANCELED completions for its pending ops: let a run reap them.
            let _ = d.poke(py);
        }
        let paused = s.bp.is_paused();
        let proto = match &s.mode {
            Mode::Stream { .. } => {
                match &exc {
                    Some(e) => {
                        if s.exc.is_none() {
                            s.exc = Some(Box::new(e.clone_ref(py)));
                        }
                    }
                    None => s.eof = true,
                }
                None
            }
            Mode::Protocol(p) => Some(p.clone_ref(py)),
        };
        s.lost_exc = exc.as_ref().map(|e| Box::new(e.clone_ref(py)));
        let fut = s.waiter.take();
        (
            drv,
            proto,
            fut,
            std::mem::take(&mut s.drain_waiters),
            std::mem::take(&mut s.closed_waiters),
            paused,
            // Dropped (its __del__ may run) once the connection is no longer borrowed.
            s.stream_writer.take(),
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
            driver::set_result(py, &fut, r)?;
        }
    }
    if paused {
        for w in drains {
            let r = match &exc {
                Some(e) => Err(e.clone_ref(py)),
                None => Ok(py.None()),
            };
            driver::set_result(py, &w, r)?;
        }
    }
    for w in closers {
        let r = match &exc {
            Some(e) => Err(e.clone_ref(py)),
            None => Ok(py.None()),
        };
        driver::set_result(py, &w, r)?;
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
pub(crate) fn close(c: &Bound<'_, Conn>) -> PyResult<()> {
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
                    let _ = rt.cancel(ud(s.id, OP_READ));
                }
                if let Some(FlushAction::Fatal(code)) = s.flush(py, rt) {
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
        visit.call(&self.socket)?;
        visit.call(&self.home)?;
        visit.call(&self.stream_writer)?;
        visit.call(&self.on_data)?;
        Ok(())
    }

    fn __clear__(&mut self) {
        self.drv = None;
        self.home = None;
        self.socket = None;
        self.stream_writer = None;
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

    /// The handle's raw value (for tests).
    fn handle(&self) -> u64 {
        self.h.into_raw()
    }
}
