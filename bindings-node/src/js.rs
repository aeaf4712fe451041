//! Thin wrappers over raw N-API calls used on the hot path (promises, buffers, errors) and
//! for validating loosely typed arguments. Everything here runs on the environment's own
//! thread, inside a call from JS or inside a libuv callback that opened a handle scope.

use std::ffi::{CString, c_char};
use std::ptr;

use napi::sys;
use polyio_core::Status;

pub type RawEnv = sys::napi_env;
pub type Value = sys::napi_value;

/// A raw call succeeded, or we report it as a generic error (N-API calls only fail on
/// programming errors or a pending exception).
pub fn ok(status: sys::napi_status) -> napi::Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(napi::Error::new(
            napi::Status::GenericFailure,
            format!("N-API call failed ({status})"),
        ))
    }
}

pub fn undefined(env: RawEnv) -> Value {
    let mut v = ptr::null_mut();
    // SAFETY: valid env; writes one napi_value.
    unsafe { sys::napi_get_undefined(env, &mut v) };
    v
}

pub fn null(env: RawEnv) -> Value {
    let mut v = ptr::null_mut();
    // SAFETY: valid env; writes one napi_value.
    unsafe { sys::napi_get_null(env, &mut v) };
    v
}

pub fn string(env: RawEnv, s: &str) -> Value {
    let mut v = ptr::null_mut();
    // SAFETY: `s` is valid UTF-8 of the given length.
    unsafe { sys::napi_create_string_utf8(env, s.as_ptr().cast(), s.len() as isize, &mut v) };
    v
}

pub fn number(env: RawEnv, n: f64) -> Value {
    let mut v = ptr::null_mut();
    // SAFETY: valid env; writes one napi_value.
    unsafe { sys::napi_create_double(env, n, &mut v) };
    v
}

pub fn object(env: RawEnv) -> Value {
    let mut v = ptr::null_mut();
    // SAFETY: valid env; writes one napi_value.
    unsafe { sys::napi_create_object(env, &mut v) };
    v
}

pub fn set(env: RawEnv, obj: Value, key: &str, value: Value) {
    let key = CString::new(key).unwrap_or_default();
    // SAFETY: `obj` is an object of this env; `key` is NUL-terminated.
    unsafe { sys::napi_set_named_property(env, obj, key.as_ptr(), value) };
}

pub fn boolean(env: RawEnv, b: bool) -> Value {
    let mut v = ptr::null_mut();
    // SAFETY: valid env; writes one napi_value.
    unsafe { sys::napi_get_boolean(env, b, &mut v) };
    v
}

/// An iterator result, `{ value, done }`.
pub fn iter_result(env: RawEnv, value: Value, done: bool) -> Value {
    let obj = object(env);
    // SAFETY: `obj` is a fresh object of this env; the keys are NUL-terminated literals.
    unsafe {
        sys::napi_set_named_property(env, obj, c"value".as_ptr(), value);
        sys::napi_set_named_property(env, obj, c"done".as_ptr(), boolean(env, done));
    }
    obj
}

/// A new zero-filled ArrayBuffer of `len` bytes and its data pointer.
pub fn arraybuffer(env: RawEnv, len: usize) -> napi::Result<(Value, *mut u8)> {
    let mut v = ptr::null_mut();
    let mut data = ptr::null_mut();
    // SAFETY: valid env; writes the new ArrayBuffer and its data pointer.
    ok(unsafe { sys::napi_create_arraybuffer(env, len, &mut data, &mut v) })?;
    Ok((v, data.cast()))
}

/// A new ArrayBuffer of `len` bytes left unzeroed, and its data pointer: the one under a
/// new Buffer (which Node allocates as `Buffer.allocUnsafe` does, with its old bytes
/// readable through `.buffer` as in Node's own pool), or a zeroed one should that Buffer not
/// span its ArrayBuffer.
pub fn arraybuffer_unzeroed(env: RawEnv, len: usize) -> napi::Result<(Value, *mut u8)> {
    let (mut buf, mut data) = (ptr::null_mut(), ptr::null_mut());
    // SAFETY: valid env; writes the new Buffer and its data pointer.
    ok(unsafe { sys::napi_create_buffer(env, len, &mut data, &mut buf) })?;
    let (mut kind, mut n, mut p, mut ab, mut off) =
        (0, 0usize, ptr::null_mut(), ptr::null_mut(), 0usize);
    // SAFETY: `buf` is a Buffer (a Uint8Array); writes its ArrayBuffer and offset.
    let st = unsafe {
        sys::napi_get_typedarray_info(env, buf, &mut kind, &mut n, &mut p, &mut ab, &mut off)
    };
    if st == sys::Status::napi_ok && off == 0 && !ab.is_null() {
        let (d, l) = arraybuffer_info(env, ab);
        if l >= len && !d.is_null() {
            return Ok((ab, d));
        }
    }
    arraybuffer(env, len)
}

