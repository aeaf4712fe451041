//! UDP for asyncio: `Driver.udp_endpoint` opens a socket and returns a [`Datagram`], the
//! native datagram transport (`sendto`, `close`, `abort`, water marks, `get_extra_info`).
//! One multi-shot receive feeds `protocol.datagram_received`; errors the kernel reports go
//! to `protocol.error_received`, in asyncio's order. `sendto` sends at once when it can and
//! queues a core send only when the kernel would block.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use polyio_core::{
    Backpressure, Completion, FLAG_MORE, Handle, Status, UdpOptions, WaterMarks, WriteBuf,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyTuple, PyType};
use pyo3::{PyTraverseError, PyVisit};

use crate::conn::bytes_of;
use crate::driver::{Driver, Kind, op_of, ud};
use crate::errors::{raise, status_err};
use crate::sock::{TransportSocket, addr_tuple};

static DATAGRAM_CLASS: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// What a datagram socket's ops are, in the low bits of their user_data.
const OP_RECV: u64 = 0;
const OP_SEND: u64 = 1;
/// The largest UDP payload fits: no datagram is ever cut (asyncio reads up to 256 KiB).
const RECV_CAP: usize = 65_536;
/// asyncio's `LOG_THRESHOLD_FOR_CONNLOST_WRITES`.
const LOG_THRESHOLD_FOR_CONNLOST_WRITES: u32 = 5;

static DATAGRAM: Kind = Kind {
    settle,
    flush: crate::driver::no_flush,
    detach,
};

/// A UDP endpoint's transport. Internal: made by `polyio.create_datagram_endpoint`.
#[pyclass(module = "polyio._polyio")]
#[derive(Debug)]
pub struct Datagram {
    drv: Option<Py<Driver>>,
    h: Handle,
    id: u64,
    protocol: Option<Py<PyAny>>,
    /// `protocol.datagram_received`, looked up once.
    on_datagram: Option<Py<PyAny>>,
    /// The remote address given at creation (a connected endpoint), as asyncio keeps it.
    address: Option<Py<PyAny>>,
    /// Where `sendto` without an address sends when the remote address is not connected
    /// (asyncio does not connect with `allow_broadcast`).
    target: Option<SocketAddr>,
    reading: bool,
    closing: bool,
    /// asyncio's `_conn_lost`: counts sends dropped after the transport was lost.
    conn_lost: u32,
    /// Sends queued in the core, and their bytes.
    pending: usize,
    buffer_size: usize,
    bp: Backpressure,
    /// `sockname` and `peername` as asyncio records them at creation (peername None
    /// unless connected).
    sockname: Py<PyAny>,
    peername: Py<PyAny>,
    /// Recent source addresses and their tuples, by a hash of the address: peers that keep
    /// sending cost no new tuple (no address formatted), and `sendto` back to one of these
    /// tuples no parsing.
    recent: [Option<(SocketAddr, Py<PyAny>)>; RECENT],
}

impl Datagram {
    fn protocol_of(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.protocol.as_ref().map(|p| p.clone_ref(py))
    }

    fn source(&mut self, py: Python<'_>, a: SocketAddr) -> PyResult<Py<PyAny>> {
        let slot = &mut self.recent[recent_slot(&a)];
        if let Some((known, t)) = slot {
            if *known == a {
                return Ok(t.clone_ref(py));
            }
        }
        let t = addr_tuple(py, a)?;
        *slot = Some((a, t.clone_ref(py)));
        Ok(t)
    }

    /// The address of `tuple` if it is one `source` handed out (no parsing).
    fn known_source(&self, tuple: &Bound<'_, PyAny>) -> Option<SocketAddr> {
        self.recent
            .iter()
            .flatten()
            .find(|(_, t)| tuple.is(t.bind(tuple.py())))
            .map(|(a, _)| *a)
    }
}

/// Source addresses a datagram endpoint keeps tuples for.
const RECENT: usize = 16;

/// `a`'s slot among the recent sources: its port and the low bits of its IP mixed.
fn recent_slot(a: &SocketAddr) -> usize {
    let ip = match a.ip() {
        std::net::IpAddr::V4(v4) => v4.to_bits(),
        std::net::IpAddr::V6(v6) => v6.to_bits() as u32,
    };
    (usize::from(a.port()) ^ ip as usize ^ (ip >> 16) as usize) % RECENT
}

