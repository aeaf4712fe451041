//! UDP: `bindUdp()` opens a `UdpSocket` with `dgram`'s semantics and Node's error codes:
//! `send()` (straight to the kernel when it takes the datagram at once, else a core send),
//! `recv()` and the async iterator (one core receive per datagram, completing inline when
//! one is waiting), `connect`, the socket options and `close()`.

use std::cell::{Cell, RefCell};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::rc::Rc;

use napi::bindgen_prelude::Unknown;
use napi::{Env, JsValue, sys};
use napi_derive::napi;
use polyio_core::{Completion, Handle, ReadBuf, Status, UdpOptions, WriteBuf};

use crate::args::{bad_type, bool_opt, options_object, parse_signal, signal_of, string_opt};
use crate::env::{
    EnvState, Op, Settle, close_when_collected, failure, rooted, state, state_or_throw,
};
use crate::js::{self, RawEnv, Value};

/// The largest UDP payload: no datagram is ever cut.
const RECV_CAP: usize = 65_536;

const TAG_RECV: u8 = 0;
const TAG_NEXT: u8 = 1;
const TAG_SEND: u8 = 2;

pub(crate) struct UdpState {
    handle: Handle,
    v6: bool,
    closed: Cell<bool>,
    connected: Cell<bool>,
    /// A strong reference to the JS object while open: as a bound `dgram.Socket`, an open
    /// socket is a GC root and keeps the loop alive until closed.
    js_ref: Cell<sys::napi_ref>,
    /// Receive buffers handed back by settled receives, for the next ones.
    spare: RefCell<Vec<Vec<u8>>>,
    /// The last IP literal `send()` was given and its address.
    last_host: RefCell<Option<(String, IpAddr)>>,
}

/// Receive buffers a socket keeps for reuse.
const MAX_SPARE: usize = 8;

fn not_running(env: RawEnv) -> Value {
    js::error(env, "ERR_SOCKET_DGRAM_NOT_RUNNING", "Not running")
}

fn family_name(a: &SocketAddr) -> &'static str {
    if a.is_ipv4() { "IPv4" } else { "IPv6" }
}

/// `{ address, family, port }`, as `dgram`'s `address()` and `rinfo`.
fn addr_object(env: RawEnv, a: &SocketAddr) -> Value {
    let o = js::object(env);
    js::set(env, o, "address", js::string(env, &a.ip().to_string()));
    js::set(env, o, "family", js::string(env, family_name(a)));
    js::set(env, o, "port", js::number(env, f64::from(a.port())));
    o
}

impl Settle for UdpState {
    fn settle(
        &self,
        st: &EnvState,
        op: Op,
        c: Completion,
        aborted: Option<Value>,
    ) -> Result<Value, Value> {
        let env = st.env;
        let status = c.status();
        if op.tag == TAG_SEND {
            return match status {
                Status::Ok => Ok(js::number(env, c.result as f64)),
                Status::Canceled if self.closed.get() && aborted.is_none() => Err(not_running(env)),
                s => Err(failure(env, aborted, s, "send")),
            };
        }
        let iter = op.tag == TAG_NEXT;
        match status {
            Status::Ok => {
                let (Some(buf), Some(from)) = (c.buf, c.addr) else {
                    return Err(js::status_error(env, Status::IoError, "recvmsg"));
                };
                let msg = st
                    .datagram(&buf, from, iter)
                    .map_err(|_| js::undefined(env))?;
                let mut spare = self.spare.borrow_mut();
                if spare.len() < MAX_SPARE {
                    spare.push(buf);
                }
                Ok(msg)
            }
            Status::Canceled if self.closed.get() && aborted.is_none() => {
                if iter {
                    Ok(js::iter_result(env, js::undefined(env), true))
                } else {
                    Err(not_running(env))
                }
            }
            s => Err(failure(env, aborted, s, "recvmsg")),
        }
    }
}

