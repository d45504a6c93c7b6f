//! What a handle knows of the stream's objects: their order, sizes and stream offsets.
//!
//! Offsets are absolute: the first object's start is what it records in its metadata (0 if it
//! records none), so deleting older objects moves no offset. The index learns it once per
//! handle ("anchors"), with a HEAD of the first object or from the tail a writer fetches anyway.
//!
//! Objects are deleted in any order (a lifecycle rule expires a day's objects in no order of
//! ours), so the index may hold holes: sequence numbers missing between two present objects. The object after a
//! hole is placed at the start it records, learned with one HEAD when the hole is listed, so
//! a handle whose position is past a hole works on; reading into one is
//! [`Error::MissingSegment`] naming its first key. Until the index is anchored only its first
//! run of consecutive objects counts from 0: every later run already has its recorded start.

use crate::Error;
use crate::layout::Segment;
use crate::store::Client;

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

/// The stream's objects at their stream offsets, in order, with the holes between them.
#[derive(Debug, Default, Clone)]
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

    /// How many entries the first run has: objects with consecutive sequence numbers.
    fn first_run(&self) -> usize {
        let holes = self
            .entries
            .windows(2)
            .position(|w| w[1].seq != w[0].seq + 1);
        holes.map_or(self.entries.len(), |i| i + 1)
    }

    /// The first sequence number missing between two entries, if there is a hole.
    pub(crate) fn first_hole(&self) -> Option<u64> {
        let run = self.first_run();
        (run < self.entries.len()).then(|| self.entries[run - 1].seq + 1)
    }

    /// The first sequence number missing where stream offset `pos` would be: `pos` lies in a
    /// hole (between the end of the object before it and the start the one after records).
    pub(crate) fn missing_at(&self, pos: u64) -> Option<u64> {
        if pos < self.first() || pos >= self.end() || self.find(pos).is_some() {
            return None;
        }
        let i = self.entries.partition_point(|e| e.end() <= pos);
        i.checked_sub(1).map(|i| self.entries[i].seq + 1)
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

    /// Forgets the first object, once it was deleted: the stream now starts where it ended, or
    /// past a hole, where the next object starts.
    pub(crate) fn pop_first(&mut self) {
        if !self.entries.is_empty() {
            let first = self.entries.remove(0);
            let next = self.entries.first().map(|e| e.start);
            self.origin = Some(next.unwrap_or(first.end()));
        }
    }

    /// Forgets the objects before object `seq`, once they were deleted.
    pub(crate) fn pop_before(&mut self, seq: u64) {
        while self.entries.first().is_some_and(|e| e.seq < seq) {
            self.pop_first();
        }
    }

    /// Sets the first object's start (or, with no entry, where the stream starts), moving the
    /// entries of the first run with it: those after a hole have their recorded starts already.
    /// The first run must then end before the object after the hole starts.
    fn anchor_at(&mut self, client: &Client, origin: u64) -> Result<(), Error> {
        self.shift_first_run(origin);
        let run = self.first_run();
        match (
            self.entries.get(run),
            run.checked_sub(1).map(|i| self.entries[i]),
        ) {
            (Some(after), Some(before)) if after.start < before.end() => {
                Err(Error::Discontinuity {
                    key: client.key(after.seq),
                    expected: before.end(),
                    found: after.start,
                })
            }
            _ => Ok(()),
        }
    }

    /// Anchors the index at `origin`: moves the first run there.
    fn shift_first_run(&mut self, origin: u64) {
        let shift = origin - self.entries.first().map_or(0, |e| e.start);
        let run = self.first_run();
        for entry in &mut self.entries[..run] {
            entry.start += shift;
        }
        self.origin = Some(origin);
    }

    /// Anchors the index if it is not yet and holds objects: one HEAD of the first object,
    /// whose recorded start (0 if it records none) is the stream's first offset.
    ///
    /// A first object deleted since it was listed (a trim running beside this handle) is
    /// dropped and the next one asked: trims delete the oldest objects first, so it is the
    /// first one now. Trims never delete the last object, so its absence is an error.
    pub(crate) fn anchor(&mut self, client: &Client) -> Result<(), Error> {
        while let (None, Some(first)) = (self.origin, self.entries.first()) {
            match client.recorded_start(first.seq) {
                Ok(start) => self.anchor_at(client, start.unwrap_or(0))?,
                Err(err) if err.is_missing() && self.entries.len() > 1 => {
                    let alone = self.first_run() == 1;
                    self.entries.remove(0);
                    // The next run has its recorded starts: the index is anchored there.
                    if alone {
                        self.origin = Some(self.entries[0].start);
                    }
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
        if self.anchored() {
            return entry.verify(client, recorded);
        }
        // Past a hole the entry has its recorded start already, which tells nothing of where
        // the first run starts: that costs the first object's HEAD.
        if seq > self.entries[self.first_run() - 1].seq {
            entry.verify(client, recorded)?;
            return self.anchor(client);
        }
        let relative = entry.start - self.entries.first().map_or(0, |e| e.start);
        match recorded {
            // Nothing can start before the bytes that precede it in the stream.
            Some(found) if found < relative => Err(Error::Discontinuity {
                key: client.key(seq),
                expected: relative,
                found,
            }),
            Some(found) => self.anchor_at(client, found - relative),
            // A first object that records nothing starts at 0.
            None if self.entries[0].seq == seq => self.anchor_at(client, 0),
            None => self.anchor(client),
        }
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
    /// since (by another handle, a lifecycle rule or by hand) are forgotten, those in the middle
    /// leaving a hole where they were; with `extend`,
    /// objects added since are taken in as [`refresh`](Index::refresh) does (not when a writer
    /// holds the objects after the index).
    ///
    /// When every object the index knew is gone, it re-anchors at the first one listed, as a
    /// new handle would, from the start that object records: offsets stay absolute, so that
    /// start cannot lie before the end of what the index knew ([`Error::Discontinuity`]
    /// otherwise, and the index is left as it was).
    ///
    /// It is all or nothing: a request that fails half-way (the HEAD that anchors a new first
    /// object) leaves the index as it was, not emptied of the objects it must still explain,
    /// with an origin that would place the next object listed at their old end.
    pub(crate) fn resync(&mut self, client: &Client, extend: bool) -> Result<(), Error> {
        let mut next = self.clone();
        next.resync_in_place(client, extend)?;
        *self = next;
        Ok(())
    }

    fn resync_in_place(&mut self, client: &Client, extend: bool) -> Result<(), Error> {
        let listed = located(client, client.list(None)?)?;
        if let Some(first) = listed.first() {
            let (knew, known_end) = (!self.entries.is_empty(), self.end());
            while self.entries.first().is_some_and(|e| e.seq < first.seq) {
                self.pop_first();
            }
            let gone = |e: &Entry| listed.binary_search_by_key(&e.seq, |s| s.seq).is_err();
            if self.entries.iter().any(gone) {
                // Entries after the new hole keep their starts: they must be absolute ones.
                self.anchor(client)?;
                self.entries.retain(|e| !gone(e));
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

    /// What a GET of the object holding stream offset `pos` that found it deleted (`err`,
    /// [`Error::is_missing`]) means, after a full listing: [`Error::Trimmed`] if the stream now starts after
    /// `pos` (trimmed from the front), [`Error::MissingSegment`] if `pos` is in a hole now (an
    /// older object is still there); otherwise `err` itself. `extend` as for
    /// [`resync`](Index::resync).
    pub(crate) fn explain_deleted(
        &mut self,
        client: &Client,
        err: Error,
        pos: u64,
        extend: bool,
    ) -> Error {
        if !err.is_missing() {
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
            _ => match self.missing_at(pos) {
                Some(seq) => Error::MissingSegment {
                    key: client.key(seq),
                },
                None => err,
            },
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
    /// it, or it left a hole (an older one is still there): a full listing tells, and
    /// re-anchors the index in the first case.
    pub(crate) fn list(&mut self, client: &Client) -> Result<(), Error> {
        let after = self.last().and_then(|last| last.seq.checked_sub(1));
        let listed = located(client, client.list(after)?)?;
        match self.last() {
            Some(last) if listed.first().is_none_or(|s| s.seq != last.seq) => {
                self.resync(client, true)
            }
            _ => self.update(listed, |seq| client.key(seq)),
        }
    }

    /// Takes in a listing of the objects from the index's last one on (of all objects if the
    /// index is empty), as [`located`] returns it. Known objects keep their offsets: only the
    /// last may have grown. An object after a hole starts where it records, which cannot be
    /// before the end of the objects before it ([`Error::Discontinuity`]).
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
            match self.last() {
                Some(last) if s.seq != last.seq + 1 => {
                    let end = self.end();
                    if s.start < end {
                        return Err(Error::Discontinuity {
                            key: s.key,
                            expected: end,
                            found: s.start,
                        });
                    }
                    self.entries.push(Entry {
                        seq: s.seq,
                        start: s.start,
                        size: s.size,
                    });
                }
                _ => self.push(s.seq, s.size),
            }
        }
        Ok(())
    }
}

/// `listed` without the objects before a hole in it, once a HEAD shows that the object just
/// before the hole is gone too: a trim deleted them between two pages of the listing (or
/// between two listings). A hole after an object that is still there is a gap in the stream,
/// and the object after it gets the start it records (one HEAD), for the index to place it
/// there; one that records none (of s3-syncr 0.1.0 or another tool) cannot be placed:
/// [`Error::MissingSegment`] naming the first missing key.
fn located(client: &Client, mut listed: Vec<Segment>) -> Result<Vec<Segment>, Error> {
    let mut from = 0;
    while let Some(i) = next_gap(client, &mut listed, from)? {
        match present_start(client, listed[i + 1].seq)? {
            Some(Some(start)) => listed[i + 1].start = start,
            Some(None) => {
                return Err(Error::MissingSegment {
                    key: client.key(listed[i].seq + 1),
                });
            }
            // Deleted since it was listed: the hole is wider, and is looked at again.
            None => {
                listed.remove(i + 1);
                from = i;
                continue;
            }
        }
        from = i + 1;
    }
    Ok(listed)
}

/// `listed` as [`located`] takes it (no start looked up), with every hole left in it a gap.
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
        match present_start(client, listed[i].seq)? {
            Some(_) => return Ok(Some(i)),
            None => {
                listed.drain(..=i);
                from = 0;
            }
        }
    }
    Ok(None)
}

/// The start object `seq` records (`Some(None)`: it records none), or `None` if it is gone.
fn present_start(client: &Client, seq: u64) -> Result<Option<Option<u64>>, Error> {
    match client.recorded_start(seq) {
        Ok(start) => Ok(Some(start)),
        Err(err) if err.is_missing() => Ok(None),
        Err(err) => Err(err),
    }
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

    /// Object `seq` after a hole, as [`located`] returns it: with the start it records.
    fn after_hole(seq: u64, start: u64, size: u64) -> Segment {
        Segment {
            start,
            ..seg(seq, size)
        }
    }

    #[test]
    fn an_object_after_a_hole_starts_where_it_records_and_the_hole_names_its_first_key() {
        let mut index = Index::default();
        index
            .update(
                vec![seg(0, 4), seg(1, 2), after_hole(4, 20, 5), seg(5, 1)],
                |s| format!("k{s}"),
            )
            .unwrap();
        assert_eq!((index.first(), index.end()), (0, 26));
        assert_eq!(index.find(5).unwrap().seq, 1);
        assert_eq!((index.find(6), index.missing_at(6)), (None, Some(2)));
        assert_eq!(index.missing_at(19), Some(2));
        assert_eq!(index.find(20).unwrap().seq, 4);
        assert_eq!(index.find(25).unwrap().seq, 5);
        assert_eq!((index.missing_at(5), index.missing_at(20)), (None, None));
        assert_eq!(index.missing_at(26), None, "the end is no hole");
        assert_eq!(index.first_hole(), Some(2));
        index.pop_first();
        index.pop_first();
        assert_eq!(index.first(), 20, "the stream starts after the hole");
        assert_eq!(index.first_hole(), None);

        let mut index = Index::default();
        let overlap = index.update(vec![seg(0, 4), after_hole(2, 3, 1)], |s| format!("k{s}"));
        assert!(
            matches!(overlap, Err(Error::Discontinuity { key, expected: 4, found: 3 }) if key == "k2")
        );
    }

    #[test]
    fn anchoring_moves_every_entry_and_trimming_keeps_offsets() {
        let mut index = Index::default();
        index
            .update(vec![seg(3, 10), seg(4, 0), seg(5, 5)], |s| format!("k{s}"))
            .unwrap();
        assert!(!index.anchored());
        index.shift_first_run(100);
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

        // Only the first run counts from 0 before anchoring: a later one has its own starts.
        let mut index = Index::default();
        let listed = vec![seg(3, 10), seg(4, 5), after_hole(7, 200, 5)];
        index.update(listed, |s| format!("k{s}")).unwrap();
        index.shift_first_run(100);
        let starts: Vec<u64> = index.entries.iter().map(|e| e.start).collect();
        assert_eq!(starts, [100, 110, 200]);
        assert_eq!(index.missing_at(150), Some(5));
    }

    /// A resync that fails half-way leaves the index as it was. Found by the simulator (seed
    /// 125): a follower's objects were all trimmed, the HEAD anchoring the one object left
    /// lost its answers, and the index, emptied, then placed that object at the old end:
    /// a false `Discontinuity` instead of `Trimmed`.
    #[test]
    fn a_resync_whose_anchor_fails_changes_nothing() {
        use crate::client::mem::{self, Call, Fault, MemS3, Quirks};
        use crate::store::{Expect, Meta};
        use std::sync::Arc;

        let mem = Arc::new(MemS3::new(Quirks::default()));
        let options = crate::Options::builder()
            .with_retry_attempts(2)
            .with_retry_backoff(std::time::Duration::ZERO)
            .build()
            .expect("valid options");
        let client = mem::client(&mem, "i/log.bin", options);
        let put = |seq: u64, start: u64, size: usize| {
            let meta = Meta { start, seal: 10 };
            (client.overwrite(seq, meta, 0, &vec![b'x'; size], 0, Expect::Absent)).unwrap();
        };
        put(0, 0, 10);
        put(1, 10, 10);
        let mut index = Index::default();
        index.refresh(&client).unwrap();
        assert_eq!(index.end(), 20);
        // The stream moves on, and everything this index knew is trimmed.
        put(2, 20, 10);
        put(3, 30, 10);
        for seq in 0..3 {
            mem.remove(&client.key(seq));
        }
        mem.set_faults(Some(Box::new(|call: Call<'_>| match call.op {
            "HEAD" => Fault::LoseAnswer,
            _ => Fault::None,
        })));
        assert!(index.resync(&client, true).is_err(), "the anchor failed");
        assert_eq!((index.first(), index.end()), (0, 20), "nothing changed");
        mem.set_faults(None);
        index.resync(&client, true).unwrap();
        assert_eq!(index.get(3).map(|e| e.start), Some(30));
        assert_eq!((index.first(), index.end()), (30, 40));
    }
}
