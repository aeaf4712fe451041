//! TCP: what `connect()` and `listen()` do for `{ port, host }`. A connect is a core
//! operation (a lookup and Happy Eyeballs for a name, as `autoSelectFamily`) whose
//! completion this module settles with a `Connection` (with the socket options the call
//! asked for); the listener is a `Server`, which accepts as every stream kind's does; a
//! listen on a name looks it up first, as `net` does.

use std::rc::Rc;
use std::time::Duration;

use napi::sys;
use polyio_core::{Completion, ConnectOptions, Handle, ListenOptions, LookupHints, Status};

use crate::args::{
    MAX_MS, bad_type, bool_opt, family_of, number_opt, port_of, signal_of, string_opt,
};
use crate::conn::{self, TcpOptions};
use crate::env::{EnvState, Op, Settle};
use crate::js::{self, RawEnv, Value};
use crate::server::Server;

/// A pending connect: the host and port (for a failure's error) and the options its
/// connection gets.
struct Connect {
    host: String,
    port: u16,
    options: TcpOptions,
    /// Idle timeout (ms) for the new connection's reads; 0 for none.
    timeout: u64,
}

impl Settle for Connect {
    fn settle(
        &self,
        st: &EnvState,
        _op: Op,
        c: Completion,
        aborted: Option<Value>,
    ) -> Result<Value, Value> {
        let status = c.status();
        if let Status::NameNotResolved | Status::NameTryAgain = status {
            // As net.connect: the lookup's error.
            return Err(aborted.unwrap_or_else(|| js::lookup_error(st.env, status, &self.host)));
        }
        if let Some(e) = aborted {
            return Err(e);
        }
        if status != Status::Ok {
            return Err(connect_error(st.env, status, &self.host, self.port));
        }
        self.options.apply(&mut st.rt.borrow_mut(), c.handle);
        Ok(conn::open(st, c.handle, self.timeout))
    }
}

/// A failed connect's error as `net` builds it: for an IP address, with `address` and
/// `port` and the message `connect ECONNREFUSED 127.0.0.1:8080`. (For a name, the core does
/// not say which of its addresses failed last: the error has the `port` only, and the
/// message `connect ECONNREFUSED`.)
fn connect_error(env: RawEnv, status: Status, host: &str, port: u16) -> Value {
    let e = js::errno_error(env, status, "connect");
    if let Some(ip) = polyio_core::ip_literal(host) {
        let address = ip.to_string();
        let message = format!("connect {} {address}:{port}", status.name());
        js::set(env, e, "message", js::string(env, &message));
        js::set(env, e, "address", js::string(env, &address));
    }
    js::set(env, e, "port", js::number(env, f64::from(port)));
    e
}

/// `noDelay`, `keepAlive` and `keepAliveInitialDelay` (ms, default `delay`) of options `o`,
/// as `net.connect` and `net.createServer` take them.
fn tcp_options(env: RawEnv, o: Value, delay: f64) -> Result<TcpOptions, Value> {
    let no_delay = bool_opt(env, o, "noDelay")?.unwrap_or(false);
    let keep_alive = bool_opt(env, o, "keepAlive")?.unwrap_or(false);
    let delay = number_opt(env, o, "keepAliveInitialDelay", MAX_MS)?.unwrap_or(delay);
    Ok(TcpOptions {
        no_delay,
        keep_alive: keep_alive.then_some(delay as u64),
    })
}

fn reject(env: RawEnv, err: Value) -> napi::Result<Value> {
    js::settled(env, Err(err))
}

