//! The write side: the objects this handle has not finished writing, oldest first. The last
//! one is the tail, which writes append to; those before it are sealed.
//!
//! Large writes stream out as parts of a multipart upload, several at once on threads of their
//! own, under one budget of bytes held. Objects become whole in S3 strictly in stream order (by
//! their Complete, or by one PUT or append by copy), so that a crash never leaves a gap: a
//! sealed object's parts upload while the next object fills, but it is completed only once the
//! one before it is. A fence stops the writer once another one took over the stream.

mod appends;
#[cfg(test)]
mod copies;
mod object;
mod order;
mod parts;
mod pool;
mod tail;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::Error;
use crate::index::Index;
use crate::job::Bell;
use crate::store::{Client, Meta};
use object::{Id, Object, Phase, Source};

pub(crate) struct Writer {
    client: Arc<Client>,
    seal_bytes: usize,
    streaming: Streaming,
    /// Oldest first; the last one is the tail. Empty until the first write finds the end.
    objects: VecDeque<Object>,
    /// Set while a flush waits, once the tail's bytes are all handed to its upload (if any):
    /// the tail is then completed too, not only sealed objects.
    flushing: bool,
    /// Set once the handle can write no more: another writer took over, or bytes were lost.
    stopped: Option<Stop>,
    /// A failure met once a write had accepted some bytes: that write returns how many, and
    /// the next one reports it.
    deferred: Option<Error>,
    /// Rung by every job that ends, so that a writer short of room can wait for any of them.
    bell: Arc<Bell>,
    pool: pool::Pool,
    /// When this handle last knew the end of the stream to be its own: it listed the stream,
    /// or completed an object of its own.
    end_seen: Instant,
}

/// How long what a writer knows of the stream's end is taken as current: a new object
/// created later is checked against the objects after it (one LIST), in case others went
/// past it and a trim emptied its key meanwhile; one created sooner is not, so that a writer
/// streaming objects out pays nothing. That race needs another writer to write two objects and
/// a trim to delete them within this time.
pub(crate) const FRESH: Duration = Duration::from_secs(1);

/// How a writer streams its bytes out: the [`Options`](crate::Options) of the same names.
#[derive(Clone, Copy)]
pub(crate) struct Streaming {
    /// From this size in S3, a flush appends by copy, so a tail's flushed bytes leave memory
    /// (reads fetch them from S3). `None`: every flush sends the whole tail, which memory then
    /// holds until it is sealed.
    pub(crate) append_by_copy: Option<usize>,
    pub(crate) part_size: usize,
    pub(crate) write_ahead: usize,
    /// The store appends (a directory bucket): a flush, or a part's worth of bytes, is one
    /// append of the bytes S3 lacks, and no multipart upload is made.
    pub(crate) appends: bool,
    /// How long what the writer knows of the stream's end is current ([`FRESH`]).
    pub(crate) fresh_end: Duration,
    /// [`Options`](crate::Options)' `stepped`: its jobs run on a stepped bell.
    pub(crate) stepped: Option<u64>,
}

/// What a stopped writer keeps: why it stopped, and the bytes that never reached S3.
struct Stop {
    why: Stopped,
    unflushed: Vec<u8>,
}

/// Why a writer stopped, to report it again at every call.
enum Stopped {
    Fenced { key: String, lost: u64 },
    UploadLost { key: String, lost: u64 },
}

/// Whether the bytes short of a part go out too, as an upload's last part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    WholeParts,
    Rest,
}

/// What [`Writer::make_room`] waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Room {
    /// Another part may start.
    Part,
    /// No sealed object is left.
    Seal,
}

impl Writer {
    pub(crate) fn new(client: Arc<Client>, seal_bytes: usize, streaming: Streaming) -> Writer {
        Writer {
            client,
            seal_bytes,
            streaming,
            objects: VecDeque::new(),
            flushing: false,
            stopped: None,
            deferred: None,
            bell: Arc::new(streaming.stepped.map_or_else(Bell::default, Bell::stepped)),
            pool: pool::Pool::new(streaming.part_size),
            end_seen: Instant::now(),
        }
    }

