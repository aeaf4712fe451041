//! polyio status codes as the exceptions asyncio raises: an `OSError` subclass chosen by
//! errno (`ConnectionRefusedError`, `ConnectionResetError`, `TimeoutError`, ...), and
//! asyncio's own `IncompleteReadError` / `LimitOverrunError` for the stream reader.

use polyio_core::Status;
use pyo3::exceptions::{PyOSError, PyRuntimeError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

static INCOMPLETE_READ: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static LIMIT_OVERRUN: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static CANCELLED: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static GAIERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// `EAI_NONAME` and `EAI_AGAIN` as glibc defines them (what `socket.gaierror` carries for
/// an unknown host and for a temporary failure).
const EAI_NONAME: i32 = -2;
const EAI_AGAIN: i32 = -3;

/// The exception for a negative completion result. `context` (e.g. "Connect call failed
/// ('127.0.0.1', 1)") replaces the message, as asyncio words its connect errors.
pub fn status_err(py: Python<'_>, code: i64, context: Option<&str>) -> PyErr {
    let status = Status::from_code(code).unwrap_or(Status::IoError);
    let msg = context.unwrap_or(status.message()).to_owned();
    let ty = |cell: &'static PyOnceLock<Py<PyType>>, module: &str, name: &str| {
        cell.import(py, module, name).cloned()
    };
    match status {
        Status::Canceled => match ty(&CANCELLED, "asyncio", "CancelledError") {
            Ok(t) => PyErr::from_type(t, ()),
            Err(e) => e,
        },
        Status::NameNotResolved => match ty(&GAIERROR, "socket", "gaierror") {
            Ok(t) => PyErr::from_type(t, (EAI_NONAME, "Name or service not known")),
            Err(e) => e,
        },
        Status::NameTryAgain => match ty(&GAIERROR, "socket", "gaierror") {
            Ok(t) => PyErr::from_type(t, (EAI_AGAIN, "Temporary failure in name resolution")),
            Err(e) => e,
        },
        // OSError(errno, message) builds the subclass asyncio would raise for that errno;
        // polyio's other own codes (SHUTDOWN, QUEUE_FULL, PANIC) are RuntimeErrors.
        s => match s.errno() {
            Some(errno) => PyOSError::new_err((errno, msg)),
            None => PyRuntimeError::new_err(format!("polyio: {} ({})", s.message(), s.name())),
        },
    }
}

/// `asyncio.IncompleteReadError(partial, expected)`.
pub fn incomplete_read(py: Python<'_>, partial: Py<PyAny>, expected: Option<usize>) -> PyErr {
    match INCOMPLETE_READ.import(py, "asyncio", "IncompleteReadError") {
        Ok(t) => PyErr::from_type(t.clone(), (partial, expected)),
        Err(e) => e,
    }
}

/// `asyncio.LimitOverrunError(message, consumed)`.
pub fn limit_overrun(py: Python<'_>, message: &'static str, consumed: usize) -> PyErr {
    match LIMIT_OVERRUN.import(py, "asyncio", "LimitOverrunError") {
        Ok(t) => PyErr::from_type(t.clone(), (message, consumed)),
        Err(e) => e,
    }
}

/// The exception instance polyio raises for status `code` (a negative completion result).
#[pyfunction]
#[pyo3(signature = (code, context=None))]
pub fn status_error(py: Python<'_>, code: i64, context: Option<&str>) -> Py<PyAny> {
    status_err(py, code, context).into_value(py).into_any()
}

/// The exception for a status a submission returned.
pub fn raise(py: Python<'_>, s: Status) -> PyErr {
    status_err(py, i64::from(s.code()), None)
}
