//! `Connection`: a stream connection (TCP today; every stream kind shares it). A read is a
//! core operation whose completion this module settles, in the environment's batches (for
//! `toDuplex()`, one multi-shot read whose chunks go to a callback, as libuv's readStart). A
//! write sends what the kernel takes at once (`try_write`) and queues the rest as a core
//! write; its promise settles by backpressure (at once below the high-water mark, else once
//! the backlog drains to the low-water mark), as `net` does.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;

use napi::bindgen_prelude::Unknown;
use napi::{Env, JsValue, sys};
use napi_derive::napi;
use polyio_core::{
    Completion, FLAG_MORE, FLAG_PARTIAL, HIGH_WATER, Handle, LOW_WATER, READ_SIZE, Status, WriteBuf,
};

use crate::args::{parse_signal, raw};
use crate::env::{self, EnvState, Op, Settle, close_when_collected, rooted, state, state_or_throw};
use crate::js::{self, RawEnv, Value};

// The connection's ops (`Op::tag`).
const OP_READ: u8 = 0;
/// A read settling as an async iterator's `next()` (`{ value, done }`).
const OP_NEXT: u8 = 1;
/// `Op::arg`: the bytes it queued. Its promise settles by backpressure, not by this op.
const OP_WRITE: u8 = 2;
const OP_SHUTDOWN: u8 = 3;
/// The multi-shot read `__readStart()` keeps armed: each chunk goes to its callback.
const OP_FLOW: u8 = 4;
/// A write backlog at least this large, once drained, gives its freed buffers' pages back.
const TRIM_AFTER: usize = 4 << 20;

pub(crate) struct ConnState {
    /// This state's own `Rc` (for the reads `__readStart()` submits from a completion).
    me: std::rc::Weak<ConnState>,
    pub handle: Handle,
    pub closed: Cell<bool>,
    ended: Cell<bool>,
    /// A read returned EOF (the peer ended its side).
    eof: Cell<bool>,
    /// Our `end()` completed (our side is shut down).
    shut: Cell<bool>,
    /// Bytes handed to the core and not yet written.
    queued: Cell<usize>,
    /// The largest `queued` since the queue was last empty.
    queued_peak: Cell<usize>,
    /// Write promises waiting for the queue to drain below the low-water mark.
    drain: RefCell<Vec<sys::napi_deferred>>,
    /// `close()` promises waiting for the queue to empty.
    flush: RefCell<Vec<sys::napi_deferred>>,
    /// The first write failure; later writes reject with it.
    error: Cell<Option<Status>>,
    /// A strong reference to the JS object while the connection is open: as with a
    /// `net.Socket`, an open connection is a GC root and stays open until closed.
    js_ref: Cell<sys::napi_ref>,
    /// Idle timeout in ms (0: none): a read that waits longer rejects with `'ETIMEDOUT'`.
    timeout: Cell<u64>,
    /// Whether the open connection keeps the loop alive (`ref()` / `unref()`); its pending
    /// reads keep it alive only while it does, as a `net.Socket`'s.
    refd: Cell<bool>,
    /// Reads submitted and not yet settled.
    reads: Cell<usize>,
    /// `__readStart()`'s callback (null when none), whether reads go on (`__readStop()`
    /// pauses them), and whether one of its reads is in flight.
    flow: Cell<sys::napi_ref>,
    flowing: Cell<bool>,
    flow_pending: Cell<bool>,
    /// The `user_data` of the multi-shot read `__readStart()` keeps armed.
    flow_id: Cell<u64>,
}

/// The error for an operation on a closed connection (Node's `ERR_SOCKET_CLOSED`).
pub(crate) fn closed_error(env: RawEnv) -> Value {
    js::error(env, "ERR_SOCKET_CLOSED", "Socket is closed")
}

impl ConnState {
    /// A write completed (or failed, or was cancelled by close).
    fn write_done(&self, st: &EnvState, len: usize, status: Status) {
        let env = st.env;
        self.queued.set(self.queued.get().saturating_sub(len));
        if status != Status::Ok
            && !(status == Status::Canceled && self.closed.get())
            && self.error.get().is_none()
        {
            self.failed(st, status);
        }
        let queued = self.queued.get();
        let failure = || self.closed_error(env, "write");
        let broken = self.error.get().is_some() || self.closed.get();
        if queued <= LOW_WATER || broken {
            for d in std::mem::take(&mut *self.drain.borrow_mut()) {
                js::settle(
                    env,
                    d,
                    if broken {
                        Err(failure())
                    } else {
                        Ok(js::undefined(env))
                    },
                );
            }
        }
        if queued == 0 && self.queued_peak.replace(0) >= TRIM_AFTER {
            // A large backlog was copied into many write buffers, now all freed: give their
            // pages back to the system, which the allocator would keep for the process.
            env::release_free_memory();
        }
        if queued == 0 || broken {
            let waiters = std::mem::take(&mut *self.flush.borrow_mut());
            if !waiters.is_empty() {
                self.close_now(st);
                for d in waiters {
                    js::settle(env, d, Ok(js::undefined(env)));
                }
            }
        }
    }

