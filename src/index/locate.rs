//! Finding the objects around a stream offset that the index never listed, with a page or two
//! of listing instead of the whole stream.
//!
//! An index opened at the hint knows the stream's last objects only. A seek before them, or a
//! new handle reading from the front, lists one page of keys where the offset should be, and
//! asks the first object of the page where it starts (one HEAD; none when the page follows a
//! known object): offsets are absolute and every object records its start, so the page is
//! placed exactly, and the objects between two pages stay "unlisted", not gaps.
//!
//! Where to list is guessed from the offsets on either side: objects of one stream have about
//! one size (its seal size), so the sequence number is about proportional to the offset, and
//! the page (200 keys: one of 1,000 is about 250 KB to fetch) starts half a page before the
//! guess to hold it whichever way it errs. A guess that misses still places its page, which
//! bounds the next guess. A read going on past a page lists the next 1,000 from where it ended
//! (no HEAD). After [`TRIES`] pages, the stream is listed whole: sizes too uneven for guesses.

use super::{Index, Placed, located};
use crate::Error;
use crate::layout::Object;
use crate::store::Client;

/// Pages a search lists before it lists the stream whole.
const TRIES: usize = 6;

/// Keys a page takes where it was guessed: a page of 1,000 keys is about 250 KB of XML, which
/// takes several round trips of its own to arrive; the guesses err by a few objects.
const GUESSED: usize = 200;

/// Half such a page: it starts this many objects before the guess.
const HALF_PAGE: u64 = GUESSED as u64 / 2;

/// Keys a page takes after one already listed (a read going on), as S3 sends at most.
const NEXT: usize = 1000;

impl Index {
    /// Lists the objects around stream offset `pos` if it lies where the index never listed
    /// (see [`unlisted_at`](Index::unlisted_at)), so that the index then holds the object
    /// holding it, or knows `pos` to be in a gap or before the stream's first object.
    /// `extend` as for [`resync`](Index::resync), its fallback.
    pub(crate) fn locate(&mut self, client: &Client, pos: u64, extend: bool) -> Result<(), Error> {
        // Sequence numbers below which nothing was listed between the two entries around `pos`.
        let mut ceiling = None;
        for _ in 0..TRIES {
            let Some((below, above)) = self.unlisted_around(pos) else {
                break;
            };
            let lo = below.map_or((0, 0), |e| (e.seq + 1, e.end()));
            let hi_seq = ceiling.unwrap_or(above.seq).min(above.seq);
            let from = guess(lo, (hi_seq, above.start), pos);
            if !self.take_page(client, below, above, from)? {
                ceiling = Some(from);
            }
        }
        if self.unlisted_at(pos) {
            self.resync(client, extend)?;
        }
        Ok(())
    }

    /// Lists the stream's first page if the index does not know its front: the first offset.
    pub(crate) fn list_front(&mut self, client: &Client, extend: bool) -> Result<(), Error> {
        if let (true, Some(&first)) = (self.unlisted_front, self.entries.first()) {
            self.take_page(client, None, first, 0)?;
        }
        if self.unlisted_front {
            self.resync(client, extend)?;
        }
        Ok(())
    }

