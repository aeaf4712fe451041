//! `Server`: a listening socket (TCP today; every stream kind shares it). `accept()` is a
//! core operation whose completion this module settles with a new `Connection`; several may
//! be queued.

use std::cell::Cell;
use std::rc::Rc;

use napi::bindgen_prelude::Unknown;
use napi::{Env, JsValue, sys};
use napi_derive::napi;
use polyio_core::{Completion, Handle, Status};

use crate::args::parse_signal;
use crate::conn::{self, TcpOptions};
use crate::env::{
    EnvState, Op, Settle, close_when_collected, failure, rooted, state, state_or_throw,
};
use crate::js::{self, RawEnv, Value};

pub(crate) struct ServerState {
    pub handle: Handle,
    pub closed: Cell<bool>,
    /// A strong reference to the JS object while listening: as with `net.Server`, a
    /// listening server is a GC root and stays open until closed.
    js_ref: Cell<sys::napi_ref>,
    /// The TCP options each accepted connection gets (`listen()`'s `noDelay`, `keepAlive`).
    tcp: TcpOptions,
    /// Whether the open server keeps the loop alive (`ref()` / `unref()`).
    refd: Cell<bool>,
}

impl Settle for ServerState {
    /// An accept: the new connection, or `'ERR_SERVER_NOT_RUNNING'` once closed.
    fn settle(
        &self,
        st: &EnvState,
        _op: Op,
        c: Completion,
        aborted: Option<Value>,
    ) -> Result<Value, Value> {
        let env = st.env;
        let status = c.status();
        if status == Status::Ok {
            self.tcp.apply(&mut st.rt.borrow_mut(), c.handle);
            Ok(conn::open(st, c.handle, 0))
        } else if status == Status::Canceled && self.closed.get() && aborted.is_none() {
            Err(not_running(env))
        } else {
            Err(failure(env, aborted, status, "accept"))
        }
    }
}

fn not_running(env: RawEnv) -> Value {
    js::error(env, "ERR_SERVER_NOT_RUNNING", "Server is not running.")
}

/// A listening server (TCP or Unix), from `listen()`. Async-iterable (yields each accepted
/// `Connection` until closed) and async-disposable (closes).
#[napi]
pub struct Server {
    inner: Rc<ServerState>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("handle", &self.inner.handle)
            .field("closed", &self.inner.closed.get())
            .finish()
    }
}

impl Server {
    pub(crate) fn wrap(handle: Handle, tcp: TcpOptions) -> Server {
        Server {
            inner: Rc::new(ServerState {
                handle,
                closed: Cell::new(false),
                js_ref: Cell::new(std::ptr::null_mut()),
                tcp,
                refd: Cell::new(true),
            }),
        }
    }

    /// Creates the JS object for a new server and roots it while it listens.
    pub(crate) fn into_js(self, env: RawEnv) -> napi::Result<Value> {
        let inner = self.inner.clone();
        rooted(env, self, &inner.js_ref)
    }

    fn close_now(&self) {
        if self.inner.closed.replace(true) {
            return;
        }
        if let Some(st) = state() {
            st.set_ref(&self.inner.refd, true);
            st.release(self.inner.handle, &self.inner.js_ref);
            st.after_call();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if !self.inner.closed.get()
            && let Some(st) = state()
        {
            st.set_ref(&self.inner.refd, true);
        }
        close_when_collected(&self.inner.closed, self.inner.handle);
    }
}

#[napi]
impl Server {
    /// Accepts the next connection. Queued accepts complete in order. With a `signal`, an
    /// abort rejects with an `AbortError` and cancels the accept. After `close()` it rejects
    /// with `'ERR_SERVER_NOT_RUNNING'`.
    #[napi(
        ts_args_type = "options?: { signal?: AbortSignal }",
        ts_return_type = "Promise<Connection>"
    )]
    pub fn accept(&self, env: Env, options: Option<Unknown>) -> napi::Result<Value> {
        let env = env.raw();
        let Some(st) = state_or_throw(env) else {
            return Ok(js::undefined(env));
        };
        let signal = match parse_signal(env, options.map(|u| u.raw()), "options") {
            Ok(s) => s,
            Err(e) => return js::settled(env, Err(e)),
        };
        if self.inner.closed.get() {
            return js::settled(env, Err(not_running(env)));
        }
        if let Err(e) = st.unless_aborted(signal) {
            return js::settled(env, Err(e));
        }
        let id = st.next_id();
        if let Err(s) = st.rt.borrow_mut().accept(self.inner.handle, id) {
            return js::settled(env, Err(js::status_error(env, s, "accept")));
        }
        st.submitted(id, self.inner.clone(), Op { tag: 0, arg: 0 }, signal)
    }

    /// The bound address, as `net.Server.address()` gives it: `{ address, family, port }`,
    /// a Unix server's path as a string, `null` once closed.
    #[napi(
        ts_return_type = "{ address: string, family: 'IPv4' | 'IPv6', port: number } | string | null"
    )]
    pub fn address(&self, env: Env) -> Value {
        let env = env.raw();
        let Some(st) = state().filter(|_| !self.inner.closed.get()) else {
            return js::null(env);
        };
        let rt = st.rt.borrow();
        // A Unix listener: its path, as `net` gives a pipe's (an abstract name keeps its
        // leading '\0').
        if let Ok(path) = rt.unix_local_path(self.inner.handle) {
            return js::string(env, &String::from_utf8_lossy(&path));
        }
        match rt.local_addr(self.inner.handle).ok() {
            None => js::null(env),
            Some(a) => {
                let o = js::object(env);
                js::set(env, o, "address", js::string(env, &a.ip().to_string()));
                js::set(
                    env,
                    o,
                    "family",
                    js::string(env, if a.is_ipv4() { "IPv4" } else { "IPv6" }),
                );
                js::set(env, o, "port", js::number(env, f64::from(a.port())));
                o
            }
        }
    }

    /// Stops listening. Pending `accept()`s reject with `'ERR_SERVER_NOT_RUNNING'`;
    /// connections already accepted stay open.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn close(&self, env: Env) -> napi::Result<Value> {
        self.close_now();
        js::settled(env.raw(), Ok(js::undefined(env.raw())))
    }

    /// Lets the open server keep the process alive (the default), as `server.ref()`.
    #[napi(js_name = "ref")]
    pub fn refer(&self, env: Env) {
        if let Some(st) = state_or_throw(env.raw())
            && !self.inner.closed.get()
        {
            st.set_ref(&self.inner.refd, true);
        }
    }

    /// Lets the process exit while the server listens, as `server.unref()`.
    #[napi]
    pub fn unref(&self, env: Env) {
        if let Some(st) = state_or_throw(env.raw())
            && !self.inner.closed.get()
        {
            st.set_ref(&self.inner.refd, false);
        }
    }

    /// Whether `close()` has run.
    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.inner.closed.get()
    }
}
