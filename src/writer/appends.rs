//! Writing to a directory bucket (S3 Express One Zone), where the store appends: the bytes S3
//! lacks go out as appends of up to a part, one at a time and in stream order, and an object
//! that S3 refuses to append to any more (it has the most parts an object may have) is sealed
//! where it stands.

use std::sync::Arc;

use super::Writer;
use super::object::{Object, Phase};
use crate::Error;
use crate::index::Index;

impl Writer {
    /// Waits while the bytes S3 lacks reach two parts and an append is under way: one part
    /// goes out while the next fills, and memory stays within that whatever the writes.
    pub(super) fn append_room(&mut self, index: &mut Index) -> Result<(), Error> {
        loop {
            let seen = self.bell.seen();
            self.pump(index)?;
            let held: usize = self.objects.iter().map(Object::unflushed).sum();
            if held < 2 * self.streaming.part_size || self.running() == 0 {
                return Ok(());
            }
            self.bell.wait_past(seen);
        }
    }

    /// The oldest object refused an append: it holds the most parts S3 allows. It is sealed
    /// at the size S3 has, and the bytes it lacks go to the start of the object after it (a
    /// new one if it was the tail), which no request has created yet: objects are created in
    /// stream order. Every writer sees the same refusal, so none continues the object.
    pub(super) fn parts_full(&mut self) -> Result<(), Error> {
        let Some(full) = self.objects.front_mut() else {
            return Ok(());
        };
        let (seq, start) = (full.seq, full.meta.start);
        let size = full.released + full.mirrored;
        let moved = full.buf[full.mirrored..].to_vec();
        Arc::make_mut(&mut full.buf).truncate(full.mirrored);
        full.phase = Phase::Sealed;
        log::info!(
            "{} has the most parts S3 allows: sealed at {size} bytes",
            self.client.key(seq)
        );
        if let Some(next) = self.objects.get_mut(1) {
            let mut buf = moved;
            buf.extend_from_slice(&next.buf);
            next.meta.start = start + size as u64;
            next.buf = Arc::new(buf);
            return Ok(());
        }
        let mut next = Object::new(
            self.next_seq(Some(seq))?,
            self.meta(start + size as u64),
            moved,
            None,
        );
        // None of it is in S3.
        next.mirrored = 0;
        self.objects.push_back(next);
        Ok(())
    }
}
