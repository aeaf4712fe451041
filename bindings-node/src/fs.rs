//! Files: the internal `__fs*` calls behind `readFile`, `writeFile`, `stat` and `open()`'s
//! `FileHandle` (defined in `api.js`). Each submits one core file op and returns a promise
//! its completion settles: a file handle (a BigInt), a Buffer, a count, a stat object.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr;
use std::rc::Rc;

use napi::bindgen_prelude::Unknown;
use napi::{Env, sys};
use napi_derive::napi;
use polyio_core::{Completion, FileStat, FsBackend, Handle, ReadBuf, Runtime, Status, WriteBuf};

use crate::args::{bad_type, parse_signal, raw};
use crate::env::{EnvState, Op, Settle, failure, state_or_throw};
use crate::js::{self, RawEnv, Value};

const WHAT_HANDLE: u8 = 0;
const WHAT_BYTES: u8 = 1;
const WHAT_COUNT: u8 = 2;
const WHAT_STAT: u8 = 3;
const WHAT_NONE: u8 = 4;

/// A pending file op; its `Op.tag` says what the promise resolves with, `Op.arg` names
/// the syscall for errors (an index into `SYSCALLS`).
struct FileOp;

const SYSCALLS: [&str; 8] = [
    "open",
    "read",
    "write",
    "fsync",
    "stat",
    "close",
    "ftruncate",
    "fstat",
];

fn bigint(env: RawEnv, v: u64) -> Value {
    let mut out = ptr::null_mut();
    // SAFETY: valid env; writes one value.
    unsafe { sys::napi_create_bigint_uint64(env, v, &mut out) };
    out
}

fn stat_object(env: RawEnv, s: &FileStat) -> Value {
    let o = js::object(env);
    let ms = |sec: i64, nsec: i64| sec as f64 * 1e3 + nsec as f64 / 1e6;
    for (k, v) in [
        ("dev", s.dev as f64),
        ("ino", s.ino as f64),
        ("mode", f64::from(s.mode)),
        ("nlink", f64::from(s.nlink)),
        ("uid", f64::from(s.uid)),
        ("gid", f64::from(s.gid)),
        ("rdev", s.rdev as f64),
        ("size", s.size as f64),
        ("blksize", s.blksize as f64),
        ("blocks", s.blocks as f64),
        ("atimeMs", ms(s.atime_sec, s.atime_nsec)),
        ("mtimeMs", ms(s.mtime_sec, s.mtime_nsec)),
        ("ctimeMs", ms(s.ctime_sec, s.ctime_nsec)),
        ("birthtimeMs", ms(s.birthtime_sec, s.birthtime_nsec)),
    ] {
        js::set(env, o, k, js::number(env, v));
    }
    o
}

impl Settle for FileOp {
    fn settle(
        &self,
        st: &EnvState,
        op: Op,
        c: Completion,
        aborted: Option<Value>,
    ) -> Result<Value, Value> {
        let env = st.env;
        if c.result < 0 {
            let syscall = SYSCALLS.get(op.arg as usize).copied().unwrap_or("fs");
            return Err(failure(env, aborted, c.status(), syscall));
        }
        if let Some(e) = aborted {
            // Finished before the cancel reached it: a file it opened must not leak.
            if op.tag == WHAT_HANDLE {
                let _ = st.rt.borrow_mut().close(c.handle);
            }
            return Err(e);
        }
        Ok(match op.tag {
            WHAT_HANDLE => bigint(env, c.handle.into_raw()),
            WHAT_BYTES => js::buffer_copy(env, c.buf.as_deref().unwrap_or_default())
                .map_err(|_| js::status_error(env, Status::NoMemory, "read"))?,
            WHAT_COUNT => js::number(env, c.result as f64),
            WHAT_STAT => match &c.stat {
                Some(s) => stat_object(env, s),
                None => js::undefined(env),
            },
            _ => js::undefined(env),
        })
    }
}

/// A file handle argument: a BigInt.
fn handle_arg(env: RawEnv, v: Option<Value>) -> Result<Handle, Value> {
    let Some(v) = v else {
        return Err(bad_type(env, "handle", "of type bigint"));
    };
    let (mut out, mut lossless) = (0u64, false);
    // SAFETY: valid env and value; fails for a non-BigInt.
    let st = unsafe { sys::napi_get_value_bigint_uint64(env, v, &mut out, &mut lossless) };
    if st != sys::Status::napi_ok || !lossless {
        return Err(bad_type(env, "handle", "of type bigint"));
    }
    Ok(Handle::from_raw(out))
}

fn path_arg(env: RawEnv, v: Option<Value>) -> Result<String, Value> {
    v.and_then(|v| js::as_string(env, v))
        .ok_or_else(|| bad_type(env, "path", "of type string"))
}

fn number_arg(env: RawEnv, v: Option<Value>, what: &str) -> Result<f64, Value> {
    v.and_then(|v| js::as_f64(env, v))
        .filter(|n| n.fract() == 0.0)
        .ok_or_else(|| bad_type(env, what, "an integer"))
}

