//! What a handle knows of the stream's objects: their order, sizes and stream offsets.

use crate::Error;
use crate::client::Client;
use crate::layout::Segment;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) seq: u64,
    /// Stream offset of the object's first byte.
    pub(crate) start: u64,
    pub(crate) size: u64,
}

impl Entry {
    fn end(&self) -> u64 {
        self.start + self.size
    }
}

/// Consecutive objects, offset 0 being the first byte of the lowest one.
#[derive(Debug, Default)]
pub(crate) struct Index {
    entries: Vec<Entry>,
}

impl Index {
    /// The stream length the index accounts for.
    pub(crate) fn end(&self) -> u64 {
        self.entries.last().map_or(0, Entry::end)
    }

    pub(crate) fn last(&self) -> Option<Entry> {
        self.entries.last().copied()
    }

    /// The object holding stream offset `pos`.
    pub(crate) fn find(&self, pos: u64) -> Option<Entry> {
        let i = self.entries.partition_point(|e| e.end() <= pos);
        self.entries.get(i).copied().filter(|e| e.start <= pos)
    }

    /// Drops object `seq` and those after it: they are the writer's from now on.
    pub(crate) fn truncate_from(&mut self, seq: u64) {
        self.entries.retain(|e| e.seq < seq);
    }

    /// Appends a sealed object of `size` bytes after the last one.
    pub(crate) fn push(&mut self, seq: u64, size: u64) {
        let start = self.end();
        self.entries.push(Entry { seq, start, size });
    }

    /// Brings the index up to date with S3: lists the last known object and everything after it.
    pub(crate) fn refresh(&mut self, client: &Client) -> Result<(), Error> {
        let after = self.last().and_then(|last| last.seq.checked_sub(1));
        let listed = client.list(after)?;
        self.update(listed, |seq| client.key(seq))
    }

    /// Takes in a listing of the objects from the index's last one on (of all objects if the
    /// index is empty). Known objects keep their offsets: only the last may have grown.
    fn update(&mut self, listed: Vec<Segment>, key: impl Fn(u64) -> String) -> Result<(), Error> {
        let mut listed = listed.into_iter().peekable();
        if let Some(last) = self.entries.last_mut() {
            let seq = last.seq;
            match listed.next_if(|s| s.seq == seq) {
                Some(s) if s.size >= last.size => last.size = s.size,
                Some(s) => {
                    return Err(Error::SegmentChanged {
                        key: s.key,
                        expected: last.size,
                        found: s.size,
                    });
                }
                None => return Err(Error::MissingSegment { key: key(seq) }),
            }
        }
        for s in listed {
            if let Some(last) = self.last()
                && s.seq != last.seq + 1
            {
                return Err(Error::MissingSegment {
                    key: key(last.seq + 1),
                });
            }
            self.push(s.seq, s.size);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(seq: u64, size: u64) -> Segment {
        Segment {
            key: format!("k{seq}"),
            seq,
            size,
            last_modified: String::new(),
        }
    }

    #[test]
    fn offsets_and_lookup() {
        let mut index = Index::default();
        index
            .update(vec![seg(3, 10), seg(4, 0), seg(5, 5)], |s| format!("k{s}"))
            .unwrap();
        assert_eq!(index.end(), 15);
        assert_eq!(index.find(0).unwrap().seq, 3);
        assert_eq!(index.find(9).unwrap().seq, 3);
        assert_eq!(index.find(10).unwrap().seq, 5);
        assert_eq!(index.find(15), None);
    }

    #[test]
    fn last_object_may_grow_but_not_shrink_or_vanish() {
        let mut index = Index::default();
        index
            .update(vec![seg(0, 4), seg(1, 2)], |s| format!("k{s}"))
            .unwrap();
        index
            .update(vec![seg(1, 6), seg(2, 1)], |s| format!("k{s}"))
            .unwrap();
        assert_eq!(index.end(), 11);
        let shrunk = index.update(vec![seg(2, 0)], |s| format!("k{s}"));
        assert!(matches!(shrunk, Err(Error::SegmentChanged { .. })));
        let vanished = index.update(vec![seg(3, 1)], |s| format!("k{s}"));
        assert!(matches!(vanished, Err(Error::MissingSegment { key }) if key == "k2"));
        assert_eq!(index.end(), 11, "a failed update keeps what was known");
    }

    #[test]
    fn gaps_name_the_missing_key() {
        let mut index = Index::default();
        let gap = index.update(vec![seg(0, 1), seg(2, 1)], |s| format!("k{s}"));
        assert!(matches!(gap, Err(Error::MissingSegment { key }) if key == "k1"));
    }
}
