//! Timers: `Driver.sleep`, a core timer whose completion resolves a future (asyncio's
//! `sleep`, without a loop timer handle per call).

use polyio_core::Completion;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::driver::{self, Driver, Kind, ud};
use crate::errors::{raise, status_err};

/// A timer's waiter: the tuple `(future, result)`.
static TIMER: Kind = Kind {
    settle,
    flush: driver::no_flush,
    detach: driver::no_detach,
};

fn settle(_: &Bound<'_, Driver>, waiter: &Bound<'_, PyAny>, c: Completion) -> PyResult<()> {
    let py = waiter.py();
    let (fut, value): (Py<PyAny>, Py<PyAny>) = waiter.extract()?;
    let r = if c.result >= 0 {
        Ok(value)
    } else {
        Err(status_err(py, c.result, None))
    };
    driver::set_result(py, &fut, r)
}

#[pymethods]
impl Driver {
    /// Starts a timer; returns (future resolving to `result` after `delay` s, user_data).
    fn sleep(slf: &Bound<'_, Self>, delay: f64, result: Py<PyAny>) -> PyResult<(Py<PyAny>, u64)> {
        let py = slf.py();
        if delay.is_nan() {
            return Err(PyValueError::new_err("Invalid delay: NaN (not a number)"));
        }
        let ms = (delay.max(0.0) * 1000.0).ceil().min(i64::MAX as f64 / 2.0) as u64;
        let mut d = slf.borrow_mut();
        let fut = d.new_future(py)?.unbind();
        let id = d.new_id();
        let u = ud(id, 0);
        d.rt()?.timer(ms, u).map_err(|s| raise(py, s))?;
        let waiter = PyTuple::new(py, [fut.clone_ref(py), result])?;
        d.register_once(id, waiter.into_any().unbind(), &TIMER);
        d.reschedule(py)?;
        Ok((fut, u))
    }
}