/// An ArrayBuffer's data pointer and length (null and 0 once it is detached).
pub fn arraybuffer_info(env: RawEnv, v: Value) -> (*mut u8, usize) {
    let (mut data, mut len) = (ptr::null_mut(), 0);
    // SAFETY: `v` is an ArrayBuffer of this env; writes its data pointer and length.
    let st = unsafe { sys::napi_get_arraybuffer_info(env, v, &mut data, &mut len) };
    if st == sys::Status::napi_ok {
        (data.cast(), len)
    } else {
        (ptr::null_mut(), 0)
    }
}

/// A new Buffer holding a copy of `data`.
pub fn buffer_copy(env: RawEnv, data: &[u8]) -> napi::Result<Value> {
    let mut v = ptr::null_mut();
    let mut out = ptr::null_mut();
    // SAFETY: `data` is readable for its length; N-API copies it.
    ok(unsafe {
        sys::napi_create_buffer_copy(env, data.len(), data.as_ptr().cast(), &mut out, &mut v)
    })?;
    Ok(v)
}

/// A new pending promise and its deferred.
pub fn promise(env: RawEnv) -> napi::Result<(sys::napi_deferred, Value)> {
    let (mut d, mut p) = (ptr::null_mut(), ptr::null_mut());
    // SAFETY: valid env; writes a deferred and a promise.
    ok(unsafe { sys::napi_create_promise(env, &mut d, &mut p) })?;
    Ok((d, p))
}

/// Settles a deferred (which N-API frees).
pub fn settle(env: RawEnv, d: sys::napi_deferred, result: Result<Value, Value>) {
    // SAFETY: `d` came from `promise` on this env and is settled exactly once.
    unsafe {
        match result {
            Ok(v) => sys::napi_resolve_deferred(env, d, v),
            Err(e) => sys::napi_reject_deferred(env, d, e),
        }
    };
}

/// A promise already settled with `result`.
pub fn settled(env: RawEnv, result: Result<Value, Value>) -> napi::Result<Value> {
    // The caller's own exception (a getter of its options object that threw while they were
    // read) comes before whatever the reading made of the missing value.
    let result = match take_exception(env) {
        Some(e) => Err(e),
        None => result,
    };
    let (d, p) = promise(env)?;
    settle(env, d, result);
    Ok(p)
}

/// The pending JS exception, cleared, if there is one.
pub fn take_exception(env: RawEnv) -> Option<Value> {
    let mut pending = false;
    // SAFETY: valid env.
    unsafe { sys::napi_is_exception_pending(env, &mut pending) };
    if !pending {
        return None;
    }
    let mut e = ptr::null_mut();
    // SAFETY: an exception is pending; this takes it.
    unsafe { sys::napi_get_and_clear_last_exception(env, &mut e) };
    Some(e)
}

fn make_error(
    env: RawEnv,
    ctor: unsafe extern "C" fn(RawEnv, Value, Value, *mut Value) -> sys::napi_status,
    code: &str,
    msg: &str,
) -> Value {
    let mut e = ptr::null_mut();
    // SAFETY: code and message are fresh strings of this env.
    unsafe { ctor(env, string(env, code), string(env, msg), &mut e) };
    e
}

/// `Error` with `code` set.
pub fn error(env: RawEnv, code: &str, msg: &str) -> Value {
    make_error(env, sys::napi_create_error, code, msg)
}

/// `TypeError` with `code` set (Node uses `ERR_INVALID_ARG_TYPE`).
pub fn type_error(env: RawEnv, code: &str, msg: &str) -> Value {
    make_error(env, sys::napi_create_type_error, code, msg)
}

