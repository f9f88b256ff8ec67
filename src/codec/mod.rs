//! The one place that knows about bincode: items in, bytes out, and back.
//!
//! A chunk is encoded as the plain concatenation of its items' encodings, with
//! no length prefix. Concatenating the chunks of a result in item order
//! therefore gives the same bytes whatever the chunking was, which is what
//! makes the result checksum independent of rank count and schedule. The
//! receiver always knows how many items a chunk holds from the chunk plan.
//!
//! Fixed-width integers (not bincode's default varint) because they encode
//! and decode about 1.5x faster and keep a `u64` item exactly 8 bytes; with
//! them, a plain-old-data item's encoding is its memory, which `plain`
//! exploits: such chunks move as one copy, with the same bytes.
//!
//! The checksum of a result is the wrapping sum over items of
//! [`item_hash`] of the item's encoding, seeded with its index: it can be
//! accumulated in any arrival order, yet an item in the wrong place changes
//! it, and a chunk of plain items is hashed in one pass over its bytes.

pub mod plain;

use bincode::config::{Fixint, LittleEndian, NoLimit};
use bincode::enc::write::Writer;
use bincode::error::EncodeError;
use serde::{Serialize, Serializer, de::DeserializeOwned, ser::SerializeTuple};

type Cfg = bincode::config::Configuration<LittleEndian, Fixint, NoLimit>;

const fn config() -> Cfg {
    bincode::config::standard().with_fixed_int_encoding()
}

/// Why bytes could not be turned back into items.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The bytes ended before, or continued after, the expected items.
    #[error("malformed chunk: {0}")]
    Malformed(String),
    /// bincode could not encode a value.
    #[error("cannot encode item: {0}")]
    Encode(#[from] EncodeError),
}

/// Appends bytes to a `Vec` without bincode's `std::io` adaptor in between.
struct VecWriter<'a>(&'a mut Vec<u8>);

impl Writer for VecWriter<'_> {
    #[inline(always)]
    fn write(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }
}

/// Serializes a slice as a tuple: bincode writes tuples without a length.
struct Concat<'a, T>(&'a [T]);

impl<T: Serialize> Serialize for Concat<'_, T> {
    // Inlined so the per-item calls below inline into one tight loop: left
    // to the optimiser, unrelated code changes moved the root's encoding of
    // 10 M u64 between 55 and 95 ms.
    #[inline]
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut tuple = serializer.serialize_tuple(self.0.len())?;
        for item in self.0 {
            tuple.serialize_element(item)?;
        }
        tuple.end()
    }
}

/// Appends the encodings of `items` to `out`; returns how many bytes were added.
pub fn encode_items<T: Serialize + 'static>(
    items: &[T],
    out: &mut Vec<u8>,
) -> Result<usize, CodecError> {
    if let Some(bytes) = plain::bytes(items) {
        out.extend_from_slice(bytes);
        return Ok(bytes.len());
    }
    let before = out.len();
    bincode::serde::encode_into_writer(Concat(items), VecWriter(out), config())?;
    Ok(out.len() - before)
}

/// Encodes one value on its own (typed messages between ranks).
pub fn encode_value<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    encode_value_into(value, &mut out)?;
    Ok(out)
}

/// Appends one value's encoding to `out`.
pub fn encode_value_into<T: Serialize>(value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
    bincode::serde::encode_into_writer(value, VecWriter(out), config())?;
    Ok(())
}

/// Decodes `count` items one by one from `bytes[*at..]`, advancing `*at`
/// past each: once the iterator is done, `*at` is where the next chunk's
/// items begin.
pub struct Decoder<'a, T> {
    bytes: &'a [u8],
    at: &'a mut usize,
    left: usize,
    /// The item size, when `T` is plain.
    plain: Option<usize>,
    _items: std::marker::PhantomData<fn() -> T>,
}

