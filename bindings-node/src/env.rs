//! One polyio runtime per Node environment (the main thread and each worker), driven from
//! that environment's own libuv loop: a `uv_poll` handle on the runtime's backend fd and a
//! `uv_timer` for its next timeout. Each wakeup runs one bounded turn and settles every
//! completion in a batch inside one callback scope (so microtasks run once, after the
//! batch). Both handles are ref'd only while an operation is pending or a connection or
//! server is open, so a script whose work is done exits by itself. Each completion goes to
//! the [`Settle`] its op was submitted with: the kind's module settles it, this one knows
//! no kind.

use std::cell::{Cell, RefCell};
use std::ffi::c_void;
use std::net::SocketAddr;
use std::ptr;
use std::rc::Rc;

use napi::sys;
use polyio_core::{Completion, FLAG_MORE, Handle, IdMap, Options, Runtime, RuntimeWaker, Status};

use crate::js::{self, RawEnv, Value};
use crate::uv;

/// Completions settled per turn before the loop runs another.
const BATCH: usize = 1024;
/// Completions settled from JS calls (the inline fast path) between two loop wakeups before
/// the rest wait for the next loop iteration. Without a cap, ops that complete at submission
/// (a file read io_uring serves from the page cache) chain through promise continuations
/// without ever returning to the loop, and timers and I/O starve until the chain ends.
const INLINE_STREAK: usize = 256;

/// What a kind's module tells its [`Settle`] about one op it submitted: its own tag (read,
/// write, ...) and one number (a write's length, say).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Op {
    pub tag: u8,
    pub arg: u64,
}

/// The state of one kind of I/O that settles the completions of the ops it submitted (a
/// connection its reads and writes, a server its accepts, a connect its connection).
pub(crate) trait Settle {
    /// Settles completion `c` of `op`. `aborted` is the `AbortError` when the op's signal
    /// fired and the core cancelled it. Returns what the op's promise settles with (not
    /// used for an op without a promise of its own).
    fn settle(
        &self,
        st: &EnvState,
        op: Op,
        c: Completion,
        aborted: Option<Value>,
    ) -> Result<Value, Value>;
}

/// An op's error: the `AbortError` when its signal aborted it, else the status as Node's
/// `Error` for `syscall`.
pub(crate) fn failure(env: RawEnv, aborted: Option<Value>, status: Status, syscall: &str) -> Value {
    aborted.unwrap_or_else(|| js::status_error(env, status, syscall))
}

pub(crate) struct Pending {
    /// Null for an op without a promise of its own (writes).
    pub deferred: sys::napi_deferred,
    pub owner: Rc<dyn Settle>,
    pub op: Op,
    /// An AbortSignal listener is registered for this op (the JS helper keeps it).
    pub watched: bool,
    /// The signal fired and we asked the core to cancel.
    pub aborted: bool,
}

/// JS helpers from `api.js`, called from Rust.
struct Helpers {
    watch: sys::napi_ref,
    unwatch: sys::napi_ref,
    abort_error: sys::napi_ref,
    close_on_abort: sys::napi_ref,
    destroy_on_abort: sys::napi_ref,
    chunk: sys::napi_ref,
    datagram: sys::napi_ref,
}

/// Reads shorter than this are copied into a shared ArrayBuffer and handed out as views of
/// it, as `Buffer.allocUnsafe` does with its pool (same sizes): one allocation serves many
/// small reads. Longer reads get a Buffer of their own.
const POOL_SIZE: usize = 8 * 1024;
const POOLED_MAX: usize = POOL_SIZE / 2;

/// Write buffers kept for reuse (see `EnvState::give_back_write`), and the largest kept.
const WRITE_BUFS_KEPT: usize = 16;
const WRITE_BUF_MAX: usize = 256 * 1024;

/// The current pool: a strongly referenced ArrayBuffer and how much of it is handed out.
struct Pool {
    buf: sys::napi_ref,
    used: usize,
}

