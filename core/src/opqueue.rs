//! A resource's queue of operations (op ids in submission order: a connection's reads and
//! writes, a listener's accepts, a UDP socket's receives and sends). The first id is held
//! inline, so a resource with at most one op of a kind queued at a time, the usual case
//! (an armed read on an idle connection), allocates nothing for its queues.

use std::collections::VecDeque;

use crate::handle::Handle;

/// A FIFO of op ids: `head`, then `rest`. `head` is `Handle::NONE` only when the queue is
/// empty; `rest` is allocated the first time two ids are queued at once, and kept.
#[derive(Default)]
pub(crate) struct OpQueue {
    head: Handle,
    // Boxed: an unused spill costs every resource 8 bytes, not a VecDeque's 32.
    #[allow(clippy::box_collection)]
    rest: Option<Box<VecDeque<Handle>>>,
}

impl OpQueue {
    pub(crate) const fn new() -> OpQueue {
        OpQueue {
            head: Handle::NONE,
            rest: None,
        }
    }

    /// The oldest id, if any.
    pub(crate) fn front(&self) -> Option<Handle> {
        (self.head != Handle::NONE).then_some(self.head)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.head == Handle::NONE
    }

    pub(crate) fn len(&self) -> usize {
        if self.is_empty() {
            0
        } else {
            1 + self.rest.as_ref().map_or(0, |r| r.len())
        }
    }

    pub(crate) fn push_back(&mut self, id: Handle) {
        if self.head == Handle::NONE {
            self.head = id;
        } else {
            self.rest.get_or_insert_default().push_back(id);
        }
    }

    /// Takes the oldest id out.
    pub(crate) fn pop_front(&mut self) -> Option<Handle> {
        let front = self.front()?;
        self.head = self
            .rest
            .as_mut()
            .and_then(|r| r.pop_front())
            .unwrap_or(Handle::NONE);
        Some(front)
    }

    /// The ids, oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = Handle> + '_ {
        self.front()
            .into_iter()
            .chain(self.rest.iter().flat_map(|r| r.iter().copied()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(n: u64) -> Handle {
        Handle::from_raw(n)
    }

    #[test]
    fn first_in_first_out_across_the_inline_head() {
        let mut q = OpQueue::new();
        assert!(q.is_empty());
        assert_eq!(q.pop_front(), None);
        q.push_back(h(1));
        assert!(q.rest.is_none(), "one id needs no allocation");
        q.push_back(h(2));
        q.push_back(h(3));
        assert_eq!(q.len(), 3);
        assert_eq!(q.iter().collect::<Vec<_>>(), [h(1), h(2), h(3)]);
        assert_eq!(q.pop_front(), Some(h(1)));
        q.push_back(h(4));
        assert_eq!(q.front(), Some(h(2)));
        let drained: Vec<_> = std::iter::from_fn(|| q.pop_front()).collect();
        assert_eq!(drained, [h(2), h(3), h(4)]);
        assert!(q.is_empty());
        assert_eq!(q.len(), 0);
        assert_eq!(q.iter().count(), 0);
    }
}