/// The address `host` names for a socket of the given family: an IP literal, or a name
/// resolved now (as `dgram` resolves with `dns.lookup`, restricted to the family).
fn resolve(env: RawEnv, host: &str, port: u16, v6: bool, what: &str) -> Result<SocketAddr, Value> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    if host.is_empty() || host.contains('\0') {
        return Err(bad_type(env, what, "a non-empty string"));
    }
    (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut it| it.find(|a| a.is_ipv6() == v6))
        .ok_or_else(|| {
            let e = js::status_error(env, Status::NameNotResolved, "getaddrinfo");
            js::set(env, e, "hostname", js::string(env, host));
            e
        })
}

fn loopback(v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::LOCALHOST)
    } else {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    }
}

/// A port argument: an integer in `min..=65535`.
fn port_arg(env: RawEnv, v: Option<Value>, min: u16) -> Result<u16, Value> {
    let n = v
        .and_then(|v| js::as_f64(env, v))
        .ok_or_else(|| bad_type(env, "port", "of type number"))?;
    if n.fract() == 0.0 && n >= f64::from(min) && n <= 65535.0 {
        Ok(n as u16)
    } else {
        Err(js::range_error(
            env,
            "ERR_SOCKET_BAD_PORT",
            &format!("Port should be >= {min} and < 65536. Received {n}."),
        ))
    }
}

/// Binds a UDP socket, as `dgram.createSocket({ type, reuseAddr })` followed by `bind()`:
/// `type` is `'udp4'` or `'udp6'`; `address` defaults to the any-address of that family and
/// may be a name; `port` 0 (the default) picks an ephemeral port. `reusePort` sets
/// `SO_REUSEPORT`, `ipv6Only` sets `IPV6_V6ONLY`. Rejects with `'EADDRINUSE'`, `'EACCES'`,
/// ... as Node spells them, or `'ABORT_ERR'` for an already aborted `signal`; aborting
/// `signal` later closes the socket.
#[napi(
    js_name = "bindUdp",
    ts_args_type = "options: UdpBindOptions",
    ts_return_type = "Promise<UdpSocket>"
)]
pub fn bind_udp(env: Env, options: Option<Unknown>) -> napi::Result<Value> {
    let env = env.raw();
    let Some(st) = state_or_throw(env) else {
        return Ok(js::undefined(env));
    };
    let parsed = (|| {
        let o = options_object(env, &options, true)?.unwrap_or_else(|| js::object(env));
        let v6 = match string_opt(env, o, "type")?.as_deref() {
            Some("udp4") => false,
            Some("udp6") => true,
            _ => {
                return Err(js::type_error(
                    env,
                    "ERR_SOCKET_BAD_TYPE",
                    "Bad socket type specified. Valid types are: udp4, udp6",
                ));
            }
        };
        let port = match js::get_opt(env, o, "port")? {
            Some(v) => port_arg(env, Some(v), 0)?,
            None => 0,
        };
        let address = string_opt(env, o, "address")?;
        let options = UdpOptions {
            reuse_addr: bool_opt(env, o, "reuseAddr")?.unwrap_or(false),
            reuse_port: bool_opt(env, o, "reusePort")?.unwrap_or(false),
            ipv6_only: bool_opt(env, o, "ipv6Only")?.unwrap_or(false),
            broadcast: false,
        };
        let addr = match address {
            Some(a) => resolve(env, &a, port, v6, "options.address")?,
            None if v6 => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
            None => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
        };
        if addr.is_ipv6() != v6 {
            let e = js::status_error(env, Status::InvalidArgument, "bind");
            return Err(e);
        }
        let signal = signal_of(env, o, "options")?;
        Ok((addr, v6, options, signal))
    })();
    let (addr, v6, options, signal) = match parsed {
        Ok(p) => p,
        Err(e) => return js::settled(env, Err(e)),
    };
    if let Err(e) = st.unless_aborted(signal) {
        return js::settled(env, Err(e));
    }
    let h = match st.rt.borrow_mut().udp_bind(addr, options) {
        Ok(h) => h,
        Err(s) => return js::settled(env, Err(js::status_error(env, s, "bind"))),
    };
    st.add_resource();
    st.rearm();
    let sock = UdpSocket {
        inner: Rc::new(UdpState {
            handle: h,
            v6,
            closed: Cell::new(false),
            connected: Cell::new(false),
            js_ref: Cell::new(std::ptr::null_mut()),
            spare: RefCell::new(Vec::new()),
            last_host: RefCell::new(None),
        }),
    };
    let inner = sock.inner.clone();
    let v = rooted(env, sock, &inner.js_ref)?;
    if let Some(sig) = signal {
        st.close_on_abort(sig, v);
    }
    js::settled(env, Ok(v))
}