    /// Lists one page of objects from sequence number `from` on and places those before
    /// `above` (the entry after the unlisted objects; `below` the one before them, if any).
    /// Says whether it found any there.
    fn take_page(
        &mut self,
        client: &Client,
        below: Option<Placed>,
        above: Placed,
        from: u64,
    ) -> Result<bool, Error> {
        // Listed from just after `below`, or from the stream's first object.
        let adjoins = below.map_or(from == 0, |b| from == b.seq + 1);
        let max = if adjoins { NEXT } else { GUESSED };
        let (page, more) = client.list_page_after(from.checked_sub(1), max)?;
        // The listing went past `above`: nothing unlisted is left between the page and it.
        let reached = !more || page.last().is_some_and(|s| s.seq >= above.seq);
        let page: Vec<Object> = page.into_iter().filter(|s| s.seq < above.seq).collect();
        let page = located(client, page)?;
        let Some(first) = page.first() else {
            if reached && adjoins {
                self.listed_up_to(below, above.seq);
            }
            return Ok(false);
        };
        let start = match below {
            Some(b) if adjoins && first.seq == b.seq + 1 => b.end(),
            _ => match client.recorded_start(first.seq) {
                Ok(Some(start)) => start,
                Ok(None) => {
                    return Err(Error::NoRecordedStart {
                        key: client.key(first.seq),
                    });
                }
                // Deleted since the listing: the next search lists again.
                Err(err) if err.is_missing() => return Ok(true),
                Err(err) => return Err(err),
            },
        };
        let mut run: Vec<Placed> = Vec::with_capacity(page.len());
        for s in &page {
            let start = match run.last() {
                None => start,
                Some(last) if s.seq == last.seq + 1 => last.end(),
                // After a gap in the page: where `located` found it records.
                Some(_) => s.start,
            };
            run.push(Placed {
                seq: s.seq,
                start,
                size: s.size,
            });
        }
        let (first, last) = (run[0], run[run.len() - 1]);
        let floor = below.map_or(0, |b| b.end());
        if first.start < floor || last.end() > above.start {
            let (key, expected, found) = match first.start < floor {
                true => (first.seq, floor, first.start),
                false => (above.seq, last.end(), above.start),
            };
            return Err(Error::Discontinuity {
                key: client.key(key),
                expected,
                found,
            });
        }
        let at = self.entries.partition_point(|e| e.seq < first.seq);
        self.entries.splice(at..at, run);
        match below {
            Some(_) => self.set_unlisted(first.seq, !adjoins),
            None => {
                self.unlisted_front = !adjoins;
                self.origin = Some(first.start);
            }
        }
        self.set_unlisted(above.seq, !reached);
        Ok(true)
    }

    /// Records that nothing lies between `below` and entry `above` but gaps (or, with no
    /// `below`, that `above` is the stream's first object).
    fn listed_up_to(&mut self, below: Option<Placed>, above: u64) {
        match below {
            Some(_) => self.set_unlisted(above, false),
            None => {
                self.unlisted_front = false;
                self.origin = self.entries.first().map(|e| e.start);
            }
        }
    }
}

/// The sequence number to list from for offset `pos`, between the first unlisted one and its
/// offset, `lo`, and the entry after, `hi`: right after `lo` for a read going on from there,
/// else half a page before the proportional guess.
fn guess(lo: (u64, u64), hi: (u64, u64), pos: u64) -> u64 {
    let ((lo_seq, lo_at), (hi_seq, hi_at)) = (lo, hi);
    if pos <= lo_at || hi_seq <= lo_seq {
        return lo_seq;
    }
    let span = u128::from(hi_at.saturating_sub(lo_at).max(1));
    let ahead = u128::from(pos - lo_at) * u128::from(hi_seq - lo_seq) / span;
    let guess = lo_seq.saturating_add(u64::try_from(ahead).unwrap_or(u64::MAX));
    guess
        .saturating_sub(HALF_PAGE)
        .clamp(lo_seq, hi_seq.saturating_sub(1).max(lo_seq))
}

#[cfg(test)]
mod tests {
    use super::guess;

    #[test]
    fn a_guess_lists_from_half_a_page_before_the_proportional_place() {
        // 10,000 objects of 100 bytes between offsets 0 and 1,000,000.
        assert_eq!(guess((0, 0), (10_000, 1_000_000), 500_000), 4_900);
        assert_eq!(guess((0, 0), (10_000, 1_000_000), 5_000), 0);
        assert_eq!(guess((0, 0), (10_000, 1_000_000), 999_999), 9_899);
        // A read going on from a page lists right after it.
        assert_eq!(guess((3_000, 300_000), (10_000, 1_000_000), 300_000), 3_000);
        // Nothing but the entry after.
        assert_eq!(guess((7, 700), (7, 900), 800), 7);
    }
}
