//! Reusable per-thread buffers for the kernels' temporaries (column
//! matrices, products before a layout swap), so that a step does not
//! allocate, zero and fault in the same megabytes again for every layer.
//!
//! A [`Scratch`] holds whatever an earlier user of the same thread left in
//! it: whoever takes one must write every value before reading it.

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};

/// Buffers kept per thread once returned; more are dropped.
const KEPT: usize = 4;

thread_local! {
    static FREE: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// A buffer of `len` values with unspecified contents, returned to its
/// thread's free list when dropped.
pub struct Scratch {
    buf: Vec<f32>,
    len: usize,
}

impl Scratch {
    /// A buffer of `len` values: the shortest free one of this thread that
    /// is long enough, else the longest, grown (only the growth is zeroed).
    pub fn take(len: usize) -> Self {
        let mut buf = FREE
            .with(|free| {
                let mut free = free.borrow_mut();
                let fits = (0..free.len())
                    .filter(|&i| free[i].len() >= len)
                    .min_by_key(|&i| free[i].len());
                let pick = fits.or_else(|| (0..free.len()).max_by_key(|&i| free[i].len()))?;
                Some(free.swap_remove(pick))
            })
            .unwrap_or_default();
        if buf.len() < len {
            buf.resize(len, 0.0);
        }
        Self { buf, len }
    }
}

impl Deref for Scratch {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        &self.buf[..self.len]
    }
}

impl DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.buf[..self.len]
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        // `try_with`: during thread teardown the list may be gone already.
        let _ = FREE.try_with(|free| {
            let mut free = free.borrow_mut();
            if free.len() < KEPT {
                free.push(buf);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_returned_buffer_is_reused_and_sized_to_the_request() {
        let mut a = Scratch::take(8);
        assert_eq!(a.len(), 8);
        a.fill(3.0);
        let ptr = a.as_ptr();
        drop(a);
        let b = Scratch::take(5);
        assert_eq!(b.len(), 5);
        assert_eq!(b.as_ptr(), ptr, "the freed buffer is taken again");
        drop(b);
        let c = Scratch::take(20);
        assert_eq!(c.len(), 20);
        assert!(c[8..].iter().all(|&v| v == 0.0), "growth is zeroed");
    }
}
