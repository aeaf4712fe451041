//! Handles are ids, not pointers: a slot index, a generation and the runtime's id packed in
//! 64 bits. A `Table` hands them out; a stale, closed, foreign or made-up handle simply
//! fails to look up, so misuse yields `BadHandle` and never undefined behaviour.
//!
//! The guarantee and its bounds: a slot whose 24-bit generation is used up is retired, never
//! reused, so within one runtime a closed handle never names anything again (a table can
//! issue 2^48 handles before it runs out). Across runtimes, the 16-bit runtime id tells
//! them apart while both live; a freed runtime's id is handed out again only after 65,534
//! other runtimes were created, and only then could its old handles name something.

use std::fmt;

const SLOT_BITS: u32 = 24;
const GEN_BITS: u32 = 24;
const SLOT_MASK: u64 = (1 << SLOT_BITS) - 1;
const GEN_MASK: u64 = (1 << GEN_BITS) - 1;

/// Largest number of live entries one table holds.
pub const MAX_SLOTS: usize = SLOT_MASK as usize;

/// An opaque 64-bit handle: `runtime id (16) | generation (24) | slot (24)`.
/// Zero is never a valid handle.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Handle(u64);

impl Handle {
    /// The handle that names nothing (0).
    pub const NONE: Handle = Handle(0);

    /// Wraps a raw value (e.g. one that came back from C). Nothing is checked here:
    /// lookups check.
    pub const fn from_raw(raw: u64) -> Handle {
        Handle(raw)
    }

    /// The raw 64-bit value.
    pub const fn into_raw(self) -> u64 {
        self.0
    }

    pub(crate) fn new(rt: u16, generation: u32, slot: u32) -> Handle {
        Handle(
            (u64::from(rt) << (SLOT_BITS + GEN_BITS))
                | ((u64::from(generation) & GEN_MASK) << SLOT_BITS)
                | (u64::from(slot) & SLOT_MASK),
        )
    }

    pub(crate) fn runtime(self) -> u16 {
        (self.0 >> (SLOT_BITS + GEN_BITS)) as u16
    }

    pub(crate) fn generation(self) -> u32 {
        ((self.0 >> SLOT_BITS) & GEN_MASK) as u32
    }

    pub(crate) fn slot(self) -> u32 {
        (self.0 & SLOT_MASK) as u32
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Handle(rt={}, gen={}, slot={})",
            self.runtime(),
            self.generation(),
            self.slot()
        )
    }
}

/// The last generation a slot gets; at it the slot is retired instead of freed.
const MAX_GENERATION: u32 = GEN_MASK as u32;

struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

/// A slab whose keys are `Handle`s. Generations start at 1, so a handle with generation 0
/// (and thus `Handle::NONE`) never resolves, and never wrap: a slot that reached
/// `max_generation` is retired when freed.
pub(crate) struct Table<T> {
    rt: u16,
    max_generation: u32,
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Table<T> {
    pub(crate) fn new(rt: u16) -> Self {
        Table {
            rt,
            max_generation: MAX_GENERATION,
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Inserts a value; `None` when the table is full.
    pub(crate) fn insert(&mut self, value: T) -> Option<Handle> {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                if self.slots.len() >= MAX_SLOTS {
                    return None;
                }
                self.slots.push(Slot {
                    generation: 0,
                    value: None,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let entry = &mut self.slots[slot as usize];
        entry.generation += 1;
        entry.value = Some(value);
        self.len += 1;
        Some(Handle::new(self.rt, entry.generation, slot))
    }

    fn slot_of(&self, h: Handle) -> Option<usize> {
        if h.runtime() != self.rt || h.generation() == 0 {
            return None;
        }
        let slot = h.slot() as usize;
        match self.slots.get(slot) {
            Some(s) if s.generation == h.generation() && s.value.is_some() => Some(slot),
            _ => None,
        }
    }

    pub(crate) fn get(&self, h: Handle) -> Option<&T> {
        self.slot_of(h).and_then(|i| self.slots[i].value.as_ref())
    }

    pub(crate) fn get_mut(&mut self, h: Handle) -> Option<&mut T> {
        self.slot_of(h).and_then(|i| self.slots[i].value.as_mut())
    }

    pub(crate) fn remove(&mut self, h: Handle) -> Option<T> {
        let i = self.slot_of(h)?;
        let value = self.slots[i].value.take();
        if self.slots[i].generation < self.max_generation {
            self.free.push(i as u32);
        }
        self.len -= 1;
        value
    }

    /// Every live handle, in slot order.
    pub(crate) fn handles(&self) -> Vec<Handle> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.value.is_some())
            .map(|(i, s)| Handle::new(self.rt, s.generation, i as u32))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_whose_generations_are_used_up_is_retired_not_reused() {
        let mut t = Table::new(1);
        t.max_generation = 3;
        let mut seen = Vec::new();
        for _ in 0..3 {
            let h = t.insert(()).unwrap();
            assert_eq!(h.slot(), 0);
            seen.push(h);
            t.remove(h);
        }
        let next = t.insert(()).unwrap();
        assert_eq!(
            (next.slot(), next.generation()),
            (1, 1),
            "slot 0 is retired"
        );
        for old in seen {
            assert_eq!(t.get(old), None);
        }
    }

    #[test]
    fn the_real_limit_is_the_24_bit_generation() {
        assert_eq!(Table::<()>::new(1).max_generation, (1 << 24) - 1);
    }

    #[test]
    fn stale_foreign_and_zero_handles_do_not_resolve() {
        let mut t = Table::new(7);
        let a = t.insert("a").unwrap();
        assert_eq!(t.get(a), Some(&"a"));
        assert_eq!(t.get(Handle::NONE), None);
        assert_eq!(t.get(Handle::new(8, a.generation(), a.slot())), None);
        assert_eq!(t.remove(a), Some("a"));
        assert_eq!(t.get(a), None);
        let b = t.insert("b").unwrap();
        assert_eq!(b.slot(), a.slot());
        assert_ne!(a, b);
        assert_eq!(t.get(a), None);
        assert_eq!(t.remove(a), None);
        assert_eq!(t.len(), 1);
    }
}
