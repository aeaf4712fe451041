//! polyio for asyncio: the private extension module `polyio._polyio`.
//!
//! One [`driver::Driver`] per event loop owns a polyio-core runtime and is driven from the
//! loop's own thread (its backend fd in `loop.add_reader`, its next timeout in `loop.call_at`).
//! Each kind of I/O is a module that adds its methods to the driver and settles its own
//! completions: `timer`, `dns`, `tcp`, `unix`, `udp` (datagram endpoints), `fs` (files),
//! and `stream` (connections of every stream kind, [`conn::Conn`], with `transport` and
//! `reader` for their asyncio APIs). `python/polyio/` wraps these classes.

#![deny(unsafe_op_in_unsafe_fn)]

// Below: the driver and what every kind uses. Above it: one module per kind.
mod driver;
mod errors;
mod readbuf;
mod sock;

mod conn;
mod dns;
mod drain;
mod fs;
mod reader;
mod stream;
mod tcp;
mod timer;
mod transport;
mod udp;
mod unix;

use pyo3::prelude::*;

/// The native half of polyio; use the `polyio` package, not this module.
#[pymodule(gil_used = true)]
fn _polyio(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<driver::Driver>()?;
    m.add_class::<conn::Conn>()?;
    m.add_class::<drain::Drain>()?;
    m.add_class::<sock::TransportSocket>()?;
    m.add_class::<udp::Datagram>()?;
    m.add_function(wrap_pyfunction!(errors::status_error, m)?)?;
    m.add("DEFAULT_LIMIT", conn::DEFAULT_LIMIT)?;
    // Status codes come from core's one table: Python never spells a code itself.
    let codes = pyo3::types::PyDict::new(m.py());
    for s in polyio_core::ALL_STATUSES {
        codes.set_item(s.name(), s.code())?;
    }
    m.add("STATUS_CODES", codes)?;
    m.add("STATUS_CANCELED", polyio_core::Status::Canceled.code())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