pub(crate) struct EnvState {
    pub env: RawEnv,
    pub rt: RefCell<Runtime>,
    pub pending: RefCell<PendingMap>,
    next_id: Cell<u64>,
    /// Open connections and servers: they keep the loop alive, as in `net`.
    resources: Cell<usize>,
    /// Pending ops that do not keep the loop alive: reads of unref'd connections.
    weak: Cell<usize>,
    /// Connections whose JS object was collected while open; closed at the next turn.
    pub deferred_closes: RefCell<Vec<Handle>>,
    out: RefCell<Vec<Completion>>,
    /// Completions `after_call` settled since the last loop wakeup (see `INLINE_STREAK`).
    inline_settled: Cell<usize>,
    /// Completions are being settled (`drive`, `after_call`): a call from a callback that
    /// posts more leaves them to that loop, so that each op's completions settle in order
    /// (a multi-shot read's chunks).
    settling: Cell<bool>,
    /// Makes the backend fd readable: how work already queued asks for the next turn.
    waker: RuntimeWaker,
    poll: *mut uv::Handle,
    timer: *mut uv::Handle,
    timer_armed: Cell<bool>,
    refd: Cell<bool>,
    async_ctx: sys::napi_async_context,
    resource: sys::napi_ref,
    /// One promise already resolved with `undefined`, returned by every write that is
    /// accepted at once: it saves a promise and a deferred (a V8 global handle) per write.
    resolved: sys::napi_ref,
    helpers: RefCell<Option<Helpers>>,
    pool: RefCell<Pool>,
    /// Write buffers to reuse, shared by every connection (the core hands each write's
    /// `Vec` back): an idle connection keeps none.
    write_bufs: RefCell<Vec<Vec<u8>>>,
}

type PendingMap = IdMap<Pending>;

thread_local! {
    /// This thread's environment state: an `Rc` turned into a raw pointer, so that the
    /// thread-local has no destructor. A destructor would drop the runtime during
    /// `process.exit()`, after tokio's own thread-locals are gone (a panic, then an abort);
    /// the state is dropped in the environment's cleanup hook instead, or leaked at exit.
    static STATE: Cell<*const EnvState> = const { Cell::new(ptr::null()) };
}

/// This thread's environment state (None before init or after teardown).
pub(crate) fn state() -> Option<Rc<EnvState>> {
    let p = STATE.with(Cell::get);
    if p.is_null() {
        return None;
    }
    // SAFETY: a non-null STATE came from `Rc::into_raw` and still owns one count (given
    // back only by `take_state`), so the allocation is alive; we add a count for the clone.
    unsafe {
        Rc::increment_strong_count(p);
        Some(Rc::from_raw(p))
    }
}

fn set_state(st: &Rc<EnvState>) {
    STATE.with(|s| s.set(Rc::into_raw(st.clone())));
}

fn take_state() -> Option<Rc<EnvState>> {
    let p = STATE.with(|s| s.replace(ptr::null()));
    // SAFETY: a non-null STATE owns one count, handed back here exactly once.
    (!p.is_null()).then(|| unsafe { Rc::from_raw(p) })
}

/// The state, or a thrown Error when the module is used where it was not initialised.
pub(crate) fn state_or_throw(env: RawEnv) -> Option<Rc<EnvState>> {
    let st = state();
    if st.is_none() {
        js::throw(
            env,
            js::error(
                env,
                "ERR_POLYIO_NO_RUNTIME",
                "polyio has no runtime in this environment",
            ),
        );
    }
    st
}