    /// Records that a read saw EOF or our `end()` completed. Once both directions are done
    /// nothing more can happen on the connection: it closes itself, so that it stops keeping
    /// the process alive (as a `net.Socket` destroys itself once both sides have ended).
    /// After EOF alone it stops keeping the process alive too (its writes still do while
    /// they wait), as a `net.Socket` whose peer ended no longer reads.
    fn half_done(&self, st: &EnvState, eof: bool) {
        if eof {
            self.eof.set(true);
            self.set_refd(st, false);
        } else {
            self.shut.set(true);
        }
        if self.eof.get() && self.shut.get() && self.queued.get() == 0 {
            self.close_now(st);
        }
    }

    /// Starts the next `__readStart()` read (its completion calls the callback, in
    /// `flowed`). The caller settles what completed inline (`after_call`) or leaves it to the
    /// next turn.
    fn flow_read(&self, st: &EnvState) {
        let Some(me) = self.me.upgrade() else { return };
        if self.flow_pending.get() || self.closed.get() {
            return;
        }
        let id = st.next_id();
        if let Err(s) = st
            .rt
            .borrow_mut()
            .read_multishot(self.handle, READ_SIZE, id)
        {
            let err = js::errno_error(st.env, s, "read");
            self.deliver(st, &[err], true);
            return;
        }
        self.reads.set(self.reads.get() + 1);
        if !self.refd.get() {
            st.weaken(1);
        }
        self.flow_pending.set(true);
        self.flow_id.set(id);
        let op = Op {
            tag: OP_FLOW,
            arg: 0,
        };
        st.track(id, std::ptr::null_mut(), me, op, None);
    }

    /// A `__readStart()` read completed: calls the callback with `(null, source, offset,
    /// length)` (the chunk, as `chunk()` in api.js takes it), `(null, null)` at EOF or
    /// `(error)`, then reads on while flowing.
    fn flowed(&self, st: &EnvState, c: Completion) {
        let env = st.env;
        let n = c.result;
        let status = c.status();
        let more = c.flags & FLAG_MORE != 0;
        if !more {
            self.reads.set(self.reads.get() - 1);
            if !self.refd.get() {
                st.weaken(-1);
            }
            self.flow_pending.set(false);
        }
        let null = js::null(env);
        if n > 0 {
            let buf = c.buf.as_deref().unwrap_or(&[]);
            // The bytes as (source, offset, length) for the callback to view: one call into
            // JS per chunk.
            let pooled = st.pooled(&buf[..(n as usize).min(buf.len())]);
            if let Some(v) = c.buf {
                st.rt.borrow_mut().recycle(v);
            }
            match pooled {
                Ok((src, offset, length)) => self.deliver(st, &[null, src, offset, length], false),
                Err(_) => {
                    let err = js::error(env, "ERR_MEMORY_ALLOCATION_FAILED", "out of memory");
                    self.deliver(st, &[err], true);
                }
            }
            if !more && self.flowing.get() {
                self.flow_read(st);
            }
            return;
        }
        if let Some(v) = c.buf {
            st.rt.borrow_mut().recycle(v);
        }
        if n == 0 {
            self.half_done(st, true);
            self.deliver(st, &[null, null], true);
        } else if status == Status::Canceled && self.closed.get() {
            self.deliver(st, &[self.closed_error(env, "read")], true);
        } else if status == Status::Canceled {
            // `__readStop()` cancelled it: no bytes lost; `__readStart()` reads on.
            if self.flowing.get() {
                self.flow_read(st);
            }
        } else {
            if status != Status::TimedOut {
                self.failed(st, status);
            }
            let err = js::errno_error(env, status, "read");
            self.deliver(st, &[err], true);
        }
    }

    /// Calls `__readStart()`'s callback with `args`; `last`: nothing follows (the callback
    /// is let go).
    fn deliver(&self, st: &EnvState, args: &[Value], last: bool) {
        let env = st.env;
        let r = self.flow.get();
        if r.is_null() {
            return;
        }
        let f = js::deref(env, r);
        if last {
            self.flowing.set(false);
            js::unref(env, self.flow.replace(std::ptr::null_mut()));
        }
        js::callback(env, f, args);
    }

    /// A read or write failed: the connection records the error (later calls reject with
    /// it) and closes itself, as a `net.Socket` destroys itself on error, so that it stops
    /// keeping the process alive.
    fn failed(&self, st: &EnvState, status: Status) {
        if self.error.get().is_none() {
            self.error.set(Some(status));
        }
        self.close_now(st);
    }

    /// The error for an operation on the closed connection: the failure that closed it, or
    /// `ERR_SOCKET_CLOSED` after `close()` / `destroy()`.
    fn closed_error(&self, env: RawEnv, syscall: &str) -> Value {
        match self.error.get() {
            Some(s) => js::errno_error(env, s, syscall),
            None => closed_error(env),
        }
    }

    /// Closes the socket now: pending operations complete (reads with `ERR_SOCKET_CLOSED`).
    /// The caller settles what that posted (`after_call`) or lets the next turn do it.
    fn close_now(&self, st: &EnvState) {
        if self.closed.replace(true) {
            return;
        }
        self.set_refd(st, true);
        st.release(self.handle, &self.js_ref);
    }