impl<'a, T: 'static> Decoder<'a, T> {
    /// A decoder of `count` items from `bytes[*at..]`.
    pub fn new(bytes: &'a [u8], at: &'a mut usize, count: usize) -> Decoder<'a, T> {
        Decoder {
            bytes,
            at,
            left: count,
            plain: plain::size::<T>(),
            _items: std::marker::PhantomData,
        }
    }
}

impl<T: DeserializeOwned + 'static> Iterator for Decoder<'_, T> {
    type Item = Result<T, CodecError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        if let Some(size) = self.plain {
            let at = *self.at;
            if at + size > self.bytes.len() {
                return Some(Err(CodecError::Malformed("the chunk ends early".into())));
            }
            *self.at += size;
            return Some(Ok(plain::read(&self.bytes[at..], 0)));
        }
        let rest = self.bytes.get(*self.at..).unwrap_or_default();
        Some(
            bincode::serde::decode_from_slice(rest, config())
                .map(|(item, used)| {
                    *self.at += used;
                    item
                })
                .map_err(|e| CodecError::Malformed(e.to_string())),
        )
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

/// Item `skip` of the items encoded in `bytes` (for a retry).
///
/// # Errors
/// When the bytes hold fewer items.
pub fn decode_nth<T: DeserializeOwned + 'static>(
    bytes: &[u8],
    skip: usize,
) -> Result<T, CodecError> {
    if let Some(size) = plain::size::<T>() {
        if (skip + 1) * size > bytes.len() {
            return Err(CodecError::Malformed("the chunk ends early".into()));
        }
        return Ok(plain::read(bytes, skip));
    }
    let mut rest = bytes;
    for _ in 0..skip {
        let (_, used) = decode_value_prefix::<T>(rest)?;
        rest = &rest[used..];
    }
    decode_value_prefix(rest).map(|(item, _)| item)
}

/// Decodes one value from the front of `bytes`; returns it and its length.
pub fn decode_value_prefix<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, usize), CodecError> {
    bincode::serde::decode_from_slice(bytes, config())
        .map_err(|e| CodecError::Malformed(e.to_string()))
}

/// Decodes one value that fills `bytes` exactly.
pub fn decode_value<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (value, used) = bincode::serde::decode_from_slice(bytes, config())
        .map_err(|e| CodecError::Malformed(e.to_string()))?;
    if used != bytes.len() {
        return Err(CodecError::Malformed(format!(
            "{} trailing bytes after value",
            bytes.len() - used
        )));
    }
    Ok(value)
}

/// Decodes `count` items from the front of `bytes`, calling `each(item,
/// its encoding)` for every one; returns how many bytes they took.
///
/// # Errors
/// When the bytes hold fewer than `count` items or bytes that are not a `T`.
pub fn decode_each<T: DeserializeOwned>(
    bytes: &[u8],
    count: usize,
    mut each: impl FnMut(T, &[u8]),
) -> Result<usize, CodecError> {
    let mut rest = bytes;
    for i in 0..count {
        let (item, used) = bincode::serde::decode_from_slice(rest, config())
            .map_err(|e| CodecError::Malformed(format!("item {i} of {count}: {e}")))?;
        let (encoding, tail) = rest.split_at(used);
        each(item, encoding);
        rest = tail;
    }
    Ok(bytes.len() - rest.len())
}

/// Decodes `count` items from the front of `bytes` into `out` (plain
/// items with one copy); returns how many bytes they took.
///
/// # Errors
/// When the bytes hold fewer than `count` items or bytes that are not a `T`.
pub fn decode_into<T: DeserializeOwned + 'static>(
    bytes: &[u8],
    count: usize,
    out: &mut Vec<T>,
) -> Result<usize, CodecError> {
    if let Some(size) = plain::size::<T>() {
        let len = count * size;
        if len > bytes.len() {
            return Err(CodecError::Malformed(format!(
                "{count} items need {len} bytes, the chunk has {}",
                bytes.len()
            )));
        }
        plain::extend(&bytes[..len], out);
        return Ok(len);
    }
    out.reserve(count.min(1 << 20));
    decode_each(bytes, count, |item, _| out.push(item))
}

