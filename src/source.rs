//! Where the root's input comes from: a slice in memory, or items generated
//! by index on demand.
//!
//! The root reads a source chunk by chunk: borrowed ([`Source::with_range`])
//! to encode chunks for other ranks, owned ([`Source::items`]) to map its
//! own share without encoding it at all. A generated source lets the root
//! hand out a hundred million items without ever holding them.

use std::ops::Range;

/// An indexable input the root reads chunk by chunk.
pub trait Source {
    /// The items.
    type Item;

    /// Number of items.
    fn len(&self) -> usize;

    /// Whether there are no items.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `f` with the items of `range` (which lies within `0..len()`).
    fn with_range<R>(&self, range: Range<usize>, f: impl FnOnce(&[Self::Item]) -> R) -> R;

    /// The items of `range`, owned, in order (the root maps its own share
    /// from these).
    fn items(&self, range: Range<usize>) -> impl Iterator<Item = Self::Item> + Send + '_;

    /// The items of `range` where they already lie in memory, one after
    /// another: the root then sends plain items straight from there.
    fn as_slice(&self, _range: Range<usize>) -> Option<&[Self::Item]> {
        None
    }
}

impl<T: Clone + Sync> Source for [T] {
    type Item = T;

    fn len(&self) -> usize {
        <[T]>::len(self)
    }

    fn with_range<R>(&self, range: Range<usize>, f: impl FnOnce(&[T]) -> R) -> R {
        f(&self[range])
    }

    fn items(&self, range: Range<usize>) -> impl Iterator<Item = T> + Send + '_ {
        self[range].iter().cloned()
    }

    fn as_slice(&self, range: Range<usize>) -> Option<&[T]> {
        Some(&self[range])
    }
}

/// `len` items, item `i` being `item(i)`, built only when a chunk needs them.
pub struct Generated<F> {
    len: usize,
    item: F,
}

impl<F> Generated<F> {
    /// A source of `len` items made by `item(index)`.
    pub fn new(len: usize, item: F) -> Generated<F> {
        Generated { len, item }
    }

    /// Item `index`.
    pub fn item<T>(&self, index: usize) -> T
    where
        F: Fn(usize) -> T,
    {
        (self.item)(index)
    }
}

impl<T, F: Fn(usize) -> T + Sync> Source for Generated<F> {
    type Item = T;

    fn len(&self) -> usize {
        self.len
    }

    fn with_range<R>(&self, range: Range<usize>, f: impl FnOnce(&[T]) -> R) -> R {
        let items: Vec<T> = range.map(&self.item).collect();
        f(&items)
    }

    fn items(&self, range: Range<usize>) -> impl Iterator<Item = T> + Send + '_ {
        range.map(&self.item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_and_generators_agree() {
        let v: Vec<u64> = (0..10).map(|i| i * i).collect();
        let g = Generated::new(10, |i| (i * i) as u64);
        assert_eq!(Source::len(&v[..]), g.len());
        assert_eq!(
            v[..].with_range(3..6, |s| s.to_vec()),
            g.with_range(3..6, |s| s.to_vec())
        );
        assert_eq!(
            v[..].items(2..5).collect::<Vec<_>>(),
            g.items(2..5).collect::<Vec<_>>()
        );
    }
}
