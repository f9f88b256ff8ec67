//! How the items of one map are cut into chunks and which rank owns each chunk.
//!
//! The items to map are a list of spans (normally one, `0..items`; after a
//! resume, the gaps the journal does not cover). Chunks are contiguous item
//! ranges of one size cut within each span (the last of a span may be
//! shorter). Under the static schedule chunk `k` belongs to rank
//! `k % ranks` (block-cyclic, like OpenMP's `schedule(static, chunk)`); by
//! default the chunk is `ceil(items / ranks)`, so every rank gets one
//! contiguous block.

use std::ops::Range;

/// The chunking of the spans' items over `ranks` ranks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The item ranges to map, in order, not overlapping.
    spans: Vec<Range<usize>>,
    /// `first_chunk[s]`: number of chunks before span `s` (one extra entry: the total).
    first_chunk: Vec<usize>,
    /// Number of items in all spans.
    pub items: usize,
    /// Items per chunk (at least 1).
    pub chunk: usize,
    /// Number of ranks the chunks are dealt to.
    pub ranks: usize,
}

impl Plan {
    /// Cuts `0..items` into chunks of `chunk` items, or one block per rank when `chunk` is `None`.
    pub fn new(items: usize, ranks: usize, chunk: Option<usize>) -> Plan {
        Plan::over(std::iter::once(0..items).collect(), ranks, chunk)
    }

    /// Cuts each of `spans` into chunks of `chunk` items (default: the spans'
    /// items over the ranks, rounded up).
    pub fn over(spans: Vec<Range<usize>>, ranks: usize, chunk: Option<usize>) -> Plan {
        let ranks = ranks.max(1);
        let spans: Vec<Range<usize>> = spans.into_iter().filter(|s| !s.is_empty()).collect();
        let items = spans.iter().map(|s| s.len()).sum::<usize>();
        let chunk = chunk.unwrap_or_else(|| items.div_ceil(ranks)).max(1);
        let mut first_chunk = Vec::with_capacity(spans.len() + 1);
        let mut total = 0;
        for s in &spans {
            first_chunk.push(total);
            total += s.len().div_ceil(chunk);
        }
        first_chunk.push(total);
        Plan {
            spans,
            first_chunk,
            items,
            chunk,
            ranks,
        }
    }

    /// The spans, as given (empty ones dropped).
    pub fn spans(&self) -> &[Range<usize>] {
        &self.spans
    }

    /// Number of chunks.
    pub fn chunks(&self) -> usize {
        *self.first_chunk.last().unwrap_or(&0)
    }

    /// The item indices of chunk `k`.
    pub fn range(&self, k: usize) -> Range<usize> {
        let s = self.first_chunk.partition_point(|&c| c <= k) - 1;
        let span = &self.spans[s];
        let start = span.start + (k - self.first_chunk[s]) * self.chunk;
        start..(start + self.chunk).min(span.end)
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
    fn chunks_stay_inside_spans() {
        let p = Plan::over(vec![2..9, 12..12, 15..20], 2, Some(3));
        let ranges: Vec<_> = (0..p.chunks()).map(|k| p.range(k)).collect();
        assert_eq!(ranges, [2..5, 5..8, 8..9, 15..18, 18..20]);
        assert_eq!(p.items, 12);
        assert_eq!(p.items_of(0) + p.items_of(1), 12);
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
