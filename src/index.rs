//! What a handle knows of the stream's objects: their order, sizes and stream offsets.
//!
//! Offsets are absolute: the first object's start is what it records in its metadata (0 if it
//! records none), so deleting older objects moves no offset. The index learns it once per
//! handle ("anchors"), with a HEAD of the first object or from the tail a writer fetches anyway.

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
    pub(crate) fn end(&self) -> u64 {
        self.start + self.size
    }

    /// Checks the start offset the object records (`None`: it records none, as objects of
    /// s3-syncr 0.1.0 or of other tools) against where the index puts it.
    pub(crate) fn verify(&self, client: &Client, recorded: Option<u64>) -> Result<(), Error> {
        match recorded {
            Some(found) if found != self.start => Err(Error::Discontinuity {
                key: client.key(self.seq),
                expected: self.start,
                found,
            }),
            _ => Ok(()),
        }
    }
}

/// Consecutive objects at their stream offsets.
#[derive(Debug, Default)]
pub(crate) struct Index {
    entries: Vec<Entry>,
    /// The first object's start once the index is anchored (also kept while it holds no entry:
    /// then the writer's bytes start there). Until then entries count from 0.
    origin: Option<u64>,
}

impl Index {
    /// The stream offset where the objects the index accounts for end.
    pub(crate) fn end(&self) -> u64 {
        self.entries
            .last()
            .map_or(self.origin.unwrap_or(0), Entry::end)
    }

    /// The stream offset of the first byte still present, as far as the index knows.
    pub(crate) fn first(&self) -> u64 {
        self.origin.unwrap_or(0)
    }

    /// Whether the offsets are known to be absolute: the first object's start was learned.
    pub(crate) fn anchored(&self) -> bool {
        self.origin.is_some()
    }

    /// The entry of object `seq`, if the index holds it.
    pub(crate) fn get(&self, seq: u64) -> Option<Entry> {
        let i = self.entries.partition_point(|e| e.seq < seq);
        self.entries.get(i).copied().filter(|e| e.seq == seq)
    }

    /// The entries a trim up to `before` deletes: whole objects that end at or before it,
    /// oldest first; never the last one if `keep_last` (it is the stream's last object).
    pub(crate) fn trimmable(&self, before: u64, keep_last: bool) -> &[Entry] {
        let candidates = match keep_last {
            true => self.entries.len().saturating_sub(1),
            false => self.entries.len(),
        };
        let n = self.entries[..candidates].partition_point(|e| e.end() <= before);
        &self.entries[..n]
    }

    /// Forgets the first object, once it was deleted: the stream now starts where it ended.
    pub(crate) fn pop_first(&mut self) {
        if !self.entries.is_empty() {
            let first = self.entries.remove(0);
            self.origin = Some(first.end());
        }
    }

    /// Forgets the objects before object `seq`, once they were deleted.
    pub(crate) fn pop_before(&mut self, seq: u64) {
        while self.entries.first().is_some_and(|e| e.seq < seq) {
            self.pop_first();
        }
    }

    /// Sets the first object's start (or, with no entry, where the stream starts), moving every
    /// entry with it.
    fn anchor_at(&mut self, origin: u64) {
        let shift = origin - self.entries.first().map_or(0, |e| e.start);
        for entry in &mut self.entries {
            entry.start += shift;
        }
        self.origin = Some(origin);
    }

