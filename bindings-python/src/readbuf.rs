//! The bytes a stream connection has read and nobody has taken yet, and how StreamReader's
//! calls (`read`, `readline`, `readexactly`, `readuntil`) are answered from them, with
//! asyncio's results and errors.

use pyo3::exceptions::{PyEOFError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::errors::{incomplete_read, limit_overrun};

/// What a waiting StreamReader call wants.
#[derive(Debug)]
pub enum Req {
    Read(isize),
    Line,
    Exactly(usize),
    Until(Vec<u8>),
}

impl Req {
    pub fn name(&self) -> &'static str {
        match self {
            Req::Read(_) => "read",
            Req::Line | Req::Until(_) => "readuntil",
            Req::Exactly(_) => "readexactly",
        }
    }
}

/// Buffered bytes: `data[pos..]` is unread.
#[derive(Debug, Default)]
pub struct ReadBuffer {
    data: Vec<u8>,
    pos: usize,
}

impl ReadBuffer {
    pub fn avail(&self) -> usize {
        self.data.len() - self.pos
    }

    /// The unread bytes.
    pub fn unread_bytes(&self) -> &[u8] {
        &self.data[self.pos..]
    }

    /// Takes the first `n` unread bytes as `bytes`.
    pub fn take(&mut self, py: Python<'_>, n: usize) -> Py<PyAny> {
        let b = PyBytes::new(py, &self.data[self.pos..self.pos + n]);
        self.pos += n;
        if self.pos == self.data.len() {
            self.data.clear();
            self.pos = 0;
        }
        b.into_any().unbind()
    }

    /// The emptied buffer's allocation, once every byte in it was taken: an idle
    /// connection keeps no read buffer (the runtime reuses it for the next read).
    pub fn take_spare(&mut self) -> Option<Vec<u8>> {
        (self.avail() == 0 && self.data.capacity() > 0).then(|| {
            self.pos = 0;
            std::mem::take(&mut self.data)
        })
    }

    /// Buffers `data`; returns a buffer to hand back to the runtime (`data` itself, or the
    /// old buffer it replaced).
    #[must_use]
    pub fn append(&mut self, mut data: Vec<u8>) -> Vec<u8> {
        if self.avail() == 0 {
            // Swap the read buffer in: no copy.
            self.data.clear();
            self.pos = 0;
            std::mem::swap(&mut self.data, &mut data);
        } else {
            if self.pos > 0 && self.pos >= self.data.len() / 2 {
                self.data.drain(..self.pos);
                self.pos = 0;
            }
            self.data.extend_from_slice(&data);
        }
        data
    }

    /// Puts `data` back at the front of the buffer (a read resolved, then cancelled).
    pub fn unread(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        if self.pos >= data.len() {
            self.pos -= data.len();
            let at = self.pos;
            self.data[at..at + data.len()].copy_from_slice(data);
        } else {
            let mut v = Vec::with_capacity(data.len() + self.avail());
            v.extend_from_slice(data);
            v.extend_from_slice(&self.data[self.pos..]);
            self.data = v;
            self.pos = 0;
        }
    }

    /// Tries to answer `req` (`eof`: no more bytes will come; `limit`: the stream's): `None`
    /// means more bytes are needed.
    pub fn satisfy(
        &mut self,
        py: Python<'_>,
        req: &Req,
        eof: bool,
        limit: usize,
    ) -> Option<PyResult<Py<PyAny>>> {
        let avail = self.avail();
        match req {
            Req::Read(0) => Some(Ok(PyBytes::new(py, b"").into_any().unbind())),
            Req::Read(n) if *n < 0 => eof.then(|| Ok(self.take(py, avail))),
            Req::Read(n) => {
                if avail > 0 {
                    Some(Ok(self.take(py, avail.min(*n as usize))))
                } else if eof {
                    Some(Ok(PyBytes::new(py, b"").into_any().unbind()))
                } else {
                    None
                }
            }
            Req::Exactly(n) => {
                if avail >= *n {
                    Some(Ok(self.take(py, *n)))
                } else if eof {
                    let partial = self.take(py, avail);
                    Some(Err(incomplete_read(py, partial, Some(*n))))
                } else {
                    None
                }
            }
            Req::Until(sep) => self.until(py, sep, eof, limit),
            Req::Line => match self.until(py, b"\n", eof, limit)? {
                Ok(v) => Some(Ok(v)),
                Err(e) if e.is_instance_of::<PyEOFError>(py) => {
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
                    let rest = &self.data[self.pos..];
                    if rest.get(consumed) == Some(&b'\n') {
                        self.pos += consumed + 1;
                    } else {
                        self.pos = self.data.len();
                    }
                    if self.pos >= self.data.len() {
                        self.data.clear();
                        self.pos = 0;
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

    fn until(
        &mut self,
        py: Python<'_>,
        sep: &[u8],
        eof: bool,
        limit: usize,
    ) -> Option<PyResult<Py<PyAny>>> {
        let buf = &self.data[self.pos..];
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
                if eof {
                    let chunk = self.take(py, self.avail());
                    return Some(Err(incomplete_read(py, chunk, None)));
                }
                None
            }
        }
    }
}
