//! Following the stream past its end: polls of the last object with ranged GETs, at a pace
//! that stays short while bytes arrive and backs off while the stream is idle.
//!
//! A poll is one ranged GET from the known end of the last object: it brings the new bytes
//! in the same answer, or says that nothing is new. Once the last object
//! holds the seal size its writer records ([`Options::seal_size`](crate::Options::seal_size)
//! of that writer; a follower's own for objects that record none) it is sealed and cannot
//! grow, so the poll asks for the next object instead: missing, it does not exist yet (and
//! a GET of the sealed object's end then tells whether it was trimmed meanwhile). The seal
//! size comes with each GET that brings bytes, or from one HEAD per object. Objects are
//! listed at start-up, when a poll meets something a listing must explain (the last object
//! gone, a next object that does not start where the last one ends), and at most once per
//! [`RELIST`] otherwise, for what no GET can see (a writer sealing at another size).
//! A server that ignores the range and answers 200 is read past the known end; one that sends
//! no `Content-Range` is asked again from what it sent. A sealed, idle last object costs two
//! GETs a poll: the next object's (404, not yet), then the sealed one's end (416: still there;
//! 404: trimmed past the follower, which a listing then reports).
//!
//! A poll's answer carries no checksum (it holds a range of the object, and the object may
//! still grow), so with [`Options::verify_reads`](crate::Options::verify_reads) the reader
//! checks a polled object once it is sealed, with one HEAD for the checksum the server stores
//! (see `reader.rs`): a follower that reads an object from its first byte to its last
//! costs that HEAD more per object.

use std::io::{self, BufRead};
use std::time::{Duration, Instant};

use super::Storage;
use crate::Error;
use crate::index::Placed;

/// How long a follower goes without listing while its GETs find nothing to explain.
const RELIST: Duration = Duration::from_secs(60);

/// The wait between polls after one found bytes: short enough that a record appended while
/// records flow is seen within about this.
const FIRST_GAP: Duration = Duration::from_millis(50);

/// How much the wait grows after each poll that found nothing, up to the caller's interval:
/// gentle, so that a record arriving a while after the last one still waits for only a
/// fraction of that while; from 50 ms it reaches 1 s in 8 polls (2.5 s).
const BACKOFF: f64 = 1.5;

/// When the next poll is due.
#[derive(Debug)]
pub(super) struct Pace {
    /// When the end was polled last.
    last: Option<Instant>,
    /// The wait after `last`.
    gap: Duration,
    /// The longest wait: the interval the caller asked for last.
    cap: Duration,
}

impl Default for Pace {
    fn default() -> Pace {
        Pace {
            last: None,
            gap: FIRST_GAP,
            cap: Duration::from_secs(1),
        }
    }
}

impl Pace {
    fn polled(&mut self, at: Instant, found: bool) {
        self.last = Some(at);
        self.gap = match found {
            true => FIRST_GAP,
            false => self.gap.mul_f64(BACKOFF).min(self.cap),
        };
    }

    fn due(&self) -> Option<Instant> {
        self.last.map(|last| last + self.gap.min(self.cap))
    }
}

impl Storage {
    /// Looks for bytes past the end of what the index knows: a GET of the last object from its
    /// end, or, if it is sealed, of the next object. Objects are listed instead at start-up,
    /// once per [`RELIST`], and when a GET finds something only a listing explains.
    ///
    /// Two cases cost a second request: the first time a GET finds nothing new in an object
    /// whose seal size it has not seen, a HEAD asks for it (and the next object is asked for
    /// at once if the last one turns out sealed); and when the next object is not there, a GET
    /// of the sealed one's end tells a stream that has not moved on from one trimmed past it
    /// (missing), or from a writer that seals later and still appends (the bytes).
    pub(super) fn poll_end(&mut self) -> Result<(), Error> {
        let now = Instant::now();
        let relist = self
            .listed
            .is_none_or(|at| now.duration_since(at) >= RELIST);
        let last = (self.index.last()).filter(|_| self.index.anchored() && !relist);
        let Some(last) = last else {
            let before = self.index.end();
            self.relist(now)?;
            self.pace.polled(now, self.index.end() > before);
            return Ok(());
        };
        let seal = self.reader.seal_of(last.seq).or(self.seal_asked(last.seq));
        if last.size >= seal.unwrap_or(self.seal) {
            let next = Placed {
                seq: last.seq + 1,
                start: last.end(),
                size: 0,
            };
            match self.probe(now, next) {
                // The next object is not there yet, or no longer.
                Err(err) if err.is_missing() => {}
                Err(Error::Discontinuity { .. }) => return self.relist(now),
                other => return other.map(drop),
            }
        }
        match self.probe(now, last) {
            Ok(false) if seal.is_none() => {
                let head = self.client.stat(last.seq)?;
                self.seal_asked = Some((last.seq, head.seal.unwrap_or(self.seal)));
                match head.seal {
                    Some(seal) if last.size >= seal => self.poll_end(),
                    _ => Ok(()),
                }
            }
            Ok(_) => Ok(()),
            // The last object deleted (trimmed after newer objects came), or a next object
            // that does not start where the last one ends: a listing tells what the stream
            // holds now.
            Err(err) if err.is_missing() => self.relist(now),
            Err(Error::Discontinuity { .. }) => self.relist(now),
            Err(err) => Err(err),
        }
    }