fn bytes_arg(env: RawEnv, v: Option<Value>) -> Result<Vec<u8>, Value> {
    let mut out = Vec::new();
    match v {
        Some(v) if js::bytes_into(env, v, &mut out) => Ok(out),
        _ => Err(bad_type(env, "data", "a string, Buffer or Uint8Array")),
    }
}

/// An offset: -1 (or any negative) is the file position.
fn position(n: f64) -> Option<u64> {
    (n >= 0.0).then_some(n as u64)
}

/// Submits `submit` as op `id` and returns its promise (or one already settled with the
/// argument error or the submission's error).
fn submit(
    env: RawEnv,
    args: Result<(Option<Value>, u8, u64), Value>,
    submit: impl FnOnce(&mut Runtime, u64) -> Result<(), Status>,
) -> napi::Result<Value> {
    let Some(st) = state_or_throw(env) else {
        return Ok(js::undefined(env));
    };
    let (signal, what, syscall) = match args {
        Ok(a) => a,
        Err(e) => return js::settled(env, Err(e)),
    };
    if let Err(e) = st.unless_aborted(signal) {
        return js::settled(env, Err(e));
    }
    let id = st.next_id();
    if let Err(s) = submit(&mut st.rt.borrow_mut(), id) {
        let name = SYSCALLS.get(syscall as usize).copied().unwrap_or("fs");
        return js::settled(env, Err(js::status_error(env, s, name)));
    }
    st.submitted(
        id,
        Rc::new(FileOp),
        Op {
            tag: what,
            arg: syscall,
        },
        signal,
    )
}

/// Internal: "uring" or "threads", the file backend of this environment's runtime.
#[napi(js_name = "__fsBackend", skip_typescript)]
pub fn fs_backend(env: Env) -> Value {
    let env = env.raw();
    let name = match state_or_throw(env).map(|st| st.rt.borrow_mut().fs_backend()) {
        Some(Ok(FsBackend::Uring)) => "uring",
        Some(Ok(FsBackend::Threads)) => "threads",
        _ => "none",
    };
    js::string(env, name)
}

/// Internal: opens `path` with open(2) `flags` and `mode`; resolves to the file's handle.
#[napi(js_name = "__fsOpen", skip_typescript)]
pub fn fs_open(
    env: Env,
    path: Option<Unknown>,
    flags: Option<Unknown>,
    mode: Option<Unknown>,
    options: Option<Unknown>,
) -> napi::Result<Value> {
    let env = env.raw();
    let parsed = (|| {
        let p = path_arg(env, raw(&path))?;
        let f = number_arg(env, raw(&flags), "flags")? as i32;
        let m = number_arg(env, raw(&mode), "mode")? as u32;
        let s = parse_signal(env, raw(&options), "options")?;
        Ok((p, f, m, s))
    })();
    let (p, f, m, s) = match parsed {
        Ok(v) => v,
        Err(e) => return js::settled(env, Err(e)),
    };
    submit(env, Ok((s, WHAT_HANDLE, 0)), |rt, id| {
        rt.fs_open(Path::new(&p), f, m, id)
    })
}

/// Internal: reads up to `length` bytes at `position` (-1: the file position); resolves to
/// a Buffer of the bytes read.
#[napi(js_name = "__fsRead", skip_typescript)]
pub fn fs_read(
    env: Env,
    handle: Option<Unknown>,
    length: Option<Unknown>,
    pos: Option<Unknown>,
    options: Option<Unknown>,
) -> napi::Result<Value> {
    let env = env.raw();
    let parsed = (|| {
        let h = handle_arg(env, raw(&handle))?;
        let n = number_arg(env, raw(&length), "length")?;
        let at = number_arg(env, raw(&pos), "position")?;
        let s = parse_signal(env, raw(&options), "options")?;
        Ok((h, n.max(0.0) as usize, position(at), s))
    })();
    let (h, n, at, s) = match parsed {
        Ok(v) => v,
        Err(e) => return js::settled(env, Err(e)),
    };
    submit(env, Ok((s, WHAT_BYTES, 1)), |rt, id| {
        rt.fs_read(h, ReadBuf::with_capacity(n), at, id)
    })
}

/// Internal: writes `data` at `position` (-1: the file position, or the end with
/// O_APPEND); resolves to the count written.
#[napi(js_name = "__fsWrite", skip_typescript)]
pub fn fs_write(
    env: Env,
    handle: Option<Unknown>,
    data: Option<Unknown>,
    pos: Option<Unknown>,
    options: Option<Unknown>,
) -> napi::Result<Value> {
    let env = env.raw();
    let parsed = (|| {
        let h = handle_arg(env, raw(&handle))?;
        let d = bytes_arg(env, raw(&data))?;
        let at = number_arg(env, raw(&pos), "position")?;
        let s = parse_signal(env, raw(&options), "options")?;
        Ok((h, d, position(at), s))
    })();
    let (h, d, at, s) = match parsed {
        Ok(v) => v,
        Err(e) => return js::settled(env, Err(e)),
    };
    submit(env, Ok((s, WHAT_COUNT, 2)), |rt, id| {
        rt.fs_write(h, WriteBuf::from_vec(d), at, id)
    })
}