/// Creates this environment's runtime and loop handles; runs `api.js` over `exports`.
pub(crate) fn init(env: RawEnv, exports: Value) -> napi::Result<()> {
    if let Some(st) = state() {
        if st.env == env {
            return install_api(&st, exports);
        }
        return Err(napi::Error::from_reason(
            "polyio supports one Node environment per thread",
        ));
    }
    let rt = Runtime::new(Options::default())
        .map_err(|s| napi::Error::from_reason(format!("polyio runtime: {s}")))?;
    let mut lp: *mut sys::uv_loop_s = ptr::null_mut();
    // SAFETY: valid env; writes the environment's loop.
    js::ok(unsafe { sys::napi_get_uv_event_loop(env, &mut lp) })?;
    let lp = lp.cast::<uv::Loop>();
    let poll = uv::alloc(uv::UV_POLL);
    let timer = uv::alloc(uv::UV_TIMER);
    // SAFETY: `lp` is this environment's loop, on this thread; the handles are fresh
    // zeroed memory of the sizes libuv asked for. They are closed in `cleanup`.
    unsafe {
        if uv::uv_poll_init(lp, poll, rt.backend_fd()) != 0
            || uv::uv_poll_start(poll, uv::UV_READABLE, on_poll) != 0
            || uv::uv_timer_init(lp, timer) != 0
        {
            return Err(napi::Error::from_reason(
                "polyio: libuv handle setup failed",
            ));
        }
        uv::uv_unref(poll);
        uv::uv_unref(timer);
    }
    let resource = js::object(env);
    let mut async_ctx = ptr::null_mut();
    // SAFETY: valid env, resource object and name.
    js::ok(unsafe {
        sys::napi_async_init(env, resource, js::string(env, "polyio"), &mut async_ctx)
    })?;
    let st = Rc::new(EnvState {
        env,
        waker: rt.waker(),
        rt: RefCell::new(rt),
        pending: RefCell::new(PendingMap::default()),
        next_id: Cell::new(1),
        resources: Cell::new(0),
        weak: Cell::new(0),
        deferred_closes: RefCell::new(Vec::new()),
        out: RefCell::new(Vec::with_capacity(BATCH)),
        inline_settled: Cell::new(0),
        settling: Cell::new(false),
        poll,
        timer,
        timer_armed: Cell::new(false),
        refd: Cell::new(false),
        async_ctx,
        resource: js::reference(env, resource),
        resolved: js::reference(env, js::settled(env, Ok(js::undefined(env)))?),
        helpers: RefCell::new(None),
        pool: RefCell::new(Pool {
            buf: ptr::null_mut(),
            used: POOL_SIZE,
        }),
        write_bufs: RefCell::new(Vec::new()),
    });
    set_state(&st);
    // SAFETY: valid env; `cleanup` takes no argument.
    js::ok(unsafe { sys::napi_add_env_cleanup_hook(env, Some(cleanup), ptr::null_mut()) })?;
    install_api(&st, exports)
}

/// Runs `api.js` (the JS half: async iterators, `Symbol.asyncDispose`, `toDuplex`, the
/// AbortSignal helpers) with the exports object; keeps the helpers it returns.
fn install_api(st: &EnvState, exports: Value) -> napi::Result<()> {
    let env = st.env;
    let src = js::string(env, concat!("(", include_str!("api.js"), ")"));
    let mut f = ptr::null_mut();
    // SAFETY: valid env and a string script.
    js::ok(unsafe { sys::napi_run_script(env, src, &mut f) })?;
    let helpers = js::call(env, f, &[exports])
        .ok_or_else(|| napi::Error::from_reason("polyio: api.js failed"))?;
    let get = |name: &str| {
        js::get(env, helpers, name)
            .map(|v| js::reference(env, v))
            .ok_or_else(|| napi::Error::from_reason(format!("polyio: api.js lacks {name}")))
    };
    *st.helpers.borrow_mut() = Some(Helpers {
        watch: get("watch")?,
        unwatch: get("unwatch")?,
        abort_error: get("abortError")?,
        close_on_abort: get("closeOnAbort")?,
        destroy_on_abort: get("destroyOnAbort")?,
        chunk: get("chunk")?,
        datagram: get("datagram")?,
    });
    Ok(())
}

unsafe extern "C" fn cleanup(_arg: *mut c_void) {
    let Some(st) = take_state() else {
        return;
    };
    // SAFETY: the handles were initialised in `init` and are closed exactly once, here;
    // `free_on_close` frees them after libuv is done with them.
    unsafe {
        uv::uv_close(st.poll, uv::free_on_close);
        uv::uv_close(st.timer, uv::free_on_close);
    }
    // Outstanding promises are never settled: the environment is going away. Dropping the
    // runtime cancels its operations, closes its sockets and joins its threads.
    st.pending.borrow_mut().clear();
    st.rt.borrow_mut().shutdown_all();
}

