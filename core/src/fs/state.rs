//! A runtime's file state: the backend asked for, the one chosen on first use, and the ring.

use super::types::{FS_BACKEND_ENV, FsBackend};
use super::uring;

/// A runtime's file state: the backend asked for, the one chosen, and the ring.
pub(crate) struct FsState {
    pub(crate) want: FsBackend,
    pub(crate) chosen: FsBackend,
    pub(crate) ring: Option<Box<uring::Ring>>,
}

impl FsState {
    /// The environment variable is read here, when the runtime is created.
    pub(crate) fn new(want: FsBackend) -> FsState {
        let want = match want {
            FsBackend::Auto => match std::env::var(FS_BACKEND_ENV) {
                Ok(v) if v.eq_ignore_ascii_case("threads") => FsBackend::Threads,
                _ => FsBackend::Auto,
            },
            w => w,
        };
        FsState {
            want,
            chosen: FsBackend::Auto,
            ring: None,
        }
    }

    /// The backend in use; `Auto` before the first file op.
    pub(crate) fn backend(&self) -> FsBackend {
        self.chosen
    }
}
