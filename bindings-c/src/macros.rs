//! The two macros every C function goes through: `ffi_boundary!` (no panic unwinds into C)
//! and `runtime_mut!` (the NULL check on the runtime pointer). A test in `lib.rs` reads every
//! source file and fails if an `extern "C"` function does not open with `ffi_boundary!`.
//!
//! Why not one `ffi_fn!` that also writes the `#[unsafe(no_mangle)] extern "C"` line, as hyper
//! does: cbindgen cannot see a function a macro produces without `parse.expand`, which needs
//! a nightly compiler; so the signature stays plain Rust and the test enforces the boundary.

/// Runs `$body`, turning a panic into `$on_panic`: no unwind crosses into C.
macro_rules! ffi_boundary {
    ($on_panic:expr, $body:block) => {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| $body)) {
            Ok(v) => v,
            Err(_) => $on_panic,
        }
    };
}

/// Evaluates to the `&mut Runtime` behind `$rt`, or returns `$on_null` when it is NULL.
macro_rules! runtime_mut {
    ($rt:expr, $on_null:expr) => {{
        if $rt.is_null() {
            return $on_null;
        }
        // SAFETY: a non-NULL `polyio_runtime *` came from `polyio_runtime_new` and is not
        // freed yet (documented contract); one thread at a time uses it, so this is the only
        // live reference to the core.
        unsafe { $crate::runtime::core_mut($rt as *const $crate::runtime::polyio_runtime) }
    }};
}
