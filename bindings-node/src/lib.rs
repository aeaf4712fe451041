//! polyio for Node: napi-rs over `polyio-core`. One runtime per Node environment, driven
//! from the environment's own libuv loop (see `env`); `Connection` and `Server` wrap core
//! handles; `api.js` adds the JS-only parts (async iterators, `Symbol.asyncDispose`,
//! `toDuplex()`, AbortSignal listeners). No thread hop per operation, no threadsafe
//! function per operation: results ready at call time settle at once, the rest settle in
//! batches, one callback scope per loop wakeup.

#![deny(unsafe_op_in_unsafe_fn)]

mod conn;
mod env;
mod js;
mod server;
mod uv;

use napi::bindgen_prelude::{Object, Unknown};
use napi::{Env, JsValue, sys};
use napi_derive::napi;
use polyio_core::{ListenOptions, Status};

use crate::conn::signal_of;
use crate::env::{Kind, state_or_throw};
use crate::js::{RawEnv, Value};

pub use conn::Connection;
pub use server::Server;

#[napi(module_exports)]
pub fn init(env: Env, exports: Object) -> napi::Result<()> {
    env::init(env.raw(), exports.raw())
}

fn bad_type(env: RawEnv, what: &str, expected: &str) -> Value {
    js::type_error(
        env,
        "ERR_INVALID_ARG_TYPE",
        &format!("The \"{what}\" argument must be {expected}"),
    )
}

/// `options` must be an object.
fn options_object(
    env: RawEnv,
    options: &Option<Unknown>,
    required: bool,
) -> Result<Option<Value>, Value> {
    match options
        .as_ref()
        .map(|u| u.raw())
        .filter(|v| !js::is_nullish(env, *v))
    {
        None if required => Err(bad_type(env, "options", "of type object")),
        None => Ok(None),
        Some(v) if js::type_of(env, v) == sys::ValueType::napi_object => Ok(Some(v)),
        Some(_) => Err(bad_type(env, "options", "of type object")),
    }
}

