//! `connect()` and `listen()`, taking their options as `net` does: the options pick the
//! kind of socket (`{ port, host }`: TCP) and that kind's module opens it. Another kind
//! (`{ path }`) is one more arm in each.

use napi::Env;
use napi::bindgen_prelude::Unknown;
use napi_derive::napi;

use crate::args::options_object;
use crate::env::state_or_throw;
use crate::js::{self, Value};
use crate::tcp;

/// Opens a TCP connection to `host:port` (`host` defaults to `'localhost'`; names are
/// resolved off the loop thread, restricted to `family` 4 or 6 when given). A name's
/// addresses are tried as Node's `autoSelectFamily` (on by default): families
/// interleaved, the next address started after `autoSelectFamilyAttemptTimeout` ms
/// (default 250, at least 10) or as soon as an attempt fails, the first to connect wins;
/// with `autoSelectFamily: false`, one after another. Resolves with a `Connection`;
/// rejects with an `Error` whose `code` is Node's (`'ECONNREFUSED'`, `'ENOTFOUND'` with
/// `syscall: 'getaddrinfo'`, `'ETIMEDOUT'` when `timeout` ms pass first, `'ABORT_ERR'`
/// when `signal` aborts). `timeout` then stays on the
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
    match options_object(env, &options, true) {
        Ok(o) => tcp::connect(&st, o.unwrap_or_else(|| js::object(env))),
        Err(e) => js::settled(env, Err(e)),
    }
}

/// Binds and listens on `host:port` (`host` defaults to `'::'`, or `'0.0.0.0'` where
/// there is no IPv6, as in `net`; a name is looked up off the loop thread and the first
/// address bound, as `net` does, rejecting with `'ENOTFOUND'` if there is none; `port` to
/// 0: an
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
    match options_object(env, &options, false) {
        Ok(o) => tcp::listen(&st, o.unwrap_or_else(|| js::object(env))),
        Err(e) => js::settled(env, Err(e)),
    }
}