    /// What a new object of this handle's, starting at stream offset `start`, records.
    fn meta(&self, start: u64) -> Meta {
        Meta {
            start,
            seal: self.seal_bytes as u64,
        }
    }

    /// Whether this handle found the end of the stream: from then on the index covers the
    /// objects before the writer's, and the rest of the stream is in [`Writer::local_at`].
    pub(crate) fn started(&self) -> bool {
        !self.objects.is_empty()
    }

    /// Whether the tail is in S3 as this handle uploaded it, recording its start: the objects
    /// before it may then all be trimmed.
    pub(crate) fn tail_recorded(&self) -> bool {
        self.objects.back().is_some_and(|t| t.recorded)
    }

    /// The stream's bytes in memory from `offset` bytes after the index on, up to the end of
    /// the piece of memory that holds them; empty at the end. Only the stream's bytes if
    /// [`Writer::holds_all`].
    pub(crate) fn local_at(&self, mut offset: usize) -> &[u8] {
        for piece in self.objects.iter().flat_map(Object::memory) {
            if offset < piece.len() {
                return &piece[offset..];
            }
            offset -= piece.len();
        }
        &[]
    }

    /// How many bytes the stream has after the index: those in memory, and those of parts let
    /// go.
    pub(crate) fn local_len(&self) -> usize {
        self.objects.iter().map(|o| o.len() - o.released).sum()
    }

    /// Whether memory holds every byte after the index: false once parts of an object larger
    /// than the write budget were let go, until the object is complete.
    pub(crate) fn holds_all(&self) -> bool {
        self.released() == 0
    }

    /// Drops the buffers of a closed stream.
    pub(crate) fn release(&mut self) {
        self.objects.clear();
    }

    /// The tail's key, for messages.
    pub(crate) fn tail_key(&self) -> Option<String> {
        self.objects.back().map(|t| self.client.key(t.seq))
    }

    /// Whether the index holds an object this writer is still writing (the part of it that
    /// left memory): that one must not be trimmed.
    pub(crate) fn shares_index(&self) -> bool {
        self.objects.front().is_some_and(|o| o.released > 0)
    }

    /// Appends `data` to the tail. A write of up to a part is taken whole, and so never split
    /// across objects. A larger one is
    /// taken in pieces that each end where the tail's next part or its object does, each
    /// written as a write of its own would be: its parts stream out `write_ahead` at a time
    /// while the next one fills, the writer waits for room as for small writes, and it fills
    /// objects to exactly the sealing size. The first write finds the end of the stream; a
    /// piece that finds the tail full seals it, and one that finds a part's worth of bytes
    /// hands them to the upload. Returns how many bytes were accepted: all of `data`, unless a
    /// request failed once some were, as `Write` wants it; that failure is reported by the
    /// next call. A failure before the first piece is returned, with nothing of `data`
    /// appended. Failed uploads are then tried again.
    pub(crate) fn write(&mut self, index: &mut Index, data: &[u8]) -> Result<usize, Error> {
        self.check_stopped()?;
        if let Some(err) = self.deferred.take() {
            return Err(err);
        }
        // Records written whole stay whole in one object, as they always did; only a write
        // too large to hold on top of the budget is cut.
        let whole = data.len() <= self.streaming.part_size;
        let mut accepted = 0;
        while accepted < data.len() {
            match self.write_piece(index, &data[accepted..], whole) {
                Ok(n) => accepted += n,
                Err(err) if accepted == 0 => return Err(err),
                Err(err) => {
                    // A stopped writer reports why at every call anyway.
                    if self.stopped.is_none() {
                        self.deferred = Some(err);
                    }
                    break;
                }
            }
        }
        Ok(accepted)
    }

