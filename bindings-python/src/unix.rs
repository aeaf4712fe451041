//! Unix domain sockets: `Driver.unix_connect` and `Driver.unix_listen`, by path (a
//! filesystem path, or a Linux abstract name with a leading NUL). A connect's completion
//! resolves its future with the new connection's handle; the stream module wraps handles as
//! connections and accepts on listeners of every stream kind.

use polyio_core::{Completion, ListenOptions};
use pyo3::intern;
use pyo3::prelude::*;

use crate::driver::{self, Driver, Kind, ud};
use crate::errors::{raise, status_err};

/// A connect's waiter: its future.
static CONNECT: Kind = Kind {
    settle: settle_connect,
    flush: driver::no_flush,
    detach: driver::no_detach,
};

fn settle_connect(d: &Bound<'_, Driver>, fut: &Bound<'_, PyAny>, c: Completion) -> PyResult<()> {
    let py = fut.py();
    let done = fut.call_method0(intern!(py, "done"))?.is_truthy()?;
    if c.result >= 0 {
        if done {
            // Cancelled after the connection was made: do not leak it.
            let _ = d.borrow_mut().rt()?.close(c.handle);
        } else {
            fut.call_method1(intern!(py, "set_result"), (c.handle.into_raw(),))?;
        }
    } else if !done {
        // As a Unix socket's connect() raises it: the errno's own message, no address.
        let e = status_err(py, c.result, None);
        fut.call_method1(intern!(py, "set_exception"), (e.into_value(py),))?;
    }
    Ok(())
}

#[pymethods]
impl Driver {
    /// Starts a connect to the Unix socket at `path`; returns (future resolving to a handle,
    /// user_data for `cancel`).
    fn unix_connect(slf: &Bound<'_, Self>, path: &[u8]) -> PyResult<(Py<PyAny>, u64)> {
        let py = slf.py();
        let mut d = slf.borrow_mut();
        let fut = d.new_future(py)?.unbind();
        let id = d.new_id();
        let u = ud(id, 0);
        d.rt()?.unix_connect(path, u).map_err(|s| raise(py, s))?;
        d.register_once(id, fut.clone_ref(py), &CONNECT);
        d.poke(py)?;
        Ok((fut, u))
    }

    /// Binds the Unix socket `path` and listens; returns the listener handle. Closing it
    /// removes the socket file unless `cleanup` is false.
    fn unix_listen(
        slf: &Bound<'_, Self>,
        path: &[u8],
        backlog: u32,
        cleanup: bool,
    ) -> PyResult<u64> {
        let py = slf.py();
        let opts = ListenOptions {
            backlog,
            ..ListenOptions::default()
        };
        let mut d = slf.borrow_mut();
        let rt = d.rt()?;
        let h = rt.unix_listen(path, opts).map_err(|s| raise(py, s))?;
        if !cleanup {
            rt.unix_keep_path(h).map_err(|s| raise(py, s))?;
        }
        Ok(h.into_raw())
    }
}
