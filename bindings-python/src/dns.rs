//! Name lookups for asyncio: `Driver.getaddrinfo` submits a core lookup and its completion
//! resolves a future with `loop.getaddrinfo`'s result shape, a list of
//! `(family, type, proto, canonname, sockaddr)` tuples; failures raise `socket.gaierror`.

use polyio_core::{Completion, LookupHints};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use crate::driver::{self, Driver, Kind, ud};
use crate::errors::{raise, status_err};

/// A lookup's waiter: its future.
static LOOKUP: Kind = Kind {
    settle: settle_lookup,
    flush: driver::no_flush,
    detach: driver::no_detach,
};

fn settle_lookup(_: &Bound<'_, Driver>, fut: &Bound<'_, PyAny>, c: Completion) -> PyResult<()> {
    let py = fut.py();
    let r = if c.result < 0 {
        Err(status_err(py, c.result, None))
    } else {
        addr_list(py, &c).map(|l| l.into_any().unbind())
    };
    driver::set_result(py, &fut.clone().unbind(), r)
}

/// The completion's addresses as `socket.getaddrinfo` lists them.
fn addr_list<'py>(py: Python<'py>, c: &Completion) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for a in c.addrs.iter().flatten() {
        let ip = a.addr.ip().to_string();
        let sockaddr = match a.addr {
            std::net::SocketAddr::V4(v4) => (ip, v4.port()).into_pyobject(py)?,
            std::net::SocketAddr::V6(v6) => {
                (ip, v6.port(), v6.flowinfo(), v6.scope_id()).into_pyobject(py)?
            }
        };
        let canon = a.canonname.as_deref().unwrap_or("");
        let item = PyTuple::new(
            py,
            [
                a.family.into_pyobject(py)?.into_any(),
                a.socktype.into_pyobject(py)?.into_any(),
                a.protocol.into_pyobject(py)?.into_any(),
                canon.into_pyobject(py)?.into_any(),
                sockaddr.into_any(),
            ],
        )?;
        list.append(item)?;
    }
    Ok(list)
}

#[pymethods]
impl Driver {
    /// Starts a lookup of `host` and `service` (as `socket.getaddrinfo` takes them, the
    /// host already IDNA-encoded); returns (future of the result list, user_data for
    /// `cancel`).
    #[pyo3(signature = (host, service, family=0, r#type=0, proto=0, flags=0))]
    fn getaddrinfo(
        slf: &Bound<'_, Self>,
        host: Option<&str>,
        service: Option<&str>,
        family: i32,
        r#type: i32,
        proto: i32,
        flags: i32,
    ) -> PyResult<(Py<PyAny>, u64)> {
        let py = slf.py();
        let mut d = slf.borrow_mut();
        let fut = d.new_future(py)?.unbind();
        let id = d.new_id();
        let u = ud(id, 0);
        let hints = LookupHints {
            family,
            socktype: r#type,
            protocol: proto,
            flags,
        };
        d.rt()?
            .getaddrinfo(host, service, hints, u)
            .map_err(|s| raise(py, s))?;
        d.register_once(id, fut.clone_ref(py), &LOOKUP);
        d.poke(py)?;
        Ok((fut, u))
    }
}
