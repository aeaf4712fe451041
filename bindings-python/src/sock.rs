//! `TransportSocket`: what `get_extra_info('socket')` and `Server.sockets` give, a light
//! stand-in for asyncio's `trsock.TransportSocket` over a polyio handle, and the socket
//! addresses of handles as asyncio gives them. The runtime keeps owning the socket: nothing
//! here can close it.

use polyio_core::{Handle, Runtime, Status};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::driver::Driver;
use crate::errors::raise;

/// `EBADF`: what a socket call on a closed handle raises.
const EBADF: i32 = 9;

/// A polyio connection's or listener's socket, with the read-only half of the socket API
/// asyncio's `TransportSocket` offers (plus `setsockopt`). Internal: obtained from
/// `transport.get_extra_info('socket')` or `Server.sockets`.
#[pyclass(module = "polyio._polyio", frozen)]
#[derive(Debug)]
pub struct TransportSocket {
    drv: Py<Driver>,
    h: Handle,
    family: Py<PyAny>,
    /// A Unix socket (`AF_UNIX`, protocol 0), else TCP (or UDP, with `datagram`).
    unix: bool,
    /// A UDP socket (`SOCK_DGRAM`, `IPPROTO_UDP`).
    datagram: bool,
}

impl TransportSocket {
    /// The socket of `h`, or `None` when the handle is closed (or the driver is).
    pub fn new(py: Python<'_>, drv: &Bound<'_, Driver>, h: Handle) -> PyResult<Option<Self>> {
        let addr = match drv.borrow_mut().rt() {
            Ok(rt) => rt.local_addr(h),
            Err(_) => return Ok(None),
        };
        let name = match addr {
            Ok(a) if a.is_ipv6() => "AF_INET6",
            Ok(_) => "AF_INET",
            // Not an IP socket: a Unix one, if it still exists.
            Err(Status::InvalidArgument) => "AF_UNIX",
            Err(_) => return Ok(None),
        };
        Self::with_family(py, drv, h, name).map(Some)
    }

    /// The socket of `h`, of family `name` (`"AF_INET"`, `"AF_INET6"` or `"AF_UNIX"`).
    pub fn with_family(
        py: Python<'_>,
        drv: &Bound<'_, Driver>,
        h: Handle,
        name: &str,
    ) -> PyResult<Self> {
        let family = py.import(intern!(py, "socket"))?.getattr(name)?.unbind();
        Ok(TransportSocket {
            drv: drv.clone().unbind(),
            h,
            family,
            unix: name == "AF_UNIX",
            datagram: false,
        })
    }

    /// [`new`](Self::new) for a UDP socket's handle.
    pub fn new_datagram(
        py: Python<'_>,
        drv: &Bound<'_, Driver>,
        h: Handle,
    ) -> PyResult<Option<Self>> {
        Ok(Self::new(py, drv, h)?.map(|s| TransportSocket {
            datagram: true,
            ..s
        }))
    }

    fn addr(&self, py: Python<'_>, peer: bool) -> PyResult<Py<PyAny>> {
        let mut d = self.drv.bind(py).borrow_mut();
        let rt = d.rt().map_err(|_| closed(py))?;
        if self.unix {
            return match unix_addr(py, rt, self.h, peer) {
                Some(a) => a.map_err(|s| raise(py, s)),
                None => Err(closed(py)),
            };
        }
        let a = if peer {
            rt.peer_addr(self.h)
        } else {
            rt.local_addr(self.h)
        };
        addr_tuple(py, a.map_err(|s| raise(py, s))?)
    }

    fn fd(&self, py: Python<'_>) -> PyResult<i32> {
        let mut d = self.drv.bind(py).borrow_mut();
        let rt = d.rt().map_err(|_| closed(py))?;
        rt.raw_fd(self.h).map_err(|_| closed(py))
    }

    /// Runs `f` on a Python socket object over the fd, detached again afterwards (so that
    /// it never closes the runtime's socket).
    fn with_pysocket<T>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&Bound<'_, PyAny>) -> PyResult<T>,
    ) -> PyResult<T> {
        let fd = self.fd(py)?;
        let kw = PyDict::new(py);
        kw.set_item("fileno", fd)?;
        let s = py
            .import(intern!(py, "socket"))?
            .getattr(intern!(py, "socket"))?
            .call((), Some(&kw))?;
        let r = f(&s);
        s.call_method0(intern!(py, "detach"))?;
        r
    }
}

/// A socket address as asyncio gives it: `(host, port)`, or `(host, port, flowinfo,
/// scope_id)` for IPv6.
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