    /// `ref()` / `unref()`: whether the connection, and its pending reads, keep the loop
    /// alive.
    fn set_refd(&self, st: &EnvState, on: bool) {
        if self.refd.get() != on {
            let reads = self.reads.get() as isize;
            st.weaken(if on { -reads } else { reads });
            st.set_ref(&self.refd, on);
        }
    }
}

impl Settle for ConnState {
    fn settle(
        &self,
        st: &EnvState,
        op: Op,
        c: Completion,
        aborted: Option<Value>,
    ) -> Result<Value, Value> {
        let env = st.env;
        let status = c.status();
        match op.tag {
            OP_READ | OP_NEXT => {
                self.reads.set(self.reads.get() - 1);
                if !self.refd.get() {
                    st.weaken(-1);
                }
                let iter = op.tag == OP_NEXT;
                let n = c.result;
                let closed =
                    n < 0 && status == Status::Canceled && self.closed.get() && aborted.is_none();
                let r = if n > 0 {
                    let buf = c.buf.as_deref().unwrap_or(&[]);
                    st.chunk(&buf[..(n as usize).min(buf.len())], iter)
                        .map_err(|_| {
                            js::error(env, "ERR_MEMORY_ALLOCATION_FAILED", "out of memory")
                        })
                } else if n == 0 || (closed && iter) {
                    if n == 0 {
                        self.half_done(st, true);
                    }
                    Ok(if iter {
                        js::iter_result(env, js::undefined(env), true)
                    } else {
                        js::null(env)
                    })
                } else if closed {
                    Err(self.closed_error(env, "read"))
                } else {
                    // An abort or the idle timeout leaves the connection as it was; any
                    // other failure ends it.
                    if aborted.is_none() && status != Status::TimedOut {
                        self.failed(st, status);
                    }
                    Err(aborted.unwrap_or_else(|| js::errno_error(env, status, "read")))
                };
                if let Some(v) = c.buf {
                    st.rt.borrow_mut().recycle(v);
                }
                r
            }
            OP_FLOW => {
                self.flowed(st, c);
                Ok(js::undefined(env))
            }
            OP_WRITE => {
                let partial = c.flags & FLAG_PARTIAL != 0;
                if let Some(v) = c.buf {
                    st.give_back_write(v);
                }
                self.write_done(st, op.arg as usize, status);
                if partial {
                    // Part of this write went out and the rest never will: the stream's
                    // framing is broken, so the connection goes (as `stream.addAbortSignal`
                    // destroys a stream whose write was aborted).
                    self.close_now(st);
                }
                Ok(js::undefined(env))
            }
            OP_SHUTDOWN => {
                // ENOTCONN: the peer reset the connection, so this side is shut already (as
                // `net` treats it).
                if status == Status::Ok || status == Status::NotConnected {
                    self.half_done(st, false);
                    Ok(js::undefined(env))
                } else if status == Status::Canceled && self.closed.get() {
                    Err(self.closed_error(env, "shutdown"))
                } else {
                    Err(aborted.unwrap_or_else(|| js::errno_error(env, status, "shutdown")))
                }
            }
            _ => Ok(js::undefined(env)), // no other op is submitted
        }
    }
}

/// The TCP options a new connection gets, from `connect()`'s or `listen()`'s options.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TcpOptions {
    /// `TCP_NODELAY`.
    pub no_delay: bool,
    /// TCP keepalive, with the idle time before the first probe in ms (see `keepalive`).
    pub keep_alive: Option<u64>,
}

/// Turns TCP keepalive on connection `h` off (`None`) or on, with the idle time before the
/// first probe in ms: whole seconds, and under one second the system's own (as `net`
/// leaves it for a delay of 0; the core always sets one, so that case sets `SO_KEEPALIVE`
/// alone here).
fn keepalive(rt: &mut polyio_core::Runtime, h: Handle, idle_ms: Option<u64>) -> Result<(), Status> {
    match idle_ms {
        Some(ms) if ms < 1000 => {
            // Checks that `h` is a TCP connection, as the core's call does.
            rt.set_keepalive(h, None)?;
            let fd = rt.raw_fd(h)?;
            let on: libc::c_int = 1;
            // SAFETY: `fd` is the connection's open socket; `on` is a c_int, readable for
            // the length given.
            let r = unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_KEEPALIVE,
                    (&raw const on).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if r == 0 {
                Ok(())
            } else {
                Err(Status::from(std::io::Error::last_os_error()))
            }
        }
        Some(ms) => rt.set_keepalive(h, Some(std::time::Duration::from_millis(ms))),
        None => rt.set_keepalive(h, None),
    }
}

impl TcpOptions {
    /// Sets the options on connection `h`. Best effort, as `net` sets them on a new socket:
    /// a failure leaves the connection as the system made it.
    pub(crate) fn apply(&self, rt: &mut polyio_core::Runtime, h: Handle) {
        if self.no_delay {
            let _ = rt.set_nodelay(h, true);
        }
        if self.keep_alive.is_some() {
            let _ = keepalive(rt, h, self.keep_alive);
        }
    }
}