    /// One GET of object `entry` from its end as the index knows it, whose bytes become the
    /// reader's chunk; says whether it found any. A next object that does not start where
    /// the last one ends is [`Error::Discontinuity`].
    fn probe(&mut self, now: Instant, entry: Placed) -> Result<bool, Error> {
        let polled = self
            .reader
            .poll(&*self.client, entry, entry.size, entry.end());
        self.pace.polled(now, matches!(polled, Ok(Some(_))));
        let Some(size) = polled? else {
            return Ok(false);
        };
        self.index.cover(entry.seq, size);
        Ok(true)
    }

    /// The seal size a HEAD found for object `seq` (this handle's own if it records none).
    fn seal_asked(&self, seq: u64) -> Option<u64> {
        (self.seal_asked)
            .filter(|&(s, _)| s == seq)
            .map(|(_, seal)| seal)
    }

    /// Brings the index up to date with a listing.
    pub(super) fn relist(&mut self, now: Instant) -> Result<(), Error> {
        self.listed = Some(now);
        self.index.refresh(&*self.client)
    }

    /// Waits until there are bytes to read at the read position, for at most `timeout`, and
    /// says whether there are: a follower's loop without a sleep of its own.
    ///
    /// While the position is at the end, the end is polled: 50 ms after a poll that found
    /// bytes, then at waits growing by half each time, up to `timeout`, so an idle stream
    /// costs about one request per `timeout` and the first record after a pause is seen within
    /// a fraction of the pause. A poll is one GET of the last object from its end (which
    /// brings the new bytes), or of the next object once the last one is sealed; objects are
    /// listed once a minute at most, unless a GET finds something only a listing explains.
    /// Bytes already known (fetched, listed, or this handle's unflushed ones) are there at
    /// once, with no request.
    ///
    /// Errors are those of [`fill_buf`](BufRead::fill_buf), such as [`Error::Trimmed`] when
    /// the position was trimmed while waiting.
    ///
    /// ```
    /// # let server = s3_syncr_test_server::Server::start();
    /// # let bucket = server.new_bucket();
    /// use std::io::{BufRead, Write};
    /// use std::time::Duration;
    /// use s3_syncr::{Options, Storage};
    ///
    /// let mut follower = Storage::new(bucket.clone(), "app.log", Options::default())?;
    /// assert!(!follower.wait_for_data(Duration::from_millis(100))?); // nothing yet
    ///
    /// let mut writer = Storage::new(bucket, "app.log", Options::default())?;
    /// writer.write_all(b"started\n")?;
    /// writer.flush()?;
    ///
    /// let mut line = String::new();
    /// while follower.wait_for_data(Duration::from_secs(1))? {
    ///     follower.read_line(&mut line)?;
    ///     if line.ends_with('\n') {
    ///         break;
    ///     }
    /// }
    /// assert_eq!(line, "started\n");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn wait_for_data(&mut self, timeout: Duration) -> io::Result<bool> {
        self.pace.cap = timeout;
        let deadline = Instant::now().checked_add(timeout);
        loop {
            let now = Instant::now();
            let known =
                self.positioned && (self.reader.holds_pos() || self.reader.pos < self.known_len());
            if known || self.pace.due().is_none_or(|due| due <= now) {
                let before = self.pace.last;
                if !self.fill_buf()?.is_empty() {
                    return Ok(true);
                }
                // No request was made (a writer knows its end): wait as after one.
                if self.pace.last == before {
                    self.pace.polled(now, false);
                }
            }
            let now = Instant::now();
            if deadline.is_some_and(|deadline| deadline <= now) {
                return Ok(false);
            }
            let due = self.pace.due().unwrap_or(now);
            let until = deadline.map_or(due, |deadline| deadline.min(due));
            std::thread::sleep(until.saturating_duration_since(now));
        }
    }
}
