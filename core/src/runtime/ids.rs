//! Runtime ids: 16 bits in every handle, so a handle from another live runtime never
//! resolves. An id is never shared by two live runtimes; ids are handed out round-robin,
//! so a freed runtime's id comes back only after 65,534 others have been taken.

use std::sync::{Mutex, PoisonError};

use crate::status::Status;

struct LiveIds {
    last: u16,
    live: Vec<u64>,
}

static LIVE_IDS: Mutex<LiveIds> = Mutex::new(LiveIds {
    last: 0,
    live: Vec::new(),
});

/// A runtime id, released when dropped.
pub(crate) struct IdLease(pub(crate) u16);

impl IdLease {
    /// A free id; `QueueFull` when 65,535 runtimes are alive at once.
    pub(crate) fn take() -> Result<IdLease, Status> {
        let mut ids = LIVE_IDS.lock().unwrap_or_else(PoisonError::into_inner);
        if ids.live.is_empty() {
            ids.live = vec![0; 1 << 10];
        }
        let mut id = ids.last;
        for _ in 0..=u16::MAX {
            id = id.wrapping_add(1);
            let (word, bit) = (usize::from(id) / 64, id % 64);
            if id != 0 && ids.live[word] & (1 << bit) == 0 {
                ids.live[word] |= 1 << bit;
                ids.last = id;
                return Ok(IdLease(id));
            }
        }
        Err(Status::QueueFull)
    }
}

impl Drop for IdLease {
    fn drop(&mut self) {
        let mut ids = LIVE_IDS.lock().unwrap_or_else(PoisonError::into_inner);
        let (word, bit) = (usize::from(self.0) / 64, self.0 % 64);
        ids.live[word] &= !(1 << bit);
    }
}
