//! The read side: the read position, the chunk being consumed, and the ranged GETs kept in
//! flight ahead of a sequential reader.
//!
//! A read that does not continue the previous one (the first read, a read after a seek) sends
//! one small GET in the caller's thread, so random reads cost what a raw ranged GET does. A read
//! that continues where the chunk ended is sequential: from then on up to
//! [`Options::read_ahead`](crate::Options::read_ahead) GETs run ahead on worker threads, each
//! [`GROWTH`] times the size of the one before, up to the chunk size, across object boundaries.
//! Every fetch owns one buffer from a small free list, and no more than `read_ahead` fetches are
//! outstanding (under way, done but not consumed, or abandoned after a seek but not yet back),
//! so the reader never holds more than `read_ahead + 1` buffers of at most `read_chunk` bytes.
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

mod ahead;
mod fetch;

use std::sync::Arc;

use crate::Error;
use crate::index::{Entry, Index};
use crate::store::{Client, Crc};
use ahead::Ahead;
use fetch::{Get, Got, room_for};

/// First ranged GET after a seek: no larger than a small read, so random reads cost what a raw
/// ranged GET does; it starts larger for a larger read.
const FIRST_READ: usize = 4 * 1024;

/// How much each GET of a sequential reader grows over the one before. With four in flight, a
/// reader that starts with 8 KiB reads has full 8 MiB chunks under way by its third round trip.
const GROWTH: usize = 4;

pub(crate) struct Reader {
    pub(crate) pos: u64,
    /// Stream offset of `chunk[0]`.
    chunk_start: u64,
    /// The bytes fetched last are `chunk[..chunk_len]`; the rest of the buffer stays
    /// initialized, so that the next GET into it zeroes nothing.
    chunk: Vec<u8>,
    chunk_len: usize,
    /// Size of the next ranged GET.
    window: usize,
    max_window: usize,
    /// The GETs ahead, contiguous from the end of `chunk`.
    ahead: Ahead,
    /// The seal size recorded by the object fetched from last (its sequence number first).
    seal: Option<(u64, u64)>,
    /// Whether objects read through are checked against their stored checksums.
    verify: bool,
    /// The object being read through from its first byte, not yet checked.
    through: Option<Through>,
    /// An object that failed its check: every later read of it fails the same way.
    corrupt: Option<Corrupt>,
    /// Most fetches of the bytes of an object that does not match its checksum.
    fetches: u32,
    /// The object a follower is fetching from its first byte on, polls of its end included.
    followed: Option<Followed>,
}

/// An object whose bytes did not match the checksum the server stores for it.
#[derive(Debug, Clone, Copy)]
struct Corrupt {
    seq: u64,
    stored: u32,
    read: u32,
}

/// An object read from its first byte on, up to the end of the chunk.
#[derive(Debug, Clone, Copy)]
struct Through {
    seq: u64,
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
struct Followed {
    seq: u64,
    /// The checksum of its bytes fetched so far.
    read: Crc,
    /// The checksum of its bytes before the chunk.
    before: Crc,
    /// Whether a poll brought any of its bytes.
    polled: bool,
}

impl Reader {
    /// `fetches` is the most fetches of a range whose checksum does not match, at least one.
    /// `stepped`: see [`fetch::Workers`].
    pub(crate) fn new(
        max_window: usize,
        depth: usize,
        verify: bool,
        fetches: u32,
        stepped: Option<u64>,
    ) -> Reader {
        Reader {
            pos: 0,
            chunk_start: 0,
            chunk: Vec::new(),
            chunk_len: 0,
            window: FIRST_READ.min(max_window),
            max_window,
            ahead: Ahead::new(depth, stepped),
            seal: None,
            verify,
            through: None,
            corrupt: None,
            fetches: fetches.max(1),
            followed: None,
        }
    }

    fn chunk_holds(&self, pos: u64) -> bool {
        pos >= self.chunk_start && pos < self.chunk_end()
    }

    fn chunk_end(&self) -> u64 {
        self.chunk_start + self.chunk_len as u64
    }

    /// Moves the read position. Leaving the chunk, other than to where it ends, means random
    /// access: the GETs ahead are dropped and the next one is small.
    pub(crate) fn seek(&mut self, pos: u64) {
        if !self.chunk_holds(pos) && pos != self.chunk_end() {
            self.window = FIRST_READ.min(self.max_window);
            self.ahead.cancel();
            self.through = None;
            self.followed = None;
        }
        self.pos = pos;
    }

