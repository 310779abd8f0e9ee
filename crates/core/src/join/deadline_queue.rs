//! The join store's expiry order: `(deadline, seq, slot)` entries, smallest first.
//!
//! A deadline is an event time plus a constant bound, and event times mostly arrive in
//! order. So an entry not smaller than the last in-order one goes to the back of a FIFO
//! (constant time, predictable branches), and only out-of-order entries go to a binary
//! heap. The smallest entry is the smaller of the FIFO's front and the heap's top: the pop
//! order is exactly a single heap's (entries are distinct: `seq` is unique per side).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// `(deadline, seq, slot)`.
pub type Deadline = (i64, u32, u32);

#[derive(Debug, Clone, Default)]
pub struct DeadlineQueue {
    /// Ascending.
    in_order: VecDeque<Deadline>,
    out_of_order: BinaryHeap<Reverse<Deadline>>,
}

impl DeadlineQueue {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, entry: Deadline) {
        match self.in_order.back() {
            Some(last) if entry < *last => self.out_of_order.push(Reverse(entry)),
            _ => self.in_order.push_back(entry),
        }
    }

    /// The smallest entry.
    pub(crate) fn peek(&self) -> Option<Deadline> {
        let front = self.in_order.front().copied();
        let top = self.out_of_order.peek().map(|Reverse(e)| *e);
        match (front, top) {
            (Some(f), Some(t)) => Some(f.min(t)),
            (f, t) => f.or(t),
        }
    }

    /// Removes and returns the smallest entry.
    pub(crate) fn pop(&mut self) -> Option<Deadline> {
        let front = self.in_order.front().copied();
        let top = self.out_of_order.peek().map(|Reverse(e)| *e);
        match (front, top) {
            (Some(f), Some(t)) if t < f => self.out_of_order.pop().map(|Reverse(e)| e),
            (Some(_), _) => self.in_order.pop_front(),
            (None, _) => self.out_of_order.pop().map(|Reverse(e)| e),
        }
    }

    pub fn len(&self) -> usize {
        self.in_order.len() + self.out_of_order.len()
    }

    /// Keeps only the entries `keep` accepts.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&Deadline) -> bool) {
        self.in_order.retain(|e| keep(e));
        self.out_of_order.retain(|Reverse(e)| keep(e));
    }

    pub fn clear(&mut self) {
        self.in_order.clear();
        self.out_of_order.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any interleaving of pushes and pops gives what one binary heap gives.
        #[test]
        fn pops_in_the_order_of_one_heap(
            ops in proptest::collection::vec((any::<bool>(), -50i64..50), 0..300)
        ) {
            let mut queue = DeadlineQueue::new();
            let mut heap = BinaryHeap::new();
            for (seq, (push, deadline)) in ops.into_iter().enumerate() {
                let entry = (deadline, seq as u32, seq as u32 % 7);
                if push {
                    queue.push(entry);
                    heap.push(Reverse(entry));
                } else {
                    prop_assert_eq!(queue.pop(), heap.pop().map(|Reverse(e)| e));
                }
                prop_assert_eq!(queue.peek(), heap.peek().map(|Reverse(e)| *e));
                prop_assert_eq!(queue.len(), heap.len());
            }
            queue.retain(|e| e.0 % 2 == 0);
            heap.retain(|Reverse(e)| e.0 % 2 == 0);
            while let Some(Reverse(e)) = heap.pop() {
                prop_assert_eq!(queue.pop(), Some(e));
            }
            prop_assert_eq!(queue.len(), 0);
        }
    }
}
