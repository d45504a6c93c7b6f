//! Finding the tail: the object a handle's first write continues, or starts.

use super::Writer;
use super::object::Object;
use crate::Error;
use crate::index::Index;

impl Writer {
    /// The tail, found on first use: a last object below the sealing size is continued,
    /// otherwise a new object is started after it. The index is anchored on the way, with no
    /// request of its own when the stream is new or the continued tail records its start.
    pub(super) fn tail(&mut self, index: &mut Index) -> Result<&mut Object, Error> {
        if self.objects.is_empty() {
            index.list(&*self.client)?;
            let tail = self.find_tail(index)?;
            self.objects.push_back(tail);
        }
        Ok(self.objects.back_mut().expect("a tail was just found"))
    }

    /// Continues the last object, as one response tells its size and ETag: every later
    /// conditional write counts on that pair, so both must be of the same version. A small
    /// one is fetched whole (one GET); one large enough to append to by copy stays in S3 and
    /// in the index for reads (one HEAD). One found full, maybe grown since it was listed, is
    /// followed by a new object.
    fn find_tail(&self, index: &mut Index) -> Result<Object, Error> {
        let seal = self.seal_bytes as u64;
        let copy_from = self.streaming.copy_from;
        let large = |size: u64| copy_from.is_some_and(|from| size >= from as u64);
        let last = index.last();
        let Some(last) = last.filter(|last| last.size < seal) else {
            return self.after(index, last.map(|last| last.seq));
        };
        let (etag, start, size, buf) = if large(last.size) {
            let head = self.client.stat(last.seq)?;
            (head.etag, head.start, head.size, None)
        } else {
            let whole = self.client.get_whole(last.seq)?;
            let size = whole.buf.len() as u64;
            (whole.etag, whole.start, size, Some(whole.buf))
        };
        index.cover(last.seq, size);
        index.anchor_with(&*self.client, last.seq, start)?;
        if size >= seal {
            return self.after(index, Some(last.seq));
        }
        let start = index.last().map_or(0, |last| last.start);
        match buf {
            Some(buf) if !large(size) => {
                index.truncate_from(last.seq);
                Ok(Object::new(last.seq, start, buf, Some(etag)))
            }
            // Appending by copy needs the object's ETag, not its bytes: they stay in S3, and
            // in the index for reads.
            _ => {
                let mut tail = Object::new(last.seq, start, Vec::new(), Some(etag));
                tail.only_in_s3 = size as usize;
                Ok(tail)
            }
        }
    }

    /// A new object after `last` (the first one if `None`), where the index ends.
    fn after(&self, index: &mut Index, last: Option<u64>) -> Result<Object, Error> {
        index.anchor_empty();
        index.anchor(&*self.client)?;
        Ok(Object::new(
            self.next_seq(last)?,
            index.end(),
            Vec::new(),
            None,
        ))
    }
}

impl Writer {
    /// The sequence number after `last` (the first one if `None`).
    pub(super) fn next_seq(&self, last: Option<u64>) -> Result<u64, Error> {
        match last {
            None => Ok(0),
            Some(seq) => seq.checked_add(1).ok_or_else(|| Error::SequenceExhausted {
                key: self.client.key(seq),
            }),
        }
    }
}