const K1: u64 = 0x9E37_79B9_7F4A_7C15;
const K2: u64 = 0xBF58_476D_1CE4_E5B9;
const K3: u64 = 0x94D0_49BB_1331_11EB;

/// SplitMix64's finalizer: a bijective 64-bit mixer.
#[inline(always)]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(K2);
    z = (z ^ (z >> 27)).wrapping_mul(K3);
    z ^ (z >> 31)
}

/// A word of up to 8 bytes, little endian, zero-padded.
#[inline(always)]
fn word(bytes: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w[..bytes.len()].copy_from_slice(bytes);
    u64::from_le_bytes(w)
}

/// One item's share of a result checksum: its encoding, 8 bytes at a time,
/// mixed into a state seeded with its index and length.
#[inline]
pub fn item_hash(index: usize, encoding: &[u8]) -> u64 {
    let mut h = (index as u64).wrapping_mul(K1) ^ encoding.len() as u64;
    if encoding.is_empty() {
        return mix(h);
    }
    for chunk in encoding.chunks(8) {
        h = mix(h ^ word(chunk));
    }
    h
}

/// [`item_hash`] summed over `count` plain items of `size` bytes encoded
/// back to back in `bytes`, the first with index `first`: one pass.
fn hash_plain(first: usize, bytes: &[u8], size: usize) -> u64 {
    if size == 8 {
        // The common case, kept branch-free so it runs at memory speed.
        let mut seed = (first as u64).wrapping_mul(K1);
        let mut sum = 0u64;
        for w in bytes.chunks_exact(8) {
            let w = u64::from_le_bytes(w.try_into().expect("eight bytes"));
            sum = sum.wrapping_add(mix(seed ^ 8 ^ w));
            seed = seed.wrapping_add(K1);
        }
        return sum;
    }
    bytes
        .chunks_exact(size)
        .enumerate()
        .fold(0u64, |sum, (k, item)| {
            sum.wrapping_add(item_hash(first + k, item))
        })
}

/// The checksum share of `items`, the first with index `first`; `scratch`
/// is reused for encodings.
///
/// # Errors
/// When an item fails to serialize.
pub fn hash_items<T: Serialize + 'static>(
    first: usize,
    items: &[T],
    scratch: &mut Vec<u8>,
) -> Result<u64, CodecError> {
    if let (Some(size), Some(bytes)) = (plain::size::<T>(), plain::bytes(items)) {
        return Ok(hash_plain(first, bytes, size));
    }
    let mut sum = 0u64;
    for (k, item) in items.iter().enumerate() {
        scratch.clear();
        encode_items(std::slice::from_ref(item), scratch)?;
        sum = sum.wrapping_add(item_hash(first + k, scratch));
    }
    Ok(sum)
}

/// The checksum share of plain items of `T` encoded in `bytes`, the first
/// with index `first`; `None` when `T` is not plain.
pub fn hash_encoded<T: 'static>(first: usize, bytes: &[u8]) -> Option<u64> {
    plain::size::<T>().map(|size| hash_plain(first, bytes, size))
}

