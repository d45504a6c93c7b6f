//! Opening an index at the stream's hint instead of listing the stream whole, and listing it
//! whole after all when something needs its front.

use super::{Index, located};
use crate::Error;
use crate::job;
use crate::layout::Object;
use crate::store::Client;

/// How many objects before the one the hint names a handle lists from: the hint names the
/// newest object, which may hold only a few bytes, and the same LIST page takes in the
/// objects before it, so that a read of the last bytes finds them listed. A hint among the
/// first ones would list the stream whole (one page): writers write none for them.
#[cfg(not(test))]
pub(crate) const BEHIND: u64 = 100;
/// In the crate's own tests, a few: the simulator's streams are short, and meet the hint.
#[cfg(test)]
pub(crate) const BEHIND: u64 = 3;

impl Index {
    /// Rebuilds an index opened at the hint from a full listing, `listed`: a new index as
    /// [`resync`](Index::resync) makes one when all it knew is gone, and with the same check
    /// that offsets stay absolute. Without `extend`, the listing stops at the index's last
    /// object (a writer holds those after it).
    pub(super) fn relisted(
        &mut self,
        client: &Client,
        listed: Vec<Object>,
        extend: bool,
    ) -> Result<(), Error> {
        let known = self.last();
        let listed = (listed.into_iter())
            .filter(|s| extend || known.is_none_or(|last| s.seq <= last.seq))
            .collect();
        let mut fresh = Index::default();
        fresh.update(listed, |seq| client.key(seq))?;
        fresh.anchor(client)?;
        if let Some(known) = known
            && let Some(now) = fresh.get(known.seq)
            && now.start != known.start
        {
            return Err(Error::Discontinuity {
                key: client.key(known.seq),
                expected: known.start,
                found: now.start,
            });
        }
        if fresh.entries.is_empty() {
            fresh.origin = self.origin;
        }
        *self = fresh;
        Ok(())
    }

    /// Fills an empty index from the object the stream's hint names on, anchored where the
    /// first object listed starts: one GET, then at once one listing from there and one HEAD
    /// of the object the hint names (in the listing's first run of consecutive objects, where
    /// it starts places the run). Says whether it did; it does not when there is no hint of
    /// this stream, or when nothing is listed from the object it names on (a hint past the
    /// end). When the object it names is not in that run, or is gone, or records no start,
    /// the first object listed is asked (one HEAD more), and if that one records no start or
    /// is gone, the caller lists the stream whole.
    pub(super) fn open_at_hint(&mut self, client: &Client) -> Result<bool, Error> {
        let Some(hint) = client.read_hint()? else {
            return Ok(false);
        };
        let Some(after) = hint.seq.checked_sub(BEHIND) else {
            return Ok(false);
        };
        let (listed, named) = job::both(
            client,
            || client.list(Some(after)),
            || client.recorded_start(hint.seq),
        );
        let listed = located(client, listed?)?;
        let Some(first) = listed.first() else {
            return Ok(false);
        };
        let placed = (named.ok().flatten()).and_then(|start| run_start(&listed, hint.seq, start));
        let start = match placed {
            Some(start) => start,
            None => match client.recorded_start(first.seq) {
                Ok(Some(start)) => start,
                Ok(None) => return Ok(false),
                Err(err) if err.is_missing() => return Ok(false),
                Err(err) => return Err(err),
            },
        };
        self.origin = Some(start);
        self.unlisted_front = true;
        self.update(listed, |seq| client.key(seq))?;
        Ok(true)
    }
}

/// Where the first object of `listed` starts, if object `seq` is in its first run of
/// consecutive objects and starts at `start`: before it lie the sizes of those before it.
fn run_start(listed: &[Object], seq: u64, start: u64) -> Option<u64> {
    let mut before = 0;
    for (i, s) in listed.iter().enumerate() {
        if i > 0 && s.seq != listed[i - 1].seq + 1 {
            return None;
        }
        if s.seq == seq {
            return start.checked_sub(before);
        }
        before += s.size;
    }
    None
}