/// Wraps a connected handle as a `Connection` (with an idle timeout in ms, 0 for none) and
/// returns its JS object; it keeps the loop alive until closed.
pub(crate) fn open(st: &EnvState, h: Handle, timeout: u64) -> Value {
    st.add_resource();
    let conn = Connection::wrap(h);
    conn.inner.timeout.set(timeout);
    conn.into_js(st.env)
        .unwrap_or_else(|_| js::undefined(st.env))
}

/// Whether `h` is a Unix connection: TCP-only options are no-ops on it, as `net` makes them
/// for pipes.
fn is_unix(rt: &polyio_core::Runtime, h: Handle) -> bool {
    rt.unix_local_path(h).is_ok()
}

/// `{ noDelay, keepAlive, keepIdle }` of TCP socket `fd` (`TCP_KEEPIDLE` in seconds), or
/// `null` when it has none (a Unix socket): how tests read back what `net` and polyio set.
pub(crate) fn sockopts(env: RawEnv, fd: std::os::fd::RawFd) -> Value {
    let get = |level, name| {
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `v` and `len` are valid for writes of a c_int and a socklen_t; a bad or
        // non-TCP fd makes getsockopt fail, which we report as None.
        let r = unsafe { libc::getsockopt(fd, level, name, (&raw mut v).cast(), &mut len) };
        (r == 0).then_some(v)
    };
    let (Some(nodelay), Some(keepalive), Some(idle)) = (
        get(libc::IPPROTO_TCP, libc::TCP_NODELAY),
        get(libc::SOL_SOCKET, libc::SO_KEEPALIVE),
        get(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE),
    ) else {
        return js::null(env);
    };
    let o = js::object(env);
    js::set(env, o, "noDelay", js::boolean(env, nodelay != 0));
    js::set(env, o, "keepAlive", js::boolean(env, keepalive != 0));
    js::set(env, o, "keepIdle", js::number(env, f64::from(idle)));
    o
}

/// Internal, for tests: `sockopts` of a file descriptor (a `net.Socket`'s `_handle.fd`).
#[napi(js_name = "__sockoptsOfFd", skip_typescript)]
pub fn sockopts_of_fd(env: Env, fd: i32) -> Value {
    sockopts(env.raw(), fd)
}

/// A stream connection (TCP or Unix), from `connect()` or `Server.accept()`. Async-iterable
/// (chunks until EOF), async-disposable (closes), and `toDuplex()` gives a `stream.Duplex`.
#[napi]
pub struct Connection {
    inner: Rc<ConnState>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("handle", &self.inner.handle)
            .field("closed", &self.inner.closed.get())
            .finish()
    }
}

impl Connection {
    pub(crate) fn wrap(handle: Handle) -> Connection {
        Connection {
            inner: Rc::new_cyclic(|me| ConnState {
                me: me.clone(),
                handle,
                closed: Cell::new(false),
                ended: Cell::new(false),
                eof: Cell::new(false),
                shut: Cell::new(false),
                queued: Cell::new(0),
                queued_peak: Cell::new(0),
                drain: RefCell::new(Vec::new()),
                flush: RefCell::new(Vec::new()),
                error: Cell::new(None),
                js_ref: Cell::new(std::ptr::null_mut()),
                timeout: Cell::new(0),
                refd: Cell::new(true),
                reads: Cell::new(0),
                flow: Cell::new(std::ptr::null_mut()),
                flowing: Cell::new(false),
                flow_pending: Cell::new(false),
                flow_id: Cell::new(0),
            }),
        }
    }

    /// The JS object, while the connection is open (it is rooted until then).
    fn js_object(&self, env: RawEnv) -> Option<Value> {
        let r = self.inner.js_ref.get();
        (!r.is_null()).then(|| js::deref(env, r))
    }

    /// `promise`, raced against `signal` (write's and end's): see `destroy_on_abort`.
    fn with_signal(
        &self,
        st: &EnvState,
        signal: Option<Value>,
        promise: Value,
    ) -> napi::Result<Value> {
        match (signal, self.js_object(st.env)) {
            (Some(sig), Some(obj)) => Ok(st.destroy_on_abort(sig, obj, promise)),
            _ => Ok(promise),
        }
    }

    /// Creates the JS object for a new connection and roots it while the connection is open.
    pub(crate) fn into_js(self, env: RawEnv) -> napi::Result<Value> {
        let inner = self.inner.clone();
        rooted(env, self, &inner.js_ref)
    }

    /// `f` of the peer's (`peer`) or this side's address, or `undefined` once closed.
    fn addr(&self, env: Env, peer: bool, f: impl FnOnce(RawEnv, SocketAddr) -> Value) -> Value {
        let env = env.raw();
        let addr = state().filter(|_| !self.inner.closed.get()).and_then(|st| {
            let rt = st.rt.borrow();
            if peer {
                rt.peer_addr(self.inner.handle).ok()
            } else {
                rt.local_addr(self.inner.handle).ok()
            }
        });
        addr.map_or_else(|| js::undefined(env), |a| f(env, a))
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if !self.inner.closed.get()
            && let Some(st) = state()
        {
            self.inner.set_refd(&st, true);
        }
        close_when_collected(&self.inner.closed, self.inner.handle);
    }
}

