//! Unix domain sockets: what `connect()` and `listen()` do for `{ path }` (a filesystem
//! path, or a Linux abstract name with a leading `'\0'`), as `net` takes them. A connect is
//! a core operation whose completion this module settles with a `Connection`; the listener
//! is a `Server`, which accepts as every stream kind's does and removes its socket file
//! when it closes.

use std::rc::Rc;

use polyio_core::{Completion, ListenOptions, Status};

use crate::args::{MAX_MS, number_opt, signal_of};
use crate::conn::{self, TcpOptions};
use crate::env::{EnvState, Op, Settle, failure};
use crate::js::{self, RawEnv, Value};
use crate::server::Server;

/// A pending connect: its path (for the error's `address`) and the new connection's idle
/// timeout (ms; 0 for none).
struct Connect {
    path: String,
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
            let was_aborted = aborted.is_some();
            let e = failure(st.env, aborted, status, "connect");
            return Err(if was_aborted {
                e
            } else {
                with_address(st.env, e, &self.path)
            });
        }
        Ok(conn::open(st, c.handle, self.timeout))
    }
}

/// `err` with `address` set to `path`, as `net`'s errors for a pipe carry it.
fn with_address(env: RawEnv, err: Value, path: &str) -> Value {
    js::set(env, err, "address", js::string(env, path));
    err
}

fn reject(env: RawEnv, err: Value) -> napi::Result<Value> {
    js::settled(env, Err(err))
}

/// `connect()` for `{ path }` (see `net::connect`): `host`, `port` and the TCP options are
/// ignored, as `net` ignores them; `timeout` and `signal` apply.
pub(crate) fn connect(st: &EnvState, o: Value, path: String) -> napi::Result<Value> {
    let env = st.env;
    let parsed = (|| {
        let timeout = number_opt(env, o, "timeout", MAX_MS)?;
        Ok((
            timeout.map_or(0, |ms| ms.ceil() as u64),
            signal_of(env, o, "options")?,
        ))
    })();
    let (timeout, signal) = match parsed {
        Ok(p) => p,
        Err(e) => return reject(env, e),
    };
    if let Err(e) = st.unless_aborted(signal) {
        return reject(env, e);
    }
    let id = st.next_id();
    if let Err(s) = st.rt.borrow_mut().unix_connect(path.as_bytes(), id) {
        let e = js::status_error(env, s, "connect");
        return reject(env, with_address(env, e, &path));
    }
    if timeout > 0 {
        // NotFound: it completed inline already.
        let _ = st.rt.borrow_mut().deadline(id, timeout);
    }
    let owner = Rc::new(Connect { path, timeout });
    st.submitted(id, owner, Op { tag: 0, arg: 0 }, signal)
}

/// `listen()` for `{ path }` (see `net::listen`). Rejects with `'EADDRINUSE'` if a file is
/// there already: as `net`, it does not remove a stale socket file.
pub(crate) fn listen(st: &EnvState, o: Value, path: String) -> napi::Result<Value> {
    let env = st.env;
    let parsed = (|| {
        let backlog = number_opt(env, o, "backlog", f64::from(i32::MAX))?.unwrap_or(0.0);
        Ok((backlog as u32, signal_of(env, o, "options")?))
    })();
    let (backlog, signal) = match parsed {
        Ok(p) => p,
        Err(e) => return reject(env, e),
    };
    if let Err(e) = st.unless_aborted(signal) {
        return reject(env, e);
    }
    let opts = ListenOptions {
        backlog,
        ..ListenOptions::default()
    };
    let listened = st.rt.borrow_mut().unix_listen(path.as_bytes(), opts);
    let h = match listened {
        Ok(h) => h,
        Err(s) => {
            let e = js::status_error(env, s, "listen");
            return reject(env, with_address(env, e, &path));
        }
    };
    st.add_resource();
    st.rearm();
    let server = Server::wrap(h, TcpOptions::default()).into_js(env)?;
    if let Some(sig) = signal {
        st.close_on_abort(sig, server);
    }
    js::settled(env, Ok(server))
}
