//! polyio-core: one async I/O engine, driven by its consumer.
//!
//! Every operation is submitted with a caller-chosen `user_data` and ends in exactly one
//! [`Completion`]; a submission that returns an error produces none. A [`Runtime`] is a
//! current-thread tokio runtime plus polyio's completion queue, and the consumer's own
//! thread drives it: it watches [`Runtime::backend_fd`], honours
//! [`Runtime::next_timeout`], and calls [`Runtime::turn`] (or blocks in [`Runtime::reap`]).
//! Pure Rust: the C, Python and Node bindings are thin layers over this crate.

#![deny(unsafe_op_in_unsafe_fn)]

mod backend;
mod buf;
mod handle;
mod runtime;
mod status;
mod wake;

pub use backend::Backend;
pub use buf::{ReadBuf, WriteBuf};
pub use handle::Handle;
pub use runtime::{
    Completion, FLAG_INLINE, FLAG_MORE, ListenOptions, OpCode, Options, Runtime, Stats,
};
pub use status::{ALL_STATUSES, Status};
pub use wake::RuntimeWaker;