unsafe extern "C" fn on_poll(_h: *mut uv::Handle, _status: i32, _events: i32) {
    drive();
}

unsafe extern "C" fn on_timer(_h: *mut uv::Handle) {
    if let Some(st) = state() {
        st.timer_armed.set(false);
    }
    drive();
}

/// Creates the JS object for `obj` (a connection or server) and roots it in `js_ref`: as in
/// `net`, an open one is a GC root and stays open until closed.
pub(crate) fn rooted<T: napi::bindgen_prelude::ToNapiValue>(
    env: RawEnv,
    obj: T,
    js_ref: &Cell<sys::napi_ref>,
) -> napi::Result<Value> {
    // SAFETY: valid env; napi-rs creates an instance of the registered class.
    let v = unsafe { T::to_napi_value(env, obj) }?;
    js_ref.set(js::reference(env, v));
    Ok(v)
}

/// The `Drop` of a connection or server collected while open: it is closed at the next
/// turn (a finalizer must not re-enter the runtime).
pub(crate) fn close_when_collected(closed: &Cell<bool>, handle: Handle) {
    if closed.replace(true) {
        return;
    }
    if let Some(st) = state()
        && let Ok(mut q) = st.deferred_closes.try_borrow_mut()
    {
        q.push(handle);
        drop(q);
        st.drop_resource();
        st.wake_soon();
    }
}

/// One wakeup: turn the runtime and settle what completed, in one callback scope.
fn drive() {
    let Some(st) = state() else { return };
    st.inline_settled.set(0);
    let env = st.env;
    let mut hscope = ptr::null_mut();
    let mut cscope = ptr::null_mut();
    // SAFETY: we are on the environment's thread in a libuv callback, outside JS: opening a
    // handle scope and a callback scope is what `napi_make_callback` does. Closing the
    // callback scope runs the microtasks (promise continuations) and `process.nextTick`s.
    unsafe {
        sys::napi_open_handle_scope(env, &mut hscope);
        let resource = js::deref(env, st.resource);
        sys::napi_open_callback_scope(env, resource, st.async_ctx, &mut cscope);
    }
    st.settling.set(true);
    loop {
        let mut out = std::mem::take(&mut *st.out.borrow_mut());
        let n = {
            let mut rt = st.rt.borrow_mut();
            for h in st.deferred_closes.borrow_mut().drain(..) {
                let _ = rt.close(h);
            }
            rt.turn(&mut out, BATCH)
        };
        for c in out.drain(..) {
            st.settle(c);
        }
        *st.out.borrow_mut() = out;
        if n < BATCH {
            break;
        }
    }
    st.settling.set(false);
    // What the callbacks' calls completed inline, in order; then the timer and refs.
    st.after_call();
    // SAFETY: closes the scopes opened above, innermost first.
    unsafe {
        sys::napi_close_callback_scope(env, cscope);
        sys::napi_close_handle_scope(env, hscope);
    }
}

impl EnvState {
    /// An empty write buffer, reused when one was given back.
    pub(crate) fn take_write_buf(&self) -> Vec<u8> {
        self.write_bufs.borrow_mut().pop().unwrap_or_default()
    }

    /// Keeps a written buffer for a later write (a few, and small ones only).
    pub(crate) fn give_back_write(&self, mut v: Vec<u8>) {
        let mut bufs = self.write_bufs.borrow_mut();
        if v.capacity() <= WRITE_BUF_MAX && bufs.len() < WRITE_BUFS_KEPT {
            v.clear();
            bufs.push(v);
        }
    }

    pub fn next_id(&self) -> u64 {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        id
    }

    /// The shared promise resolved with `undefined`.
    pub fn resolved(&self) -> Value {
        js::deref(self.env, self.resolved)
    }

    pub fn add_resource(&self) {
        self.resources.set(self.resources.get() + 1);
    }

    pub fn drop_resource(&self) {
        self.resources.set(self.resources.get().saturating_sub(1));
    }

