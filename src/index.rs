//! What a handle knows of the stream's objects: their order, sizes and stream offsets.
//!
//! Offsets are absolute: the first object's start is what it records in its metadata (0 if it
//! records none), so deleting older objects moves no offset. The index learns it once per
//! handle ("anchors"), with a HEAD of the first object or from the tail a writer fetches anyway.
//!
//! Objects are deleted in any order (a lifecycle rule expires a day's objects in no order of
//! ours), so the index may hold gaps: sequence numbers missing between two present objects. The object after a
//! gap is placed at the start it records, learned with one HEAD when the gap is listed, so
//! a handle whose position is past a gap works on; reading into one is
//! [`Error::MissingObject`] naming its first key. Until the index is anchored only its first
//! run of consecutive objects counts from 0: every later run already has its recorded start.
//!
//! A long stream is not listed whole. An empty index opens at the object the stream's hint
//! names (`client/hint.rs`): it then holds the stream's last objects, anchored, and not its
//! front. Offsets before what it holds, or between two pages it took in, are "unlisted" (not
//! gaps): a seek or read there lists a page where the offset should be (`locate.rs`), and a
//! trim lists the stream afresh from its first object up to where it trims (`front.rs`).
//! Anything that needs the whole stream ([`resync`](Index::resync)) lists it whole and
//! forgets what was unlisted.

mod front;
mod locate;
mod located;
mod open;
mod resync;

use crate::Error;
use crate::layout::Object;
use crate::store::Client;
pub(crate) use front::listed_through;
use located::located;
pub(crate) use located::with_gaps;
pub(crate) use open::BEHIND;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Placed {
    pub(crate) seq: u64,
    /// Stream offset of the object's first byte.
    pub(crate) start: u64,
    pub(crate) size: u64,
}

impl Placed {
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

/// The stream's objects at their stream offsets, in order, with the gaps between them.
#[derive(Debug, Default, Clone)]
pub(crate) struct Index {
    entries: Vec<Placed>,
    /// The first object's start once the index is anchored (also kept while it holds no entry:
    /// then the writer's bytes start there). Until then entries count from 0.
    origin: Option<u64>,
    /// Whether the objects before the first entry were never listed: the index was opened at
    /// the object the stream's hint names, so `origin` is where it starts, not the stream.
    unlisted_front: bool,
    /// The entries, in order, before which lie objects never listed (not gaps: the index
    /// took in a page of objects around an offset, see `locate.rs`). Each has its recorded
    /// start.
    unlisted: Vec<u64>,
}

impl Index {
    /// The stream offset where the objects the index accounts for end.
    pub(crate) fn end(&self) -> u64 {
        self.entries
            .last()
            .map_or(self.origin.unwrap_or(0), Placed::end)
    }

    /// The stream offset of the first byte still present, as far as the index knows.
    pub(crate) fn first(&self) -> u64 {
        self.origin.unwrap_or(0)
    }

    /// [`first`](Index::first), if the index knows the stream's front: not when it was opened
    /// at the hint (a [`resync`](Index::resync) lists the front).
    pub(crate) fn known_first(&self) -> Option<u64> {
        (!self.unlisted_front).then(|| self.first())
    }

    /// Whether stream offset `pos` lies where the index never listed (before its first entry
    /// when it was opened at the hint, or between two pages it took in): only a listing there
    /// ([`locate`](Index::locate)) tells what is there.
    pub(crate) fn unlisted_at(&self, pos: u64) -> bool {
        self.unlisted_around(pos).is_some()
            || (self.entries.is_empty() && self.unlisted_front && pos < self.first())
    }

    /// The entries on either side of `pos` if it lies where the index never listed: the one
    /// before it (none before the first entry) and the one after it.
    fn unlisted_around(&self, pos: u64) -> Option<(Option<Placed>, Placed)> {
        let i = self.entries.partition_point(|e| e.end() <= pos);
        let above = *self.entries.get(i).filter(|e| e.start > pos)?;
        let unlisted = match i {
            0 => self.unlisted_front,
            _ => self.unlisted.binary_search(&above.seq).is_ok(),
        };
        unlisted.then(|| (i.checked_sub(1).map(|j| self.entries[j]), above))
    }

    /// Marks entry `seq` as following objects never listed, or not.
    fn set_unlisted(&mut self, seq: u64, unlisted: bool) {
        match (self.unlisted.binary_search(&seq), unlisted) {
            (Err(i), true) => self.unlisted.insert(i, seq),
            (Ok(i), false) => drop(self.unlisted.remove(i)),
            _ => {}
        }
    }

    /// Whether the offsets are known to be absolute: the first object's start was learned.
    pub(crate) fn anchored(&self) -> bool {
        self.origin.is_some()
    }

    /// The entry of object `seq`, if the index holds it.
    pub(crate) fn get(&self, seq: u64) -> Option<Placed> {
        let i = self.entries.partition_point(|e| e.seq < seq);
        self.entries.get(i).copied().filter(|e| e.seq == seq)
    }