/// `connect()` for `{ port, host }` (see `net::connect`): options `o`, already checked to
/// be an object.
pub(crate) fn connect(st: &EnvState, o: Value) -> napi::Result<Value> {
    let env = st.env;
    let parsed = (|| {
        let port = port_of(env, o, 1, None)?;
        let host = string_opt(env, o, "host")?.unwrap_or_else(|| "localhost".into());
        let tcp = tcp_options(env, o, 60000.0)?;
        let timeout = number_opt(env, o, "timeout", MAX_MS)?;
        let signal = signal_of(env, o, "options")?;
        let family = js::get_opt(env, o, "family")?
            .map(|f| family_of(env, f))
            .transpose()?;
        let auto = bool_opt(env, o, "autoSelectFamily")?.unwrap_or(true);
        let attempt = number_opt(env, o, "autoSelectFamilyAttemptTimeout", MAX_MS)?;
        let options = ConnectOptions {
            // As Node: the attempt timeout is at least 10 ms.
            attempt_delay: auto
                .then(|| Duration::from_millis(attempt.unwrap_or(250.0).max(10.0) as u64)),
            interleave: usize::from(auto),
            family: match family {
                Some(4) => libc::AF_INET,
                Some(6) => libc::AF_INET6,
                _ => libc::AF_UNSPEC,
            },
        };
        Ok((host, port, tcp, timeout, signal, options))
    })();
    let (host, port, tcp, timeout, signal, options) = match parsed {
        Ok(p) => p,
        Err(e) => return reject(env, e),
    };
    if host.is_empty() || host.contains('\0') {
        return reject(env, bad_type(env, "options.host", "a non-empty string"));
    }
    if let Err(e) = st.unless_aborted(signal) {
        return reject(env, e);
    }
    let id = st.next_id();
    match st
        .rt
        .borrow_mut()
        .tcp_connect_with(&host, port, options, id)
    {
        Ok(()) => {}
        // The port is checked above: a host the host rule rejects, which getaddrinfo(3)
        // would not find either.
        Err(Status::InvalidArgument) => {
            return reject(env, js::lookup_error(env, Status::NameNotResolved, &host));
        }
        Err(s) => return reject(env, connect_error(env, s, &host, port)),
    }
    let timeout = timeout.map_or(0, |ms| ms.ceil() as u64);
    if timeout > 0 {
        // NotFound: it completed inline already.
        let _ = st.rt.borrow_mut().deadline(id, timeout);
    }
    let owner = Rc::new(Connect {
        host,
        port,
        options: tcp,
        timeout,
    });
    st.submitted(id, owner, Op { tag: 0, arg: 0 }, signal)
}

/// `listen()` for `{ port, host }` (see `net::listen`): options `o`, already checked to be
/// an object.
pub(crate) fn listen(st: &EnvState, o: Value) -> napi::Result<Value> {
    let env = st.env;
    let parsed = (|| {
        let port = port_of(env, o, 0, Some(0))?;
        let host = string_opt(env, o, "host")?;
        let backlog = number_opt(env, o, "backlog", f64::from(i32::MAX))?.unwrap_or(0.0);
        let reuse_port = bool_opt(env, o, "reusePort")?.unwrap_or(false);
        // As `net.createServer`: no delay keeps the system's idle time.
        let tcp = tcp_options(env, o, 0.0)?;
        let signal = signal_of(env, o, "options")?;
        Ok((host, port, backlog as u32, reuse_port, tcp, signal))
    })();
    let (host, port, backlog, reuse_port, tcp, signal) = match parsed {
        Ok(p) => p,
        Err(e) => return reject(env, e),
    };
    if host
        .as_ref()
        .is_some_and(|h| h.is_empty() || h.contains('\0'))
    {
        return reject(env, bad_type(env, "options.host", "a non-empty string"));
    }
    if let Err(e) = st.unless_aborted(signal) {
        return reject(env, e);
    }
    let opts = ListenOptions {
        backlog,
        reuse_port,
        ..ListenOptions::default()
    };
    let listened = match &host {
        // A name: look it up first (off the loop thread), then listen on its first address.
        Some(h) if !is_literal_or_localhost(h) => {
            return listen_by_name(st, h.clone(), port, opts, tcp, signal);
        }
        Some(h) => st.rt.borrow_mut().tcp_listen(h, port, opts),
        // As `net`: the IPv6 any-address (which takes IPv4 too where the system lets one
        // socket serve both, Linux's default), or IPv4's where there is no IPv6.
        None => {
            let mut rt = st.rt.borrow_mut();
            match rt.tcp_listen("::", port, opts) {
                Err(Status::AddressNotAvailable | Status::IoError) => {
                    rt.tcp_listen("0.0.0.0", port, opts)
                }
                r => r,
            }
        }
    };
    let server = match server_of(st, listened, tcp) {
        Ok(s) => s,
        Err(e) => return reject(env, e),
    };
    if let Some(sig) = signal {
        st.close_on_abort(sig, server);
    }
    js::settled(env, Ok(server))
}