/// The family of a socket address as asyncio gives it: a 2-tuple is IPv4, a 4-tuple IPv6,
/// anything else (a path) Unix.
pub(crate) fn family_of(addr: &Bound<'_, PyAny>) -> &'static str {
    match addr.len() {
        _ if addr.is_instance_of::<pyo3::types::PyString>() || addr.is_instance_of::<PyBytes>() => {
            "AF_UNIX"
        }
        Ok(2) => "AF_INET",
        Ok(4) => "AF_INET6",
        _ => "AF_UNIX",
    }
}

/// The peer's (`peer`) or the local address of `h`, or None once it is closed.
pub(crate) fn peer_or_local(
    py: Python<'_>,
    d: &Driver,
    h: Handle,
    peer: bool,
) -> Option<Py<PyAny>> {
    let rt = d.runtime()?;
    if let Some(a) = unix_addr(py, rt, h, peer) {
        return a.ok();
    }
    let a = if peer {
        rt.peer_addr(h)
    } else {
        rt.local_addr(h)
    };
    a.ok().and_then(|a| addr_tuple(py, a).ok())
}

/// The Unix path of `h` (its own, or with `peer` its peer's) as Python's `socket` module
/// gives an `AF_UNIX` address: a filesystem path as `str` (decoded as `os.fsdecode` does),
/// an abstract name as `bytes` with its leading NUL, `''` when unbound. `None` when `h` is
/// not a Unix socket.
fn unix_addr(
    py: Python<'_>,
    rt: &Runtime,
    h: Handle,
    peer: bool,
) -> Option<Result<Py<PyAny>, Status>> {
    let path = if peer {
        rt.unix_peer_path(h)
    } else {
        rt.unix_local_path(h)
    };
    let path = match path {
        Err(Status::InvalidArgument) => return None,
        Err(s) => return Some(Err(s)),
        Ok(p) => p,
    };
    let bytes = PyBytes::new(py, &path);
    if path.first() == Some(&0) {
        return Some(Ok(bytes.into_any().unbind()));
    }
    let decoded = py
        .import(intern!(py, "os"))
        .and_then(|os| os.call_method1(intern!(py, "fsdecode"), (bytes,)))
        .map(Bound::unbind);
    Some(decoded.map_err(|_| Status::IoError))
}

fn closed(_py: Python<'_>) -> PyErr {
    pyo3::exceptions::PyOSError::new_err((EBADF, "Bad file descriptor"))
}

#[pymethods]
impl TransportSocket {
    /// `socket.AF_INET`, `socket.AF_INET6` or `socket.AF_UNIX`.
    #[getter]
    fn family(&self, py: Python<'_>) -> Py<PyAny> {
        self.family.clone_ref(py)
    }

    /// `socket.SOCK_STREAM` (`socket.SOCK_DGRAM` for a UDP socket).
    #[getter(r#type)]
    fn get_type(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let name = if self.datagram {
            intern!(py, "SOCK_DGRAM")
        } else {
            intern!(py, "SOCK_STREAM")
        };
        Ok(py.import(intern!(py, "socket"))?.getattr(name)?.unbind())
    }

    /// `socket.IPPROTO_TCP` (`IPPROTO_UDP` for a UDP socket, 0 for a Unix one).
    #[getter]
    fn proto(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        if self.unix {
            return Ok(0i32.into_pyobject(py)?.into_any().unbind());
        }
        let name = if self.datagram {
            intern!(py, "IPPROTO_UDP")
        } else {
            intern!(py, "IPPROTO_TCP")
        };
        Ok(py.import(intern!(py, "socket"))?.getattr(name)?.unbind())
    }

    /// The socket's fd (still owned by polyio: do not close it), or -1 once closed.
    fn fileno(&self, py: Python<'_>) -> i32 {
        self.fd(py).unwrap_or(-1)
    }

    /// The local address, as `socket.getsockname()` gives it.
    fn getsockname(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.addr(py, false)
    }

    /// The peer's address, as `socket.getpeername()` gives it.
    fn getpeername(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.addr(py, true)
    }

    /// `socket.getsockopt(level, optname[, buflen])` on the underlying socket.
    #[pyo3(signature = (*args))]
    fn getsockopt(
        &self,
        py: Python<'_>,
        args: &Bound<'_, pyo3::types::PyTuple>,
    ) -> PyResult<Py<PyAny>> {
        self.with_pysocket(py, |s| {
            Ok(s.call_method1(intern!(py, "getsockopt"), args)?.unbind())
        })
    }

    /// `socket.setsockopt(level, optname, value)` on the underlying socket.
    #[pyo3(signature = (*args))]
    fn setsockopt(&self, py: Python<'_>, args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<()> {
        self.with_pysocket(py, |s| {
            s.call_method1(intern!(py, "setsockopt"), args)?;
            Ok(())
        })
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let fd = self.fd(py).unwrap_or(-1);
        let laddr = self
            .addr(py, false)
            .and_then(|a| Ok(a.bind(py).repr()?.to_string()))
            .unwrap_or_else(|_| "closed".into());
        format!("<polyio.TransportSocket fd={fd}, laddr={laddr}>")
    }
}

#[pymethods]
impl Driver {
    /// The socket of a handle (a listener's, for `Server.sockets`), or None once closed.
    fn socket(slf: &Bound<'_, Self>, handle: u64) -> PyResult<Option<TransportSocket>> {
        TransportSocket::new(slf.py(), slf, Handle::from_raw(handle))
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
}
