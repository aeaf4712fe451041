//! TCP: what `connect()` and `listen()` do for `{ port, host }`. A connect is a core
//! operation whose completion this module settles with a `Connection` (with the socket
//! options the call asked for); the listener is a `Server`, which accepts as every stream
//! kind's does.

use std::rc::Rc;

use polyio_core::{Completion, ListenOptions, Status};

use crate::args::{MAX_MS, bad_type, bool_opt, number_opt, port_of, signal_of, string_opt};
use crate::conn;
use crate::env::{EnvState, Op, Settle, failure};
use crate::js::{self, RawEnv, Value};
use crate::server::Server;

/// A pending connect: the options its connection gets.
struct Connect {
    no_delay: bool,
    keep_alive: Option<u64>,
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
        if status != Status::Ok {
            return Err(failure(st.env, aborted, status, "connect"));
        }
        {
            let mut rt = st.rt.borrow_mut();
            if self.no_delay {
                let _ = rt.set_nodelay(c.handle, true);
            }
            if let Some(ms) = self.keep_alive {
                let idle = std::time::Duration::from_millis(ms.max(1000));
                let _ = rt.set_keepalive(c.handle, Some(idle));
            }
        }
        Ok(conn::open(st, c.handle, self.timeout))
    }
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
        let no_delay = bool_opt(env, o, "noDelay")?.unwrap_or(false);
        let keep_alive = bool_opt(env, o, "keepAlive")?.unwrap_or(false);
        let delay = number_opt(env, o, "keepAliveInitialDelay", MAX_MS)?.unwrap_or(60000.0);
        let timeout = number_opt(env, o, "timeout", MAX_MS)?;
        let signal = signal_of(env, o, "options")?;
        Ok((
            host,
            port,
            no_delay,
            keep_alive.then_some(delay as u64),
            timeout,
            signal,
        ))
    })();
    let (host, port, no_delay, keep_alive, timeout, signal) = match parsed {
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
    if let Err(s) = st.rt.borrow_mut().tcp_connect(&host, port, id) {
        return reject(env, js::status_error(env, s, "connect"));
    }
    let timeout = timeout.map_or(0, |ms| ms.ceil() as u64);
    if timeout > 0 {
        // NotFound: it completed inline already.
        let _ = st.rt.borrow_mut().deadline(id, timeout);
    }
    let owner = Rc::new(Connect {
        no_delay,
        keep_alive,
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
        let signal = signal_of(env, o, "options")?;
        Ok((host, port, backlog as u32, reuse_port, signal))
    })();
    let (host, port, backlog, reuse_port, signal) = match parsed {
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
    let h = match listened {
        Ok(h) => h,
        Err(s) => return reject(env, js::status_error(env, s, "listen")),
    };
    st.add_resource();
    st.rearm();
    let server = Server::wrap(h).into_js(env)?;
    if let Some(sig) = signal {
        st.close_on_abort(sig, server);
    }
    js::settled(env, Ok(server))
}
