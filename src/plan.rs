//! How the items of one map are cut into chunks and which rank owns each chunk.
//!
//! Chunks are contiguous item ranges of one size (the last may be shorter).
//! Under the static schedule chunk `k` belongs to rank `k % ranks`
//! (block-cyclic, like OpenMP's `schedule(static, chunk)`); by default the
//! chunk is `ceil(items / ranks)`, so every rank gets one contiguous block.

use std::ops::Range;

/// The chunking of `items` items over `ranks` ranks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Number of items in the whole input.
    pub items: usize,
    /// Items per chunk (at least 1).
    pub chunk: usize,
    /// Number of ranks the chunks are dealt to.
    pub ranks: usize,
}

impl Plan {
    /// Cuts `items` into chunks of `chunk` items, or one block per rank when `chunk` is `None`.
    pub fn new(items: usize, ranks: usize, chunk: Option<usize>) -> Plan {
        let ranks = ranks.max(1);
        let chunk = chunk.unwrap_or_else(|| items.div_ceil(ranks)).max(1);
        Plan {
            items,
            chunk,
            ranks,
        }
    }

    /// Number of chunks.
    pub fn chunks(&self) -> usize {
        self.items.div_ceil(self.chunk)
    }

    /// The item indices of chunk `k`.
    pub fn range(&self, k: usize) -> Range<usize> {
        let start = k * self.chunk;
        start..(start + self.chunk).min(self.items)
    }

    /// The chunks owned by `rank` under the static schedule, in item order.
    pub fn chunks_of(&self, rank: usize) -> impl Iterator<Item = usize> + use<> {
        (rank..self.chunks()).step_by(self.ranks)
    }

    /// How many items `rank` owns under the static schedule.
    pub fn items_of(&self, rank: usize) -> usize {
        self.chunks_of(rank).map(|k| self.range(k).len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_one_block_per_rank() {
        let p = Plan::new(10, 4, None);
        assert_eq!(p.chunk, 3);
        assert_eq!(p.chunks(), 4);
        let owned: Vec<usize> = (0..4).map(|r| p.items_of(r)).collect();
        assert_eq!(owned, [3, 3, 3, 1]);
    }

    #[test]
    fn block_cyclic_covers_every_item_once() {
        for (items, ranks, chunk) in [
            (0, 3, None),
            (1, 8, None),
            (17, 3, Some(2)),
            (5, 2, Some(9)),
        ] {
            let p = Plan::new(items, ranks, chunk);
            let mut seen = vec![0; items];
            for r in 0..ranks {
                for k in p.chunks_of(r) {
                    assert_eq!(k % ranks, r);
                    p.range(k).for_each(|i| seen[i] += 1);
                }
            }
            assert!(seen.iter().all(|&c| c == 1), "{items} {ranks} {chunk:?}");
        }
    }

    #[test]
    fn more_ranks_than_items_leaves_ranks_idle() {
        let p = Plan::new(2, 5, None);
        assert_eq!(p.chunk, 1);
        assert_eq!(
            (0..5).map(|r| p.items_of(r)).collect::<Vec<_>>(),
            [1, 1, 0, 0, 0]
        );
    }
}