    /// Drops every buffer and stops the workers (without waiting for them).
    pub(crate) fn release(&mut self) {
        self.ahead.release();
        self.chunk = Vec::new();
        self.chunk_len = 0;
        self.through = None;
        self.followed = None;
    }

    /// Whether the bytes at the read position are in the chunk fetched last.
    pub(crate) fn holds_pos(&self) -> bool {
        self.chunk_holds(self.pos)
    }

    /// The bytes at the read position, which the index covers: from the chunk fetched last,
    /// else from a ranged GET. Empty past the index's end. A GET fetches at least `wanted`
    /// bytes (up to the chunk size) when the object has them.
    pub(crate) fn fill_buf(
        &mut self,
        client: &Arc<Client>,
        index: &Index,
        wanted: usize,
    ) -> Result<&[u8], Error> {
        let pos = self.pos;
        if !self.chunk_holds(pos) {
            let Some(entry) = index.find(pos) else {
                return Ok(&[]);
            };
            self.refuse_corrupt(&**client, entry)?;
            self.window = self.window.max(wanted.min(self.max_window));
            self.load(client, index, entry, pos)?;
            let checked = (self.check(&**client, entry))
                .and_then(|()| self.check_followed(&**client, entry, entry.size));
            if let Err(err) = checked.and_then(|()| {
                // An object read through: the rest of it is fetched and checked before any of
                // it is handed out.
                if self.through.is_some_and(|t| t.seq == entry.seq) {
                    self.top_up(client, index);
                    self.hold(&**client, entry)?;
                }
                Ok(())
            }) {
                self.chunk_len = 0;
                self.ahead.cancel();
                return Err(err);
            }
        }
        Ok(&self.chunk[(pos - self.chunk_start) as usize..self.chunk_len])
    }

    /// Polls object `entry` for bytes past `from`, the end of what is known of it, which is
    /// stream offset `at`: one ranged GET whose bytes (up to the chunk size) become the chunk,
    /// so that no second request fetches them. Returns the object's size now, or `None` if it
    /// holds nothing new. The start the object records is checked against `entry`'s.
    pub(crate) fn poll(
        &mut self,
        client: &Client,
        entry: Entry,
        from: u64,
        at: u64,
    ) -> Result<Option<u64>, Error> {
        self.refuse_corrupt(client, entry)?;
        self.ahead.cancel();
        // A poll reads the end of an object that may still grow: its bytes are checked only
        // once the object is sealed, with what was fetched of it before.
        self.through = None;
        self.chunk_start = at;
        self.chunk_len = 0;
        let out = room_for(&mut self.chunk, self.max_window);
        let Some(tail) = client.get_tail(entry.seq, from, out)? else {
            return Ok(None);
        };
        entry.verify(client, tail.recorded)?;
        self.saw_seal(entry.seq, tail.seal);
        self.chunk_len = tail.filled;
        if self.verify {
            let crc = Crc::of(&self.chunk[..tail.filled]);
            self.follow(entry.seq, from, Some(crc), true);
            if let Err(err) = self.check_followed(client, entry, tail.size) {
                self.chunk_len = 0;
                return Err(err);
            }
        }
        Ok(Some(tail.size))
    }

    /// Makes `chunk` start at `pos`, in object `entry`: the GET ahead that holds it if reading
    /// is sequential, else a GET in the caller's thread.
    fn load(
        &mut self,
        client: &Arc<Client>,
        index: &Index,
        entry: Entry,
        pos: u64,
    ) -> Result<(), Error> {
        let sequential = self.chunk_len > 0 && pos == self.chunk_end();
        if !sequential {
            self.ahead.cancel();
            return self.fetch_here(&**client, entry, pos);
        }
        self.top_up(client, index);
        let Some((buf, len, result)) = self.ahead.take_front() else {
            // Every slot is held by fetches a seek dropped: do not wait for them.
            return self.fetch_here(&**client, entry, pos);
        };
        let got = match result {
            Ok(got) => got,
            Err(err) => {
                // The worker already retried. Later fetches are dropped too, so that the next
                // read starts again here.
                self.ahead.recycle(buf);
                self.ahead.cancel();
                return Err(err);
            }
        };
        let old = std::mem::replace(&mut self.chunk, buf);
        self.ahead.recycle(old);
        self.chunk_len = len;
        self.chunk_start = pos;
        self.took(entry, got);
        self.top_up(client, index);
        Ok(())
    }

