//! Finding the tail: the object a handle's first write continues, or starts.

use super::Writer;
use super::object::Object;
use crate::Error;
use crate::index::Index;
use crate::store::Meta;

/// The last object as one answer tells it: every field is of one version.
struct Found {
    etag: String,
    size: u64,
    /// The start offset and seal size it records, if any.
    start: Option<u64>,
    seal: Option<u64>,
    /// Its bytes, if they were fetched.
    buf: Option<Vec<u8>>,
}

impl Writer {
    /// The tail, found on first use: a last object below its sealing size is continued,
    /// otherwise a new object is started after it. The index is anchored on the way, with no
    /// request of its own when the stream is new or the continued tail records its start.
    pub(super) fn tail(&mut self, index: &mut Index) -> Result<&mut Object, Error> {
        if self.objects.is_empty() {
            index.list(&*self.client)?;
            self.end_seen = std::time::Instant::now();
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
    ///
    /// "Full" is by the seal size the object records, not this handle's: writers of one
    /// stream need not share their options, and one that sealed another's open tail early
    /// would start an object at an offset that the other's next flush then moves. So an
    /// object at or past this handle's own seal size is asked for its own (one HEAD), and
    /// only one that records none (written by s3-syncr 0.1) is judged by this handle's.
    fn find_tail(&self, index: &mut Index) -> Result<Object, Error> {
        let own = self.seal_bytes as u64;
        let append_by_copy = self.streaming.append_by_copy;
        let large = |size: u64| append_by_copy.is_some_and(|from| size >= from as u64);
        let Some(last) = index.last() else {
            return self.after(index, None);
        };
        let mut found = self.fetch(last.seq, !large(last.size) && last.size < own)?;
        // Open by the seal it records after all, and small: its bytes are wanted.
        if found.buf.is_none() && !large(found.size) && found.size < found.seal.unwrap_or(own) {
            found = self.fetch(last.seq, true)?;
        }
        let Found {
            etag,
            start,
            size,
            seal,
            buf,
        } = found;
        let seal = seal.unwrap_or(own);
        index.cover(last.seq, size);
        index.anchor_with(&*self.client, last.seq, start)?;
        if size >= seal {
            return self.after(index, Some(last.seq));
        }
        let meta = Meta {
            start: index.last().map_or(0, |last| last.start),
            seal,
        };
        match buf {
            Some(buf) if !large(size) => {
                index.truncate_from(last.seq);
                Ok(Object::new(last.seq, meta, buf, Some(etag)))
            }
            // Appending by copy needs the object's ETag, not its bytes: they stay in S3, and
            // in the index for reads.
            _ => {
                let mut tail = Object::new(last.seq, meta, Vec::new(), Some(etag));
                tail.released = size as usize;
                Ok(tail)
            }
        }
    }

    /// Object `seq` as one GET of it whole (`whole`) or one HEAD sees it.
    fn fetch(&self, seq: u64, whole: bool) -> Result<Found, Error> {
        Ok(if whole {
            let whole = self.client.get_whole(seq)?;
            Found {
                size: whole.buf.len() as u64,
                etag: whole.etag,
                start: whole.start,
                seal: whole.seal,
                buf: Some(whole.buf),
            }
        } else {
            let head = self.client.stat(seq)?;
            Found {
                size: head.size,
                etag: head.etag,
                start: head.start,
                seal: head.seal,
                buf: None,
            }
        })
    }

    /// A new object after `last` (the first one if `None`), where the index ends.
    fn after(&self, index: &mut Index, last: Option<u64>) -> Result<Object, Error> {
        index.anchor_empty();
        index.anchor(&*self.client)?;
        Ok(Object::new(
            self.next_seq(last)?,
            self.meta(index.end()),
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
