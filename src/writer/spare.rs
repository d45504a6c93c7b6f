//! One part buffer kept for reuse. Filling a new buffer faults its pages in one by one, and the
//! kernel zeroes each: about a tenth of an upload's CPU by `perf`, paid again for every part.
//! A part's buffer that its upload no longer needs becomes the next buffer the tail fills.

use std::sync::Arc;

/// At most one buffer, so that memory stays within the writer's budget plus one part.
#[derive(Default)]
pub(super) struct Spare(Option<Vec<u8>>);

impl Spare {
    /// Keeps the bytes of a part done with, unless something still holds them (a request that
    /// has not let go yet) or the buffer kept already is as large.
    pub(super) fn keep(&mut self, bytes: Arc<Vec<u8>>) {
        let Ok(mut buf) = Arc::try_unwrap(bytes) else {
            return;
        };
        if self
            .0
            .as_ref()
            .is_none_or(|kept| kept.capacity() < buf.capacity())
        {
            buf.clear();
            self.0 = Some(buf);
        }
    }

    /// An empty buffer with room for `capacity` bytes: the one kept, if it has the room.
    pub(super) fn take(&mut self, capacity: usize) -> Vec<u8> {
        match self.0.take() {
            Some(buf) if buf.capacity() >= capacity => buf,
            kept => {
                self.0 = kept;
                Vec::with_capacity(capacity)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_done_with_is_the_next_buffer_and_one_still_held_is_not() {
        let mut spare = Spare::default();
        let part = Arc::new(vec![7u8; 1000]);
        let held = part.clone();
        spare.keep(part);
        assert!(spare.0.is_none(), "a request still holds it");
        spare.keep(held);
        let buf = spare.take(1000);
        assert!(buf.is_empty() && buf.capacity() >= 1000);
        assert!(spare.0.is_none(), "taken");
        // Too small for what is asked: kept, and a new buffer given.
        spare.keep(Arc::new(Vec::with_capacity(10)));
        assert!(spare.take(1000).capacity() >= 1000);
        assert!(spare.0.is_some());
    }
}