    /// Appends `data` to the tail, after sealing it or streaming its whole parts out: all of
    /// it if `whole`, else up to where its object or its next part ends. Returns how many.
    fn write_piece(&mut self, index: &mut Index, data: &[u8], whole: bool) -> Result<usize, Error> {
        self.check_stopped()?;
        self.pump(index)?;
        if self.streaming.appends {
            self.append_room(index)?;
        }
        let tail = self.tail(index)?;
        if tail.len() >= tail.seal() {
            self.seal(index)?;
        } else {
            self.stream(index, Cut::WholeParts)?;
        }
        let part = self.streaming.part_size;
        let seal_bytes = self.tail(index)?.seal();
        let reserve = part.min(seal_bytes);
        let tail = self.tail(index)?;
        let mut n = data.len();
        if !whole {
            // The tail is below the sealing size now: it was just sealed otherwise.
            n = n.min(seal_bytes - tail.len());
            // The buffer holds a part or more only while a failed flush keeps the upload
            // closed (no part is cut until it completes), or without appending by copy: pieces
            // of a part go on.
            let to_part = part.saturating_sub(tail.buf.len());
            n = n.min(if to_part > 0 { to_part } else { part });
        }
        // A new tail's buffer gets room for a part (or its object) at once.
        let fresh = (tail.buf.is_empty() && tail.buf.capacity() < n)
            .then(|| self.pool.take(n.max(reserve)));
        let tail = self.tail(index)?;
        if let Some(fresh) = fresh {
            tail.buf = Arc::new(fresh);
        }
        let buf = Arc::make_mut(&mut tail.buf);
        if buf.capacity() - buf.len() < n {
            // Only a write taken whole that crosses it, or a tail whose upload is closed,
            // grows it further.
            buf.reserve_exact(n.max(reserve.saturating_sub(buf.len())));
        }
        buf.extend_from_slice(&data[..n]);
        Ok(n)
    }

    /// Makes every accepted byte durable: completes the objects in order, the tail last.
    pub(crate) fn flush(&mut self, index: &mut Index) -> Result<(), Error> {
        self.check_stopped()?;
        // A write's deferred failure was of an upload that this flush tries again: its own
        // outcome says it all.
        self.deferred = None;
        self.flushing = true;
        let result = self.drain(index);
        self.flushing = false;
        if result.is_err() {
            self.wait_idle(index);
        }
        result
    }

    fn drain(&mut self, index: &mut Index) -> Result<(), Error> {
        loop {
            let seen = self.bell.seen();
            // The tail may be completed only once all its bytes are in the upload's parts:
            // until then, a pump (making room for a part) must not start its final upload.
            self.flushing = false;
            self.stream(index, Cut::Rest)?;
            self.flushing = true;
            self.pump(index)?;
            let Some(tail) = self.objects.back() else {
                return Ok(());
            };
            if self.objects.len() == 1 && tail.upload.is_none() && tail.unflushed() == 0 {
                return Ok(());
            }
            if self.running() == 0 {
                // Every path above starts a job while anything is left: this is a bug, and
                // reporting it beats both waiting forever and claiming durability.
                return Err(Error::internal(format!(
                    "{}: nothing left to upload, yet bytes remain",
                    self.client.key(tail.seq)
                )));
            }
            self.bell.wait_past(seen);
        }
    }

    /// The bytes accepted by `write` that S3 does not hold in a complete object yet (those
    /// already uploaded as parts included, unless they were let go: see
    /// [`Options::part_size`](crate::Options::part_size)).
    pub(crate) fn unflushed(&self) -> Vec<u8> {
        if let Some(stop) = &self.stopped {
            return stop.unflushed.clone();
        }
        let mut out = Vec::new();
        for object in &self.objects {
            let mut skip = object.mirrored;
            for bytes in object.memory() {
                let from = skip.min(bytes.len());
                out.extend_from_slice(&bytes[from..]);
                skip -= from;
            }
        }
        out
    }

    /// Gives up on the bytes S3 lacks: aborts the uploads and returns those bytes. Requests
    /// under way are waited for first: a PUT or Complete that lands after the bytes were
    /// handed back would store them, and a caller that appends them again would double them.
    pub(crate) fn discard(&mut self, index: &mut Index) -> Vec<u8> {
        self.wait_idle(index);
        let unflushed = self.unflushed();
        self.abort_uploads();
        unflushed
    }

