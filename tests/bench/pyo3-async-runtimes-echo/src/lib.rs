//! A TCP echo toolkit for the benchmark, built the easy way: every `accept`, `read` and
//! `write` is its own `pyo3_async_runtimes::tokio::future_into_py` (a new asyncio future, a
//! tokio task on the multi-thread runtime, a `call_soon_threadsafe` to settle it).

use std::sync::Arc;

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpListener;
use tokio::sync::Mutex;

fn os_err(e: std::io::Error) -> PyErr {
    PyOSError::new_err(e.to_string())
}

#[pyclass]
struct Listener {
    inner: Arc<TcpListener>,
    port: u16,
}

#[pyclass]
struct Conn {
    rd: Arc<Mutex<OwnedReadHalf>>,
    wr: Arc<Mutex<OwnedWriteHalf>>,
}

#[pymethods]
impl Listener {
    fn port(&self) -> u16 {
        self.port
    }

    fn accept<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let l = self.inner.clone();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            let (s, _) = l.accept().await.map_err(os_err)?;
            s.set_nodelay(true).map_err(os_err)?;
            let (rd, wr) = s.into_split();
            Ok(Conn {
                rd: Arc::new(Mutex::new(rd)),
                wr: Arc::new(Mutex::new(wr)),
            })
        })
    }
}

#[pymethods]
impl Conn {
    fn read<'py>(&self, py: Python<'py>, n: usize) -> PyResult<Bound<'py, PyAny>> {
        let rd = self.rd.clone();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            let mut buf = vec![0u8; n];
            let got = rd.lock().await.read(&mut buf).await.map_err(os_err)?;
            buf.truncate(got);
            Python::attach(|py| Ok(PyBytes::new(py, &buf).unbind()))
        })
    }

    fn write<'py>(&self, py: Python<'py>, data: Vec<u8>) -> PyResult<Bound<'py, PyAny>> {
        let wr = self.wr.clone();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            wr.lock().await.write_all(&data).await.map_err(os_err)?;
            Ok(())
        })
    }
}

#[pyfunction]
fn listen(py: Python<'_>, host: String, port: u16) -> PyResult<Bound<'_, PyAny>> {
    pyo3_async_runtimes::tokio::future_into_py(py, async move {
        let l = TcpListener::bind((host.as_str(), port)).await.map_err(os_err)?;
        let port = l.local_addr().map_err(os_err)?.port();
        Ok(Listener {
            inner: Arc::new(l),
            port,
        })
    })
}

#[pymodule]
fn pyar_echo(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(listen, m)?)?;
    m.add_class::<Listener>()?;
    m.add_class::<Conn>()?;
    Ok(())
}