/// Calls `protocol.error_received(exc)`.
fn error_received(py: Python<'_>, protocol: Option<Py<PyAny>>, e: PyErr) -> PyResult<()> {
    if let Some(p) = protocol {
        p.bind(py)
            .call_method1(intern!(py, "error_received"), (e.into_value(py),))?;
    }
    Ok(())
}

fn settle(d: &Bound<'_, Driver>, obj: &Bound<'_, PyAny>, c: Completion) -> PyResult<()> {
    let py = obj.py();
    let t = obj.cast::<Datagram>()?;
    match op_of(c.user_data) {
        OP_RECV => {
            if let Some(buf) = c.buf {
                let more = c.flags & FLAG_MORE != 0;
                let (cb, data, from) = {
                    let mut s = t.borrow_mut();
                    if !more || s.closing || c.result < 0 {
                        (None, None, None)
                    } else {
                        let data = PyBytes::new(py, &buf[..c.result as usize]);
                        let from = match c.addr {
                            Some(a) => Some(s.source(py, a)?),
                            None => None,
                        };
                        (
                            s.on_datagram.as_ref().map(|f| f.clone_ref(py)),
                            Some(data),
                            from,
                        )
                    }
                };
                if let Ok(rt) = d.borrow_mut().rt() {
                    rt.recycle(buf);
                }
                if let (Some(cb), Some(data), Some(from)) = (cb, data, from) {
                    cb.bind(py).call1((data, from))?;
                }
                return Ok(());
            }
            let (closing, proto) = {
                let mut s = t.borrow_mut();
                if c.flags & FLAG_MORE == 0 {
                    s.reading = false;
                }
                (s.closing, s.protocol_of(py))
            };
            if closing || c.result >= 0 || c.result == i64::from(Status::Canceled.code()) {
                return Ok(());
            }
            let e = status_err(py, c.result, None);
            if c.flags & FLAG_MORE != 0 {
                // An earlier send's failure (ICMP port unreachable, ...): asyncio's
                // `error_received`, and the receive stays armed.
                error_received(py, proto, e)
            } else {
                force_close(t, Some(e))
            }
        }
        _ => {
            let len = c.buf.as_ref().map_or(0, Vec::len);
            let (resume, proto, lost_now) = {
                let mut s = t.borrow_mut();
                s.pending = s.pending.saturating_sub(1);
                s.buffer_size = s.buffer_size.saturating_sub(len);
                let size = s.buffer_size;
                let resume = if s.bp.shrank(size) {
                    s.protocol_of(py)
                } else {
                    None
                };
                let lost_now = s.closing && s.pending == 0 && s.conn_lost == 0;
                (resume, s.protocol_of(py), lost_now)
            };
            if c.result < 0 && c.result != i64::from(Status::Canceled.code()) {
                error_received(py, proto, status_err(py, c.result, None))?;
            }
            if let Some(p) = resume {
                p.bind(py).call_method0(intern!(py, "resume_writing"))?;
            }
            if lost_now {
                t.borrow_mut().conn_lost += 1;
                schedule_lost(t, None)?;
            }
            Ok(())
        }
    }
}

fn detach(obj: &Bound<'_, PyAny>) {
    if let Ok(t) = obj.cast::<Datagram>() {
        let mut s = t.borrow_mut();
        s.drv = None;
        s.closing = true;
        s.reading = false;
    }
}

/// Calls `_call_connection_lost(exc)` soon, as asyncio does.
fn schedule_lost(t: &Bound<'_, Datagram>, exc: Option<PyErr>) -> PyResult<()> {
    let py = t.py();
    let cb = t.getattr(intern!(py, "_call_connection_lost"))?;
    let exc = exc.map_or_else(|| py.None(), |e| e.into_value(py).into_any());
    let lp = t
        .borrow()
        .drv
        .as_ref()
        .map(|d| d.bind(py).borrow().loop_.clone_ref(py));
    match lp {
        Some(lp) => {
            lp.bind(py)
                .call_method1(intern!(py, "call_soon"), (cb, exc))?;
            Ok(())
        }
        None => {
            cb.call1((exc,))?;
            Ok(())
        }
    }
}