#[napi]
impl Connection {
    /// Reads the next chunk: a `Buffer` of up to 64 KiB, or `null` at end of stream (the peer
    /// called `end()`). With a `signal`, an abort rejects with an `AbortError` and cancels the
    /// read in the engine; no bytes are lost (they wait for the next read). Rejects with an
    /// `Error` whose `code` is Node's (`'ECONNRESET'`, ...), or `'ERR_SOCKET_CLOSED'` after
    /// `close()` / `destroy()`. A read or write that fails closes the connection, as a
    /// `net.Socket` destroys itself: later calls reject with that error.
    #[napi(
        ts_args_type = "options?: { signal?: AbortSignal }",
        ts_return_type = "Promise<Buffer | null>"
    )]
    pub fn read(&self, env: Env, options: Option<Unknown>) -> napi::Result<Value> {
        let env = env.raw();
        let signal = match parse_signal(env, raw(&options), "options") {
            Ok(s) => s,
            Err(e) => return js::settled(env, Err(e)),
        };
        self.submit_read(env, signal, false)
    }

    /// The async iterator's `next()`: `read()` settling as `{ value: chunk, done: false }`,
    /// or `{ value: undefined, done: true }` at end of stream or once closed. Native, so that
    /// `for await` costs one promise per chunk (an async generator costs three).
    #[napi(js_name = "__next", skip_typescript)]
    pub fn next(&self, env: Env) -> napi::Result<Value> {
        self.submit_read(env.raw(), None, true)
    }

    /// Internal, for `toDuplex()`: reads on (one multi-shot read, as libuv's `readStart`)
    /// and calls `callback(null, source, offset, length)` with each chunk, `(null, null)` at
    /// EOF or `(err)` once: no op and no promise per chunk.
    #[napi(js_name = "__readStart", skip_typescript)]
    pub fn read_start(&self, env: Env, callback: Unknown) {
        let env = env.raw();
        let Some(st) = state_or_throw(env) else {
            return;
        };
        let inner = &self.inner;
        if inner.closed.get() {
            let err = inner.closed_error(env, "read");
            js::callback(env, callback.raw(), &[err, js::null(env)]);
            return;
        }
        if inner.flow.get().is_null() {
            inner.flow.set(js::reference(env, callback.raw()));
        }
        inner.flowing.set(true);
        inner.flow_read(&st);
        st.after_call();
    }

    /// Internal, for `toDuplex()`: stops reading (cancels the multi-shot read; no bytes
    /// are lost) until `__readStart()`.
    #[napi(js_name = "__readStop", skip_typescript)]
    pub fn read_stop(&self, env: Env) {
        let inner = &self.inner;
        if !inner.flowing.replace(false) || !inner.flow_pending.get() {
            return;
        }
        if let Some(st) = state_or_throw(env.raw()) {
            // NotFound: it is finishing already.
            let _ = st.rt.borrow_mut().cancel(inner.flow_id.get());
            st.after_call();
        }
    }
}

impl Connection {
    fn submit_read(&self, env: RawEnv, signal: Option<Value>, iter: bool) -> napi::Result<Value> {
        let Some(st) = state_or_throw(env) else {
            return Ok(js::undefined(env));
        };
        if self.inner.closed.get() {
            if iter {
                return js::settled(env, Ok(js::iter_result(env, js::undefined(env), true)));
            }
            return js::settled(env, Err(self.inner.closed_error(env, "read")));
        }
        if let Err(e) = st.unless_aborted(signal) {
            return js::settled(env, Err(e));
        }
        let id = st.next_id();
        // The buffer comes from the runtime's recycled ones when bytes arrive: a read
        // waiting on an idle connection holds none.
        let submitted = st
            .rt
            .borrow_mut()
            .read_pooled(self.inner.handle, READ_SIZE, id);
        if let Err(s) = submitted {
            return js::settled(env, Err(js::errno_error(env, s, "read")));
        }
        let timeout = self.inner.timeout.get();
        if timeout > 0 {
            // NotFound: it completed inline.
            let _ = st.rt.borrow_mut().deadline(id, timeout);
        }
        let tag = if iter { OP_NEXT } else { OP_READ };
        self.inner.reads.set(self.inner.reads.get() + 1);
        if !self.inner.refd.get() {
            st.weaken(1);
        }
        st.submitted(id, self.inner.clone(), Op { tag, arg: 0 }, signal)
    }
}