/// `RangeError` with `code` set (Node uses `ERR_OUT_OF_RANGE`, `ERR_SOCKET_BAD_PORT`).
pub fn range_error(env: RawEnv, code: &str, msg: &str) -> Value {
    make_error(env, sys::napi_create_range_error, code, msg)
}

/// The `Error` Node's `net` would give for a failed system call: `code` ('ECONNREFUSED'),
/// negative `errno`, `syscall`, and a message in Node's shape.
pub fn status_error(env: RawEnv, status: Status, syscall: &str) -> Value {
    let msg = format!("{syscall} {} ({})", status.name(), status.message());
    let e = error(env, status.name(), &msg);
    set(env, e, "errno", number(env, f64::from(status.code())));
    set(env, e, "syscall", string(env, syscall));
    e
}

/// `status_error` with the message `net`'s socket errors have (`read ECONNRESET`, as
/// Node's `ErrnoException` builds it).
pub fn errno_error(env: RawEnv, status: Status, syscall: &str) -> Value {
    let e = status_error(env, status, syscall);
    set(
        env,
        e,
        "message",
        string(env, &format!("{syscall} {}", status.name())),
    );
    e
}

/// libuv's `UV_EAI_NONAME` and `UV_EAI_AGAIN`: the `errno` Node's lookup errors carry.
const UV_EAI_NONAME: f64 = -3008.0;
const UV_EAI_AGAIN: f64 = -3001.0;

/// Node's `dns.lookup` error: `getaddrinfo ENOTFOUND host`, with `code` (`'ENOTFOUND'`, or
/// `'EAI_AGAIN'` for `NameTryAgain`), `errno`, `syscall` and `hostname`.
pub fn lookup_error(env: RawEnv, status: Status, hostname: &str) -> Value {
    let (code, errno) = match status {
        Status::NameTryAgain => ("EAI_AGAIN", UV_EAI_AGAIN),
        // A name getaddrinfo cannot be handed (a NUL in it), as libuv refuses it.
        Status::InvalidArgument => ("EINVAL", -f64::from(libc::EINVAL)),
        _ => ("ENOTFOUND", UV_EAI_NONAME),
    };
    let e = error(env, code, &format!("getaddrinfo {code} {hostname}"));
    set(env, e, "errno", number(env, errno));
    set(env, e, "syscall", string(env, "getaddrinfo"));
    set(env, e, "hostname", string(env, hostname));
    e
}

/// `{ address, family }`, as `dns.lookup` gives an address.
pub fn address(env: RawEnv, address: Value, family: u8) -> Value {
    let o = object(env);
    set(env, o, "address", address);
    set(env, o, "family", number(env, f64::from(family)));
    o
}

/// A new array holding `items`.
pub fn array(env: RawEnv, items: &[Value]) -> napi::Result<Value> {
    let mut arr = ptr::null_mut();
    // SAFETY: a valid env; `arr` receives the new array.
    ok(unsafe { sys::napi_create_array_with_length(env, items.len(), &mut arr) })?;
    for (i, v) in items.iter().enumerate() {
        // SAFETY: `arr` is the array made above and `v` a value of this env.
        ok(unsafe { sys::napi_set_element(env, arr, i as u32, *v) })?;
    }
    Ok(arr)
}

/// Throws `err` (for synchronous methods).
pub fn throw(env: RawEnv, err: Value) {
    // SAFETY: valid env and value.
    unsafe { sys::napi_throw(env, err) };
}

// ---- reading arguments -------------------------------------------------------------------

pub fn type_of(env: RawEnv, v: Value) -> sys::napi_valuetype {
    let mut t = 0;
    // SAFETY: valid env and value.
    unsafe { sys::napi_typeof(env, v, &mut t) };
    t
}

pub fn is_nullish(env: RawEnv, v: Value) -> bool {
    v.is_null()
        || matches!(
            type_of(env, v),
            sys::ValueType::napi_undefined | sys::ValueType::napi_null
        )
}

