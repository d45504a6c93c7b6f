//! Checking what a reader fetched against the CRC32C the server stores for each object.
//!
//! An object read from its first byte to its last is checked against the CRC32C the server
//! stores for it (see [`Options::verify_reads`](crate::Options::verify_reads)). Its first
//! chunk is held until the GETs ahead hold the rest of it and the whole object checks out, so
//! no byte of a damaged object is handed out. The rest is shared out over the free read-ahead
//! slots, so that even a cold start fetches it over parallel connections. An object larger
//! than the read-ahead budget (`read_ahead` chunks) is checked when its last chunk arrives,
//! before that chunk is handed out. Reads that start inside an object cannot be checked: the
//! checksum covers the whole object.
//!
//! A mismatch is not taken for damage at once: a bit flipped on the way back, which TCP's own
//! checksum misses now and then, is its usual cause. The bytes not handed out yet (all of an
//! object held whole, the last chunk of a larger one) are fetched again, up to
//! [`Options::retry_attempts`](crate::Options::retry_attempts) fetches in all; a fetch that
//! matches replaces them, so only good bytes are handed out. A mismatch that repeats with the
//! same bytes (damage at rest, or bytes handed out before that were damaged) is asked about
//! once more with a HEAD, and is [`Error::Corrupt`] if that repeats it too.
//!
//! A follower gets a new object's bytes through polls of its end, none of which reads it
//! through. What it fetched of an object from its first byte on, polls included, is checked
//! once the object is sealed (it holds the seal size it records, so it can no longer grow):
//! with one HEAD for the stored checksum, before the bytes that complete the object are handed
//! out. Those are fetched again on a mismatch, as above; the bytes before them were handed out
//! as they came, so damage there is found late, as `Corrupt` at the end of the object. An
//! object that never reaches its seal (the last one of a stream, one that records none) is
//! not checked, nor is one a follower started to read inside.

use super::Reader;
use super::fetch::{Get, Got};
use crate::Error;
use crate::index::Placed;
use crate::store::{Client, Crc};

/// An object whose bytes did not match the checksum the server stores for it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Corrupt {
    pub(super) seq: u64,
    stored: u32,
    read: u32,
}

/// An object read from its first byte on, up to the end of the chunk.
#[derive(Debug, Clone, Copy)]
pub(super) struct Through {
    pub(super) seq: u64,
    /// The checksum of its bytes read so far.
    read: Crc,
    /// The checksum of its bytes before the chunk: handed out already, so a mismatch fetches
    /// again only what follows them.
    before: Crc,
    /// The checksum the server stores for it, once an answer has said.
    stored: Option<Crc>,
}

/// An object fetched from its first byte on by GETs and polls of its end, up to the end of
/// the chunk: checked when it is sealed, if a poll brought any of it (what GETs alone read
/// through is checked as such).
#[derive(Debug, Clone, Copy)]
pub(super) struct Followed {
    pub(super) seq: u64,
    /// The checksum of its bytes fetched so far.
    read: Crc,
    /// The checksum of its bytes before the chunk.
    before: Crc,
    /// Whether a poll brought any of its bytes.
    polled: bool,
}

impl Reader {
    /// Notes what the GET of the chunk just placed brought: the seal size its object records,
    /// and its bytes' checksum, which extends the object read through (or starts one, at the
    /// object's first byte).
    pub(super) fn took(&mut self, entry: Placed, got: Got) {
        self.saw_seal(entry.seq, got.seal);
        let offset = self.chunk_start - entry.start;
        self.follow(entry.seq, offset, got.read, false);
        self.through = match (self.through, got.read) {
            (_, None) => None,
            (_, Some(read)) if offset == 0 => Some(Through {
                seq: entry.seq,
                read,
                before: Crc::of(&[]),
                stored: got.stored,
            }),
            (Some(t), Some(read)) if t.seq == entry.seq && t.read.len == offset => Some(Through {
                read: t.read.then(read),
                before: t.read,
                stored: latest(t.stored, got.stored),
                ..t
            }),
            _ => None,
        };
    }