#[napi]
impl Connection {
    /// Writes `data` (a `Buffer`, a `Uint8Array` or a string, sent as UTF-8). The promise
    /// settles once the data is accepted: at once while less than 64 KiB is waiting to be
    /// sent, otherwise when the backlog drains to 16 KiB — so awaiting each write gives
    /// backpressure. Writes go out in order: with nothing queued, what the kernel takes is
    /// sent during the call; the rest is queued, and the engine sends queued writes
    /// gathered into vectored `sendmsg` calls. A failed write rejects this or the next
    /// `write()` / `end()` with Node's `code` (`'EPIPE'`, `'ECONNRESET'`, `'ENOBUFS'`);
    /// after `end()` it rejects with `'ERR_STREAM_WRITE_AFTER_END'`. With a `signal`, an
    /// abort while the promise waits destroys the connection (as `stream.addAbortSignal`
    /// does: unsent bytes are dropped) and rejects with an `AbortError`; an already aborted
    /// signal rejects at once and writes nothing.
    #[napi(
        ts_args_type = "data: Buffer | Uint8Array | string, options?: { signal?: AbortSignal }",
        ts_return_type = "Promise<void>"
    )]
    pub fn write(
        &self,
        env: Env,
        data: Option<Unknown>,
        options: Option<Unknown>,
    ) -> napi::Result<Value> {
        self.write_data(env.raw(), data, options, false)
    }

    /// Internal, for `toDuplex()`'s `_write`: `write()`, returning `true` instead of a
    /// promise when the data was accepted at once (the usual case), which saves the stream
    /// a promise reaction per write.
    #[napi(js_name = "__write", skip_typescript)]
    pub fn write_now(&self, env: Env, data: Option<Unknown>) -> napi::Result<Value> {
        self.write_data(env.raw(), data, None, true)
    }
}

impl Connection {
    /// `write()`; with `now`, `true` instead of the resolved promise when accepted at once.
    fn write_data(
        &self,
        env: RawEnv,
        data: Option<Unknown>,
        options: Option<Unknown>,
        now: bool,
    ) -> napi::Result<Value> {
        let Some(st) = state_or_throw(env) else {
            return Ok(js::undefined(env));
        };
        let signal = match parse_signal(env, raw(&options), "options") {
            Ok(s) => s,
            Err(e) => return js::settled(env, Err(e)),
        };
        if let Err(e) = st.unless_aborted(signal) {
            return js::settled(env, Err(e));
        }
        let inner = &self.inner;
        let mut bytes = st.take_write_buf();
        if !raw(&data).is_some_and(|v| js::bytes_into(env, v, &mut bytes)) {
            return js::settled(
                env,
                Err(js::type_error(
                    env,
                    "ERR_INVALID_ARG_TYPE",
                    "The \"data\" argument must be of type string or an instance of Buffer or Uint8Array",
                )),
            );
        }
        if inner.ended.get() {
            return js::settled(
                env,
                Err(js::error(
                    env,
                    "ERR_STREAM_WRITE_AFTER_END",
                    "write after end",
                )),
            );
        }
        if inner.closed.get() || inner.error.get().is_some() {
            return js::settled(env, Err(inner.closed_error(env, "write")));
        }
        let accepted = || {
            if now {
                Ok(js::boolean(env, true))
            } else {
                Ok(st.resolved())
            }
        };
        if bytes.is_empty() {
            return accepted();
        }
        if inner.queued.get() == 0 {
            // Nothing queued: send what the kernel takes now, with no operation to track and
            // no completion to settle for the usual case that it takes everything.
            let sent = st.rt.borrow_mut().try_write(inner.handle, &[&bytes]);
            match sent {
                Ok(n) if n == bytes.len() => {
                    st.give_back_write(bytes);
                    return accepted();
                }
                Ok(n) => {
                    bytes.drain(..n);
                }
                Err(s) => {
                    inner.failed(&st, s);
                    st.after_call();
                    return js::settled(env, Err(js::errno_error(env, s, "write")));
                }
            }
        }
        let len = bytes.len();
        let id = st.next_id();
        let submitted = st
            .rt
            .borrow_mut()
            .write(inner.handle, WriteBuf::from_vec(bytes), id);
        if let Err(s) = submitted {
            return js::settled(env, Err(js::errno_error(env, s, "write")));
        }
        inner.queued.set(inner.queued.get() + len);
        inner
            .queued_peak
            .set(inner.queued_peak.get().max(inner.queued.get()));
        let op = Op {
            tag: OP_WRITE,
            arg: len as u64,
        };
        st.track(id, std::ptr::null_mut(), inner.clone(), op, None);
        st.after_call();
        if let Some(s) = inner.error.get() {
            return js::settled(env, Err(js::errno_error(env, s, "write")));
        }
        if inner.queued.get() < HIGH_WATER {
            return accepted();
        }
        let (d, p) = js::promise(env)?;
        inner.drain.borrow_mut().push(d);
        self.with_signal(&st, signal, p)
    }
}

