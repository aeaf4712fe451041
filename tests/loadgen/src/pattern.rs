//! Message patterns for the echo load generator: every request on every connection carries
//! bytes that depend on (connection, request), so a corrupted, truncated, stale or swapped
//! echo never compares equal to what was sent.

/// Distinct message offsets into a connection's pool (prime, so the walk below covers them all).
const PERIOD: usize = 4093;

/// Step between the offsets of consecutive requests, in bytes.
const STEP: u64 = 61;

/// The messages of one connection.
///
/// A connection owns a pool of `size + PERIOD` pseudo-random bytes seeded by its id; request
/// `r` sends the `size`-byte window starting at `offset(r)`. Consecutive requests start 61
/// bytes apart, so a stale echo of the previous request differs in almost every byte, and
/// two connections share no pool. Building a message costs nothing (it is a slice) and
/// checking an echo is a `memcmp` against that slice.
#[derive(Debug, Clone)]
pub struct Pattern {
    pool: Vec<u8>,
    size: usize,
}

impl Pattern {
    /// The pattern of connection `conn` for `size`-byte messages.
    pub fn new(conn: u32, size: usize) -> Self {
        let len = size + PERIOD;
        let mut pool = Vec::with_capacity(len + 8);
        // Different seeds per connection; the constant keeps connection 0 away from seed 0.
        let mut state = 0x5EED_0000_0000_0000_u64 ^ (u64::from(conn) << 16) ^ size as u64;
        while pool.len() < len {
            pool.extend_from_slice(&splitmix64(&mut state).to_le_bytes());
        }
        pool.truncate(len);
        Self { pool, size }
    }

    /// The message size in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The bytes request number `req` sends (and expects back).
    pub fn message(&self, req: u64) -> &[u8] {
        let off = offset(req);
        &self.pool[off..off + self.size]
    }
}

/// Where request `req` starts in its connection's pool.
fn offset(req: u64) -> usize {
    // PERIOD fits in u64 and the result is < PERIOD, so both casts are lossless.
    (req.wrapping_mul(STEP) % PERIOD as u64) as usize
}

/// One step of the splitmix64 generator: fast, and good enough to make bytes look random.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The first byte where an echo differs from what was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mismatch {
    /// Index of the byte within the compared chunk.
    pub index: usize,
    /// The byte that was sent.
    pub expected: u8,
    /// The byte that came back.
    pub got: u8,
}

/// Checks an echoed chunk against the bytes that were sent at the same position.
///
/// Both slices must have the same length; a length difference is reported as a mismatch at
/// the end of the shorter one (with 0 standing in for the missing byte).
pub fn verify(expected: &[u8], got: &[u8]) -> Result<(), Mismatch> {
    if expected == got {
        return Ok(());
    }
    let index = expected
        .iter()
        .zip(got)
        .position(|(e, g)| e != g)
        .unwrap_or_else(|| expected.len().min(got.len()));
    Err(Mismatch {
        index,
        expected: expected.get(index).copied().unwrap_or(0),
        got: got.get(index).copied().unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intact_echo_passes() {
        let p = Pattern::new(3, 1024);
        let msg = p.message(7);
        assert_eq!(msg.len(), 1024);
        let echo = msg.to_vec();
        assert_eq!(verify(msg, &echo), Ok(()));
        // Chunked, as reads deliver it.
        assert_eq!(verify(&msg[100..300], &echo[100..300]), Ok(()));
    }

    #[test]
    fn corrupted_byte_is_caught() {
        let p = Pattern::new(0, 10 * 1024);
        let msg = p.message(42);
        let mut echo = msg.to_vec();
        echo[5000] ^= 0x01;
        let err = verify(msg, &echo).expect_err("a flipped bit must be caught");
        assert_eq!(err.index, 5000);
        assert_eq!(err.expected, msg[5000]);
        assert_eq!(err.got, msg[5000] ^ 0x01);
    }

    #[test]
    fn truncated_echo_is_caught() {
        let p = Pattern::new(1, 64);
        let msg = p.message(0);
        let err = verify(msg, &msg[..63]).expect_err("a short echo must be caught");
        assert_eq!(err.index, 63);
    }

    #[test]
    fn stale_or_foreign_echo_is_caught() {
        let a = Pattern::new(0, 1024);
        let b = Pattern::new(1, 1024);
        // The previous request's echo, arriving where the next one is expected.
        for req in 1..(2 * PERIOD as u64) {
            let err = verify(a.message(req), a.message(req - 1));
            assert!(err.is_err(), "request {req} equals request {}", req - 1);
        }
        // Another connection's message.
        assert!(verify(a.message(5), b.message(5)).is_err());
    }

    #[test]
    fn messages_are_deterministic() {
        let a = Pattern::new(9, 100);
        let b = Pattern::new(9, 100);
        assert_eq!(a.message(12345), b.message(12345));
        assert_eq!(a.size(), 100);
    }
}