/// asyncio's `_force_close`: stop reading and sending now, lose the connection soon.
fn force_close(t: &Bound<'_, Datagram>, exc: Option<PyErr>) -> PyResult<()> {
    let py = t.py();
    {
        let mut s = t.borrow_mut();
        if s.conn_lost > 0 {
            return Ok(());
        }
        s.closing = true;
        s.conn_lost += 1;
        s.buffer_size = 0;
        s.pending = 0;
        s.reading = false;
        let h = s.h;
        if let Some(d) = &s.drv {
            // Pending sends and the receive complete with CANCELED, which settle ignores.
            let _ = d.bind(py).borrow_mut().rt().map(|rt| rt.close(h));
        }
    }
    schedule_lost(t, exc)
}

/// The socket address `addr` names: `(host, port)` or `(host, port, flowinfo, scope_id)`,
/// the host an IP literal or a name (resolved now, as `socket.sendto` does).
fn sockaddr_of(addr: &Bound<'_, PyAny>) -> PyResult<SocketAddr> {
    let t = addr
        .cast::<PyTuple>()
        .map_err(|_| PyTypeError::new_err("addr must be a (host, port) tuple"))?;
    if t.len() < 2 {
        return Err(PyTypeError::new_err("addr must be a (host, port) tuple"));
    }
    let host: String = t.get_item(0)?.extract()?;
    let port: u16 = t.get_item(1)?.extract()?;
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    (host.as_str(), port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| raise(addr.py(), Status::NameNotResolved))
}

