//! Name lookups for Node: `lookup(hostname, { family, all, signal })` with
//! `dns.promises.lookup`'s results (`{ address, family }`, or an array of them with `all`)
//! and errors (`code` `'ENOTFOUND'` / `'EAI_AGAIN'`, `syscall: 'getaddrinfo'`, `hostname`),
//! on polyio's lookup pool; an abort rejects with an `AbortError` and cancels the lookup.

use std::net::IpAddr;
use std::rc::Rc;

use napi::bindgen_prelude::Unknown;
use napi::{Env, JsValue, sys};
use napi_derive::napi;
use polyio_core::{Completion, LookupHints, Status};

use crate::args::{bad_type, family_of, signal_of};
use crate::env::{EnvState, Op, Settle, state_or_throw};
use crate::js::{self, Value};

/// A pending lookup: the name (for its error) and whether every address is wanted.
struct Lookup {
    hostname: String,
    all: bool,
}

impl Settle for Lookup {
    fn settle(
        &self,
        st: &EnvState,
        _op: Op,
        c: Completion,
        aborted: Option<Value>,
    ) -> Result<Value, Value> {
        let env = st.env;
        match (aborted, c.status()) {
            (Some(e), _) => Err(e),
            (None, Status::Ok) => {
                let addrs: Vec<Value> = c
                    .addrs
                    .iter()
                    .flatten()
                    .map(|a| {
                        let ip = a.addr.ip();
                        let fam = if ip.is_ipv4() { 4 } else { 6 };
                        js::address(env, js::string(env, &ip.to_string()), fam)
                    })
                    .collect();
                match addrs.first() {
                    _ if self.all => js::array(env, &addrs)
                        .map_err(|_| js::error(env, "ENOMEM", "out of memory")),
                    Some(a) => Ok(*a),
                    None => Err(js::lookup_error(
                        env,
                        Status::NameNotResolved,
                        &self.hostname,
                    )),
                }
            }
            (None, s @ (Status::NameNotResolved | Status::NameTryAgain)) => {
                Err(js::lookup_error(env, s, &self.hostname))
            }
            (None, s) => Err(js::status_error(env, s, "getaddrinfo")),
        }
    }
}

fn reject(env: js::RawEnv, err: Value) -> napi::Result<Value> {
    js::settled(env, Err(err))
}

/// Resolves `hostname` as `dns.promises.lookup` does: the first address as
/// `{ address, family }`, or with `all: true` every address (in the resolver's order, as
/// Node's default `verbatim`). `family` is 0 (default), 4 or 6; an IP literal resolves to
/// itself. Runs `getaddrinfo(3)` on polyio's pool of lookup threads,
/// never on the loop thread. Rejects with an `Error` whose `code` is `'ENOTFOUND'` (no
/// such name, or a malformed one) or `'EAI_AGAIN'` (a temporary failure), with `syscall`
/// `'getaddrinfo'` and `hostname`; with an `AbortError` when `signal` aborts (the lookup is
/// cancelled). Names must be ASCII (encode internationalized names with
/// `url.domainToASCII` first).
#[napi(
    ts_args_type = "hostname: string, options?: LookupOptions | number",
    ts_return_type = "Promise<LookupAddress | LookupAddress[]>"
)]
pub fn lookup(
    env: Env,
    hostname: Option<Unknown>,
    options: Option<Unknown>,
) -> napi::Result<Value> {
    let env = env.raw();
    let Some(st) = state_or_throw(env) else {
        return Ok(js::undefined(env));
    };
    let parsed = (|| {
        let host = hostname
            .as_ref()
            .map(|u| u.raw())
            .and_then(|v| js::as_string(env, v))
            .ok_or_else(|| bad_type(env, "hostname", "of type string"))?;
        let (family, all, signal) = match options.as_ref().map(|u| u.raw()) {
            None => (0, false, None),
            Some(v) if js::is_nullish(env, v) => (0, false, None),
            Some(v) if js::type_of(env, v) == sys::ValueType::napi_object => {
                let family = match js::get(env, v, "family") {
                    None => 0,
                    Some(f) => family_of(env, f)?,
                };
                let all = match js::get(env, v, "all") {
                    None => false,
                    Some(a) => js::as_bool(env, a)
                        .ok_or_else(|| bad_type(env, "options.all", "of type boolean"))?,
                };
                (family, all, signal_of(env, v, "options")?)
            }
            Some(v) => (family_of(env, v)?, false, None),
        };
        Ok((host, family, all, signal))
    })();
    let (host, family, all, signal) = match parsed {
        Ok(p) => p,
        Err(e) => return reject(env, e),
    };
    if let Err(e) = st.unless_aborted(signal) {
        return reject(env, e);
    }
    // As Node: an empty name gives no address, an IP literal itself, without a lookup.
    if host.is_empty() {
        let fam = if family == 6 { 6 } else { 4 };
        let none = js::address(env, js::null(env), fam);
        return js::settled(env, Ok(if all { js::array(env, &[])? } else { none }));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        let a = js::address(
            env,
            js::string(env, &host),
            if ip.is_ipv4() { 4 } else { 6 },
        );
        return js::settled(env, Ok(if all { js::array(env, &[a])? } else { a }));
    }
    let hints = LookupHints {
        family: match family {
            4 => libc::AF_INET,
            6 => libc::AF_INET6,
            _ => libc::AF_UNSPEC,
        },
        socktype: libc::SOCK_STREAM,
        ..LookupHints::default()
    };
    let id = st.next_id();
    match st.rt.borrow_mut().getaddrinfo(Some(&host), None, hints, id) {
        Ok(()) => {}
        // A name the host rule rejects: getaddrinfo(3) would not find it either.
        Err(Status::InvalidArgument) => {
            return reject(env, js::lookup_error(env, Status::NameNotResolved, &host));
        }
        Err(s) => return reject(env, js::status_error(env, s, "getaddrinfo")),
    }
    let owner = Rc::new(Lookup {
        hostname: host,
        all,
    });
    st.submitted(id, owner, Op { tag: 0, arg: 0 }, signal)
}