#[napi]
impl Connection {
    /// Half-closes: once every queued write is sent, shuts down the sending side (the peer
    /// reads EOF). Reading still works. Settles when the shutdown is done (also when the
    /// peer has reset the connection: `ENOTCONN` means done, as in `net`). With a `signal`,
    /// an abort before then destroys the connection and rejects with an `AbortError`.
    #[napi(
        ts_args_type = "options?: { signal?: AbortSignal }",
        ts_return_type = "Promise<void>"
    )]
    pub fn end(&self, env: Env, options: Option<Unknown>) -> napi::Result<Value> {
        let env = env.raw();
        let Some(st) = state_or_throw(env) else {
            return Ok(js::undefined(env));
        };
        let signal = match parse_signal(env, raw(&options), "options") {
            Ok(s) => s,
            Err(e) => return js::settled(env, Err(e)),
        };
        if let Err(e) = st.unless_aborted(signal) {
            return js::settled(env, Err(e));
        }
        if self.inner.closed.get() {
            return js::settled(env, Err(self.inner.closed_error(env, "shutdown")));
        }
        if self.inner.ended.replace(true) {
            return js::settled(env, Ok(js::undefined(env)));
        }
        let id = st.next_id();
        match st.rt.borrow_mut().shutdown(self.inner.handle, id) {
            Ok(()) => {}
            // As in the completion: the peer's reset shut this side already.
            Err(Status::NotConnected) => return js::settled(env, Ok(js::undefined(env))),
            Err(s) => return js::settled(env, Err(js::errno_error(env, s, "shutdown"))),
        }
        let op = Op {
            tag: OP_SHUTDOWN,
            arg: 0,
        };
        let p = st.submitted(id, self.inner.clone(), op, None)?;
        self.with_signal(&st, signal, p)
    }

    /// Closes gracefully: waits until queued writes are sent (or have failed), then closes
    /// the socket. Pending reads reject with `'ERR_SOCKET_CLOSED'`. Settles when closed. A
    /// connection also closes itself once a read has returned `null` (EOF) and `end()` has
    /// completed: nothing more can happen on it.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn close(&self, env: Env) -> napi::Result<Value> {
        let env = env.raw();
        let Some(st) = state_or_throw(env) else {
            return Ok(js::undefined(env));
        };
        let inner = &self.inner;
        if inner.closed.get() {
            return js::settled(env, Ok(js::undefined(env)));
        }
        if inner.queued.get() == 0 || inner.error.get().is_some() {
            inner.close_now(&st);
            st.after_call();
            return js::settled(env, Ok(js::undefined(env)));
        }
        let (d, p) = js::promise(env)?;
        inner.flush.borrow_mut().push(d);
        Ok(p)
    }

    /// Closes now: unsent data is dropped, pending reads and writes reject with
    /// `'ERR_SOCKET_CLOSED'`.
    #[napi]
    pub fn destroy(&self, env: Env) {
        let env = env.raw();
        if let Some(st) = state_or_throw(env) {
            self.inner.close_now(&st);
            st.after_call();
            let waiters = std::mem::take(&mut *self.inner.flush.borrow_mut());
            for d in waiters {
                js::settle(env, d, Ok(js::undefined(env)));
            }
        }
    }

    /// Sets `TCP_NODELAY` (default `true`): send small writes at once. A no-op on a Unix
    /// connection, as in `net`.
    #[napi(ts_args_type = "noDelay?: boolean")]
    pub fn set_no_delay(&self, env: Env, no_delay: Option<Unknown>) {
        let env = env.raw();
        let on = match raw(&no_delay).filter(|v| !js::is_nullish(env, *v)) {
            None => true,
            Some(v) => match js::as_bool(env, v) {
                Some(b) => b,
                None => {
                    return js::throw(
                        env,
                        js::type_error(
                            env,
                            "ERR_INVALID_ARG_TYPE",
                            "The \"noDelay\" argument must be of type boolean",
                        ),
                    );
                }
            },
        };
        if let Some(st) = state_or_throw(env)
            && !self.inner.closed.get()
            && !is_unix(&st.rt.borrow(), self.inner.handle)
            && let Err(s) = st.rt.borrow_mut().set_nodelay(self.inner.handle, on)
        {
            js::throw(env, js::errno_error(env, s, "setsockopt"));
        }
    }

    /// Sets the idle timeout, in ms (0 turns it off; `connect`'s `timeout` sets it too): a
    /// `read()` that waits longer than this for data rejects with `'ETIMEDOUT'` and takes no
    /// bytes; the connection stays open. Applies to reads started afterwards.
    #[napi(ts_args_type = "ms: number")]
    pub fn set_timeout(&self, env: Env, ms: Option<Unknown>) {
        let env = env.raw();
        let v = raw(&ms).filter(|v| !js::is_nullish(env, *v));
        match v.map(|v| (js::as_f64(env, v), v)) {
            Some((Some(n), _)) if (0.0..=9_007_199_254_740_991.0).contains(&n) => {
                self.inner.timeout.set(n.ceil() as u64);
            }
            Some((Some(n), _)) => js::throw(
                env,
                js::range_error(
                    env,
                    "ERR_OUT_OF_RANGE",
                    &format!(
                        "The value of \"ms\" is out of range. It must be a finite number >= 0. Received {n}"
                    ),
                ),
            ),
            _ => js::throw(
                env,
                js::type_error(
                    env,
                    "ERR_INVALID_ARG_TYPE",
                    "The \"ms\" argument must be of type number",
                ),
            ),
        }
    }

    /// The idle timeout in ms (0: none).
    #[napi(getter)]
    pub fn timeout(&self) -> f64 {
        self.inner.timeout.get() as f64
    }

    /// Turns TCP keepalive on (probes after `initialDelay` ms idle, in whole seconds;
    /// default 60000; under 1000 the system's own, as in `net`) or off. A no-op on a Unix
    /// connection, as in `net`.
    #[napi(ts_args_type = "enable?: boolean, initialDelay?: number")]
    pub fn set_keep_alive(
        &self,
        env: Env,
        enable: Option<Unknown>,
        initial_delay: Option<Unknown>,
    ) {
        let env = env.raw();
        let on = raw(&enable)
            .filter(|v| !js::is_nullish(env, *v))
            .map(|v| js::as_bool(env, v));
        let delay = raw(&initial_delay)
            .filter(|v| !js::is_nullish(env, *v))
            .map(|v| js::as_f64(env, v));
        let (on, delay) = match (on, delay) {
            (Some(None), _) => {
                return js::throw(
                    env,
                    js::type_error(
                        env,
                        "ERR_INVALID_ARG_TYPE",
                        "The \"enable\" argument must be of type boolean",
                    ),
                );
            }
            (_, Some(None)) => {
                return js::throw(
                    env,
                    js::type_error(
                        env,
                        "ERR_INVALID_ARG_TYPE",
                        "The \"initialDelay\" argument must be of type number",
                    ),
                );
            }
            (_, Some(Some(d))) if !(d.is_finite() && d >= 0.0) => {
                return js::throw(
                    env,
                    js::range_error(
                        env,
                        "ERR_OUT_OF_RANGE",
                        "The \"initialDelay\" argument must be a finite number >= 0",
                    ),
                );
            }
            (on, d) => (
                on.flatten().unwrap_or(false),
                d.flatten().unwrap_or(60000.0),
            ),
        };
        let idle = on.then_some(delay as u64);
        if let Some(st) = state_or_throw(env)
            && !self.inner.closed.get()
            && !is_unix(&st.rt.borrow(), self.inner.handle)
            && let Err(s) = keepalive(&mut st.rt.borrow_mut(), self.inner.handle, idle)
        {
            js::throw(env, js::errno_error(env, s, "setsockopt"));
        }
    }

    /// The peer's IP address (`undefined` once closed, and on a Unix connection, as `net`
    /// gives for a pipe).
    #[napi(getter, ts_return_type = "string | undefined")]
    pub fn remote_address(&self, env: Env) -> Value {
        self.addr(env, true, |env, a| js::string(env, &a.ip().to_string()))
    }

    /// The peer's port (`undefined` once closed, and on a Unix connection).
    #[napi(getter, ts_return_type = "number | undefined")]
    pub fn remote_port(&self, env: Env) -> Value {
        self.addr(env, true, |env, a| js::number(env, f64::from(a.port())))
    }

    /// `'IPv4'` or `'IPv6'` (`undefined` once closed, and on a Unix connection).
    #[napi(getter, ts_return_type = "'IPv4' | 'IPv6' | undefined")]
    pub fn remote_family(&self, env: Env) -> Value {
        self.addr(env, true, |env, a| {
            js::string(env, if a.is_ipv4() { "IPv4" } else { "IPv6" })
        })
    }

    /// This side's IP address (`undefined` once closed, and on a Unix connection).
    #[napi(getter, ts_return_type = "string | undefined")]
    pub fn local_address(&self, env: Env) -> Value {
        self.addr(env, false, |env, a| js::string(env, &a.ip().to_string()))
    }

    /// This side's port (`undefined` once closed, and on a Unix connection).
    #[napi(getter, ts_return_type = "number | undefined")]
    pub fn local_port(&self, env: Env) -> Value {
        self.addr(env, false, |env, a| js::number(env, f64::from(a.port())))
    }

    /// Lets the open connection keep the process alive (the default), as `socket.ref()`.
    #[napi(js_name = "ref")]
    pub fn refer(&self, env: Env) {
        if let Some(st) = state_or_throw(env.raw())
            && !self.inner.closed.get()
        {
            self.inner.set_refd(&st, true);
        }
    }

    /// Lets the process exit while the connection is open (its pending reads too), as
    /// `socket.unref()`.
    #[napi]
    pub fn unref(&self, env: Env) {
        if let Some(st) = state_or_throw(env.raw())
            && !self.inner.closed.get()
        {
            self.inner.set_refd(&st, false);
        }
    }

    /// Internal, for tests: the socket's `TCP_NODELAY`, `SO_KEEPALIVE` and `TCP_KEEPIDLE`
    /// (see `sockopts`), or `null` once closed or on a Unix connection.
    #[napi(js_name = "__sockopts", skip_typescript)]
    pub fn sockopts(&self, env: Env) -> Value {
        let env = env.raw();
        let fd = state()
            .filter(|_| !self.inner.closed.get())
            .and_then(|st| st.rt.borrow().raw_fd(self.inner.handle).ok());
        match fd {
            Some(fd) => sockopts(env, fd),
            None => js::null(env),
        }
    }

    /// Whether `close()` or `destroy()` has run.
    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.inner.closed.get()
    }

    /// Bytes accepted by `write()` and not yet handed to the kernel.
    #[napi(getter)]
    pub fn write_queue_size(&self) -> u32 {
        let queued = self.inner.queued.get();
        // A queued write the kernel took part of counts its rest (libuv's write_queue_size).
        let unsent = match queued {
            0 => 0,
            _ => state()
                .and_then(|st| Some(st.rt.try_borrow().ok()?.unsent_bytes(self.inner.handle)))
                .unwrap_or(queued),
        };
        unsent.min(u32::MAX as usize) as u32
    }
}
