//! A map keyed by the ids a binding hands out (sequential counters, `user_data` values):
//! one multiply hashes an id, where `HashMap`'s default SipHash would cost far more on a
//! map touched at every submission and every completion.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Hashes `u64` ids with one multiply by the 64-bit golden ratio (Fibonacci hashing): the
/// high bits of the product, which the table uses, depend on every bit of the id. Not
/// resistant to chosen keys: use it only for ids the binding itself allocates.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(GOLDEN);
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = id.wrapping_mul(GOLDEN);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A `HashMap` from ids to `V`, hashed with [`IdHasher`]. Create it with `IdMap::default()`.
pub type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_sequential_and_sparse_ids() {
        let mut m: IdMap<u64> = IdMap::default();
        for id in (0..10_000).chain([u64::MAX, 1 << 63, 0xdead_beef << 2]) {
            m.insert(id, id ^ 1);
        }
        assert_eq!(m.len(), 10_003);
        assert_eq!(m.get(&4_321), Some(&(4_321 ^ 1)));
        assert_eq!(m.remove(&u64::MAX), Some(u64::MAX ^ 1));
        assert_eq!(m.get(&10_000), None);
    }

    #[test]
    fn distinct_ids_hash_apart() {
        let hash = |id: u64| {
            let mut h = IdHasher::default();
            h.write_u64(id);
            h.finish()
        };
        assert_ne!(hash(1), hash(2));
        // The table indexes by the high bits: consecutive ids must differ there too.
        assert_ne!(hash(1) >> 57, hash(2) >> 57);
    }
}