    /// `ref()` / `unref()` of an open connection or server: whether it keeps the loop alive,
    /// as a `net` handle's. Closing one sets it back to ref'd first, so that `release` and
    /// `close_when_collected` drop the count every open one holds.
    pub fn set_ref(&self, refd: &Cell<bool>, on: bool) {
        if refd.replace(on) != on {
            if on {
                self.add_resource();
            } else {
                self.drop_resource();
            }
            self.rearm();
        }
    }

    /// Counts `n` more (or, negative, fewer) pending ops as not keeping the loop alive.
    pub fn weaken(&self, n: isize) {
        self.weak.set(self.weak.get().saturating_add_signed(n));
    }

    /// Closes an open connection's or server's handle now, stops it keeping the loop alive
    /// and unroots its JS object. The caller sets its `closed` flag first (once).
    pub fn release(&self, handle: Handle, js_ref: &Cell<sys::napi_ref>) {
        let _ = self.rt.borrow_mut().close(handle);
        self.drop_resource();
        js::unref(self.env, js_ref.replace(ptr::null_mut()));
    }

    /// Records a pending op (and watches its signal, if any) and settles what the submit
    /// call completed inline. Returns the op's promise.
    pub fn submitted(
        &self,
        id: u64,
        owner: Rc<dyn Settle>,
        op: Op,
        signal: Option<Value>,
    ) -> napi::Result<Value> {
        let (deferred, promise) = js::promise(self.env)?;
        self.track(id, deferred, owner, op, signal);
        self.after_call();
        Ok(promise)
    }

    /// Records a pending op without a promise of its own (writes) or with one made by the caller.
    pub fn track(
        &self,
        id: u64,
        deferred: sys::napi_deferred,
        owner: Rc<dyn Settle>,
        op: Op,
        signal: Option<Value>,
    ) {
        let watched = signal.is_some();
        self.pending.borrow_mut().insert(
            id,
            Pending {
                deferred,
                owner,
                op,
                watched,
                aborted: false,
            },
        );
        if let Some(sig) = signal {
            self.call_helper(|h| h.watch, &[sig, js::number(self.env, id as f64)]);
        }
    }

    /// After any call that touched the runtime: settle completions it posted (the inline
    /// fast path, cancellations), then re-arm the timer and the loop refs.
    /// Past `INLINE_STREAK` settles since the loop last woke us, they wait for the next loop
    /// iteration instead (`rearm` sees them queued and starts the timer at 0 ms), so timers
    /// and other I/O get their turn, as with `fs/promises`.
    /// Called while completions are being settled (from a callback), it does nothing: the
    /// loop settling them drains what this call posted after the ones before it.
    pub fn after_call(&self) {
        if self.settling.replace(true) {
            return;
        }
        loop {
            if self.inline_settled.get() >= INLINE_STREAK {
                break;
            }
            let mut out = std::mem::take(&mut *self.out.borrow_mut());
            let n = self.rt.borrow_mut().drain(&mut out, BATCH);
            self.inline_settled.set(self.inline_settled.get() + n);
            for c in out.drain(..) {
                self.settle(c);
            }
            *self.out.borrow_mut() = out;
            // Settling may have posted more (a callback's calls): drain until none.
            if n == 0 {
                break;
            }
        }
        self.settling.set(false);
        self.rearm();
    }

    /// Runs a turn in the loop's next poll phase (for work found outside a JS call, or
    /// queued and not yet progressed): the backend fd becomes readable. Not a 0 ms timer: a
    /// timer restarted from its own callback is due again in the same timers phase, so work
    /// that keeps queuing more (a chain of reads io_uring completes at once) would never let
    /// the loop reach its poll and check phases, or JS timers fire.
    pub fn wake_soon(&self) {
        self.waker.wake();
    }

