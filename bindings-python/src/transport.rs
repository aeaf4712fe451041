//! The asyncio transport API of a connection (`write`, `close`, `pause_reading`,
//! `get_extra_info`, ...): what a protocol calls, and what `StreamWriter` wraps.

use polyio_core::WaterMarks;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyType};

use crate::conn::{Conn, Mode, bytes_of, callback_failed, close, fatal, force_close, with_driver};
use crate::sock::{self, TransportSocket, peer_or_local};
use crate::stream::{data_received_of, deliver_stash, mark_dirty, start_reading};

static TRANSPORT_CLASS: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// After asyncio's threshold (`LOG_THRESHOLD_FOR_CONNLOST_WRITES`), each write to a lost
/// connection logs this warning on asyncio's logger, as asyncio's transports do.
const LOG_THRESHOLD_FOR_CONNLOST_WRITES: u32 = 5;

fn warn_lost_write(py: Python<'_>) -> PyResult<()> {
    py.import(intern!(py, "asyncio.log"))?
        .getattr(intern!(py, "logger"))?
        .call_method1(intern!(py, "warning"), ("socket.send() raised exception.",))?;
    Ok(())
}

/// `write`/`writelines`: large writes with nothing ahead go to the kernel at once, the rest
/// is buffered for the loop iteration's flush; above the high-water mark the protocol's
/// `pause_writing` runs.
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
            if let Ok(bytes) = data.cast::<PyBytes>() {
                let b = bytes.as_bytes();
                added += b.len();
                let rest = match s.write_through(py, b) {
                    Ok(rest) => rest,
                    Err(st) => {
                        failed = Some(st);
                        break;
                    }
                };
                if rest.len() == b.len() {
                    s.buffer_bytes(py, bytes);
                } else {
                    s.buffer_write(py, rest);
                }
            } else {
                let v = bytes_of(data)?;
                added += v.len();
                s.buffer_write(py, &v);
            }
        }
        if let Some(st) = failed {
            drop(s);
            return fatal(c, i64::from(st.code()));
        }
        if added == 0 || s.lost || (!s.has_buffered() && !s.eof_requested) {
            return Ok(()); // nothing left to flush: it all went out at once
        }
        mark_dirty(c, &mut s)?;
        let size = s.write_size(py);
        if s.bp.grew(size) {
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

impl Conn {
    /// `get_extra_info('socket')`: made at the first ask and kept, as asyncio's transport
    /// keeps its socket object after the close (its `fileno()` is then -1).
    fn socket(&mut self, py: Python<'_>) -> Option<Py<PyAny>> {
        if let Some(s) = &self.socket {
            return Some(s.clone_ref(py));
        }
        let home = self.home.as_ref()?.bind(py);
        let made = match &self.drv {
            Some(d) => TransportSocket::new(py, d.bind(py), self.h),
            // Closed before anyone asked: the family from the address kept at connection time.
            None => {
                let name = self.sockname.as_ref().map(|a| sock::family_of(a.bind(py)));
                TransportSocket::with_family(py, home, self.h, name.unwrap_or("AF_INET")).map(Some)
            }
        };
        let s = Py::new(py, made.ok()??).ok()?.into_any();
        self.socket = Some(s.clone_ref(py));
        Some(s)
    }
}

#[pymethods]
impl Conn {
    /// Buffers `data`; it goes out with the loop iteration's flush.
    fn write(slf: &Bound<'_, Self>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        append_write(slf, std::slice::from_ref(data))
    }

    fn writelines(slf: &Bound<'_, Self>, list_of_data: &Bound<'_, PyAny>) -> PyResult<()> {
        let chunks: Vec<Bound<'_, PyAny>> = list_of_data.try_iter()?.collect::<PyResult<_>>()?;
        append_write(slf, &chunks)
    }

    fn write_eof(slf: &Bound<'_, Self>) -> PyResult<()> {
        let mut s = slf.borrow_mut();
        if s.closing || s.eof_requested {
            return Ok(());
        }
        s.eof_requested = true;
        mark_dirty(slf, &mut s)
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

    fn get_write_buffer_size(&self, py: Python<'_>) -> usize {
        self.write_size(py)
    }

    #[pyo3(signature = (high=None, low=None))]
    fn set_write_buffer_limits(&mut self, high: Option<i64>, low: Option<i64>) -> PyResult<()> {
        let marks = WaterMarks::new(high, low).map_err(|e| PyValueError::new_err(e.to_string()))?;
        self.bp.set_marks(marks);
        Ok(())
    }

    fn get_write_buffer_limits(&self) -> (usize, usize) {
        let m = self.bp.marks();
        (m.low(), m.high())
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
            "socket" => return self.socket(py).unwrap_or(default),
            _ => return default,
        };
        if let Some(v) = cache {
            return v.clone_ref(py);
        }
        // Not known at connection time: ask the socket, if it is still open.
        let h = self.h;
        let v = with_driver(py, &self.drv, |d| peer_or_local(py, d, h, peer)).flatten();
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

    fn __repr__(&self, py: Python<'_>) -> String {
        let fd = self
            .drv
            .as_ref()
            .and_then(|d| {
                let d = d.bind(py).try_borrow().ok()?;
                d.runtime().map(|rt| rt.raw_fd(self.h))
            })
            .and_then(Result::ok)
            .unwrap_or(-1);
        let state = if self.lost {
            "closed"
        } else if self.closing {
            "closing"
        } else {
            "open"
        };
        let peer = self
            .peername
            .as_ref()
            .and_then(|p| p.bind(py).repr().ok())
            .map(|r| format!(" peername={r}"))
            .unwrap_or_default();
        format!("<polyio.Transport fd={fd} {state}{peer}>")
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
}
