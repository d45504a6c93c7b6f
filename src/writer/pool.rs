//! A buffer the writer is done with, filled again by the next tail or part. A new buffer's
//! pages fault in one by one as it is filled, and the kernel zeroes each: by `perf`, a sixth
//! of the client's CPU for an upload over plain HTTP, paid again for every part.
//!
//! One buffer is enough: a tail takes one as the oldest object's upload ends and gives its
//! back. It adds nothing to the memory a writer holds at its peak: a buffer is kept only as it
//! stops being used, and the next one the writer needs is that one.

use std::sync::Arc;

pub(super) struct Pool {
    kept: Option<Vec<u8>>,
    /// The largest buffer worth keeping: twice a part. A larger one (a tail held whole until
    /// it is sealed, a large write taken whole) would stay allocated while the writer idles.
    largest: usize,
}

impl Pool {
    pub(super) fn new(part: usize) -> Pool {
        Pool {
            kept: None,
            largest: part.saturating_mul(2),
        }
    }

    /// An empty buffer with room for `capacity` bytes: the kept one if there is one and room
    /// is asked for.
    pub(super) fn take(&mut self, capacity: usize) -> Vec<u8> {
        match self.kept.take_if(|_| capacity > 0) {
            Some(mut buf) => {
                buf.reserve_exact(capacity);
                buf
            }
            None => Vec::with_capacity(capacity),
        }
    }

    /// Keeps `buf` if no buffer is kept yet, nothing else holds it any more, and it is not
    /// too large.
    pub(super) fn give(&mut self, buf: Arc<Vec<u8>>) {
        if self.kept.is_none()
            && (1..=self.largest).contains(&buf.capacity())
            && let Ok(mut buf) = Arc::try_unwrap(buf)
        {
            buf.clear();
            self.kept = Some(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_given_back_is_filled_again() {
        let mut pool = Pool::new(100);
        let mut first = pool.take(100);
        first.extend_from_slice(b"bytes");
        let address = first.as_ptr();
        pool.give(Arc::new(first));
        assert_eq!(pool.take(0).capacity(), 0, "no room asked for, none taken");
        let again = pool.take(50);
        assert_eq!(again.as_ptr(), address, "the kept buffer is reused");
        assert!(again.is_empty() && again.capacity() >= 100);

        // Held elsewhere, empty, or larger than two parts: not kept.
        let shared = Arc::new(Vec::with_capacity(100));
        let _other = shared.clone();
        pool.give(shared);
        pool.give(Arc::new(Vec::new()));
        pool.give(Arc::new(Vec::with_capacity(201)));
        assert!(pool.kept.is_none());

        // One at most.
        let kept = Vec::with_capacity(100);
        let address = kept.as_ptr();
        pool.give(Arc::new(kept));
        pool.give(Arc::new(Vec::with_capacity(100)));
        let taken = pool.take(1);
        assert_eq!(taken.as_ptr(), address, "the first one is kept");
    }
}