    /// Fetches `chunk` at `pos` in the caller's thread, reusing its buffer. At an object's
    /// first byte, a checking reader without read-ahead takes the largest chunk: only what
    /// one GET holds can be checked before it is handed out. With read-ahead the first GET
    /// stays small, so that the GETs for the rest of the object start at once, in parallel.
    fn fetch_here(&mut self, client: &Client, entry: Entry, pos: u64) -> Result<(), Error> {
        let offset = pos - entry.start;
        if self.verify && offset == 0 && self.ahead.depth() == 0 {
            self.window = self.max_window;
        }
        let len = (entry.size - offset).min(self.window as u64) as usize;
        self.chunk_start = pos;
        let get = Get {
            entry,
            offset,
            verify: self.verify,
            check: offset == 0,
        };
        let result = get.run(client, room_for(&mut self.chunk, len), None);
        self.chunk_len = if result.is_ok() { len } else { 0 };
        self.grow();
        self.took(entry, result?);
        Ok(())
    }

    /// Notes what the GET of the chunk just placed brought: the seal size its object records,
    /// and its bytes' checksum, which extends the object read through (or starts one, at the
    /// object's first byte).
    fn took(&mut self, entry: Entry, got: Got) {
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
    fn follow(&mut self, seq: u64, offset: u64, read: Option<Crc>, polled: bool) {
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
    fn check_followed(&mut self, client: &Client, entry: Entry, size: u64) -> Result<(), Error> {
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
    fn check(&mut self, client: &Client, entry: Entry) -> Result<(), Error> {
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
        entry: Entry,
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
        entry: Entry,
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
        entry: Entry,
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
    fn refuse_corrupt(&self, client: &Client, entry: Entry) -> Result<(), Error> {
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
    fn hold(&mut self, client: &Client, entry: Entry) -> Result<(), Error> {
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

    fn saw_seal(&mut self, seq: u64, seal: Option<u64>) {
        if let Some(seal) = seal {
            self.seal = Some((seq, seal));
        }
    }

    /// The seal size object `seq` records, if a GET of it since the last one of another
    /// object said.
    pub(crate) fn seal_of(&self, seq: u64) -> Option<u64> {
        self.seal.filter(|&(s, _)| s == seq).map(|(_, seal)| seal)
    }

    fn grow(&mut self) {
        self.window = self.window.saturating_mul(GROWTH).min(self.max_window);
    }

    /// Starts GETs after the last one under way (or after the chunk) while slots are free and
    /// the index knows the bytes.
    fn top_up(&mut self, client: &Arc<Client>, index: &Index) {
        self.ahead.collect();
        let mut next = self.ahead.end().unwrap_or(self.chunk_end());
        while self.ahead.slots() > 0 {
            let Some(entry) = index.find(next) else {
                return;
            };
            let offset = next - entry.start;
            let rest = entry.size - offset;
            let check = self.verify
                && (offset == 0
                    || self.through.is_some_and(|t| t.seq == entry.seq)
                    || self.ahead.reads_through(entry));
            // The rest of an object read through is shared out over the free slots, so that
            // the GETs ahead hold all of it if it fits the budget (it is checked before any
            // of it is used) and a cold start fetches it over parallel connections.
            let share = if check {
                rest.div_ceil(self.ahead.slots() as u64)
            } else {
                0
            };
            let len =
                rest.min((self.window as u64).max(share).min(self.max_window as u64)) as usize;
            let get = Get {
                entry,
                offset,
                verify: self.verify,
                check,
            };
            if !self.ahead.start(client, get, next, len) {
                return;
            }
            next += len as u64;
            self.grow();
        }
    }
}

/// Of two stored checksums of an object, the one of its longest version: the object may grow
/// while it is read, and its bytes then run past the shorter version's.
fn latest(a: Option<Crc>, b: Option<Crc>) -> Option<Crc> {
    a.into_iter().chain(b).max_by_key(|crc| crc.len)
}

#[cfg(test)]
mod tests;
