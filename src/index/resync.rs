//! Bringing the index up to date with a full listing, all or nothing, and what a deleted
//! object a read met means once it is.

use super::located::located;
use super::{Index, Placed};
use crate::Error;
use crate::store::Client;

impl Index {
    /// Brings the whole index up to date with one full listing, its front too: objects deleted
    /// since (by another handle, a lifecycle rule or by hand) are forgotten, those in the middle
    /// leaving a gap where they were; with `extend`,
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

    pub(super) fn resync_in_place(&mut self, client: &Client, extend: bool) -> Result<(), Error> {
        let listed = located(client, client.list(None)?)?;
        if self.unlisted_front || !self.unlisted.is_empty() {
            return self.relisted(client, listed, extend);
        }
        if let Some(first) = listed.first() {
            let (knew, known_end) = (!self.entries.is_empty(), self.end());
            while self.entries.first().is_some_and(|e| e.seq < first.seq) {
                self.pop_first();
            }
            let gone = |e: &Placed| listed.binary_search_by_key(&e.seq, |s| s.seq).is_err();
            if self.entries.iter().any(gone) {
                // Entries after the new gap keep their starts: they must be absolute ones.
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
    /// `pos` (trimmed from the front), [`Error::MissingObject`] if `pos` is in a gap now (an
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
                Some(seq) => Error::MissingObject {
                    key: client.key(seq),
                },
                None => err,
            },
        }
    }
}