    fn check_stopped(&self) -> Result<(), Error> {
        match self.stopped.as_ref().map(|stop| &stop.why) {
            None => Ok(()),
            Some(Stopped::Fenced { key, lost }) => Err(Error::Fenced {
                key: key.clone(),
                lost: *lost,
            }),
            Some(Stopped::UploadLost { key, lost }) => Err(Error::UploadLost {
                key: key.clone(),
                lost: *lost,
            }),
        }
    }

    /// A fence, or bytes lost with a vanished upload, turn the writer off: the bytes S3 lacks
    /// are kept aside, the uploads under way are aborted (best effort), and reads show what
    /// S3 holds from the index on.
    fn fail(&mut self, err: Error) -> Error {
        let (why, err) = match err {
            Error::Fenced { key, .. } => {
                // Parts let go of memory go with the uploads the fence aborts.
                let lost = self.released() as u64;
                let err = Error::Fenced {
                    key: key.clone(),
                    lost,
                };
                log::error!("{err}");
                (Stopped::Fenced { key, lost }, err)
            }
            Error::UploadLost { key, .. } => {
                // Aborting every upload loses the parts let go by the other objects too, not
                // only those of the upload that vanished.
                let lost = self.released() as u64;
                let err = Error::UploadLost {
                    key: key.clone(),
                    lost,
                };
                log::error!("{err}");
                (Stopped::UploadLost { key, lost }, err)
            }
            err => return err,
        };
        let unflushed = self.unflushed();
        self.stopped = Some(Stop { why, unflushed });
        self.abort_uploads();
        err
    }

    /// The bytes of parts let go, which S3 has only in uploads not completed yet.
    fn released(&self) -> usize {
        (self.objects.iter().flat_map(|o| &o.upload))
            .flat_map(|u| &u.parts)
            .filter(|part| matches!(part.source, Source::Released))
            .map(|part| part.len)
            .sum()
    }

    /// Aborts every upload of this handle, best effort; one still being created is aborted
    /// once its ID arrives.
    fn abort_uploads(&mut self) {
        for object in std::mem::take(&mut self.objects) {
            let key = self.client.key(object.seq);
            match object.upload.map(|u| u.id) {
                Some(Id::Known(id)) => self.client.abort(&key, &id),
                Some(Id::Creating(job)) => {
                    let client = self.client.clone();
                    job.abandon(move |id| client.abort(&key, &id));
                }
                _ => {}
            }
        }
    }

    /// Seals the full tail and starts the next object. Its last bytes go out as the last
    /// part; it is completed in turn, in the background.
    fn seal(&mut self, index: &mut Index) -> Result<(), Error> {
        self.stream(index, Cut::Rest)?;
        if self.objects.back().is_some_and(|t| t.upload.is_none()) {
            // Below a part, an object goes up whole, by one PUT, and PUTs go one at a time in
            // stream order: a second sealed object waiting would only hold memory.
            self.make_room(index, Room::Seal)?;
        }
        let tail = self.tail(index)?;
        let (seq, len, start) = (tail.seq, tail.len(), tail.meta.start);
        // Before sealing: a stream out of sequence numbers keeps its tail open.
        let next = Object::new(
            self.next_seq(Some(seq))?,
            self.meta(start + len as u64),
            Vec::new(),
            None,
        );
        self.tail(index)?.phase = Phase::Sealed;
        log::info!(
            "sealed {} at {len} bytes; continuing in {}",
            self.client.key(seq),
            self.client.key(next.seq)
        );
        self.objects.push_back(next);
        self.pump(index)
    }
}

impl Drop for Writer {
    /// Uploads left open by a failed flush would hold their parts until a lifecycle rule
    /// removes them: abort them, best effort (not while panicking, as `BufWriter` skips its
    /// flush).
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.abort_uploads();
        }
    }
}