/// A port: an integer (or a string of digits) in `min..=65535`.
fn port_of(env: RawEnv, o: Value, min: u16, default: Option<u16>) -> Result<u16, Value> {
    let Some(v) = js::get(env, o, "port") else {
        return default.ok_or_else(|| bad_type(env, "options.port", "of type number"));
    };
    let n = match (js::as_f64(env, v), js::as_string(env, v)) {
        (Some(n), _) => n,
        (None, Some(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse::<f64>().unwrap_or(f64::NAN)
        }
        (None, Some(_)) => f64::NAN,
        _ => return Err(bad_type(env, "options.port", "of type number")),
    };
    if n.fract() == 0.0 && n >= f64::from(min) && n <= 65535.0 {
        Ok(n as u16)
    } else {
        Err(js::range_error(
            env,
            "ERR_SOCKET_BAD_PORT",
            &format!("options.port should be >= {min} and < 65536. Received {n}."),
        ))
    }
}

fn string_opt(env: RawEnv, o: Value, key: &str) -> Result<Option<String>, Value> {
    match js::get(env, o, key) {
        None => Ok(None),
        Some(v) => js::as_string(env, v)
            .map(Some)
            .ok_or_else(|| bad_type(env, &format!("options.{key}"), "of type string")),
    }
}

fn bool_opt(env: RawEnv, o: Value, key: &str) -> Result<Option<bool>, Value> {
    match js::get(env, o, key) {
        None => Ok(None),
        Some(v) => js::as_bool(env, v)
            .map(Some)
            .ok_or_else(|| bad_type(env, &format!("options.{key}"), "of type boolean")),
    }
}

/// A duration or count: a finite number in `0..=max`.
fn number_in(env: RawEnv, v: Value, what: &str, max: f64) -> Result<f64, Value> {
    let n = js::as_f64(env, v).ok_or_else(|| bad_type(env, what, "of type number"))?;
    if n.is_finite() && n >= 0.0 && n <= max {
        Ok(n)
    } else {
        Err(js::range_error(
            env,
            "ERR_OUT_OF_RANGE",
            &format!(
                "The value of \"{what}\" is out of range. It must be >= 0 and <= {max}. Received {n}"
            ),
        ))
    }
}

fn number_opt(env: RawEnv, o: Value, key: &str, max: f64) -> Result<Option<f64>, Value> {
    js::get(env, o, key)
        .map(|v| number_in(env, v, &format!("options.{key}"), max))
        .transpose()
}

/// Largest delay accepted (ms): `Number.MAX_SAFE_INTEGER`.
const MAX_MS: f64 = 9_007_199_254_740_991.0;

fn reject(env: RawEnv, err: Value) -> napi::Result<Value> {
    js::settled(env, Err(err))
}

/// Opens a TCP connection to `host:port` (`host` defaults to `'localhost'`; names are
/// resolved off the loop thread). Resolves with a `Connection`; rejects with an `Error`
/// whose `code` is Node's (`'ECONNREFUSED'`, `'ENOTFOUND'`, `'ETIMEDOUT'` when `timeout`
/// ms pass first, `'ABORT_ERR'` when `signal` aborts). `timeout` then stays on the
/// connection as its idle timeout (see `Connection.setTimeout`). Bad options reject with a
/// `TypeError` or `RangeError`.
#[napi(
    ts_args_type = "options: ConnectOptions",
    ts_return_type = "Promise<Connection>"
)]
pub fn connect(env: Env, options: Option<Unknown>) -> napi::Result<Value> {
    let env = env.raw();
    let Some(st) = state_or_throw(env) else {
        return Ok(js::undefined(env));
    };
    let parsed = (|| {
        let o = options_object(env, &options, true)?.unwrap_or_else(|| js::object(env));
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
    st.submitted(
        id,
        Kind::Connect {
            no_delay,
            keep_alive,
            timeout,
        },
        signal,
    )
}

/// Binds and listens on `host:port` (`host` defaults to `'::'`, or `'0.0.0.0'` where
/// there is no IPv6, as in `net`; `port` to 0: an
/// ephemeral port, see `Server.address()`). `backlog` defaults to 511, `reusePort` sets
/// `SO_REUSEPORT` (one server per thread or worker on one port). Aborting `signal` closes
/// the server. Rejects with `'EADDRINUSE'`, `'EACCES'`, ... as Node spells them.
#[napi(
    ts_args_type = "options?: ListenOptions",
    ts_return_type = "Promise<Server>"
)]
pub fn listen(env: Env, options: Option<Unknown>) -> napi::Result<Value> {
    let env = env.raw();
    let Some(st) = state_or_throw(env) else {
        return Ok(js::undefined(env));
    };
    let parsed = (|| {
        let o = options_object(env, &options, false)?.unwrap_or_else(|| js::object(env));
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

/// Resolves after `ms` milliseconds (a polyio timer, driven like every other operation).
/// With `signal`, an abort rejects with an `AbortError` and cancels the timer.
#[napi(
    ts_args_type = "ms: number, options?: { signal?: AbortSignal }",
    ts_return_type = "Promise<void>"
)]
pub fn sleep(env: Env, ms: Option<Unknown>, options: Option<Unknown>) -> napi::Result<Value> {
    let env = env.raw();
    let Some(st) = state_or_throw(env) else {
        return Ok(js::undefined(env));
    };
    let parsed = (|| {
        let ms = match ms.as_ref().map(|u| u.raw()) {
            Some(v) if !js::is_nullish(env, v) => number_in(env, v, "ms", MAX_MS)?,
            _ => return Err(bad_type(env, "ms", "of type number")),
        };
        let signal = conn::parse_signal(env, options.as_ref().map(|u| u.raw()), "options")?;
        Ok((ms, signal))
    })();
    let (ms, signal) = match parsed {
        Ok(p) => p,
        Err(e) => return reject(env, e),
    };
    if let Err(e) = st.unless_aborted(signal) {
        return reject(env, e);
    }
    let id = st.next_id();
    if let Err(s) = st.rt.borrow_mut().timer(ms.ceil() as u64, id) {
        return reject(env, js::status_error(env, s, "sleep"));
    }
    st.submitted(id, Kind::Sleep, signal)
}

/// Internal: the AbortSignal listener's way to cancel operation `id`.
#[napi(js_name = "__cancel", skip_typescript)]
pub fn cancel_op(id: f64) {
    if let Some(st) = env::state() {
        st.abort(id as u64);
    }
}

/// Internal: the runtime's counters (turns, completions, inline completions, in flight),
/// for tests and tuning.
#[napi(js_name = "__stats", skip_typescript)]
pub fn stats(env: Env) -> Value {
    let env = env.raw();
    let o = js::object(env);
    if let Some(st) = env::state() {
        let s = st.rt.borrow().stats();
        js::set(env, o, "turns", js::number(env, s.turns as f64));
        js::set(env, o, "completions", js::number(env, s.completions as f64));
        js::set(
            env,
            o,
            "inlineCompletions",
            js::number(env, s.inline_completions as f64),
        );
        js::set(env, o, "inFlight", js::number(env, s.in_flight as f64));
    }
    o
}