    /// Extends the object followed with the chunk just placed at `offset` in object `seq`,
    /// whose checksum is `read` (`None` when not verifying), or starts one at its first byte.
    pub(super) fn follow(&mut self, seq: u64, offset: u64, read: Option<Crc>, polled: bool) {
        self.followed = match (self.followed, read) {
            (_, None) => None,
            (_, Some(read)) if offset == 0 => Some(Followed {
                seq,
                read,
                before: Crc::of(&[]),
                polled,
            }),
            (Some(f), Some(read)) if f.seq == seq && f.read.len == offset => Some(Followed {
                seq,
                read: f.read.then(read),
                before: f.read,
                polled: f.polled || polled,
            }),
            _ => None,
        };
    }

    /// Checks the object a follower fetched from its first byte on, polls included, once the
    /// chunk ends it and it is sealed (`size`, its size now, is at least the seal size it
    /// records): against the checksum a HEAD says the server stores, which no poll carries. A
    /// HEAD that fails leaves the object unchecked rather than the read failed, as for
    /// objects read through.
    pub(super) fn check_followed(
        &mut self,
        client: &Client,
        entry: Placed,
        size: u64,
    ) -> Result<(), Error> {
        let Some(f) =
            (self.followed).filter(|f| f.seq == entry.seq && f.polled && f.read.len == size)
        else {
            return Ok(());
        };
        if self.seal_of(entry.seq).is_none_or(|seal| size < seal) {
            return Ok(());
        }
        // Checked once: the object cannot grow.
        self.followed = None;
        let stored = (client.stat(entry.seq).ok())
            .and_then(|head| head.crc)
            .filter(|crc| crc.len == size);
        match stored {
            Some(stored) if stored.value != f.read.value => {
                self.mismatch(client, entry, f.before, f.read, stored)
            }
            Some(_) => {
                log::debug!(
                    "{}: checksum matches what was followed",
                    client.key(entry.seq)
                );
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Checks the object read through once its bytes are all read: a mismatch with the
    /// checksum the server stores fails this read and every later one of the object. An
    /// object whose checksum no answer gave (none stored, or an older server) passes as is.
    pub(super) fn check(&mut self, client: &Client, entry: Placed) -> Result<(), Error> {
        let Some(t) = self
            .through
            .filter(|t| t.seq == entry.seq && t.read.len == entry.size)
        else {
            return Ok(());
        };
        self.through = None;
        match t.stored {
            Some(stored) if stored.len == t.read.len && stored.value != t.read.value => {
                self.mismatch(client, entry, t.before, t.read, stored)
            }
            Some(stored) if stored.len == t.read.len => {
                log::debug!("{}: checksum matches", client.key(entry.seq));
                Ok(())
            }
            // None stored, or one of a version of another length: nothing to check against.
            _ => Ok(()),
        }
    }

    /// Fetches again the bytes of object `entry` not handed out yet, those after `before`
    /// (the chunk, and the GETs ahead that hold the rest of an object held whole), when the
    /// checksum `read` of its bytes does not match `stored`: a bit flipped on the way is the
    /// usual cause, and fetching again gets past it. Each fetch replaces the bytes, so a fetch
    /// that matches leaves only good ones to hand out. The same checksum twice means the same
    /// bytes twice: damage at rest, or in bytes handed out before, or a stored checksum that
    /// is off, which [`confirm`](Reader::confirm) tells apart.
    fn mismatch(
        &mut self,
        client: &Client,
        entry: Placed,
        before: Crc,
        mut read: Crc,
        stored: Crc,
    ) -> Result<(), Error> {
        let key = client.key(entry.seq);
        for fetch in 2..=self.fetches {
            let Some(again) = self.refetch(client, entry, before, read.len)? else {
                break;
            };
            if again.value == stored.value {
                log::warn!(
                    "{key}: an answer did not match its checksum, damaged on the way; fetch \
                     {fetch} of its bytes does"
                );
                return Ok(());
            }
            if again.value == read.value {
                break;
            }
            read = again;
        }
        self.confirm(client, entry, read, stored)
    }

    /// Fetches the bytes of object `entry` from `before` to `end` again, into the buffers that
    /// hold them (the chunk, then the GETs ahead), and returns the checksum of the object up to
    /// `end` with them; `None` if no buffer holds some of them (a GET ahead that failed).
    fn refetch(
        &mut self,
        client: &Client,
        entry: Placed,
        before: Crc,
        end: u64,
    ) -> Result<Option<Crc>, Error> {
        let mut crc = before;
        let fetch = |offset: u64, out: &mut [u8]| {
            let get = Get {
                entry,
                offset,
                verify: true,
                check: false,
            };
            Ok::<_, Error>(get.run(client, out, None)?.read.unwrap_or(Crc::of(&[])))
        };
        if self.chunk_start == entry.start + crc.len && self.chunk_len > 0 {
            let read = fetch(crc.len, &mut self.chunk[..self.chunk_len])?;
            // The object followed, if it is this one, holds the chunk's new bytes too.
            if let Some(f) = &mut self.followed
                && f.seq == entry.seq
                && f.before.len == crc.len
                && f.read.len == crc.len + read.len
            {
                f.read = f.before.then(read);
            }
            crc = crc.then(read);
        }
        for ahead in self.ahead.iter_mut() {
            if crc.len >= end || ahead.seq != entry.seq || ahead.start != entry.start + crc.len {
                break;
            }
            let Some((buf, Ok(got))) = &mut ahead.done else {
                break;
            };
            let read = fetch(crc.len, &mut buf[..ahead.len])?;
            // Handed out later, these bytes extend the object followed.
            got.read = Some(read);
            crc = crc.then(read);
        }
        Ok((crc.len == end).then_some(crc))
    }

    /// Asks again before a mismatch is called damage: a server whose metadata lags its data
    /// may answer with the checksum of another version of an object being rewritten (seen
    /// once, on SeaweedFS). A stream's bytes never change once written, so a mismatch that a
    /// second HEAD repeats is damage, and one it does not repeat is not. A HEAD that fails
    /// cannot clear the bytes: they count as damaged.
    fn confirm(
        &mut self,
        client: &Client,
        entry: Placed,
        read: Crc,
        stored: Crc,
    ) -> Result<(), Error> {
        let key = client.key(entry.seq);
        let again = client.stat(entry.seq).map(|head| head.crc);
        match again {
            Ok(Some(now)) if now.len == read.len && now.value == read.value => {
                log::warn!(
                    "{key}: its stored checksum changed between two answers; the bytes read match the later one"
                );
                Ok(())
            }
            Ok(Some(now)) if now.len != read.len => {
                log::warn!("{key}: rewritten while read, left unchecked");
                Ok(())
            }
            _ => {
                self.corrupt = Some(Corrupt {
                    seq: entry.seq,
                    stored: stored.value,
                    read: read.value,
                });
                self.refuse_corrupt(client, entry)
            }
        }
    }

    /// Fails a read of the object that failed its check.
    pub(super) fn refuse_corrupt(&self, client: &Client, entry: Placed) -> Result<(), Error> {
        match self.corrupt {
            Some(Corrupt { seq, stored, read }) if seq == entry.seq => Err(Error::Corrupt {
                key: client.key(seq),
                stored,
                read,
            }),
            _ => Ok(()),
        }
    }

    /// Before the first chunk of the object read through is handed out: waits for the GETs
    /// ahead that hold the rest of it, if they hold all of it, and checks the whole object. A
    /// GET that failed leaves the check to the chunks as they come (its error comes first).
    pub(super) fn hold(&mut self, client: &Client, entry: Placed) -> Result<(), Error> {
        let Some(mut t) = self.through else {
            return Ok(());
        };
        let count = (self.ahead.iter())
            .take_while(|f| f.seq == entry.seq)
            .count();
        let reaches = (count.checked_sub(1))
            .and_then(|last| self.ahead.get(last))
            .is_some_and(|f| f.start + f.len as u64 == entry.end());
        if !reaches {
            return Ok(());
        }
        for i in 0..count {
            if !self.ahead.wait_for(i) {
                return Ok(());
            }
            let Some((_, Ok(got))) = self.ahead.get(i).and_then(|f| f.done.as_ref()) else {
                return Ok(());
            };
            let (Some(read), stored) = (got.read, got.stored) else {
                return Ok(());
            };
            t.read = t.read.then(read);
            t.stored = latest(t.stored, stored);
        }
        self.through = Some(t);
        self.check(client, entry)
    }
}

/// Of two stored checksums of an object, the one of its longest version: the object may grow
/// while it is read, and its bytes then run past the shorter version's.
fn latest(a: Option<Crc>, b: Option<Crc>) -> Option<Crc> {
    a.into_iter().chain(b).max_by_key(|crc| crc.len)
}
