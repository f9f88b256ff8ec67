//! How the items of one map are cut into chunks: one set of rules for
//! every schedule.
//!
//! The items to map are a list of spans (normally one, `0..items`; after a
//! resume, the gaps the journal does not cover). Chunks are contiguous item
//! ranges cut within each span; none crosses a span's end.
//!
//! * static ([`StaticPlan`]): chunks of one size, chunk `k` owned by rank
//!   `k % ranks` (block-cyclic, like OpenMP's `schedule(static, chunk)`); by
//!   default `ceil(items / ranks)`, one contiguous block per rank.
//! * dynamic ([`Dispenser`]): chunks of one size handed out on demand, by
//!   default about `items / (8 x ranks)` (like `Pool.map`'s
//!   `items / (4 x workers)`, finer because chunks are prefetched).
//! * guided ([`Dispenser`]): chunks of `remaining / (2 x ranks)` items,
//!   shrinking as work runs out, never below the minimum (`--chunk`, 1 by
//!   default).
//!
//! No default or guided chunk exceeds [`MAX_DEFAULT_CHUNK`] items, so the
//! root's memory (chunks in flight, its own chunk) does not grow with the
//! input.

use std::ops::Range;

/// The static schedule's chunking of the spans' items over `ranks` ranks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticPlan {
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

impl StaticPlan {
    /// Cuts `0..items` into chunks of `chunk` items, or one block per rank when `chunk` is `None`.
    pub fn new(items: usize, ranks: usize, chunk: Option<usize>) -> StaticPlan {
        StaticPlan::over(std::iter::once(0..items).collect(), ranks, chunk)
    }