    /// Starts or stops the timer for the runtime's next timeout, and refs the loop handles
    /// only while something is pending or open.
    pub fn rearm(&self) {
        let next = self.rt.borrow().next_timeout();
        // SAFETY: the handles live until `cleanup`, which also clears STATE (so no
        // EnvState reaches here after it).
        unsafe {
            match next {
                None if self.timer_armed.get() => {
                    uv::uv_timer_stop(self.timer);
                    self.timer_armed.set(false);
                }
                None => {}
                Some(d) if d.is_zero() => {
                    if self.timer_armed.get() {
                        uv::uv_timer_stop(self.timer);
                        self.timer_armed.set(false);
                    }
                    self.waker.wake();
                }
                Some(d) => {
                    let ms = d.as_nanos().div_ceil(1_000_000).min(u64::MAX as u128) as u64;
                    uv::uv_timer_start(self.timer, on_timer, ms, 0);
                    self.timer_armed.set(true);
                }
            }
            let want = self.pending.borrow().len() > self.weak.get() || self.resources.get() > 0;
            if want != self.refd.get() {
                if want {
                    uv::uv_ref(self.poll);
                    uv::uv_ref(self.timer);
                } else {
                    uv::uv_unref(self.poll);
                    uv::uv_unref(self.timer);
                }
                self.refd.set(want);
            }
        }
    }

    fn call_helper(
        &self,
        pick: impl FnOnce(&Helpers) -> sys::napi_ref,
        args: &[Value],
    ) -> Option<Value> {
        let r = self.helpers.borrow().as_ref().map(pick)?;
        let f = js::deref(self.env, r);
        js::call(self.env, f, args)
    }

    /// An `AbortError` for `signal` (its `reason` as `cause`).
    pub fn abort_error_for(&self, signal: Value) -> Value {
        self.call_helper(|h| h.abort_error, &[signal])
            .unwrap_or_else(|| js::error(self.env, "ABORT_ERR", "The operation was aborted"))
    }

    /// `signal`, or Err(its `AbortError`) when it is already aborted: a call with such a
    /// signal rejects at once and starts nothing.
    pub fn unless_aborted(&self, signal: Option<Value>) -> Result<Option<Value>, Value> {
        match signal {
            Some(sig) if self.is_aborted(sig) => Err(self.abort_error_for(sig)),
            s => Ok(s),
        }
    }

    /// Whether `signal` is already aborted.
    pub fn is_aborted(&self, signal: Value) -> bool {
        js::get(self.env, signal, "aborted").and_then(|v| js::as_bool(self.env, v)) == Some(true)
    }

    /// Closes `server` when `signal` fires (listen's signal).
    pub fn close_on_abort(&self, signal: Value, server: Value) {
        self.call_helper(|h| h.close_on_abort, &[signal, server]);
    }

    /// `promise`, or (while it is pending) an `AbortError` once `signal` fires, which also
    /// destroys `conn` (write's and end's signal, as `stream.addAbortSignal`).
    pub fn destroy_on_abort(&self, signal: Value, conn: Value, promise: Value) -> Value {
        self.call_helper(|h| h.destroy_on_abort, &[signal, conn, promise])
            .unwrap_or(promise)
    }

    /// Called by the abort listener: cancel op `id` in the core.
    pub fn abort(&self, id: u64) {
        let known = match self.pending.borrow_mut().get_mut(&id) {
            Some(p) => {
                p.aborted = true;
                true
            }
            None => false,
        };
        if known {
            // NotFound: it finished already; its completion settles it normally.
            let _ = self.rt.borrow_mut().cancel(id);
            self.after_call();
        }
    }

    /// The JS value for `data` read from a connection: a Buffer, or with `iter` an iterator
    /// result `{ value: Buffer, done: false }`. Short reads are views into the pool.
    pub fn chunk(&self, data: &[u8], iter: bool) -> napi::Result<Value> {
        let (src, offset, length) = self.pooled(data)?;
        let env = self.env;
        let args = [src, offset, length, js::boolean(env, iter)];
        self.call_helper(|h| h.chunk, &args)
            .ok_or_else(|| napi::Error::from_reason("polyio: chunk() failed"))
    }