/// `obj[key]`, or None when it is undefined or null.
/// `obj[key]` of a caller's object, None when null or undefined; Err(the exception) when
/// reading it threw (a getter, a Proxy), so that parsing stops there.
pub fn get_opt(env: RawEnv, obj: Value, key: &str) -> Result<Option<Value>, Value> {
    let Ok(ckey) = CString::new(key) else {
        return Ok(None);
    };
    let mut v = ptr::null_mut();
    // SAFETY: `obj` is an object of this env; `ckey` is NUL-terminated.
    let st = unsafe { sys::napi_get_named_property(env, obj, ckey.as_ptr(), &mut v) };
    if st != sys::Status::napi_ok {
        return Err(take_exception(env).unwrap_or_else(|| {
            type_error(env, "ERR_INVALID_ARG_TYPE", &format!("cannot read {key}"))
        }));
    }
    Ok((!is_nullish(env, v)).then_some(v))
}

pub fn get(env: RawEnv, obj: Value, key: &str) -> Option<Value> {
    let key = CString::new(key).ok()?;
    let mut v = ptr::null_mut();
    // SAFETY: `obj` is an object of this env; `key` is NUL-terminated.
    let st = unsafe { sys::napi_get_named_property(env, obj, key.as_ptr(), &mut v) };
    if st != sys::Status::napi_ok || is_nullish(env, v) {
        None
    } else {
        Some(v)
    }
}

pub fn as_f64(env: RawEnv, v: Value) -> Option<f64> {
    if type_of(env, v) != sys::ValueType::napi_number {
        return None;
    }
    let mut n = 0.0;
    // SAFETY: `v` is a number.
    unsafe { sys::napi_get_value_double(env, v, &mut n) };
    Some(n)
}

pub fn as_bool(env: RawEnv, v: Value) -> Option<bool> {
    if type_of(env, v) != sys::ValueType::napi_boolean {
        return None;
    }
    let mut b = false;
    // SAFETY: `v` is a boolean.
    unsafe { sys::napi_get_value_bool(env, v, &mut b) };
    Some(b)
}

/// `Boolean(v)`: JS truthiness.
pub fn truthy(env: RawEnv, v: Value) -> bool {
    let mut b = ptr::null_mut();
    // SAFETY: valid env and value; coercing to a boolean cannot throw.
    let st = unsafe { sys::napi_coerce_to_bool(env, v, &mut b) };
    st == sys::Status::napi_ok && as_bool(env, b).unwrap_or(false)
}

/// `String(v)` (None, with the JS exception pending, when that throws: a Symbol, or an
/// object whose `toString` throws).
pub fn to_string(env: RawEnv, v: Value) -> Option<String> {
    let mut s = ptr::null_mut();
    // SAFETY: valid env and value.
    let st = unsafe { sys::napi_coerce_to_string(env, v, &mut s) };
    if st != sys::Status::napi_ok {
        return None;
    }
    as_string(env, s)
}

/// `v | 0` for a number (JS `ToInt32`).
pub fn to_int32(n: f64) -> i32 {
    if !n.is_finite() {
        return 0;
    }
    n.trunc().rem_euclid(4_294_967_296.0) as u32 as i32
}

pub fn as_string(env: RawEnv, v: Value) -> Option<String> {
    if type_of(env, v) != sys::ValueType::napi_string {
        return None;
    }
    let mut len = 0;
    // SAFETY: `v` is a string; a null buffer asks for the length.
    unsafe { sys::napi_get_value_string_utf8(env, v, ptr::null_mut(), 0, &mut len) };
    let mut buf = vec![0u8; len + 1];
    // SAFETY: `buf` has room for `len` bytes and the NUL.
    unsafe {
        sys::napi_get_value_string_utf8(
            env,
            v,
            buf.as_mut_ptr().cast::<c_char>(),
            len + 1,
            &mut len,
        )
    };
    buf.truncate(len);
    String::from_utf8(buf).ok()
}

/// The UTF-8 of string `v` in `buf` (no allocation), or `None` when `v` is not a string or
/// does not fit (then read it with `as_string`).
pub fn short_string(env: RawEnv, v: Value, buf: &mut [u8; 64]) -> Option<&str> {
    if type_of(env, v) != sys::ValueType::napi_string {
        return None;
    }
    let mut len = 0;
    // SAFETY: `v` is a string; `buf` has room for 64 bytes, the NUL included.
    let st = unsafe {
        sys::napi_get_value_string_utf8(env, v, buf.as_mut_ptr().cast::<c_char>(), 64, &mut len)
    };
    // 63 bytes may be a cut string: leave those to `as_string`.
    if st != sys::Status::napi_ok || len >= 63 {
        return None;
    }
    std::str::from_utf8(&buf[..len]).ok()
}