/// A bound UDP socket, from `bindUdp()`. Async-iterable (yields each datagram as
/// `{ data, address, port, family, size }` until closed) and async-disposable (closes).
#[napi]
pub struct UdpSocket {
    inner: Rc<UdpState>,
}

impl std::fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpSocket")
            .field("handle", &self.inner.handle)
            .field("closed", &self.inner.closed.get())
            .finish()
    }
}

impl Drop for UdpSocket {
    fn drop(&mut self) {
        close_when_collected(&self.inner.closed, self.inner.handle);
    }
}

impl UdpSocket {
    fn recv_op(&self, env: RawEnv, tag: u8, signal: Option<Value>) -> napi::Result<Value> {
        let Some(st) = state_or_throw(env) else {
            return Ok(js::undefined(env));
        };
        if self.inner.closed.get() {
            return js::settled(
                env,
                if tag == TAG_NEXT {
                    Ok(js::iter_result(env, js::undefined(env), true))
                } else {
                    Err(not_running(env))
                },
            );
        }
        if let Err(e) = st.unless_aborted(signal) {
            return js::settled(env, Err(e));
        }
        let id = st.next_id();
        let mut v = self.inner.spare.borrow_mut().pop().unwrap_or_default();
        v.clear();
        v.reserve(RECV_CAP);
        let buf = ReadBuf::from_vec(v);
        if let Err(s) = st.rt.borrow_mut().udp_recv(self.inner.handle, buf, id) {
            return js::settled(env, Err(js::status_error(env, s, "recvmsg")));
        }
        st.submitted(id, self.inner.clone(), Op { tag, arg: 0 }, signal)
    }

    /// Runs a synchronous option call; throws Node's error for a failure.
    fn option(
        &self,
        env: RawEnv,
        syscall: &str,
        f: impl FnOnce(&mut polyio_core::Runtime, Handle) -> Result<(), Status>,
    ) {
        let Some(st) = state_or_throw(env) else {
            return;
        };
        if self.inner.closed.get() {
            js::throw(env, not_running(env));
            return;
        }
        let r = f(&mut st.rt.borrow_mut(), self.inner.handle);
        if let Err(s) = r {
            js::throw(env, js::status_error(env, s, syscall));
        }
    }
}

