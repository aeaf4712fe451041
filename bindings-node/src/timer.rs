//! Timers: `sleep()`, a core timer whose completion this module settles.

use std::rc::Rc;

use napi::bindgen_prelude::Unknown;
use napi::{Env, JsValue};
use napi_derive::napi;
use polyio_core::{Completion, Status};

use crate::args::{MAX_MS, bad_type, number_in, parse_signal};
use crate::env::{EnvState, Op, Settle, failure, state_or_throw};
use crate::js::{self, Value};

/// A pending sleep.
struct Sleep;

impl Settle for Sleep {
    fn settle(
        &self,
        st: &EnvState,
        _op: Op,
        c: Completion,
        aborted: Option<Value>,
    ) -> Result<Value, Value> {
        match c.status() {
            Status::Ok => Ok(js::undefined(st.env)),
            status => Err(failure(st.env, aborted, status, "sleep")),
        }
    }
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
        let signal = parse_signal(env, options.as_ref().map(|u| u.raw()), "options")?;
        Ok((ms, signal))
    })();
    let (ms, signal) = match parsed {
        Ok(p) => p,
        Err(e) => return js::settled(env, Err(e)),
    };
    if let Err(e) = st.unless_aborted(signal) {
        return js::settled(env, Err(e));
    }
    let id = st.next_id();
    if let Err(s) = st.rt.borrow_mut().timer(ms.ceil() as u64, id) {
        return js::settled(env, Err(js::status_error(env, s, "sleep")));
    }
    st.submitted(id, Rc::new(Sleep), Op { tag: 0, arg: 0 }, signal)
}