/// Internal: fsync (or fdatasync).
#[napi(js_name = "__fsSync", skip_typescript)]
pub fn fs_sync(
    env: Env,
    handle: Option<Unknown>,
    datasync: Option<Unknown>,
) -> napi::Result<Value> {
    let env = env.raw();
    let parsed = handle_arg(env, raw(&handle));
    let data = raw(&datasync).and_then(|v| js::as_bool(env, v)) == Some(true);
    match parsed {
        Ok(h) => submit(env, Ok((None, WHAT_NONE, 3)), |rt, id| {
            rt.fs_fsync(h, data, id)
        }),
        Err(e) => js::settled(env, Err(e)),
    }
}

/// Internal: stats a path (a string) or an open file (a BigInt handle).
#[napi(js_name = "__fsStat", skip_typescript)]
pub fn fs_stat(env: Env, target: Option<Unknown>) -> napi::Result<Value> {
    let env = env.raw();
    let v = raw(&target);
    if let Some(p) = v.and_then(|v| js::as_string(env, v)) {
        return submit(env, Ok((None, WHAT_STAT, 4)), |rt, id| {
            rt.fs_stat(Path::new(OsStr::from_bytes(p.as_bytes())), id)
        });
    }
    match handle_arg(env, v) {
        Ok(h) => submit(env, Ok((None, WHAT_STAT, 7)), |rt, id| rt.fs_fstat(h, id)),
        Err(e) => js::settled(env, Err(e)),
    }
}

/// Internal: truncates an open file to `len` bytes.
#[napi(js_name = "__fsTruncate", skip_typescript)]
pub fn fs_truncate(env: Env, handle: Option<Unknown>, len: Option<Unknown>) -> napi::Result<Value> {
    let env = env.raw();
    let parsed = (|| {
        let h = handle_arg(env, raw(&handle))?;
        let n = number_arg(env, raw(&len), "len")?;
        Ok((h, n.max(0.0) as u64))
    })();
    match parsed {
        Ok((h, n)) => submit(env, Ok((None, WHAT_NONE, 6)), |rt, id| {
            rt.fs_truncate(h, n, id)
        }),
        Err(e) => js::settled(env, Err(e)),
    }
}

/// Internal: closes an open file.
#[napi(js_name = "__fsClose", skip_typescript)]
pub fn fs_close(env: Env, handle: Option<Unknown>) -> napi::Result<Value> {
    let env = env.raw();
    match handle_arg(env, raw(&handle)) {
        Ok(h) => submit(env, Ok((None, WHAT_NONE, 5)), |rt, id| rt.fs_close(h, id)),
        Err(e) => js::settled(env, Err(e)),
    }
}

/// Internal: reads the whole of `path`; resolves to a Buffer.
#[napi(js_name = "__fsReadFile", skip_typescript)]
pub fn fs_read_file(
    env: Env,
    path: Option<Unknown>,
    options: Option<Unknown>,
) -> napi::Result<Value> {
    let env = env.raw();
    let parsed = (|| {
        let p = path_arg(env, raw(&path))?;
        let s = parse_signal(env, raw(&options), "options")?;
        Ok((p, s))
    })();
    let (p, s) = match parsed {
        Ok(v) => v,
        Err(e) => return js::settled(env, Err(e)),
    };
    submit(env, Ok((s, WHAT_BYTES, 0)), |rt, id| {
        rt.fs_read_file(Path::new(&p), id)
    })
}

/// Internal: writes `data` as the whole of `path` (open with `flags` and `mode`, write
/// all, close); resolves to the count written.
#[napi(js_name = "__fsWriteFile", skip_typescript)]
pub fn fs_write_file(
    env: Env,
    path: Option<Unknown>,
    data: Option<Unknown>,
    flags: Option<Unknown>,
    mode: Option<Unknown>,
    options: Option<Unknown>,
) -> napi::Result<Value> {
    let env = env.raw();
    let parsed = (|| {
        let p = path_arg(env, raw(&path))?;
        let d = bytes_arg(env, raw(&data))?;
        let f = number_arg(env, raw(&flags), "flags")? as i32;
        let m = number_arg(env, raw(&mode), "mode")? as u32;
        let s = parse_signal(env, raw(&options), "options")?;
        Ok((p, d, f, m, s))
    })();
    let (p, d, f, m, s) = match parsed {
        Ok(v) => v,
        Err(e) => return js::settled(env, Err(e)),
    };
    submit(env, Ok((s, WHAT_COUNT, 0)), |rt, id| {
        rt.fs_write_file(Path::new(&p), WriteBuf::from_vec(d), f, m, id)
    })
}