    /// Cuts each of `spans` into chunks of `chunk` items (default: the spans'
    /// items over the ranks, rounded up).
    pub fn over(spans: Vec<Range<usize>>, ranks: usize, chunk: Option<usize>) -> StaticPlan {
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
        StaticPlan {
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

/// No default or guided chunk exceeds this many items.
pub const MAX_DEFAULT_CHUNK: usize = 1 << 20;
/// Guided chunks are `remaining / (GUIDED_DIVISOR x ranks)` items.
pub const GUIDED_DIVISOR: usize = 2;

/// The default chunk of `dynamic`: about `items / (8 x ranks)`, so each rank
/// takes some 8 chunks, at most [`MAX_DEFAULT_CHUNK`].
pub fn default_chunk(items: usize, ranks: usize) -> usize {
    items.div_ceil(8 * ranks.max(1)).clamp(1, MAX_DEFAULT_CHUNK)
}

/// Whether chunks keep one size (dynamic) or shrink with the work left (guided).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sizing {
    /// One size.
    Fixed,
    /// `remaining / (2 x ranks)`, at least the minimum.
    Guided,
}

/// Hands out consecutive chunks of the spans still to map (dynamic, guided).
#[derive(Clone, Debug)]
pub struct Dispenser {
    /// Spans still to hand out, the next one last (popped from the end).
    spans: Vec<Range<usize>>,
    /// Items not handed out yet.
    remaining: usize,
    ranks: usize,
    sizing: Sizing,
    /// The fixed size, or the guided minimum.
    chunk: usize,
}

impl Dispenser {
    /// A dispenser of `0..items`.
    pub fn new(items: usize, ranks: usize, sizing: Sizing, chunk: Option<usize>) -> Dispenser {
        Dispenser::over(std::iter::once(0..items).collect(), ranks, sizing, chunk)
    }

    /// A dispenser of `spans`; `chunk` is the fixed size (default
    /// [`default_chunk`] of all the spans' items) or the guided minimum
    /// (default 1).
    pub fn over(
        spans: Vec<Range<usize>>,
        ranks: usize,
        sizing: Sizing,
        chunk: Option<usize>,
    ) -> Dispenser {
        let remaining = spans.iter().map(|s| s.len()).sum();
        let chunk = match sizing {
            Sizing::Guided => chunk.unwrap_or(1),
            Sizing::Fixed => chunk.unwrap_or_else(|| default_chunk(remaining, ranks)),
        };
        let mut spans: Vec<Range<usize>> = spans.into_iter().filter(|s| !s.is_empty()).collect();
        spans.reverse();
        Dispenser {
            spans,
            remaining,
            ranks: ranks.max(1),
            sizing,
            chunk: chunk.max(1),
        }
    }

    /// The next chunk, or `None` when everything is handed out.
    pub fn next_chunk(&mut self) -> Option<Range<usize>> {
        let size = self.peek_len();
        let span = self.spans.last_mut()?;
        let range = span.start..span.start + size;
        span.start += size;
        if span.start >= span.end {
            self.spans.pop();
        }
        self.remaining -= size;
        Some(range)
    }

    /// Takes back a chunk that was handed out but not mapped (abandoned):
    /// it is the next to go out again.
    pub fn give_back(&mut self, range: Range<usize>) {
        if !range.is_empty() {
            self.remaining += range.len();
            self.spans.push(range);
        }
    }

    /// Hands out nothing more (the map is ending early).
    pub fn stop(&mut self) {
        self.spans.clear();
        self.remaining = 0;
    }

    /// Items not handed out yet.
    pub fn remaining(&self) -> usize {
        self.remaining
    }

    /// The size of the next chunk (0 when everything is handed out).
    pub fn peek_len(&self) -> usize {
        let Some(span) = self.spans.last() else {
            return 0;
        };
        match self.sizing {
            Sizing::Guided => self
                .remaining
                .div_ceil(GUIDED_DIVISOR * self.ranks)
                .min(MAX_DEFAULT_CHUNK)
                .max(self.chunk),
            Sizing::Fixed => self.chunk,
        }
        .min(span.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_one_block_per_rank() {
        let p = StaticPlan::new(10, 4, None);
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
            let p = StaticPlan::new(items, ranks, chunk);
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
        let p = StaticPlan::over(vec![2..9, 12..12, 15..20], 2, Some(3));
        let ranges: Vec<_> = (0..p.chunks()).map(|k| p.range(k)).collect();
        assert_eq!(ranges, [2..5, 5..8, 8..9, 15..18, 18..20]);
        assert_eq!(p.items, 12);
        assert_eq!(p.items_of(0) + p.items_of(1), 12);
    }

    #[test]
    fn more_ranks_than_items_leaves_ranks_idle() {
        let p = StaticPlan::new(2, 5, None);
        assert_eq!(p.chunk, 1);
        assert_eq!(
            (0..5).map(|r| p.items_of(r)).collect::<Vec<_>>(),
            [1, 1, 0, 0, 0]
        );
    }

    fn sizes(items: usize, ranks: usize, sizing: Sizing, chunk: Option<usize>) -> Vec<usize> {
        let mut d = Dispenser::new(items, ranks, sizing, chunk);
        std::iter::from_fn(|| d.next_chunk().map(|r| r.len())).collect()
    }

    #[test]
    fn dynamic_chunks_are_fixed_and_cover_everything() {
        assert_eq!(sizes(10, 2, Sizing::Fixed, Some(3)), [3, 3, 3, 1]);
        assert_eq!(sizes(0, 2, Sizing::Fixed, None), Vec::<usize>::new());
        // Default: about items / (8 x ranks).
        assert_eq!(sizes(160, 2, Sizing::Fixed, None), [10; 16]);
    }

    #[test]
    fn default_chunks_are_capped() {
        let d = Dispenser::new(1 << 30, 2, Sizing::Fixed, None);
        assert_eq!(d.peek_len(), MAX_DEFAULT_CHUNK);
        let g = Dispenser::new(1 << 30, 2, Sizing::Guided, None);
        assert_eq!(g.peek_len(), MAX_DEFAULT_CHUNK);
        // An explicit chunk is the user's choice.
        let d = Dispenser::new(1 << 30, 2, Sizing::Fixed, Some(1 << 21));
        assert_eq!(d.peek_len(), 1 << 21);
    }

    #[test]
    fn guided_chunks_shrink_to_the_minimum() {
        let s = sizes(100, 2, Sizing::Guided, Some(4));
        assert_eq!(s.iter().sum::<usize>(), 100);
        assert_eq!(s[0], 25);
        assert!(s.windows(2).all(|w| w[0] >= w[1]));
        assert!(s[..s.len() - 1].iter().all(|&c| c >= 4));
    }

    #[test]
    fn dispensed_chunks_stay_inside_spans_and_given_back_ones_go_out_next() {
        let mut d = Dispenser::over(vec![0..5, 10..12], 2, Sizing::Fixed, Some(3));
        assert_eq!(d.next_chunk(), Some(0..3));
        let second = d.next_chunk().unwrap();
        assert_eq!(second, 3..5);
        d.give_back(second);
        assert_eq!(d.remaining(), 4);
        assert_eq!(d.next_chunk(), Some(3..5));
        assert_eq!(d.next_chunk(), Some(10..12));
        assert_eq!(d.next_chunk(), None);
        d.give_back(10..12);
        d.stop();
        assert_eq!((d.next_chunk(), d.peek_len()), (None, 0));
    }
}