#[napi]
impl UdpSocket {
    /// Sends `data` (a Buffer, TypedArray, DataView or string) as one datagram to
    /// `address:port` (`address` defaults to the loopback address of the socket's family and
    /// may be a name), or with neither to the connected peer. Resolves with the bytes sent;
    /// rejects with `'ECONNREFUSED'` (an earlier datagram to a connected peer was refused),
    /// `'EMSGSIZE'`, `'EACCES'` (a broadcast without `setBroadcast(true)`), `'ENOBUFS'`
    /// (the kernel had no room for it: not sent, the socket stays usable; `dgram` retries
    /// instead), `'ERR_SOCKET_DGRAM_NOT_RUNNING'` once closed, ... as Node spells them.
    #[napi(
        ts_args_type = "data: Buffer | ArrayBufferView | string, port?: number, address?: string",
        ts_return_type = "Promise<number>"
    )]
    pub fn send(
        &self,
        env: Env,
        data: Option<Unknown>,
        port: Option<Unknown>,
        address: Option<Unknown>,
    ) -> napi::Result<Value> {
        let env = env.raw();
        let Some(st) = state_or_throw(env) else {
            return Ok(js::undefined(env));
        };
        let mut bytes = Vec::new();
        let ok = data
            .as_ref()
            .is_some_and(|d| js::bytes_into(env, d.raw(), &mut bytes));
        if !ok {
            let e = bad_type(
                env,
                "msg",
                "of type string or an instance of Buffer, TypedArray, or DataView",
            );
            return js::settled(env, Err(e));
        }
        if self.inner.closed.get() {
            return js::settled(env, Err(not_running(env)));
        }
        let port = port.map(|p| p.raw()).filter(|v| !js::is_nullish(env, *v));
        let to = match port {
            None if self.inner.connected.get() => None,
            None => {
                return js::settled(
                    env,
                    Err(js::type_error(
                        env,
                        "ERR_SOCKET_DGRAM_NOT_CONNECTED",
                        "Not connected",
                    )),
                );
            }
            Some(_) if self.inner.connected.get() => {
                return js::settled(
                    env,
                    Err(js::error(
                        env,
                        "ERR_SOCKET_DGRAM_IS_CONNECTED",
                        "Already connected",
                    )),
                );
            }
            Some(p) => {
                let parsed = port_arg(env, Some(p), 1).and_then(|port| {
                    let Some(v) = address
                        .as_ref()
                        .map(|a| a.raw())
                        .filter(|v| !js::is_nullish(env, *v))
                    else {
                        return Ok(SocketAddr::new(loopback(self.inner.v6), port));
                    };
                    // The host an echo replies to is mostly the last one: no parsing then.
                    let mut text = [0u8; 64];
                    if let Some(t) = js::short_string(env, v, &mut text) {
                        let mut last = self.inner.last_host.borrow_mut();
                        if let Some((known, ip)) = last.as_ref() {
                            if known == t {
                                return Ok(SocketAddr::new(*ip, port));
                            }
                        }
                        if let Ok(ip) = t.parse::<IpAddr>() {
                            *last = Some((t.to_owned(), ip));
                        }
                    }
                    let h = js::as_string(env, v)
                        .ok_or_else(|| bad_type(env, "address", "of type string"))?;
                    resolve(env, &h, port, self.inner.v6, "address")
                });
                match parsed {
                    Ok(a) => Some(a),
                    Err(e) => return js::settled(env, Err(e)),
                }
            }
        };
        let len = bytes.len();
        let sent = st
            .rt
            .borrow_mut()
            .udp_try_send(self.inner.handle, &bytes, to);
        match sent {
            Ok(true) => return js::settled(env, Ok(js::number(env, len as f64))),
            Ok(false) => {}
            Err(s) => return js::settled(env, Err(js::status_error(env, s, "send"))),
        }
        let id = st.next_id();
        let buf = WriteBuf::from_vec(bytes);
        if let Err(s) = st.rt.borrow_mut().udp_send(self.inner.handle, buf, to, id) {
            return js::settled(env, Err(js::status_error(env, s, "send")));
        }
        st.submitted(
            id,
            self.inner.clone(),
            Op {
                tag: TAG_SEND,
                arg: len as u64,
            },
            None,
        )
    }

    /// Receives one datagram: resolves with `{ data, address, port, family, size }` (the
    /// sender's address, as `dgram`'s `rinfo`). Receives queue and complete in order. With a
    /// `signal`, an abort rejects with an `AbortError` and takes no datagram. A connected
    /// socket whose earlier datagram was refused rejects with `'ECONNREFUSED'`; after
    /// `close()` a receive rejects with `'ERR_SOCKET_DGRAM_NOT_RUNNING'`.
    #[napi(
        ts_args_type = "options?: { signal?: AbortSignal }",
        ts_return_type = "Promise<UdpMessage>"
    )]
    pub fn recv(&self, env: Env, options: Option<Unknown>) -> napi::Result<Value> {
        let env = env.raw();
        let signal = match parse_signal(env, options.map(|u| u.raw()), "options") {
            Ok(s) => s,
            Err(e) => return js::settled(env, Err(e)),
        };
        self.recv_op(env, TAG_RECV, signal)
    }

    /// Internal: the async iterator's `next()`.
    #[napi(js_name = "__next", skip_typescript)]
    pub fn next_datagram(&self, env: Env) -> napi::Result<Value> {
        self.recv_op(env.raw(), TAG_NEXT, None)
    }

    /// Associates the socket with `address:port` (`address` defaults to the loopback
    /// address; names are resolved), as `dgram`'s `connect()`: sends without an address go
    /// there and only its datagrams are received. Rejects with
    /// `'ERR_SOCKET_DGRAM_IS_CONNECTED'` when connected already.
    #[napi(
        ts_args_type = "port: number, address?: string",
        ts_return_type = "Promise<void>"
    )]
    pub fn connect(
        &self,
        env: Env,
        port: Option<Unknown>,
        address: Option<Unknown>,
    ) -> napi::Result<Value> {
        let env = env.raw();
        let Some(st) = state_or_throw(env) else {
            return Ok(js::undefined(env));
        };
        if self.inner.closed.get() {
            return js::settled(env, Err(not_running(env)));
        }
        if self.inner.connected.get() {
            let e = js::error(env, "ERR_SOCKET_DGRAM_IS_CONNECTED", "Already connected");
            return js::settled(env, Err(e));
        }
        let peer = port_arg(env, port.map(|p| p.raw()), 1).and_then(|port| {
            match address
                .map(|a| a.raw())
                .filter(|v| !js::is_nullish(env, *v))
            {
                None => Ok(SocketAddr::new(loopback(self.inner.v6), port)),
                Some(v) => {
                    let h = js::as_string(env, v)
                        .ok_or_else(|| bad_type(env, "address", "of type string"))?;
                    resolve(env, &h, port, self.inner.v6, "address")
                }
            }
        });
        let peer = match peer {
            Ok(p) => p,
            Err(e) => return js::settled(env, Err(e)),
        };
        if let Err(s) = st
            .rt
            .borrow_mut()
            .udp_connect(self.inner.handle, Some(peer))
        {
            return js::settled(env, Err(js::status_error(env, s, "connect")));
        }
        self.inner.connected.set(true);
        js::settled(env, Ok(js::undefined(env)))
    }

    /// Dissolves the association made by `connect()`; throws
    /// `'ERR_SOCKET_DGRAM_NOT_CONNECTED'` when there is none.
    #[napi]
    pub fn disconnect(&self, env: Env) {
        let env = env.raw();
        if !self.inner.closed.get() && !self.inner.connected.get() {
            js::throw(
                env,
                js::error(env, "ERR_SOCKET_DGRAM_NOT_CONNECTED", "Not connected"),
            );
            return;
        }
        self.option(env, "disconnect", |rt, h| rt.udp_connect(h, None));
        self.inner.connected.set(false);
    }

    /// The bound address, as `dgram`'s `address()`; throws
    /// `'ERR_SOCKET_DGRAM_NOT_RUNNING'` once closed.
    #[napi(ts_return_type = "{ address: string, family: 'IPv4' | 'IPv6', port: number }")]
    pub fn address(&self, env: Env) -> Value {
        self.addr_of(env.raw(), false)
    }

    /// The connected peer's address, as `dgram`'s `remoteAddress()`; throws
    /// `'ERR_SOCKET_DGRAM_NOT_CONNECTED'` when not connected.
    #[napi(
        js_name = "remoteAddress",
        ts_return_type = "{ address: string, family: 'IPv4' | 'IPv6', port: number }"
    )]
    pub fn remote_address(&self, env: Env) -> Value {
        self.addr_of(env.raw(), true)
    }

    /// Allows or forbids sends to a broadcast address (`SO_BROADCAST`); `flag` is taken for
    /// its truthiness, as `dgram`'s.
    #[napi(js_name = "setBroadcast", ts_args_type = "flag: boolean")]
    pub fn set_broadcast(&self, env: Env, flag: Unknown) {
        let on = js::truthy(env.raw(), flag.raw());
        self.option(env.raw(), "setBroadcast", |rt, h| {
            rt.udp_set_broadcast(h, on)
        });
    }

    /// Sets the unicast TTL (1 to 255); returns it. Throws `'ERR_INVALID_ARG_TYPE'` for a
    /// value that is not a number, `'EINVAL'` out of range, as `dgram`'s.
    #[napi(
        js_name = "setTTL",
        ts_args_type = "ttl: number",
        ts_return_type = "number"
    )]
    pub fn set_ttl(&self, env: Env, ttl: Unknown) -> Value {
        let env = env.raw();
        let ttl = ttl.raw();
        if let Some(n) = ttl_of(env, ttl) {
            self.option(env, "setTTL", |rt, h| rt.udp_set_ttl(h, n));
        }
        ttl
    }

    /// Sets the multicast TTL (0 to 255); returns it. Errors as `setTTL`.
    #[napi(
        js_name = "setMulticastTTL",
        ts_args_type = "ttl: number",
        ts_return_type = "number"
    )]
    pub fn set_multicast_ttl(&self, env: Env, ttl: Unknown) -> Value {
        let env = env.raw();
        let ttl = ttl.raw();
        if let Some(n) = ttl_of(env, ttl) {
            self.option(env, "setMulticastTTL", |rt, h| {
                rt.udp_set_multicast_ttl(h, n)
            });
        }
        ttl
    }

    /// Whether multicast sends loop back to this host (`flag` taken for its truthiness);
    /// returns `flag`.
    #[napi(
        js_name = "setMulticastLoopback",
        ts_args_type = "flag: boolean",
        ts_return_type = "boolean"
    )]
    pub fn set_multicast_loopback(&self, env: Env, flag: Unknown) -> Value {
        let on = js::truthy(env.raw(), flag.raw());
        self.option(env.raw(), "setMulticastLoopback", |rt, h| {
            rt.udp_set_multicast_loop(h, on)
        });
        flag.raw()
    }

    /// Joins multicast group `multicastAddress` on the interface with address
    /// `multicastInterface` (default: the system's choice). Throws `'ERR_MISSING_ARGS'`
    /// without a group and `'EINVAL'` for one that is not an IP address, as `dgram`'s.
    #[napi(
        js_name = "addMembership",
        ts_args_type = "multicastAddress: string, multicastInterface?: string | undefined | null"
    )]
    pub fn add_membership(
        &self,
        env: Env,
        multicast_address: Option<Unknown>,
        multicast_interface: Option<Unknown>,
    ) {
        self.membership(env.raw(), multicast_address, multicast_interface, true);
    }

    /// Leaves a group joined with `addMembership`.
    #[napi(
        js_name = "dropMembership",
        ts_args_type = "multicastAddress: string, multicastInterface?: string | undefined | null"
    )]
    pub fn drop_membership(
        &self,
        env: Env,
        multicast_address: Option<Unknown>,
        multicast_interface: Option<Unknown>,
    ) {
        self.membership(env.raw(), multicast_address, multicast_interface, false);
    }

    /// Closes the socket: pending receives reject with `'ERR_SOCKET_DGRAM_NOT_RUNNING'`
    /// (an iterator ends), pending sends too. Closing twice is harmless.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn close(&self, env: Env) -> napi::Result<Value> {
        if !self.inner.closed.replace(true) {
            if let Some(st) = state() {
                st.release(self.inner.handle, &self.inner.js_ref);
                st.after_call();
            }
        }
        js::settled(env.raw(), Ok(js::undefined(env.raw())))
    }

    /// Whether `close()` has run.
    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.inner.closed.get()
    }
}

