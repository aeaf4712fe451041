//! The StreamReader/StreamWriter API of a stream-mode connection: each read call returns
//! bytes now when the buffer can answer it, or a future the stream path resolves; `drain`
//! and `wait_closed` for the writer.

use pyo3::exceptions::{PyEOFError, PyRuntimeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes};

use crate::conn::{Conn, bytes_of, fatal, force_close, with_driver};
use crate::drain::Drain;
use crate::driver::Driver;
use crate::readbuf::Req;

/// A read call: answered from the buffer now, or a future that the stream path resolves
/// (reading resumes for it).
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
    /// cancelled: the call stops waiting; bytes the future was resolved with before the
    /// cancel reached the task go back to the buffer.
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
            } else if exc.is_instance_of::<PyEOFError>() {
                Some(exc.getattr(intern!(py, "partial"))?) // IncompleteReadError
            } else {
                None
            };
            if let Some(d) = data {
                if let Ok(b) = d.cast::<PyBytes>() {
                    s.rbuf.unread(b.as_bytes());
                }
            }
        }
        if s.lost || s.closing || s.eof {
            return Ok(());
        }
        // The stream keeps reading ahead, as asyncio's does after a cancelled read: EOF or a
        // reset is noticed when it comes (`at_eof()`, `exception()`), not at the next read
        // call. Past twice the limit, with nobody waiting now, reading stops as usual.
        let drv = s.drv.as_ref().map(|d| d.clone_ref(py));
        let r = with_driver(py, &drv, |d| {
            let r = s.pump_read(d);
            let _ = d.poke(py);
            r
        });
        if let Some(Err(st)) = r {
            drop(s);
            return fatal(slf, i64::from(st.code()));
        }
        Ok(())
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

    // ---- what libraries read of asyncio's StreamReader internals ------------------------

    /// A copy of the unread bytes, for `StreamReader._buffer`.
    fn unread<'py>(&self, py: Python<'py>) -> Bound<'py, PyByteArray> {
        PyByteArray::new(py, self.rbuf.unread_bytes())
    }

    /// The future a waiting read call awaits, or None (`StreamReader._waiter`).
    fn waiter(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.waiter.as_ref().map(|(_, f)| f.clone_ref(py))
    }

    /// No more bytes will come (`StreamReader._eof`; bytes may still be buffered).
    fn eof_received(&self) -> bool {
        self.eof
    }

    /// The stream's limit (`StreamReader._limit`).
    fn stream_limit(&self) -> usize {
        self.limit()
    }

    /// The driver the connection was made on (kept after the close; `StreamWriter._loop`).
    fn driver(&self, py: Python<'_>) -> Option<Py<Driver>> {
        self.home.as_ref().map(|d| d.clone_ref(py))
    }

    /// Ends the stream as a lost connection does (`StreamWriter._protocol.connection_lost`):
    /// with `exc`, reads raise it; without, they see EOF. The socket is closed.
    #[pyo3(signature = (exc=None))]
    fn lose(slf: &Bound<'_, Self>, exc: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        let err = match exc {
            Some(e) if !e.is_none() => Some(PyErr::from_value(e)),
            _ => None,
        };
        force_close(slf, err)
    }

    /// Keeps a server connection's StreamWriter alive until the connection is lost (as
    /// asyncio's `StreamReaderProtocol` keeps its `_stream_writer`).
    fn keep_writer(&mut self, writer: Py<PyAny>) {
        if !self.lost {
            self.stream_writer = Some(writer);
        }
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