    /// How many entries the first run has: objects with consecutive sequence numbers.
    fn first_run(&self) -> usize {
        let gaps = self
            .entries
            .windows(2)
            .position(|w| w[1].seq != w[0].seq + 1);
        gaps.map_or(self.entries.len(), |i| i + 1)
    }

    /// The first sequence number missing between two entries, if there is a gap (and not
    /// objects never listed).
    pub(crate) fn first_gap(&self) -> Option<u64> {
        let run = self.first_run();
        let after = self.entries.get(run)?;
        (self.unlisted.binary_search(&after.seq).is_err()).then(|| self.entries[run - 1].seq + 1)
    }

    /// The first sequence number missing where stream offset `pos` would be: `pos` lies in a
    /// gap (between the end of the object before it and the start the one after records).
    pub(crate) fn missing_at(&self, pos: u64) -> Option<u64> {
        let outside = pos < self.first() || pos >= self.end();
        if outside || self.find(pos).is_some() || self.unlisted_at(pos) {
            return None;
        }
        let i = self.entries.partition_point(|e| e.end() <= pos);
        i.checked_sub(1).map(|i| self.entries[i].seq + 1)
    }

    /// The entries a trim up to `before` deletes: whole objects that end at or before it,
    /// oldest first; never the last one if `keep_last` (it is the stream's last object).
    pub(crate) fn trimmable(&self, before: u64, keep_last: bool) -> &[Placed] {
        let candidates = match keep_last {
            true => self.entries.len().saturating_sub(1),
            false => self.entries.len(),
        };
        let n = self.entries[..candidates].partition_point(|e| e.end() <= before);
        &self.entries[..n]
    }

    /// Forgets the first object, once it was deleted: the stream now starts where it ended, or
    /// past a gap, where the next object starts.
    pub(crate) fn pop_first(&mut self) {
        if !self.entries.is_empty() {
            let first = self.entries.remove(0);
            // What was never listed before the next entry is now before the first one.
            if let Some(next) = self.entries.first().map(|e| e.seq)
                && self.unlisted.binary_search(&next).is_ok()
            {
                self.set_unlisted(next, false);
                self.unlisted_front = true;
            }
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

    /// Forgets the objects before object `seq` once a trim deleted them: the stream now
    /// starts at `first`, where object `seq` does (or, with no such object, at its end).
    pub(crate) fn trimmed_before(&mut self, seq: u64, first: u64) {
        self.pop_before(seq);
        // Known now, unless the index starts later, where the hint opened it.
        if self.entries.first().is_none_or(|e| e.seq == seq) {
            self.unlisted_front = false;
            self.origin = Some(first);
        }
    }

    /// Sets the first object's start (or, with no entry, where the stream starts), moving the
    /// entries of the first run with it: those after a gap have their recorded starts already.
    /// The first run must then end before the object after the gap starts.
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
        // Past a gap the entry has its recorded start already, which tells nothing of where
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

    pub(crate) fn last(&self) -> Option<Placed> {
        self.entries.last().copied()
    }

    /// The object holding stream offset `pos`.
    pub(crate) fn find(&self, pos: u64) -> Option<Placed> {
        let i = self.entries.partition_point(|e| e.end() <= pos);
        self.entries.get(i).copied().filter(|e| e.start <= pos)
    }

    /// Drops object `seq` and those after it: they are the writer's from now on.
    pub(crate) fn truncate_from(&mut self, seq: u64) {
        self.entries.retain(|e| e.seq < seq);
        self.unlisted.retain(|&s| s < seq);
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
        self.entries.push(Placed { seq, start, size });
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
    /// it, or it left a gap (an older one is still there): a full listing tells, and
    /// re-anchors the index in the first case.
    pub(crate) fn list(&mut self, client: &Client) -> Result<(), Error> {
        if self.entries.is_empty() && self.origin.is_none() && self.open_at_hint(client)? {
            return Ok(());
        }
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
    /// index is empty), as [`located()`] returns it. Known objects keep their offsets: only the
    /// last may have grown. An object after a gap starts where it records, which cannot be
    /// before the end of the objects before it ([`Error::Discontinuity`]).
    fn update(&mut self, listed: Vec<Object>, key: impl Fn(u64) -> String) -> Result<(), Error> {
        let mut listed = listed.into_iter().peekable();
        if let Some(last) = self.entries.last_mut() {
            let seq = last.seq;
            match listed.next_if(|s| s.seq == seq) {
                Some(s) if s.size >= last.size => last.size = s.size,
                Some(s) => {
                    return Err(Error::ObjectChanged {
                        key: s.key,
                        expected: last.size,
                        found: s.size,
                    });
                }
                None => return Err(Error::MissingObject { key: key(seq) }),
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
                    self.entries.push(Placed {
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

#[cfg(test)]
mod tests;