/// A TTL as `dgram`'s `setTTL` takes it: a number (`ERR_INVALID_ARG_TYPE` thrown and None
/// otherwise), then `ttl | 0`; one outside 0..=255 goes on to the core, which says EINVAL.
fn ttl_of(env: RawEnv, v: Value) -> Option<u32> {
    let Some(n) = js::as_f64(env, v) else {
        js::throw(env, bad_type(env, "ttl", "of type number"));
        return None;
    };
    Some(u32::try_from(js::to_int32(n)).unwrap_or(u32::MAX))
}

/// `String(v)` for an address argument; a Symbol (which has none) is ERR_INVALID_ARG_TYPE,
/// a `toString` that throws passes its exception on. None once something is thrown.
fn address_string(env: RawEnv, v: Value, what: &str) -> Option<String> {
    if js::type_of(env, v) == sys::ValueType::napi_symbol {
        js::throw(env, bad_type(env, what, "of type string"));
        return None;
    }
    js::to_string(env, v)
}

impl UdpSocket {
    fn addr_of(&self, env: RawEnv, peer: bool) -> Value {
        let addr = match (self.inner.closed.get(), state()) {
            (false, Some(st)) => {
                let rt = st.rt.borrow();
                if peer {
                    rt.peer_addr(self.inner.handle)
                } else {
                    rt.local_addr(self.inner.handle)
                }
            }
            _ => Err(Status::BadHandle),
        };
        match addr {
            Ok(a) => addr_object(env, &a),
            Err(Status::BadHandle) => {
                js::throw(env, not_running(env));
                js::undefined(env)
            }
            Err(_) => {
                js::throw(
                    env,
                    js::error(env, "ERR_SOCKET_DGRAM_NOT_CONNECTED", "Not connected"),
                );
                js::undefined(env)
            }
        }
    }

