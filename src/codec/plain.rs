//! Plain-old-data items: types whose bincode encoding (fixed-width, little
//! endian) is exactly their bytes in memory, so a chunk of them moves as
//! one copy instead of a serde call per item.
//!
//! A type is plain once [`register`]ed: it must be [`bytemuck::Pod`] (any
//! bit pattern valid, no padding), and registration checks, by encoding a
//! sample through bincode, that the encoding really is its memory (true on
//! little-endian machines for integers, floats, and `#[repr(C)]` structs of
//! them without padding and with serde's field order; false for anything
//! with a custom `Serialize`). The built-in integer and float types, and
//! arrays of them, are registered at first use. Everything else keeps
//! bincode: the fast path is invisible in results, checksums and journals.
//!
//! The casts below are this module's `unsafe`: each is sound because the
//! type was checked at registration to be `Pod`, found again by its `TypeId`.
#![allow(unsafe_code)]

use std::any::TypeId;
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{OnceLock, RwLock};

use bytemuck::Pod;
use serde::{Serialize, de::DeserializeOwned};

/// Plain types by `TypeId`, with their size.
fn registry() -> &'static RwLock<HashMap<TypeId, usize>> {
    static REGISTRY: OnceLock<RwLock<HashMap<TypeId, usize>>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let map = RwLock::new(HashMap::new());
        macro_rules! builtin {
            ($($t:ty),*) => {$(
                check::<$t>(&map);
                check::<[$t; 2]>(&map);
                check::<[$t; 3]>(&map);
                check::<[$t; 4]>(&map);
            )*};
        }
        builtin!(u8, u16, u32, u64, u128, i8, i16, i32, i64, i128, f32, f64);
        map
    })
}

/// Registers `T` as plain when its bincode encoding is its memory.
fn check<T: Pod + Serialize + DeserializeOwned + 'static>(
    map: &RwLock<HashMap<TypeId, usize>>,
) -> bool {
    let size = size_of::<T>();
    if size == 0 {
        return false;
    }
    // A sample with every byte different: field order and endianness show.
    let pattern: Vec<u8> = (1..=size).map(|b| b as u8).collect();
    let sample: T = bytemuck::pod_read_unaligned(&pattern);
    let mut encoded = Vec::new();
    if super::encode_value_into(&sample, &mut encoded).is_err() || encoded != pattern {
        return false;
    }
    map.write()
        .expect("plain registry")
        .insert(TypeId::of::<T>(), size);
    GENERATION.fetch_add(1, Ordering::Release);
    true
}

/// Bumped by every registration: answers cached before it are stale.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Entries of each thread's cache of answers.
const CACHED: usize = 4;

thread_local! {
    /// The last types asked about on this thread, with the registry's
    /// generation at the time and the answer (`usize::MAX`: not plain).
    /// A map asks per chunk, several times; the registry's lock and hash
    /// cost more than a small chunk's copy.
    static CACHE: [Cell<Option<(TypeId, u64, usize)>>; CACHED] = const { [const { Cell::new(None) }; CACHED] };
    static NEXT: Cell<usize> = const { Cell::new(0) };
}

/// Makes `T` travel as its bytes: for a user's `#[repr(C)]` struct that
/// derives `bytemuck::Pod` and serde's traits. Returns whether it took (its
/// bincode encoding must equal its memory; otherwise it keeps bincode, with
/// the same results).
pub fn register<T: Pod + Serialize + DeserializeOwned + 'static>() -> bool {
    check::<T>(registry())
}

/// The size of `T` when it is plain.
#[inline]
pub fn size<T: 'static>() -> Option<usize> {
    let id = TypeId::of::<T>();
    let generation = GENERATION.load(Ordering::Acquire);
    let hit = CACHE.with(|cache| {
        cache.iter().find_map(|c| match c.get() {
            Some((t, g, size)) if t == id && g == generation => Some(size),
            _ => None,
        })
    });
    let size = hit.unwrap_or_else(|| {
        let size = registry()
            .read()
            .expect("plain registry")
            .get(&id)
            .copied()
            .unwrap_or(usize::MAX);
        let slot = NEXT.with(|n| {
            let k = n.get();
            n.set((k + 1) % CACHED);
            k
        });
        CACHE.with(|cache| cache[slot].set(Some((id, generation, size))));
        size
    });
    (size != usize::MAX).then_some(size)
}