#[pymethods]
impl Datagram {
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.drv)?;
        visit.call(&self.protocol)?;
        visit.call(&self.on_datagram)?;
        visit.call(&self.address)?;
        visit.call(&self.sockname)?;
        visit.call(&self.peername)?;
        for (_, t) in self.recent.iter().flatten() {
            visit.call(t)?;
        }
        Ok(())
    }

    fn __clear__(&mut self) {
        self.protocol = None;
        self.on_datagram = None;
        self.address = None;
        self.recent = Default::default();
    }

    /// Starts receiving (after `protocol.connection_made`, as asyncio's `_add_reader`).
    fn _start(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let mut s = slf.borrow_mut();
        if s.closing || s.reading {
            return Ok(());
        }
        let (h, u) = (s.h, ud(s.id, OP_RECV));
        let Some(d) = s.drv.as_ref().map(|d| d.clone_ref(py)) else {
            return Ok(());
        };
        s.reading = true;
        drop(s);
        let mut drv = d.bind(py).borrow_mut();
        drv.rt()?
            .udp_recv_multishot(h, RECV_CAP, u)
            .map_err(|st| raise(py, st))?;
        drv.poke(py)
    }

    /// Sends `data` as one datagram to `addr` (or the remote address given at creation).
    #[pyo3(signature = (data, addr=None))]
    fn sendto(
        slf: &Bound<'_, Self>,
        data: &Bound<'_, PyAny>,
        addr: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let py = slf.py();
        let bytes = bytes_of(data)?;
        if bytes.is_empty() && py.version_info() < (3, 12) {
            return Ok(()); // asyncio before 3.12 drops empty datagrams
        }
        let mut s = slf.borrow_mut();
        let mut to = match addr {
            Some(a) if !a.is_none() => Some(a),
            _ => None,
        };
        if let Some(own) = &s.address {
            if let Some(a) = to {
                if !a.eq(own.bind(py))? {
                    let own = own.bind(py).repr()?.to_string();
                    return Err(PyValueError::new_err(format!(
                        "Invalid address: must be None or {own}"
                    )));
                }
            }
            to = None;
            if s.conn_lost > 0 {
                let warn = s.conn_lost >= LOG_THRESHOLD_FOR_CONNLOST_WRITES;
                s.conn_lost += 1;
                drop(s);
                if warn {
                    py.import(intern!(py, "asyncio.log"))?
                        .getattr(intern!(py, "logger"))?
                        .call_method1(
                            intern!(py, "warning"),
                            ("socket.send() raised exception.",),
                        )?;
                }
                return Ok(());
            }
        }
        let to = match to {
            // A tuple datagram_received was given (an echo replying): no parsing.
            Some(a) => match s.known_source(a) {
                Some(known) => Some(known),
                None => Some(sockaddr_of(a)?),
            },
            None => s.target,
        };
        let (h, u) = (s.h, ud(s.id, OP_SEND));
        let proto = s.protocol_of(py);
        let Some(d) = s.drv.as_ref().map(|d| d.clone_ref(py)) else {
            drop(s);
            return error_received(py, proto, raise(py, Status::BadHandle));
        };
        let mut drv = d.bind(py).borrow_mut();
        let rt = drv.rt()?;
        if s.pending == 0 {
            match rt.udp_try_send(h, &bytes, to) {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(st) => {
                    drop((s, drv));
                    return error_received(py, proto, raise(py, st));
                }
            }
        }
        let len = bytes.len();
        if let Err(st) = rt.udp_send(h, WriteBuf::from_vec(bytes), to, u) {
            drop((s, drv));
            return error_received(py, proto, raise(py, st));
        }
        drv.poke(py)?;
        drop(drv);
        s.pending += 1;
        s.buffer_size += len;
        let size = s.buffer_size;
        let pause = if s.bp.grew(size) { proto } else { None };
        drop(s);
        if let Some(p) = pause {
            p.bind(py).call_method0(intern!(py, "pause_writing"))?;
        }
        Ok(())
    }

    fn close(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let lost_now = {
            let mut s = slf.borrow_mut();
            if s.closing {
                return Ok(());
            }
            s.closing = true;
            if s.reading {
                s.reading = false;
                let u = ud(s.id, OP_RECV);
                if let Some(d) = &s.drv {
                    let mut drv = d.bind(py).borrow_mut();
                    if let Ok(rt) = drv.rt() {
                        let _ = rt.cancel(u);
                    }
                    drv.poke(py)?;
                }
            }
            let now = s.pending == 0;
            if now {
                s.conn_lost += 1;
            }
            now
        };
        if lost_now {
            schedule_lost(slf, None)?;
        }
        Ok(())
    }

    fn abort(slf: &Bound<'_, Self>) -> PyResult<()> {
        force_close(slf, None)
    }

    /// The protocol's `connection_lost(exc)`, then the socket closes.
    fn _call_connection_lost(slf: &Bound<'_, Self>, exc: Py<PyAny>) -> PyResult<()> {
        let py = slf.py();
        let (proto, drv, h, id) = {
            let mut s = slf.borrow_mut();
            s.on_datagram = None;
            (s.protocol.take(), s.drv.take(), s.h, s.id)
        };
        let r = match &proto {
            Some(p) => p
                .bind(py)
                .call_method1(intern!(py, "connection_lost"), (exc,))
                .map(drop),
            None => Ok(()),
        };
        if let Some(d) = drv {
            let mut drv = d.bind(py).borrow_mut();
            if let Ok(rt) = drv.rt() {
                let _ = rt.close(h);
            }
            drv.forget(id);
        }
        r
    }

    fn is_closing(&self) -> bool {
        self.closing
    }

    fn get_write_buffer_size(&self) -> usize {
        self.buffer_size
    }

    #[pyo3(signature = (high=None, low=None))]
    fn set_write_buffer_limits(
        slf: &Bound<'_, Self>,
        high: Option<i64>,
        low: Option<i64>,
    ) -> PyResult<()> {
        let py = slf.py();
        let marks = WaterMarks::new(high, low).map_err(|e| PyValueError::new_err(e.to_string()))?;
        let pause = {
            let mut s = slf.borrow_mut();
            s.bp.set_marks(marks);
            let size = s.buffer_size;
            if s.bp.grew(size) {
                s.protocol_of(py)
            } else {
                None
            }
        };
        if let Some(p) = pause {
            p.bind(py).call_method0(intern!(py, "pause_writing"))?;
        }
        Ok(())
    }

    fn get_write_buffer_limits(&self) -> (usize, usize) {
        let m = self.bp.marks();
        (m.low(), m.high())
    }

    #[pyo3(signature = (name, default=None))]
    fn get_extra_info(
        &self,
        py: Python<'_>,
        name: &str,
        default: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let default = default.unwrap_or_else(|| py.None());
        match name {
            "sockname" => Ok(self.sockname.clone_ref(py)),
            "peername" => Ok(self.peername.clone_ref(py)),
            "socket" => {
                let Some(d) = self.drv.as_ref() else {
                    return Ok(default);
                };
                match TransportSocket::new_datagram(py, d.bind(py), self.h)? {
                    Some(s) => Ok(Py::new(py, s)?.into_any()),
                    None => Ok(default),
                }
            }
            _ => Ok(default),
        }
    }

    fn get_protocol(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.protocol_of(py)
    }

    fn set_protocol(&mut self, py: Python<'_>, protocol: Py<PyAny>) -> PyResult<()> {
        self.on_datagram = Some(
            protocol
                .bind(py)
                .getattr(intern!(py, "datagram_received"))?
                .unbind(),
        );
        self.protocol = Some(protocol);
        Ok(())
    }

    /// `polyio.DatagramTransport`, a subclass of `asyncio.DatagramTransport`, so that
    /// `isinstance(transport, asyncio.DatagramTransport)` holds (as for the TCP transport).
    #[getter(__class__)]
    fn class(&self, py: Python<'_>) -> PyResult<Py<PyType>> {
        DATAGRAM_CLASS
            .import(py, "polyio._api", "DatagramTransport")
            .map(|t| t.clone().unbind())
    }

    fn __repr__(&self) -> String {
        format!(
            "<polyio.DatagramTransport closing={} buffered={}>",
            self.closing, self.buffer_size
        )
    }
}