    fn membership(&self, env: RawEnv, group: Option<Unknown>, iface: Option<Unknown>, join: bool) {
        let syscall = if join {
            "addMembership"
        } else {
            "dropMembership"
        };
        // As dgram: a missing (falsy) group is ERR_MISSING_ARGS; any other value is taken as
        // its string (C++'s ToString there), and one that is not an IP address is EINVAL.
        let group = match group.map(|g| g.raw()).filter(|g| js::truthy(env, *g)) {
            None => {
                js::throw(
                    env,
                    js::type_error(
                        env,
                        "ERR_MISSING_ARGS",
                        "The \"multicastAddress\" argument must be specified",
                    ),
                );
                return;
            }
            Some(g) => match address_string(env, g, "multicastAddress") {
                Some(s) => s,
                None => return,
            },
        };
        let iface = match iface.map(|i| i.raw()).filter(|i| !js::is_nullish(env, *i)) {
            None => None,
            Some(i) => match address_string(env, i, "multicastInterface") {
                Some(s) => Some(s),
                None => return,
            },
        };
        let Ok(group) = group.parse::<IpAddr>() else {
            js::throw(env, js::status_error(env, Status::InvalidArgument, syscall));
            return;
        };
        let iface = match iface.map(|i| i.parse::<IpAddr>()) {
            None => None,
            Some(Ok(i)) => Some(i),
            Some(Err(_)) => {
                js::throw(env, js::status_error(env, Status::InvalidArgument, syscall));
                return;
            }
        };
        self.option(env, syscall, |rt, h| {
            if join {
                rt.udp_join_multicast(h, group, iface)
            } else {
                rt.udp_leave_multicast(h, group, iface)
            }
        });
    }
}
