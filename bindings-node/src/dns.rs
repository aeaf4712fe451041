//! Name lookups for Node: `lookup(hostname, { family, all, hints, order, verbatim, signal })`
//! with `dns.promises.lookup`'s checks and results (`{ address, family }`, or an array of them with `all`)
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

/// The order of the addresses a lookup resolves with, as `dns.promises.lookup`'s `order`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Order {
    Verbatim,
    Ipv4First,
    Ipv6First,
}

/// A pending lookup: the name (for its error), whether every address is wanted, in what order.
struct Lookup {
    hostname: String,
    all: bool,
    order: Order,
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
                let mut ips: Vec<IpAddr> = c.addrs.iter().flatten().map(|a| a.addr.ip()).collect();
                match self.order {
                    Order::Verbatim => {}
                    Order::Ipv4First => ips.sort_by_key(|ip| !ip.is_ipv4()),
                    Order::Ipv6First => ips.sort_by_key(|ip| ip.is_ipv4()),
                }
                let addrs: Vec<Value> = ips
                    .iter()
                    .map(|ip| {
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

/// What a lookup's options object asks for.
struct LookupArgs {
    family: u8,
    all: bool,
    hints: i32,
    order: Order,
    signal: Option<Value>,
}

/// `getaddrinfo` flags `dns.promises.lookup` takes as `hints` (Node's values are libc's).
const HINT_FLAGS: u32 = (libc::AI_ADDRCONFIG | libc::AI_V4MAPPED | libc::AI_ALL) as u32;

/// A lookup's options object, checked in `dns.promises.lookup`'s order with its errors.
fn lookup_options(env: js::RawEnv, v: Value) -> Result<LookupArgs, Value> {
    let hints = match js::get_opt(env, v, "hints")? {
        None => 0,
        Some(h) => {
            let n = js::as_f64(env, h)
                .ok_or_else(|| bad_type(env, "options.hints", "of type number"))?;
            // `hints >>> 0`, as Node converts it.
            let bits = if n.is_finite() {
                n.trunc().rem_euclid(4_294_967_296.0) as u32
            } else {
                0
            };
            if bits & !HINT_FLAGS != 0 {
                return Err(js::type_error(
                    env,
                    "ERR_INVALID_ARG_VALUE",
                    &format!("The argument 'hints' is invalid. Received {n}"),
                ));
            }
            bits as i32
        }
    };
    let family = match js::get_opt(env, v, "family")? {
        None => 0,
        Some(f) => family_of(env, f)?,
    };
    let all = match js::get_opt(env, v, "all")? {
        None => false,
        Some(a) => {
            js::as_bool(env, a).ok_or_else(|| bad_type(env, "options.all", "of type boolean"))?
        }
    };
    let mut order = Order::Verbatim;
    if let Some(b) = js::get_opt(env, v, "verbatim")? {
        let verbatim = js::as_bool(env, b)
            .ok_or_else(|| bad_type(env, "options.verbatim", "of type boolean"))?;
        order = if verbatim {
            Order::Verbatim
        } else {
            Order::Ipv4First
        };
    }
    if let Some(s) = js::get_opt(env, v, "order")? {
        order = match js::as_string(env, s).as_deref() {
            Some("verbatim") => Order::Verbatim,
            Some("ipv4first") => Order::Ipv4First,
            Some("ipv6first") => Order::Ipv6First,
            _ => {
                return Err(js::type_error(
                    env,
                    "ERR_INVALID_ARG_VALUE",
                    "The property 'options.order' must be one of: 'verbatim', 'ipv4first', \
                     'ipv6first'. Received an invalid value",
                ));
            }
        };
    }
    Ok(LookupArgs {
        family,
        all,
        hints,
        order,
        signal: signal_of(env, v, "options")?,
    })
}

fn reject(env: js::RawEnv, err: Value) -> napi::Result<Value> {
    js::settled(env, Err(err))
}

/// Resolves `hostname` as `dns.promises.lookup` does: the first address as
/// `{ address, family }`, or with `all: true` every address (in the resolver's order, as
/// Node's default `verbatim`; `order: 'ipv4first'` / `'ipv6first'` or `verbatim: false`
/// sort them). `family` is 0 (default), 4 or 6; `hints` is `getaddrinfo` flags
/// (`dns.ADDRCONFIG`, `dns.V4MAPPED`, `dns.ALL`); an IP literal resolves to itself. The
/// options are checked as Node checks them (`ERR_INVALID_ARG_TYPE`, `ERR_INVALID_ARG_VALUE`). Runs `getaddrinfo(3)` on polyio's pool of lookup threads,
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
        // As Node: a falsy hostname (undefined, null, '', 0, ...) is not checked, and finds
        // no address.
        let host = match hostname.as_ref().map(|u| u.raw()) {
            Some(v) if js::truthy(env, v) => {
                js::as_string(env, v).ok_or_else(|| bad_type(env, "hostname", "of type string"))?
            }
            _ => String::new(),
        };
        let mut o = LookupArgs {
            family: 0,
            all: false,
            hints: 0,
            order: Order::Verbatim,
            signal: None,
        };
        match options.as_ref().map(|u| u.raw()) {
            None => {}
            Some(v) if js::is_nullish(env, v) => {}
            Some(v) if js::type_of(env, v) == sys::ValueType::napi_object => {
                o = lookup_options(env, v)?;
            }
            Some(v) if js::type_of(env, v) == sys::ValueType::napi_number => {
                o.family = family_of(env, v)?;
            }
            Some(_) => return Err(bad_type(env, "options", "of type object or integer")),
        }
        Ok((host, o))
    })();
    let (
        host,
        LookupArgs {
            family,
            all,
            hints: flags,
            order,
            signal,
        },
    ) = match parsed {
        Ok(p) => p,
        Err(e) => return reject(env, e),
    };
    if let Err(e) = st.unless_aborted(signal) {
        return reject(env, e);
    }
    // As Node: libuv gets the name cut at its first NUL, and an empty one is EINVAL (a NUL
    // further on leaves a name polyio's host rule refuses: ENOTFOUND, below).
    // So is a name past 255 bytes (libuv's limit).
    if host.starts_with('\0') || host.len() > 255 {
        return reject(env, js::lookup_error(env, Status::InvalidArgument, &host));
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
        flags,
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
        order,
    });
    st.submitted(id, owner, Op { tag: 0, arg: 0 }, signal)
}