    /// Anchors the index if it is not yet and holds objects: one HEAD of the first object,
    /// whose recorded start (0 if it records none) is the stream's first offset.
    ///
    /// A first object deleted since it was listed (a trim running beside this handle) is
    /// dropped and the next one asked: trims delete the oldest objects first, so it is the
    /// first one now. Trims never delete the last object, so its 404 is an error.
    pub(crate) fn anchor(&mut self, client: &Client) -> Result<(), Error> {
        while let (None, Some(first)) = (self.origin, self.entries.first()) {
            match client.recorded_start(first.seq) {
                Ok(start) => self.anchor_at(start.unwrap_or(0)),
                Err(Error::Status { status: 404, .. }) if self.entries.len() > 1 => {
                    self.entries.remove(0);
                }
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    /// Anchors the index for a writer that found the stream empty (start 0), or that fetched
    /// object `seq` (an entry) whole and so knows the start it records, `recorded`: that
    /// anchors the index with no request unless it is `None` and `seq` is not the first object
    /// (then the first object is asked, once). An index anchored already checks `recorded`.
    pub(crate) fn anchor_with(
        &mut self,
        client: &Client,
        seq: u64,
        recorded: Option<u64>,
    ) -> Result<(), Error> {
        let Some(entry) = self.get(seq) else {
            return Ok(());
        };
        let relative = entry.start - self.entries.first().map_or(0, |e| e.start);
        match recorded {
            _ if self.anchored() => return entry.verify(client, recorded),
            // Nothing can start before the bytes that precede it in the stream.
            Some(found) if found < relative => {
                return Err(Error::Discontinuity {
                    key: client.key(seq),
                    expected: relative,
                    found,
                });
            }
            Some(found) => self.anchor_at(found - relative),
            // A first object that records nothing starts at 0.
            None if self.entries[0].seq == seq => self.anchor_at(0),
            None => self.anchor(client)?,
        }
        Ok(())
    }

    /// Anchors an index that found no object at all: a new stream starts at 0.
    pub(crate) fn anchor_empty(&mut self) {
        if self.entries.is_empty() && self.origin.is_none() {
            self.origin = Some(0);
        }
    }

    pub(crate) fn last(&self) -> Option<Entry> {
        self.entries.last().copied()
    }

    /// The object holding stream offset `pos`.
    pub(crate) fn find(&self, pos: u64) -> Option<Entry> {
        let i = self.entries.partition_point(|e| e.end() <= pos);
        self.entries.get(i).copied().filter(|e| e.start <= pos)
    }

    /// Brings the whole index up to date with one full listing, its front too: objects deleted
    /// since (by another handle, a lifecycle rule or by hand) are forgotten; with `extend`,
    /// objects added since are taken in as [`refresh`](Index::refresh) does (not when a writer
    /// holds the objects after the index).
    ///
    /// When every object the index knew is gone, it re-anchors at the first one listed, as a
    /// new handle would, from the start that object records: offsets stay absolute, so that
    /// start cannot lie before the end of what the index knew ([`Error::Discontinuity`]
    /// otherwise, and the index is left as it was).
    pub(crate) fn resync(&mut self, client: &Client, extend: bool) -> Result<(), Error> {
        let listed = contiguous(client, client.list(None)?)?;
        if let Some(first) = listed.first() {
            let (knew, known_end) = (!self.entries.is_empty(), self.end());
            while self.entries.first().is_some_and(|e| e.seq < first.seq) {
                self.pop_first();
            }
            if knew && self.entries.is_empty() && extend {
                let mut fresh = Index::default();
                fresh.update(listed, |seq| client.key(seq))?;
                fresh.anchor(client)?;
                if fresh.anchored() && fresh.first() < known_end {
                    return Err(Error::Discontinuity {
                        key: client.key(fresh.entries[0].seq),
                        expected: known_end,
                        found: fresh.first(),
                    });
                }
                *self = fresh;
                return Ok(());
            }
        }
        if extend {
            let known = self.last().map(|last| last.seq);
            let listed = listed
                .into_iter()
                .filter(|s| known.is_none_or(|seq| s.seq >= seq))
                .collect();
            self.update(listed, |seq| client.key(seq))?;
            self.anchor(client)?;
        }
        Ok(())
    }

    /// What a GET of the object holding stream offset `pos` that found it deleted (`err`, a
    /// 404) means, after a full listing: [`Error::Trimmed`] if the stream now starts after
    /// `pos` (trimmed from the front), [`Error::MissingSegment`] if an older object is still
    /// there; otherwise `err` itself. `extend` as for [`resync`](Index::resync).
    pub(crate) fn explain_deleted(
        &mut self,
        client: &Client,
        err: Error,
        pos: u64,
        extend: bool,
    ) -> Error {
        if !matches!(err, Error::Status { status: 404, .. }) {
            return err;
        }
        if let Err(relisted) = self.resync(client, extend) {
            return relisted;
        }
        match self.first() {
            first if pos < first => Error::Trimmed {
                requested: pos,
                first,
            },
            _ => err,
        }
    }

    /// Drops object `seq` and those after it: they are the writer's from now on.
    pub(crate) fn truncate_from(&mut self, seq: u64) {
        self.entries.retain(|e| e.seq < seq);
    }

    /// Makes the index hold the first `size` bytes of object `seq`: its last object grows, or
    /// `seq` is appended after it. A writer hands over the part of an object that is in S3.
    pub(crate) fn cover(&mut self, seq: u64, size: u64) {
        match self.entries.last_mut() {
            Some(last) if last.seq == seq => last.size = size,
            _ => self.push(seq, size),
        }
    }

    /// Appends a sealed object of `size` bytes after the last one.
    pub(crate) fn push(&mut self, seq: u64, size: u64) {
        let start = self.end();
        self.entries.push(Entry { seq, start, size });
    }

    /// Brings the index up to date with S3: lists the last known object and everything after
    /// it, and anchors the index the first time it finds objects.
    pub(crate) fn refresh(&mut self, client: &Client) -> Result<(), Error> {
        self.list(client)?;
        self.anchor(client)
    }

    /// Like [`refresh`](Index::refresh), without anchoring: for a writer, whose first request
    /// after the listing may tell the first object's start for free.
    ///
    /// A last known object that is gone was trimmed from the front, with every object before
    /// it, unless an older one is still there (a gap): a full listing tells, and re-anchors
    /// the index in the first case.
    pub(crate) fn list(&mut self, client: &Client) -> Result<(), Error> {
        let after = self.last().and_then(|last| last.seq.checked_sub(1));
        let listed = contiguous(client, client.list(after)?)?;
        match self.last() {
            Some(last) if listed.first().is_none_or(|s| s.seq != last.seq) => {
                self.resync(client, true)
            }
            _ => self.update(listed, |seq| client.key(seq)),
        }
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

/// `listed` without the objects before a hole in it, once a HEAD shows that the object just
/// before the hole is gone too: a trim deleted them between two pages of the listing (or
/// between two listings). A hole after an object that is still there is a gap in the stream:
/// [`Error::MissingSegment`] naming the first missing key.
fn contiguous(client: &Client, mut listed: Vec<Segment>) -> Result<Vec<Segment>, Error> {
    match next_gap(client, &mut listed, 0)? {
        Some(i) => Err(Error::MissingSegment {
            key: client.key(listed[i].seq + 1),
        }),
        None => Ok(listed),
    }
}

/// `listed` as [`contiguous`] takes it, with every hole left in it a gap.
pub(crate) fn settled(client: &Client, mut listed: Vec<Segment>) -> Result<Vec<Segment>, Error> {
    let mut from = 0;
    while let Some(i) = next_gap(client, &mut listed, from)? {
        from = i + 1;
    }
    Ok(listed)
}

/// The index in `listed` of the object just before its first hole at or after index `from`
/// whose older side is still there, once the objects before a hole whose older side is gone
/// (trimmed meanwhile: trims delete oldest first) were dropped from `listed`.
fn next_gap(
    client: &Client,
    listed: &mut Vec<Segment>,
    mut from: usize,
) -> Result<Option<usize>, Error> {
    while let Some(i) = (listed.get(from..).unwrap_or_default().windows(2))
        .position(|w| w[1].seq != w[0].seq + 1)
        .map(|i| i + from)
    {
        match client.recorded_start(listed[i].seq) {
            Ok(_) => return Ok(Some(i)),
            Err(Error::Status { status: 404, .. }) => {
                listed.drain(..=i);
                from = 0;
            }
            Err(err) => return Err(err),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(seq: u64, size: u64) -> Segment {
        Segment {
            key: format!("k{seq}"),
            seq,
            start: 0,
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

    #[test]
    fn anchoring_moves_every_entry_and_trimming_keeps_offsets() {
        let mut index = Index::default();
        index
            .update(vec![seg(3, 10), seg(4, 0), seg(5, 5)], |s| format!("k{s}"))
            .unwrap();
        assert!(!index.anchored());
        index.anchor_at(100);
        assert_eq!((index.first(), index.end()), (100, 115));
        assert_eq!(index.find(110).unwrap().seq, 5);
        assert_eq!(index.find(99), None);

        let seqs = |entries: &[Entry]| entries.iter().map(|e| e.seq).collect::<Vec<_>>();
        assert_eq!(seqs(index.trimmable(109, true)), Vec::<u64>::new());
        assert_eq!(
            seqs(index.trimmable(110, true)),
            [3, 4],
            "empty objects go too"
        );
        assert_eq!(seqs(index.trimmable(u64::MAX, true)), [3, 4]);
        assert_eq!(seqs(index.trimmable(u64::MAX, false)), [3, 4, 5]);
        index.pop_first();
        index.pop_first();
        assert_eq!((index.first(), index.end()), (110, 115));
        index.pop_first();
        assert_eq!((index.first(), index.end()), (115, 115), "kept when empty");
        index.update(vec![seg(6, 1)], |s| format!("k{s}")).unwrap();
        assert_eq!(index.get(6).map(|e| e.start), Some(115));
    }
}
