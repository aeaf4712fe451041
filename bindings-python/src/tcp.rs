//! TCP: `Driver.connect` and `Driver.listen`. A connect's completion resolves its future
//! with the new connection's handle; the stream module wraps handles as connections and
//! accepts on listeners of every stream kind.

use std::time::Duration;

use polyio_core::{Completion, ConnectOptions, ListenOptions};
use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::driver::{self, Driver, Kind, ud};
use crate::errors::{raise, status_err};

/// A connect's waiter: the tuple `(future, "('host', port)")`.
static CONNECT: Kind = Kind {
    settle: settle_connect,
    flush: driver::no_flush,
    detach: driver::no_detach,
};

fn settle_connect(d: &Bound<'_, Driver>, waiter: &Bound<'_, PyAny>, c: Completion) -> PyResult<()> {
    let py = waiter.py();
    let (fut, what): (Bound<'_, PyAny>, String) = waiter.extract()?;
    let done = fut.call_method0(intern!(py, "done"))?.is_truthy()?;
    if c.result >= 0 {
        if done {
            // Cancelled after the connection was made: do not leak it.
            let _ = d.borrow_mut().rt()?.close(c.handle);
        } else {
            fut.call_method1(intern!(py, "set_result"), (c.handle.into_raw(),))?;
        }
    } else if !done {
        let ctx = format!("Connect call failed {what}");
        let e = status_err(py, c.result, Some(&ctx));
        fut.call_method1(intern!(py, "set_exception"), (e.into_value(py),))?;
    }
    Ok(())
}

#[pymethods]
impl Driver {
    /// Starts a connect; returns (future resolving to a handle, user_data for `cancel`).
    /// A name's addresses (of `family`, 0 for any) are tried one after another, or with
    /// Happy Eyeballs when `happy_eyeballs_delay` (seconds) is given, reordered by
    /// `interleave` (asyncio's arguments).
    #[pyo3(signature = (host, port, happy_eyeballs_delay=None, interleave=0, family=0))]
    fn connect(
        slf: &Bound<'_, Self>,
        host: &str,
        port: u16,
        happy_eyeballs_delay: Option<f64>,
        interleave: usize,
        family: i32,
    ) -> PyResult<(Py<PyAny>, u64)> {
        let py = slf.py();
        let attempt_delay = match happy_eyeballs_delay {
            None => None,
            Some(d) if d.is_finite() && d >= 0.0 => Some(Duration::from_secs_f64(d.min(1e9))),
            Some(d) => {
                return Err(PyValueError::new_err(format!(
                    "happy_eyeballs_delay must be a non-negative number, not {d}"
                )));
            }
        };
        let options = ConnectOptions {
            attempt_delay,
            interleave,
            family,
        };
        let mut d = slf.borrow_mut();
        let fut = d.new_future(py)?.unbind();
        let id = d.new_id();
        let u = ud(id, 0);
        d.rt()?
            .tcp_connect_with(host, port, options, u)
            .map_err(|s| raise(py, s))?;
        let what = format!("('{host}', {port})");
        let waiter = PyTuple::new(
            py,
            [
                fut.clone_ref(py),
                what.into_pyobject(py)?.into_any().unbind(),
            ],
        )?;
        d.register_once(id, waiter.into_any().unbind(), &CONNECT);
        d.poke(py)?;
        Ok((fut, u))
    }

    /// Binds and listens; returns the listener handle. `ipv6_only` sets `IPV6_V6ONLY` on an
    /// IPv6 listener, as asyncio's create_server does.
    fn listen(
        slf: &Bound<'_, Self>,
        host: &str,
        port: u16,
        backlog: u32,
        reuse_port: bool,
        ipv6_only: bool,
    ) -> PyResult<u64> {
        let py = slf.py();
        let opts = ListenOptions {
            backlog,
            reuse_port,
            ipv6_only,
        };
        let h = slf
            .borrow_mut()
            .rt()?
            .tcp_listen(host, port, opts)
            .map_err(|s| raise(py, s))?;
        Ok(h.into_raw())
    }
}
