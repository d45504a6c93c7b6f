//! A buffer the writer is done with, filled again by the next tail or part. A new buffer's
//! pages fault in one by one as it is filled, and the kernel zeroes each: by `perf`, a sixth
//! of the client's CPU for an upload over plain HTTP, paid again for every part.
//!
//! One buffer is enough: a tail takes one as the oldest object's upload ends and gives its
//! back. It adds nothing to the memory a writer holds at its peak: a buffer is kept only as it
//! stops being used, and the next one the writer needs is that one.

use std::sync::Arc;

#[derive(Default)]
pub(super) struct Pool(Option<Vec<u8>>);

impl Pool {
    /// An empty buffer with room for `capacity` bytes: the kept one if there is one and room
    /// is asked for.
    pub(super) fn take(&mut self, capacity: usize) -> Vec<u8> {
        match self.0.take_if(|_| capacity > 0) {
            Some(mut buf) => {
                buf.reserve_exact(capacity);
                buf
            }
            None => Vec::with_capacity(capacity),
        }
    }

    /// Keeps `buf` if no buffer is kept yet, and nothing else holds it any more.
    pub(super) fn give(&mut self, buf: Arc<Vec<u8>>) {
        if self.0.is_none()
            && buf.capacity() > 0
            && let Ok(mut buf) = Arc::try_unwrap(buf)
        {
            buf.clear();
            self.0 = Some(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_given_back_is_filled_again() {
        let mut pool = Pool::default();
        let mut first = pool.take(100);
        first.extend_from_slice(b"bytes");
        let address = first.as_ptr();
        pool.give(Arc::new(first));
        assert_eq!(pool.take(0).capacity(), 0, "no room asked for, none taken");
        let again = pool.take(50);
        assert_eq!(again.as_ptr(), address, "the kept buffer is reused");
        assert!(again.is_empty() && again.capacity() >= 100);

        // Held elsewhere, or empty: not kept.
        let shared = Arc::new(Vec::with_capacity(100));
        let _other = shared.clone();
        pool.give(shared);
        pool.give(Arc::new(Vec::new()));
        assert!(pool.0.is_none());

        // One at most.
        let kept = Vec::with_capacity(100);
        let address = kept.as_ptr();
        pool.give(Arc::new(kept));
        pool.give(Arc::new(Vec::with_capacity(100)));
        let taken = pool.take(1);
        assert_eq!(taken.as_ptr(), address, "the first one is kept");
    }
}
