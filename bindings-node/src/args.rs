//! Checking the loosely typed arguments JS passes (options objects, ports, durations,
//! `AbortSignal`s), with the `TypeError` / `RangeError` and `code` Node's own APIs throw.

use napi::bindgen_prelude::Unknown;
use napi::{JsValue, sys};

use crate::js::{self, RawEnv, Value};

/// Largest delay accepted (ms): `Number.MAX_SAFE_INTEGER`.
pub const MAX_MS: f64 = 9_007_199_254_740_991.0;

/// The raw value of an optional argument.
pub fn raw(v: &Option<Unknown>) -> Option<Value> {
    v.as_ref().map(|u| u.raw())
}

pub fn bad_type(env: RawEnv, what: &str, expected: &str) -> Value {
    js::type_error(
        env,
        "ERR_INVALID_ARG_TYPE",
        &format!("The \"{what}\" argument must be {expected}"),
    )
}

/// `options` must be an object.
pub fn options_object(
    env: RawEnv,
    options: &Option<Unknown>,
    required: bool,
) -> Result<Option<Value>, Value> {
    match raw(options).filter(|v| !js::is_nullish(env, *v)) {
        None if required => Err(bad_type(env, "options", "of type object")),
        None => Ok(None),
        Some(v) if js::type_of(env, v) == sys::ValueType::napi_object => Ok(Some(v)),
        Some(_) => Err(bad_type(env, "options", "of type object")),
    }
}

/// A port: an integer (or a string of digits) in `min..=65535`.
pub fn port_of(env: RawEnv, o: Value, min: u16, default: Option<u16>) -> Result<u16, Value> {
    let Some(v) = js::get_opt(env, o, "port")? else {
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

pub fn string_opt(env: RawEnv, o: Value, key: &str) -> Result<Option<String>, Value> {
    match js::get_opt(env, o, key)? {
        None => Ok(None),
        Some(v) => js::as_string(env, v)
            .map(Some)
            .ok_or_else(|| bad_type(env, &format!("options.{key}"), "of type string")),
    }
}

pub fn bool_opt(env: RawEnv, o: Value, key: &str) -> Result<Option<bool>, Value> {
    match js::get_opt(env, o, key)? {
        None => Ok(None),
        Some(v) => js::as_bool(env, v)
            .map(Some)
            .ok_or_else(|| bad_type(env, &format!("options.{key}"), "of type boolean")),
    }
}

/// A duration or count: a finite number in `0..=max`.
pub fn number_in(env: RawEnv, v: Value, what: &str, max: f64) -> Result<f64, Value> {
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

pub fn number_opt(env: RawEnv, o: Value, key: &str, max: f64) -> Result<Option<f64>, Value> {
    js::get_opt(env, o, key)?
        .map(|v| number_in(env, v, &format!("options.{key}"), max))
        .transpose()
}

/// Reads `{ signal }` from an optional options argument; Err(thrown TypeError) when malformed.
pub fn parse_signal(
    env: RawEnv,
    options: Option<Value>,
    what: &str,
) -> Result<Option<Value>, Value> {
    let Some(o) = options.filter(|v| !js::is_nullish(env, *v)) else {
        return Ok(None);
    };
    if js::type_of(env, o) != sys::ValueType::napi_object {
        return Err(js::type_error(
            env,
            "ERR_INVALID_ARG_TYPE",
            &format!("The \"{what}\" argument must be of type object"),
        ));
    }
    signal_of(env, o, what)
}

/// `options.signal`, checked to look like an AbortSignal (`aborted`, `addEventListener` and
/// `removeEventListener`: polyio calls both).
pub fn signal_of(env: RawEnv, o: Value, what: &str) -> Result<Option<Value>, Value> {
    let Some(sig) = js::get_opt(env, o, "signal")? else {
        return Ok(None);
    };
    let looks_right = js::type_of(env, sig) == sys::ValueType::napi_object
        && js::get_opt(env, sig, "aborted")?
            .and_then(|a| js::as_bool(env, a))
            .is_some()
        && is_function(env, js::get_opt(env, sig, "addEventListener")?)
        && is_function(env, js::get_opt(env, sig, "removeEventListener")?);
    if looks_right {
        Ok(Some(sig))
    } else {
        Err(js::type_error(
            env,
            "ERR_INVALID_ARG_TYPE",
            &format!("The \"{what}.signal\" property must be an instance of AbortSignal"),
        ))
    }
}

fn is_function(env: RawEnv, v: Option<Value>) -> bool {
    v.is_some_and(|f| js::type_of(env, f) == sys::ValueType::napi_function)
}

/// An address family as `net.connect` and `dns.promises.lookup` take it: 0, 4 or 6.
pub fn family_of(env: RawEnv, v: Value) -> Result<u8, Value> {
    match js::as_f64(env, v) {
        Some(n) if n == 0.0 || n == 4.0 || n == 6.0 => Ok(n as u8),
        _ => Err(js::type_error(
            env,
            "ERR_INVALID_ARG_VALUE",
            "The property 'options.family' must be one of: 0, 4, 6. Received an invalid value",
        )),
    }
}
