//! Big buffers without a page fault per 4 KiB: on this kind of machine a
//! fresh 40 MB buffer costs ~20 ms of page faults when first written, more
//! than copying it. Buffers of a few MB and more are advised to use
//! transparent huge pages (2 MiB pages: ~5 ms), and the receive buffers of
//! a rank are kept from one map to the next.

use std::cell::RefCell;

/// Below this many bytes huge pages bring nothing.
const HUGE_FROM: usize = 4 << 20;

/// A vector with room for `capacity` items, backed by huge pages when big.
pub fn vec_with_capacity<T>(capacity: usize) -> Vec<T> {
    let mut v = Vec::with_capacity(capacity);
    advise_huge(&mut v);
    v
}

/// Asks the kernel to back `v`'s allocation with huge pages (Linux
/// `MADV_HUGEPAGE`; a hint, ignored where unsupported).
pub fn advise_huge<T>(v: &mut Vec<T>) {
    let bytes = v.capacity() * size_of::<T>();
    if bytes < HUGE_FROM {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        let page = 4096usize;
        let start = v.as_mut_ptr() as usize;
        let aligned = start.div_ceil(page) * page;
        let len = (start + bytes).saturating_sub(aligned) / page * page;
        // SAFETY: madvise only advises the kernel about pages of our own
        // allocation (page-aligned within it); it does not change contents.
        #[allow(unsafe_code)]
        unsafe {
            libc::madvise(aligned as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
        }
    }
}

/// A byte buffer kept across maps (a rank's receive buffer).
#[derive(Default)]
pub struct Kept(RefCell<Vec<u8>>);

impl Kept {
    /// Lends the buffer, at least `len` bytes long (its contents are
    /// whatever the last user left); give it back with [`Kept::keep`].
    pub fn take(&self, len: usize) -> Vec<u8> {
        let mut buf = std::mem::take(&mut *self.0.borrow_mut());
        if buf.len() < len {
            buf = Vec::new(); // no copy of the old contents
            buf.reserve_exact(len);
            advise_huge(&mut buf);
            buf.resize(len, 0);
        }
        buf
    }

    /// Keeps `buf` for the next map.
    pub fn keep(&self, buf: Vec<u8>) {
        *self.0.borrow_mut() = buf;
    }
}

/// A rank's kept buffers, one per role in a map.
#[derive(Default)]
pub struct Buffers {
    /// What the rank receives (static: its scattered items).
    pub received: Kept,
    /// What the root gathers (static: the other ranks' results).
    pub gathered: Kept,
}