/// The checksum of a whole result, computed serially: the wrapping sum of
/// `item_hash` over its items. The schedules accumulate the same value as
/// results arrive, in whatever order; this is the serial reference.
///
/// # Errors
/// When an item fails to serialize.
pub fn checksum<U: Serialize + 'static>(results: &[U]) -> Result<u64, CodecError> {
    hash_items(0, results, &mut Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concatenated_chunks_equal_whole_encoding() {
        let items: Vec<(u32, String)> = (0..10).map(|i| (i, "x".repeat(i as usize))).collect();
        let mut whole = Vec::new();
        encode_items(&items, &mut whole).unwrap();
        let mut parts = Vec::new();
        for chunk in items.chunks(3) {
            encode_items(chunk, &mut parts).unwrap();
        }
        assert_eq!(whole, parts);
        let mut at = 0;
        let back: Vec<(u32, String)> = Decoder::new(&whole, &mut at, items.len())
            .map(Result::unwrap)
            .collect();
        assert_eq!((back, at), (items, whole.len()));
    }

    #[test]
    fn checksum_depends_on_place_not_arrival_order() {
        let items: Vec<u64> = (0..100).collect();
        let mut bytes = Vec::new();
        encode_items(&items, &mut bytes).unwrap();
        let mut sum = 0u64;
        let mut index = 0;
        decode_each(&bytes, items.len(), |_: u64, enc| {
            sum = sum.wrapping_add(item_hash(index, enc));
            index += 1;
        })
        .unwrap();
        assert_eq!(sum, checksum(&items).unwrap());
        let mut swapped = items.clone();
        swapped.swap(3, 4);
        assert_ne!(checksum(&swapped).unwrap(), sum);
    }

    #[test]
    fn u64_is_eight_little_endian_bytes() {
        let mut out = Vec::new();
        assert_eq!(encode_items(&[1u64, 2], &mut out).unwrap(), 16);
        assert_eq!(&out[..8], &1u64.to_le_bytes());
    }

    #[test]
    fn wrong_counts_are_errors_not_panics() {
        let mut out = Vec::new();
        encode_items(&[1u64, 2, 3], &mut out).unwrap();
        let mut at = 0;
        assert_eq!(Decoder::<u64>::new(&out, &mut at, 2).count(), 2);
        let mut at = 0;
        assert!(Decoder::<u64>::new(&out, &mut at, 4).any(|r| r.is_err()));
        assert_eq!(decode_nth::<u64>(&out, 2).unwrap(), 3);
    }

    #[test]
    fn values_round_trip() {
        let v = vec!["a".to_string(), "bc".to_string()];
        let bytes = encode_value(&v).unwrap();
        assert_eq!(decode_value::<Vec<String>>(&bytes).unwrap(), v);
        assert!(decode_value::<Vec<String>>(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn plain_and_serde_paths_agree_on_bytes_and_hashes() {
        // u64 is plain; (u32, u32) is not (a tuple), yet both encode to 8 bytes.
        let plain: Vec<u64> = (0..1000).map(|i| i * 7919 + 3).collect();
        let pairs: Vec<(u32, u32)> = plain
            .iter()
            .map(|&x| (x as u32, (x >> 32) as u32))
            .collect();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        encode_items(&plain, &mut a).unwrap();
        encode_items(&pairs, &mut b).unwrap();
        assert_eq!(a, b);
        assert_eq!(checksum(&plain).unwrap(), checksum(&pairs).unwrap());
        assert_eq!(hash_encoded::<u64>(0, &a), Some(checksum(&plain).unwrap()));
        assert_eq!(hash_encoded::<(u32, u32)>(0, &b), None);
        let mut back: Vec<u64> = Vec::new();
        assert_eq!(decode_into(&a, 1000, &mut back).unwrap(), 8000);
        assert_eq!(back, plain);
        let mut at = 0;
        let iter: Vec<u64> = Decoder::new(&a, &mut at, 3).map(Result::unwrap).collect();
        assert_eq!((iter, at), (plain[..3].to_vec(), 24));
        assert_eq!(decode_nth::<u64>(&a, 999).unwrap(), plain[999]);
        assert!(decode_nth::<u64>(&a, 1000).is_err());
    }

    #[test]
    fn hashes_see_position_and_length() {
        assert_ne!(item_hash(0, b"ab"), item_hash(1, b"ab"));
        assert_ne!(item_hash(0, b"ab"), item_hash(0, b"ab\0"));
        assert_ne!(item_hash(0, b""), item_hash(1, b""));
        let many: Vec<u64> = (0..100).collect();
        let mut swapped = many.clone();
        swapped.swap(10, 90);
        assert_ne!(checksum(&many).unwrap(), checksum(&swapped).unwrap());
    }
}
