//! The read side: the read position, the chunk being consumed, and the ranged GETs kept in
//! flight ahead of a sequential reader.
//!
//! A read that does not continue the previous one (the first read, a read after a seek) sends
//! one small GET in the caller's thread, so random reads cost what a raw ranged GET does. A read
//! that continues where the chunk ended is sequential: from then on up to
//! [`Options::read_ahead`](crate::Options::read_ahead) GETs run ahead, each on a thread of its
//! own and [`WINDOW_GROWTH`] times the size of the one before, up to the chunk size, across
//! object boundaries ([`ahead`] holds them): the reader never holds more than
//! `read_ahead + 1` buffers of at most `read_chunk` bytes.
//!
//! What is read is checked as [`verify`] says.

mod ahead;
mod fetch;
mod verify;

use std::sync::Arc;

use crate::Error;
use crate::index::{Index, Placed};
use crate::store::{Client, Crc};
use ahead::Ahead;
use fetch::{Get, room_for};
use verify::{Corrupt, Followed, Through};

/// First ranged GET after a seek: no larger than a small read, so random reads cost what a raw
/// ranged GET does; it starts larger for a larger read.
const FIRST_READ: usize = 4 * 1024;

/// How much each GET of a sequential reader grows over the one before. With four in flight, a
/// reader that starts with 8 KiB reads has full 8 MiB chunks under way by its third round trip.
const WINDOW_GROWTH: usize = 4;

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

impl Reader {
    /// `fetches` is the most fetches of a range whose checksum does not match, at least one.
    /// `stepped`: see [`ahead::Ahead::new`].
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

    /// Drops every buffer and the GETs ahead (without waiting for them).
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
        entry: Placed,
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
        entry: Placed,
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
                // The GET already retried. Later fetches are dropped too, so that the next
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
    fn fetch_here(&mut self, client: &Client, entry: Placed, pos: u64) -> Result<(), Error> {
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
        self.window = self
            .window
            .saturating_mul(WINDOW_GROWTH)
            .min(self.max_window);
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
            self.ahead.start(client, get, next, len);
            next += len as u64;
            self.grow();
        }
    }
}

#[cfg(test)]
mod tests;