#[pymethods]
impl Driver {
    /// Opens a UDP socket bound to `local` (an IP literal and port) and wraps it for
    /// `protocol`. With `remote`, sends without an address go there, and with `connect` the
    /// socket is connected to it; `address` is the remote address as the caller gave it
    /// (what `sendto` compares against). Reading starts with `_start`.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (protocol, local, remote, connect, reuse_port, allow_broadcast, address))]
    fn udp_endpoint(
        slf: &Bound<'_, Self>,
        protocol: Py<PyAny>,
        local: (String, u16),
        remote: Option<(String, u16)>,
        connect: bool,
        reuse_port: bool,
        allow_broadcast: bool,
        address: Option<Py<PyAny>>,
    ) -> PyResult<Py<Datagram>> {
        let py = slf.py();
        let ip = |host: &str| {
            host.parse::<IpAddr>()
                .map_err(|_| PyValueError::new_err(format!("not an IP address: {host:?}")))
        };
        let local = SocketAddr::new(ip(&local.0)?, local.1);
        let remote = match remote {
            Some((h, p)) => Some(SocketAddr::new(ip(&h)?, p)),
            None => None,
        };
        let on_datagram = protocol
            .bind(py)
            .getattr(intern!(py, "datagram_received"))?
            .unbind();
        let mut d = slf.borrow_mut();
        let rt = d.rt()?;
        let options = UdpOptions {
            reuse_port,
            broadcast: allow_broadcast,
            ..UdpOptions::default()
        };
        let h = rt.udp_bind(local, options).map_err(|s| raise(py, s))?;
        let mut target = remote;
        if let (Some(r), true) = (remote, connect) {
            if let Err(s) = rt.udp_connect(h, Some(r)) {
                let _ = rt.close(h);
                return Err(raise(py, s));
            }
            target = None;
        }
        let sockname = rt
            .local_addr(h)
            .map_err(|s| raise(py, s))
            .and_then(|a| addr_tuple(py, a));
        let peername = match rt.peer_addr(h) {
            Ok(a) => addr_tuple(py, a),
            Err(_) => Ok(py.None()),
        };
        let (sockname, peername) = match (sockname, peername) {
            (Ok(s), Ok(p)) => (s, p),
            (Err(e), _) | (_, Err(e)) => {
                let _ = rt.close(h);
                return Err(e);
            }
        };
        let id = d.new_id();
        let t = Py::new(
            py,
            Datagram {
                drv: Some(slf.clone().unbind()),
                h,
                id,
                protocol: Some(protocol),
                on_datagram: Some(on_datagram),
                address,
                target,
                reading: false,
                closing: false,
                conn_lost: 0,
                pending: 0,
                buffer_size: 0,
                bp: Backpressure::default(),
                sockname,
                peername,
                recent: Default::default(),
            },
        )?;
        d.register(id, t.clone_ref(py).into_any(), &DATAGRAM);
        Ok(t)
    }
}
