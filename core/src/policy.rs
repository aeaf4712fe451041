//! The stream buffering policy every binding follows: how much one read asks for, and the
//! write-buffer water marks that turn a growing backlog into backpressure (asyncio's
//! defaults, 64 KiB / 16 KiB). DESIGN.md rule 7.

use std::fmt;

/// Bytes one stream read asks for (Node's sockets, Python's streams; Python's protocol
/// transports ask for 128 KiB, so that a 100 KiB message is one `recv`, not two).
pub const READ_SIZE: usize = 64 * 1024;
/// Default high-water mark of a write backlog (asyncio's).
pub const HIGH_WATER: usize = 64 * 1024;
/// Default low-water mark of a write backlog: a quarter of the high one, as asyncio sets it.
pub const LOW_WATER: usize = HIGH_WATER / 4;

/// A write backlog's water marks: above `high` the writer should wait; at or below `low`
/// it may go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaterMarks {
    high: usize,
    low: usize,
}

impl Default for WaterMarks {
    fn default() -> WaterMarks {
        WaterMarks {
            high: HIGH_WATER,
            low: LOW_WATER,
        }
    }
}

/// Water marks that break `high >= low >= 0`: what asyncio's `set_write_buffer_limits`
/// rejects with a `ValueError` worded as this type's `Display`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadWaterMarks {
    pub high: i64,
    pub low: i64,
}

impl fmt::Display for BadWaterMarks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "high ({}) must be >= low ({}) must be >= 0",
            self.high, self.low
        )
    }
}

impl std::error::Error for BadWaterMarks {}

impl WaterMarks {
    /// asyncio's `set_write_buffer_limits(high, low)`: a missing `high` is four times `low`
    /// (or [`HIGH_WATER`] when both are missing), a missing `low` a quarter of `high`.
    pub fn new(high: Option<i64>, low: Option<i64>) -> Result<WaterMarks, BadWaterMarks> {
        let high = high.unwrap_or_else(|| low.map_or(HIGH_WATER as i64, |l| l.saturating_mul(4)));
        // Python's floor division, as asyncio computes it (`-1 // 4 == -1`).
        let low = low.unwrap_or(high.div_euclid(4));
        if high >= low && low >= 0 {
            Ok(WaterMarks {
                high: high as usize,
                low: low as usize,
            })
        } else {
            Err(BadWaterMarks { high, low })
        }
    }

    pub fn high(&self) -> usize {
        self.high
    }

    pub fn low(&self) -> usize {
        self.low
    }
}

/// A writer's backpressure: paused once its backlog grows above the high-water mark,
/// resumed once it shrinks to the low-water mark or below (asyncio's `pause_writing` /
/// `resume_writing`, and what `StreamWriter.drain()` waits for).
#[derive(Debug, Clone, Copy, Default)]
pub struct Backpressure {
    marks: WaterMarks,
    paused: bool,
}

impl Backpressure {
    pub fn marks(&self) -> WaterMarks {
        self.marks
    }

    /// New marks; they apply from the next [`Backpressure::grew`] or
    /// [`Backpressure::shrank`], as in asyncio.
    pub fn set_marks(&mut self, marks: WaterMarks) {
        self.marks = marks;
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// The backlog grew to `backlog` bytes: true when the writer must pause now.
    pub fn grew(&mut self, backlog: usize) -> bool {
        let pause = !self.paused && backlog > self.marks.high;
        self.paused |= pause;
        pause
    }

    /// The backlog shrank to `backlog` bytes: true when a paused writer resumes now.
    pub fn shrank(&mut self, backlog: usize) -> bool {
        let resume = self.paused && backlog <= self.marks.low;
        self.paused &= !resume;
        resume
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_default_and_derive_as_asyncio() {
        assert_eq!(WaterMarks::new(None, None), Ok(WaterMarks::default()));
        let m = WaterMarks::new(Some(1000), None).unwrap();
        assert_eq!((m.high(), m.low()), (1000, 250));
        let m = WaterMarks::new(None, Some(100)).unwrap();
        assert_eq!((m.high(), m.low()), (400, 100));
        let m = WaterMarks::new(Some(0), Some(0)).unwrap();
        assert_eq!((m.high(), m.low()), (0, 0));
        let e = WaterMarks::new(Some(10), Some(20)).unwrap_err();
        assert_eq!(e.to_string(), "high (10) must be >= low (20) must be >= 0");
        assert!(WaterMarks::new(Some(-4), None).is_err());
        // The derived low mark rounds down, as Python's `//`: asyncio's message names it.
        let e = WaterMarks::new(Some(-1), None).unwrap_err();
        assert_eq!(e.to_string(), "high (-1) must be >= low (-1) must be >= 0");
    }

    #[test]
    fn pauses_above_high_resumes_at_low() {
        let mut bp = Backpressure::default();
        assert!(!bp.grew(HIGH_WATER), "at the mark is not above it");
        assert!(bp.grew(HIGH_WATER + 1));
        assert!(!bp.grew(HIGH_WATER + 2), "pauses once");
        assert!(bp.is_paused());
        assert!(!bp.shrank(LOW_WATER + 1));
        assert!(bp.shrank(LOW_WATER));
        assert!(!bp.is_paused());
        assert!(!bp.shrank(0), "resumes once");
    }
}