/// The bytes of `items`, when `T` is plain.
#[inline]
pub fn bytes<T: 'static>(items: &[T]) -> Option<&[u8]> {
    size::<T>()?;
    // SAFETY: T is Pod (checked at registration, found by its TypeId): no
    // padding, so every byte of the slice is initialised.
    Some(unsafe {
        std::slice::from_raw_parts(items.as_ptr().cast::<u8>(), std::mem::size_of_val(items))
    })
}

/// Appends `count` zeroed items to `v` and returns their bytes to be
/// written (received into); `None` when `T` is not plain.
pub fn extend_zeroed<T: 'static>(v: &mut Vec<T>, count: usize) -> Option<&mut [u8]> {
    size::<T>()?;
    let len = v.len();
    v.reserve(count);
    // SAFETY: T is Pod (plain): all-zero bytes are a valid T, so the
    // zeroed items are initialised before `set_len`; the returned bytes
    // cover exactly them, and any bytes written there leave valid values.
    unsafe {
        let start = v.as_mut_ptr().add(len);
        std::ptr::write_bytes(start, 0, count);
        v.set_len(len + count);
        Some(std::slice::from_raw_parts_mut(
            start.cast::<u8>(),
            count * size_of::<T>(),
        ))
    }
}

/// Item `k` of plain items encoded in `bytes` (which must hold it).
///
/// # Panics
/// When `T` is not plain or `bytes` is too short (callers check both).
#[inline]
pub fn read<T: 'static>(bytes: &[u8], k: usize) -> T {
    let size = size_of::<T>();
    let at = k * size;
    assert!(at + size <= bytes.len(), "plain read past the end");
    debug_assert!(self::size::<T>().is_some());
    // SAFETY: the bytes are in bounds (asserted) and T is Pod (the callers
    // only read types `size` found): any bytes make a valid T, unaligned.
    unsafe { bytes.as_ptr().add(at).cast::<T>().read_unaligned() }
}

/// Appends the plain items encoded in `bytes` to `out` with one copy.
///
/// # Panics
/// When `T` is not plain or `bytes` is not a whole number of items.
pub fn extend<T: 'static>(bytes: &[u8], out: &mut Vec<T>) {
    assert!(size::<T>().is_some(), "not a plain type");
    let size = size_of::<T>();
    assert_eq!(bytes.len() % size, 0, "a whole number of items");
    let count = bytes.len() / size;
    out.reserve(count);
    // SAFETY: T is Pod (asserted plain); `reserve` made room for `count`
    // more; the copy initialises exactly those before `set_len`.
    unsafe {
        let end = out.as_mut_ptr().add(out.len()).cast::<u8>();
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), end, bytes.len());
        out.set_len(out.len() + count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, Debug, PartialEq, Serialize, serde::Deserialize)]
    #[repr(C)]
    struct Point {
        x: u32,
        y: u32,
        z: u64,
    }
    // SAFETY (test): repr(C), no padding (4 + 4 + 8), every field Pod.
    unsafe impl bytemuck::Zeroable for Point {}
    unsafe impl Pod for Point {}

    #[derive(Clone, Copy, Debug, PartialEq, serde::Deserialize)]
    #[repr(C)]
    struct Swapped {
        a: u32,
        b: u32,
    }
    unsafe impl bytemuck::Zeroable for Swapped {}
    unsafe impl Pod for Swapped {}
    impl Serialize for Swapped {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            (self.b, self.a).serialize(s) // not its memory order
        }
    }

    #[test]
    fn builtins_and_registered_structs_are_plain_others_are_not() {
        assert_eq!(size::<u64>(), Some(8));
        assert_eq!(size::<[f64; 3]>(), Some(24));
        assert_eq!(size::<String>(), None);
        assert_eq!(size::<Point>(), None);
        assert!(register::<Point>());
        assert_eq!(size::<Point>(), Some(16));
        assert!(!register::<Swapped>(), "its encoding is not its memory");
        assert_eq!(size::<Swapped>(), None);
    }

    #[test]
    fn bytes_round_trip_and_equal_bincode() {
        let items: Vec<u64> = vec![1, 2, u64::MAX];
        let raw = bytes(&items).unwrap().to_vec();
        let mut encoded = Vec::new();
        super::super::encode_value_into(&(1u64, 2u64, u64::MAX), &mut encoded).unwrap();
        assert_eq!(raw, encoded);
        let mut back: Vec<u64> = vec![9];
        extend(&raw[8..], &mut back);
        assert_eq!(back, [9, 2, u64::MAX]);
        assert_eq!(
            read::<u64>(&raw[1..], 0),
            u64::from_le_bytes(raw[1..9].try_into().unwrap())
        );
    }
}
