//! The stream's oldest objects, listed afresh for a trim: pages from the first object on, up
//! to the offset the trim keeps, not the whole stream.

use super::{Index, Placed, located};
use crate::Error;
use crate::layout::Object;
use crate::store::Client;

/// The objects from the stream's first one on, as an index of their own, listed a page at a
/// time until one ends after stream offset `before` (objects never exceed what their sizes
/// add up to from the first one's start: gaps only move later ones further), or up to object
/// `upto` at most (a writer's own objects come after it). Also whether it holds the stream's
/// last object. Costs a LIST per 1,000 objects, a HEAD of the first (twice: to know when to
/// stop, then to anchor the index, the first may have been deleted between), and those of
/// [`located()`] around gaps.
pub(crate) fn listed_through(
    client: &Client,
    before: u64,
    upto: Option<u64>,
) -> Result<(Index, bool), Error> {
    let mut listed: Vec<Object> = Vec::new();
    // Where the first object listed starts, then where the objects listed end.
    let (mut first_start, mut end) = (None, None);
    let whole = loop {
        let (page, more) = client.list_page_after(listed.last().map(|s| s.seq), 1000)?;
        let Some(first) = page.first() else {
            break !more;
        };
        if first_start.is_none() {
            first_start = Some(client.recorded_start(first.seq)?.unwrap_or(0));
            end = first_start;
        }
        let past = upto.is_some_and(|upto| page.iter().any(|s| s.seq > upto));
        let page = page
            .into_iter()
            .filter(|s| upto.is_none_or(|upto| s.seq <= upto));
        for s in page {
            end = end.map(|end| end + s.size);
            listed.push(s);
        }
        if !more || past {
            break true;
        }
        if end.is_some_and(|end| end > before) {
            break false;
        }
    };
    let mut view = Index::default();
    view.update(located(client, listed)?, |seq| client.key(seq))?;
    view.anchor(client)?;
    // None up to `upto`: the stream starts past the writer's index, at the first listed.
    if view.entries.is_empty() {
        view.origin = Some(first_start.unwrap_or(0));
    }
    Ok((view, whole))
}

impl Index {
    /// The first entry, if any.
    pub(crate) fn first_entry(&self) -> Option<Placed> {
        self.entries.first().copied()
    }

    /// Brings the index's front up to date: the stream's first object, as one LIST of one key
    /// names it, placed where it records it starts (one HEAD, unless the index holds it,
    /// anchored). Objects the index holds before it were deleted since. One the index does not
    /// hold becomes its first entry, with the objects between it and the next entry unlisted
    /// (`locate.rs` lists them when read): the stream is not listed whole. That is the
    /// fallback ([`resync`](Index::resync), `extend` as there) when the index holds no object
    /// at or after it, or (holding some) the stream none at all.
    ///
    /// While the index never listed the front (it was opened at the hint), the open's LIST
    /// stands for the one here (see `client/open.rs`). Objects may have been deleted since:
    /// the object it named is asked where it starts whatever the index holds, and a HEAD that
    /// finds it proves it is still the first (no object appears before the first one: writers
    /// create objects after the last, completed in order).
    pub(crate) fn refresh_front(&mut self, client: &Client, extend: bool) -> Result<(), Error> {
        let mut opened = (self.unlisted_front)
            .then(|| client.opened_first().flatten())
            .flatten();
        loop {
            let (first, confirm) = match opened.take() {
                Some(first) => (Some(first), true),
                None => (client.first_object()?, false),
            };
            let Some(first) = first else {
                return match self.entries.is_empty() {
                    true => Ok(()),
                    false => self.resync(client, extend),
                };
            };
            let known = self.get(first.seq).filter(|_| self.anchored());
            let start = match known {
                Some(known) if !confirm => known.start,
                _ => match client.recorded_start(first.seq) {
                    // As when anchoring: a first object recording nothing starts at 0.
                    Ok(start) => start.or(known.map(|k| k.start)).unwrap_or(0),
                    // Trimmed since it was listed: the first object is another now.
                    Err(err) if err.is_missing() => continue,
                    Err(err) => return Err(err),
                },
            };
            let entry = Placed {
                seq: first.seq,
                start,
                size: first.size,
            };
            if !self.take_front(client, entry)? {
                self.resync(client, extend)?;
            }
            return Ok(());
        }
    }

    /// Makes `first`, the stream's first object as just listed, the index's first entry; says
    /// whether it could (the index is anchored and holds an object at or after it).
    fn take_front(&mut self, client: &Client, first: Placed) -> Result<bool, Error> {
        let holds_after = self.last().is_some_and(|last| last.seq >= first.seq);
        // Nothing appears before a front the index knows: that is for a full listing to tell.
        let before_known = !self.unlisted_front
            && (self.entries.first()).is_some_and(|known| known.seq > first.seq);
        if !self.anchored() || !holds_after || before_known {
            return Ok(false);
        }
        self.pop_before(first.seq);
        let next = self.entries[0];
        if next.seq == first.seq {
            next.verify(client, Some(first.start))?;
        } else {
            // Objects between the two were never listed, unless they adjoin.
            let adjoins = first.seq + 1 == next.seq;
            let fits = match adjoins {
                true => first.end() == next.start,
                false => first.end() <= next.start,
            };
            if !fits {
                return Err(Error::Discontinuity {
                    key: client.key(next.seq),
                    expected: first.end(),
                    found: next.start,
                });
            }
            self.entries.insert(0, first);
            self.set_unlisted(next.seq, !adjoins);
        }
        self.unlisted_front = false;
        self.origin = Some(first.start);
        Ok(true)
    }
}
