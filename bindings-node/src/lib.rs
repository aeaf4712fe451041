//! polyio for Node: napi-rs over `polyio-core`. One runtime per Node environment, driven
//! from the environment's own libuv loop (see `env`); each kind of I/O is a module that
//! submits its ops and settles their completions: `tcp`, `unix`, `conn` (`Connection`,
//! every stream kind's), `server` (`Server`, every stream kind's), `timer` (`sleep`), `dns`
//! (`lookup`), `udp` (`bindUdp()`, `UdpSocket`), `fs` (files: `readFile`, `writeFile`,
//! `open`, whose JS side is in `api.js`); `net` has `connect()` and `listen()`, which pick
//! the kind from their options.
//! `api.js` adds the JS-only parts (async iterators, `Symbol.asyncDispose`, `toDuplex()`,
//! AbortSignal listeners). No thread hop per operation, no threadsafe function per
//! operation: results ready at call time settle at once, the rest settle in batches, one
//! callback scope per loop wakeup.

#![deny(unsafe_op_in_unsafe_fn)]

// Below: the environment and what every kind uses. Above it: one module per kind.
mod args;
mod env;
mod js;
mod uv;

mod conn;
mod dns;
mod fs;
mod net;
mod server;
mod tcp;
mod timer;
mod udp;
mod unix;

use napi::bindgen_prelude::Object;
use napi::{Env, JsValue};
use napi_derive::napi;

use crate::js::Value;

pub use conn::Connection;
pub use server::Server;
pub use udp::UdpSocket;

#[napi(module_exports)]
pub fn init(env: Env, exports: Object) -> napi::Result<()> {
    env::init(env.raw(), exports.raw())
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