/// A new listener's `Server` (which keeps the loop alive while open), whose accepted
/// connections get `tcp`.
fn server_of(
    st: &EnvState,
    listened: Result<Handle, Status>,
    tcp: TcpOptions,
) -> Result<Value, Value> {
    let h = listened.map_err(|s| js::status_error(st.env, s, "listen"))?;
    st.add_resource();
    st.rearm();
    Server::wrap(h, tcp)
        .into_js(st.env)
        .map_err(|_| js::error(st.env, "ENOMEM", "out of memory"))
}

/// Whether `listen()` can bind `host` without a lookup: an IP literal (IPv6 with or without
/// brackets) or `localhost`.
fn is_literal_or_localhost(host: &str) -> bool {
    polyio_core::ip_literal(host).is_some() || host.eq_ignore_ascii_case("localhost")
}

/// A pending `listen()` on a name: its lookup, then a listener on the first address (as
/// `net` listens). `signal` (a reference, or null) closes the server once it exists.
struct ListenByName {
    hostname: String,
    port: u16,
    options: ListenOptions,
    tcp: TcpOptions,
    signal: sys::napi_ref,
}

impl Settle for ListenByName {
    fn settle(
        &self,
        st: &EnvState,
        _op: Op,
        c: Completion,
        aborted: Option<Value>,
    ) -> Result<Value, Value> {
        let env = st.env;
        let status = c.status();
        let first = c
            .addrs
            .as_deref()
            .and_then(|a| a.first())
            .map(|a| a.addr.ip());
        let r = match (aborted, status, first) {
            (Some(e), _, _) => Err(e),
            (None, Status::Ok, Some(ip)) => {
                let listened =
                    st.rt
                        .borrow_mut()
                        .tcp_listen(&ip.to_string(), self.port, self.options);
                server_of(st, listened, self.tcp)
            }
            (None, Status::Ok, None) => Err(js::lookup_error(
                env,
                Status::NameNotResolved,
                &self.hostname,
            )),
            (None, Status::NameNotResolved | Status::NameTryAgain, _) => {
                Err(js::lookup_error(env, status, &self.hostname))
            }
            (None, s, _) => Err(js::status_error(env, s, "getaddrinfo")),
        };
        if !self.signal.is_null() {
            if let Ok(server) = r {
                st.close_on_abort(js::deref(env, self.signal), server);
            }
            js::unref(env, self.signal);
        }
        r
    }
}

fn listen_by_name(
    st: &EnvState,
    hostname: String,
    port: u16,
    options: ListenOptions,
    tcp: TcpOptions,
    signal: Option<Value>,
) -> napi::Result<Value> {
    let env = st.env;
    let hints = LookupHints {
        socktype: libc::SOCK_STREAM,
        flags: libc::AI_PASSIVE,
        ..LookupHints::default()
    };
    let id = st.next_id();
    match st
        .rt
        .borrow_mut()
        .getaddrinfo(Some(&hostname), None, hints, id)
    {
        Ok(()) => {}
        Err(Status::InvalidArgument) => {
            return reject(
                env,
                js::lookup_error(env, Status::NameNotResolved, &hostname),
            );
        }
        Err(s) => return reject(env, js::status_error(env, s, "getaddrinfo")),
    }
    let owner = Rc::new(ListenByName {
        hostname,
        port,
        options,
        tcp,
        signal: signal.map_or(std::ptr::null_mut(), |s| js::reference(env, s)),
    });
    st.submitted(id, owner, Op { tag: 0, arg: 0 }, signal)
}
