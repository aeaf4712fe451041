//! polyio-core: one async I/O engine, driven by its consumer.
//!
//! Every operation is submitted with a caller-chosen `user_data` and ends in exactly one
//! [`Completion`]; a submission that returns an error produces none. A [`Runtime`] is a
//! current-thread tokio runtime plus polyio's completion queue, and the consumer's own
//! thread drives it: it watches [`Runtime::backend_fd`], honours
//! [`Runtime::next_timeout`], and calls [`Runtime::turn`] (or blocks in [`Runtime::reap`]).
//! Pure Rust: the C, Python and Node bindings are thin layers over this crate.
//!
//! Layout, each module below the ones that use it: `handle`, `status`, `buf`, `wake`,
//! `clock` (timer keys), `pool` (detached threads for blocking calls), `resolve` (the
//! resolver under lookups), `backend`, `idmap` (id-keyed maps) and `policy` (the stream
//! buffering policy the bindings share) are leaves; `op` is the op
//! record and wake keys; `socket` the resources; `task` the one op type for futures;
//! `runtime/` the queue, ids, timers, cancellation and the turn; then one module per kind
//! of I/O, each an `impl Runtime` block: `stream` (the ops every connected socket shares),
//! `dns`, `tcp`, `udp`, `unix` and `fs/` (files, through io_uring or the blocking pool).

#![deny(unsafe_op_in_unsafe_fn)]

mod backend;
mod buf;
mod clock;
mod dns;
mod fs;
mod handle;
mod idmap;
mod op;
mod opqueue;
mod policy;
mod pool;
mod resolve;
mod runtime;
mod socket;
mod status;
mod stream;
mod task;
mod tcp;
mod udp;
mod unix;
mod wake;

pub use backend::Backend;
pub use buf::{ReadBuf, WriteBuf};
pub use fs::{FileStat, FsBackend, MAX_IOV};
pub use handle::Handle;
pub use idmap::{IdHasher, IdMap};
pub use op::{Completion, FLAG_INLINE, FLAG_MORE, FLAG_PARTIAL, FLAG_TRUNC, OpCode};
pub use policy::{Backpressure, BadWaterMarks, HIGH_WATER, LOW_WATER, READ_SIZE, WaterMarks};
pub use resolve::{
    AddrInfo, LookupHints, MAX_HOST_LEN, Query, Resolve, SystemResolver, ip_literal,
};
pub use runtime::{Options, Runtime, Stats};
pub use status::{ALL_STATUSES, Status};
pub use tcp::{ConnectOptions, ListenOptions, MAX_KEEPALIVE_IDLE_SECS};
pub use udp::UdpOptions;
pub use unix::{PeerCred, UNIX_PATH_MAX};
pub use wake::RuntimeWaker;
