//! The few libuv calls the binding needs, declared by hand: Node exports libuv's symbols to
//! addons, so they resolve against the running `node` when the addon is loaded. libuv's
//! structs stay opaque: we allocate `uv_handle_size(type)` bytes and never look inside (the
//! callbacks find the per-environment state through a thread-local, not `handle->data`).

use std::ffi::c_int;

/// `uv_loop_t`, opaque.
#[repr(C)]
pub struct Loop {
    _private: [u8; 0],
}

/// Any `uv_handle_t` (poll, timer), opaque.
#[repr(C)]
pub struct Handle {
    _private: [u8; 0],
}

/// `UV_POLL` in `uv_handle_type`.
pub const UV_POLL: c_int = 8;
/// `UV_TIMER` in `uv_handle_type`.
pub const UV_TIMER: c_int = 13;
/// `UV_READABLE` in `uv_poll_event`.
pub const UV_READABLE: c_int = 1;

pub type PollCb = unsafe extern "C" fn(handle: *mut Handle, status: c_int, events: c_int);
pub type TimerCb = unsafe extern "C" fn(handle: *mut Handle);
pub type CloseCb = unsafe extern "C" fn(handle: *mut Handle);

unsafe extern "C" {
    pub fn uv_handle_size(kind: c_int) -> usize;
    pub fn uv_poll_init(lp: *mut Loop, handle: *mut Handle, fd: c_int) -> c_int;
    pub fn uv_poll_start(handle: *mut Handle, events: c_int, cb: PollCb) -> c_int;
    pub fn uv_timer_init(lp: *mut Loop, handle: *mut Handle) -> c_int;
    pub fn uv_timer_start(handle: *mut Handle, cb: TimerCb, timeout: u64, repeat: u64) -> c_int;
    pub fn uv_timer_stop(handle: *mut Handle) -> c_int;
    pub fn uv_ref(handle: *mut Handle);
    pub fn uv_unref(handle: *mut Handle);
    pub fn uv_close(handle: *mut Handle, cb: CloseCb);
}

/// Allocates zeroed memory for a handle of `kind`, aligned for any libuv struct. Freed by
/// [`free_on_close`] (the close callback), which finds the size in a header word.
pub fn alloc(kind: c_int) -> *mut Handle {
    // SAFETY: uv_handle_size has no preconditions; it reports sizeof the handle type.
    let size = unsafe { uv_handle_size(kind) };
    let words = size.div_ceil(std::mem::size_of::<u128>()).max(1);
    let ptr = Box::into_raw(vec![0u128; words + 1].into_boxed_slice()).cast::<u128>();
    // SAFETY: the allocation holds `words + 1` u128s: a header, then the handle.
    unsafe {
        *ptr = words as u128;
        ptr.add(1).cast()
    }
}

/// A `uv_close` callback that frees memory from [`alloc`].
///
/// # Safety
/// `handle` must come from [`alloc`] and be closed (libuv calls this once, after close).
pub unsafe extern "C" fn free_on_close(handle: *mut Handle) {
    // SAFETY: `alloc` put the word count in the u128 just before the handle.
    unsafe {
        let base = handle.cast::<u128>().sub(1);
        let words = *base as usize;
        drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
            base,
            words + 1,
        )));
    }
}
