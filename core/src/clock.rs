//! When things are due: the key that orders the runtime's timers, deadlines and task
//! wake-ups in one map.

use std::time::Instant;

/// A timer's place in the runtime's timer map: when it fires, and a sequence number that
/// keeps two timers due at the same instant apart.
pub(crate) type TimerKey = (Instant, u64);