/// Appends the bytes of a Buffer / Uint8Array (any TypedArray, by its bytes) or the UTF-8 of
/// a string to `out`; false (and `out` untouched) for any other value.
pub fn bytes_into(env: RawEnv, v: Value, out: &mut Vec<u8>) -> bool {
    let mut is_ta = false;
    // SAFETY: valid env and value.
    unsafe { sys::napi_is_typedarray(env, v, &mut is_ta) };
    if is_ta {
        let (mut kind, mut len, mut data, mut ab, mut off) =
            (0, 0usize, ptr::null_mut(), ptr::null_mut(), 0usize);
        // SAFETY: `v` is a TypedArray.
        unsafe {
            sys::napi_get_typedarray_info(env, v, &mut kind, &mut len, &mut data, &mut ab, &mut off)
        };
        let elem = match kind {
            sys::TypedarrayType::int16_array | sys::TypedarrayType::uint16_array => 2,
            sys::TypedarrayType::int32_array
            | sys::TypedarrayType::uint32_array
            | sys::TypedarrayType::float32_array => 4,
            sys::TypedarrayType::float64_array
            | sys::TypedarrayType::bigint64_array
            | sys::TypedarrayType::biguint64_array => 8,
            _ => 1,
        };
        let n = len * elem;
        if n > 0 && !data.is_null() {
            // SAFETY: the TypedArray's data is readable for `n` bytes while we copy.
            out.extend_from_slice(unsafe { std::slice::from_raw_parts(data.cast::<u8>(), n) });
        }
        return true;
    }
    match as_string(env, v) {
        Some(s) => {
            out.extend_from_slice(s.as_bytes());
            true
        }
        None => false,
    }
}

/// Calls `f(args...)` with `undefined` as `this`; the result, or None if it threw (the
/// exception is left pending only if we cannot clear it).
pub fn call(env: RawEnv, f: Value, args: &[Value]) -> Option<Value> {
    let mut out = ptr::null_mut();
    // SAFETY: `f` is a function of this env; args are values of this env.
    let st = unsafe {
        sys::napi_call_function(env, undefined(env), f, args.len(), args.as_ptr(), &mut out)
    };
    if st == sys::Status::napi_ok {
        Some(out)
    } else {
        let mut exc = ptr::null_mut();
        // SAFETY: clears the pending exception, if any.
        unsafe { sys::napi_get_and_clear_last_exception(env, &mut exc) };
        None
    }
}

/// Calls callback `f(args...)` (with `undefined` as `this`) as the loop calls one: an
/// exception it throws is reported as uncaught (`'uncaughtException'`, or the process
/// ends), not swallowed.
pub fn callback(env: RawEnv, f: Value, args: &[Value]) {
    let mut out = ptr::null_mut();
    // SAFETY: `f` is a function of this env; args are values of this env.
    let st = unsafe {
        sys::napi_call_function(env, undefined(env), f, args.len(), args.as_ptr(), &mut out)
    };
    if st != sys::Status::napi_ok {
        let mut exc = ptr::null_mut();
        // SAFETY: takes the pending exception, if any, and hands it to Node's handler.
        unsafe {
            sys::napi_get_and_clear_last_exception(env, &mut exc);
            if !exc.is_null() {
                sys::napi_fatal_exception(env, exc);
            }
        }
    }
}

/// A strong reference that keeps `v` alive.
pub fn reference(env: RawEnv, v: Value) -> sys::napi_ref {
    let mut r = ptr::null_mut();
    // SAFETY: valid env and value.
    unsafe { sys::napi_create_reference(env, v, 1, &mut r) };
    r
}

pub fn unref(env: RawEnv, r: sys::napi_ref) {
    if !r.is_null() {
        // SAFETY: `r` is a live reference of this env, deleted once (callers null it).
        unsafe { sys::napi_delete_reference(env, r) };
    }
}

pub fn deref(env: RawEnv, r: sys::napi_ref) -> Value {
    let mut v = ptr::null_mut();
    // SAFETY: `r` is a live reference of this env.
    unsafe { sys::napi_get_reference_value(env, r, &mut v) };
    v
}