    /// The JS value for datagram `data` from `from`: `{ address, family, port, data, size }`
    /// (with `iter`, as an iterator result), built by api.js's `datagram()` from the bytes
    /// (a view into the pool when short) and the address as a number (IPv4, whose text JS
    /// keeps for the next datagram from the same host) or a string (IPv6).
    pub fn datagram(&self, data: &[u8], from: SocketAddr, iter: bool) -> napi::Result<Value> {
        let (src, offset, length) = self.pooled(data)?;
        let env = self.env;
        let ip = match from {
            SocketAddr::V4(a) => js::number(env, f64::from(a.ip().to_bits())),
            SocketAddr::V6(a) => js::string(env, &a.ip().to_string()),
        };
        let port = js::number(env, f64::from(from.port()));
        let args = [src, offset, length, ip, port, js::boolean(env, iter)];
        self.call_helper(|h| h.datagram, &args)
            .ok_or_else(|| napi::Error::from_reason("polyio: datagram() failed"))
    }

    /// `data` for JS as (source, offset, length): a copy in the shared pool (an ArrayBuffer,
    /// `length` >= 0) when short, else a Buffer of its own (offset 0, length -1).
    pub fn pooled(&self, data: &[u8]) -> napi::Result<(Value, Value, Value)> {
        let env = self.env;
        let n = data.len();
        let (src, offset, length) = if n < POOLED_MAX {
            let mut pool = self.pool.borrow_mut();
            let mut cur = (!pool.buf.is_null()).then(|| js::deref(env, pool.buf));
            // Checked right before each copy (no JS runs in between): a user may have
            // detached the ArrayBuffer (transferred it), which would leave no memory to write.
            let mut space = cur.map_or((ptr::null_mut(), 0), |ab| js::arraybuffer_info(env, ab));
            if space.1 < POOL_SIZE || POOL_SIZE - pool.used < n {
                let (ab, p) = js::arraybuffer_unzeroed(env, POOL_SIZE)?;
                js::unref(
                    env,
                    std::mem::replace(&mut pool.buf, js::reference(env, ab)),
                );
                pool.used = 0;
                cur = Some(ab);
                space = (p, POOL_SIZE);
            }
            let at = pool.used;
            // SAFETY: `space.0` is the live, attached pool's memory, `POOL_SIZE` bytes long,
            // and `at + n <= POOL_SIZE`; the regions handed out so far end at `at`.
            unsafe { ptr::copy_nonoverlapping(data.as_ptr(), space.0.add(at), n) };
            // Keep views 8-byte aligned, as Buffer's pool does.
            pool.used = (at + n + 7) & !7;
            (
                cur.unwrap_or_else(|| js::undefined(env)),
                at as f64,
                n as f64,
            )
        } else {
            (js::buffer_copy(env, data)?, 0.0, -1.0)
        };
        Ok((src, js::number(env, offset), js::number(env, length)))
    }

    /// Settles one completion: hands it to the kind that submitted the op.
    fn settle(&self, c: Completion) {
        let env = self.env;
        if c.flags & FLAG_MORE != 0 {
            // One of a multi-shot op's completions: the op stays pending (no promise, no
            // signal: only `__readStart()`'s reads are multi-shot).
            let Some((owner, op)) = self
                .pending
                .borrow()
                .get(&c.user_data)
                .map(|p| (p.owner.clone(), p.op))
            else {
                return;
            };
            let _ = owner.settle(self, op, c, None);
            return;
        }
        let Some(p) = self.pending.borrow_mut().remove(&c.user_data) else {
            return;
        };
        let mut aborted = None;
        if p.watched {
            let id = js::number(env, c.user_data as f64);
            if p.aborted && c.status() == Status::Canceled {
                aborted = self.call_helper(|h| h.abort_error, &[id]);
            } else {
                self.call_helper(|h| h.unwatch, &[id]);
            }
        }
        let result = p.owner.settle(self, p.op, c, aborted);
        if !p.deferred.is_null() {
            js::settle(env, p.deferred, result);
        }
    }
}

/// Gives the pages of freed memory back to the system (glibc keeps freed heap memory for the
/// process unless it sits at the top of the heap). A walk of the heap: for rare moments, such
/// as a large write backlog just drained.
pub(crate) fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointer and only releases memory the allocator holds free.
    unsafe {
        libc::malloc_trim(0);
    }
}
