//! The write side: the objects this handle has not finished writing, oldest first. The last
//! one is the tail, which writes append to; those before it are sealed.
//!
//! Large writes stream out as parts of a multipart upload, several at once on threads of their
//! own, under one budget of bytes held. Objects become whole in S3 strictly in stream order (by
//! their Complete, or by one PUT or append by copy), so that a crash never leaves a gap: a
//! sealed object's parts upload while the next object fills, but it is completed only once the
//! one before it is. A fence stops the writer once another one took over the stream.

use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use s3::serde_types::Part;

use crate::Error;
use crate::client::{Client, Expect};
use crate::index::Index;

pub(crate) struct Writer {
    client: Arc<Client>,
    seal_bytes: usize,
    /// With appending by copy, the size in S3 from which an object's bytes leave memory once
    /// S3 has them (reads fetch them from S3), and the part size and most parts uploading at
    /// once. `None` without appending by copy: objects are then held and uploaded whole.
    copy: Option<Streaming>,
    /// Oldest first; the last one is the tail. Empty until the first write finds the end.
    objects: VecDeque<Object>,
    /// Set while a flush waits, once the tail's bytes are all handed to its upload (if any):
    /// the tail is then completed too, not only sealed objects.
    flushing: bool,
    /// Set once another writer took over: this handle writes no more.
    fenced: Option<Fence>,
    /// Rung by every job that ends, so that a writer short of room can wait for any of them.
    bell: Arc<Bell>,
}

/// How a writer that appends by copy streams its bytes out (from [`Options`](crate::Options)).
#[derive(Clone, Copy)]
pub(crate) struct Streaming {
    /// `copy_threshold`: from this size in S3, a tail's flushed bytes leave memory.
    pub(crate) copy_from: usize,
    /// `part_size`.
    pub(crate) part: usize,
    /// `write_ahead`.
    pub(crate) ahead: usize,
}

/// An object this handle writes. Its bytes: `held` in S3 only (the index covers them), then
/// in memory those of the upload's parts, then `buf`.
struct Object {
    seq: u64,
    /// Stream offset of its first byte, recorded with every upload.
    start: u64,
    held: usize,
    /// How many bytes of memory, from its first one, the object in S3 holds after `held`.
    stored: usize,
    /// The object's ETag as we last wrote or read it; `None` while it does not exist.
    etag: Option<String>,
    /// Whether S3's copy is one this handle uploaded, and so records its start.
    recorded: bool,
    upload: Option<Upload>,
    /// The bytes not handed to the upload. Shared with the job that PUTs it whole.
    buf: Arc<Vec<u8>>,
    sealed: bool,
    /// The request that makes the object whole in S3, while under way.
    finish: Option<Job<String>>,
}

/// A multipart upload to an object's key, while its parts go out.
struct Upload {
    id: Id,
    parts: Vec<Chunk>,
    /// No part follows: the last one may be short. Set by a flush or a seal.
    closed: bool,
}

/// The upload's ID: parts wait for it, while writing goes on.
enum Id {
    Creating(Job<String>),
    /// Failed and reported: asked for again at the next call.
    Failed,
    Known(Arc<str>),
}

struct Chunk {
    number: u32,
    len: usize,
    source: Source,
    state: State,
}

enum Source {
    /// Part 1, copied by the server from the object as S3 holds it: its `held` bytes.
    Copy,
    Bytes(Arc<Vec<u8>>),
    /// Bytes S3 has as a part, let go to bound memory: they are readable once completed.
    Released,
}

enum State {
    /// Waiting for the upload's ID.
    Queued,
    Running(Job<Part>),
    Done(Part),
    /// Failed and reported: sent again at the next call.
    Failed,
}

/// Work on a thread of its own, whose outcome lands here before the bell rings: once rung,
/// the outcome is there to take.
struct Job<T>(Arc<Mutex<Option<Result<T, Error>>>>);

/// Counts ended jobs, so that a waiter misses none that ends after it looked.
#[derive(Default)]
struct Bell {
    rung: Mutex<u64>,
    ring: Condvar,
}

/// What a fenced writer keeps: the key it lost and the bytes that never reached S3.
struct Fence {
    key: String,
    unflushed: Vec<u8>,
}

impl Writer {
    pub(crate) fn new(client: Arc<Client>, seal_bytes: usize, copy: Option<Streaming>) -> Writer {
        Writer {
            client,
            seal_bytes,
            copy,
            objects: VecDeque::new(),
            flushing: false,
            fenced: None,
            bell: Arc::default(),
        }
    }

    /// Whether this handle found the end of the stream: from then on the index covers the
    /// objects before the writer's, and the rest of the stream is in [`Writer::local`].
    pub(crate) fn started(&self) -> bool {
        !self.objects.is_empty()
    }

    /// Whether the tail is in S3 as this handle uploaded it, recording its start: the objects
    /// before it may then all be trimmed.
    pub(crate) fn tail_recorded(&self) -> bool {
        self.objects.back().is_some_and(|t| t.recorded)
    }

    /// The stream's bytes after the index, in order. Only whole if [`Writer::holds_all`].
    pub(crate) fn local(&self) -> Vec<&[u8]> {
        self.objects.iter().flat_map(Object::memory).collect()
    }

    /// How many bytes the stream has after the index: those of [`Writer::local`], and those
    /// of parts let go.
    pub(crate) fn local_len(&self) -> usize {
        self.objects.iter().map(|o| o.len() - o.held).sum()
    }

    /// Whether memory holds every byte after the index: false once parts of an object larger
    /// than the write budget were let go, until the object is complete.
    pub(crate) fn holds_all(&self) -> bool {
        !(self.objects.iter().flat_map(|o| &o.upload))
            .flat_map(|u| &u.parts)
            .any(|part| matches!(part.source, Source::Released))
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
        self.objects.front().is_some_and(|o| o.held > 0)
    }

    /// Appends `data` whole to the tail. The first write finds the end of the stream; a write
    /// that finds the tail full seals it, and one that finds a part's worth of bytes hands them
    /// to the upload. A failed upload is reported here (and nothing of `data` is appended),
    /// then tried again.
    pub(crate) fn write(&mut self, index: &mut Index, data: &[u8]) -> Result<(), Error> {
        self.check_fence()?;
        self.pump(index)?;
        let tail = self.tail(index)?;
        if tail.len() >= self.seal_bytes {
            self.seal(index)?;
        } else {
            self.stream(index, false)?;
        }
        let reserve = self
            .copy
            .map_or(self.seal_bytes, |c| c.part.min(self.seal_bytes));
        let tail = self.tail(index)?;
        let buf = Arc::make_mut(&mut tail.buf);
        if buf.capacity() - buf.len() < data.len() {
            // Only the write that crosses the size reserved gets here: grow by just that much.
            buf.reserve_exact(data.len().max(reserve.saturating_sub(buf.len())));
        }
        buf.extend_from_slice(data);
        Ok(())
    }

    /// Makes every accepted byte durable: completes the objects in order, the tail last.
    pub(crate) fn flush(&mut self, index: &mut Index) -> Result<(), Error> {
        self.check_fence()?;
        self.flushing = true;
        let result = self.drain(index);
        self.flushing = false;
        if result.is_err() {
            self.settle(index);
        }
        result
    }

    fn drain(&mut self, index: &mut Index) -> Result<(), Error> {
        loop {
            let seen = self.bell.seen();
            // The tail may be completed only once all its bytes are in the upload's parts:
            // until then, a pump (making room for a part) must not start its final upload.
            self.flushing = false;
            self.stream(index, true)?;
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
                return Err(Error::Transport {
                    op: "FLUSH",
                    key: self.client.key(tail.seq),
                    source: std::io::Error::other("nothing left to upload, yet bytes remain"),
                });
            }
            self.bell.wait_past(seen);
        }
    }

    /// The bytes accepted by `write` that S3 does not hold in a complete object yet (those
    /// already uploaded as parts included, unless they were let go: see
    /// [`Options::part_size`](crate::Options::part_size)).
    pub(crate) fn unflushed(&self) -> Vec<u8> {
        if let Some(fence) = &self.fenced {
            return fence.unflushed.clone();
        }
        let mut out = Vec::new();
        for object in &self.objects {
            let mut skip = object.stored;
            for bytes in object.memory() {
                let from = skip.min(bytes.len());
                out.extend_from_slice(&bytes[from..]);
                skip -= from;
            }
        }
        out
    }

    fn check_fence(&self) -> Result<(), Error> {
        match &self.fenced {
            Some(fence) => Err(Error::Fenced {
                key: fence.key.clone(),
            }),
            None => Ok(()),
        }
    }

    /// A fence turns the writer off: the bytes S3 lacks are kept aside, the uploads under way
    /// are aborted (best effort), and reads show what S3 holds from the index on.
    fn fail(&mut self, err: Error) -> Error {
        if let Error::Fenced { key } = &err {
            log::error!("{key} was changed by another writer: this handle stops writing");
            let unflushed = self.unflushed();
            self.fenced = Some(Fence {
                key: key.clone(),
                unflushed,
            });
            self.abort_uploads();
        }
        err
    }

    fn abort_uploads(&mut self) {
        for object in std::mem::take(&mut self.objects) {
            if let Some(Upload {
                id: Id::Known(id), ..
            }) = object.upload
            {
                self.client.abort(&self.client.key(object.seq), &id);
            }
        }
    }

    /// The tail, found on first use: a last object below the sealing size is continued (its
    /// bytes are fetched once, now, unless it is large enough to append to by copy),
    /// otherwise a new object is started. The index is anchored on the way, with no request
    /// of its own when the stream is new or the continued tail records its start.
    fn tail(&mut self, index: &mut Index) -> Result<&mut Object, Error> {
        if self.objects.is_empty() {
            index.list(&self.client)?;
            let tail = match index.last() {
                Some(last)
                    if last.size < self.seal_bytes as u64
                        && self.copy.is_some_and(|c| last.size >= c.copy_from as u64) =>
                {
                    // Appending by copy needs the object's ETag, not its bytes: they stay in
                    // S3, and in the index for reads.
                    let (etag, recorded) = self.client.stat(last.seq)?;
                    index.anchor_with(&self.client, last.seq, recorded)?;
                    let start = index.last().map_or(0, |last| last.start);
                    let mut tail = Object::new(last.seq, start, Vec::new(), Some(etag));
                    tail.held = last.size as usize;
                    tail
                }
                Some(last) if last.size < self.seal_bytes as u64 => {
                    let whole = self.client.get_whole(last.seq, last.size)?;
                    index.anchor_with(&self.client, last.seq, whole.start)?;
                    let start = index.last().map_or(0, |last| last.start);
                    index.truncate_from(last.seq);
                    Object::new(last.seq, start, whole.buf, Some(whole.etag))
                }
                last => {
                    index.anchor_empty();
                    index.anchor(&self.client)?;
                    let seq = next_seq(last.map(|l| l.seq))?;
                    Object::new(seq, index.end(), Vec::new(), None)
                }
            };
            self.objects.push_back(tail);
        }
        Ok(self.objects.back_mut().expect("a tail was just found"))
    }

    /// Seals the full tail and starts the next object. Its last bytes go out as the last
    /// part; it is completed in turn, in the background.
    fn seal(&mut self, index: &mut Index) -> Result<(), Error> {
        self.stream(index, true)?;
        if self.objects.back().is_some_and(|t| t.upload.is_none()) {
            // Below a part, an object goes up whole, by one PUT, and PUTs go one at a time in
            // stream order: a second sealed object waiting would only hold memory.
            self.make_room(index, true)?;
        }
        let tail = self.tail(index)?;
        let (seq, len) = (tail.seq, tail.len());
        tail.sealed = true;
        let next = Object::new(
            next_seq(Some(seq))?,
            tail.start + len as u64,
            Vec::new(),
            None,
        );
        log::info!(
            "sealed {} at {len} bytes; continuing in {}",
            self.client.key(seq),
            self.client.key(next.seq)
        );
        self.objects.push_back(next);
        self.pump(index)
    }

    /// Hands the tail's bytes to its upload, a part at a time, starting the upload once a
    /// part's worth is there. With `last`, the bytes short of a part go too, as the upload's
    /// last part, if an upload is under way (else the object's final upload sends them).
    fn stream(&mut self, index: &mut Index, last: bool) -> Result<(), Error> {
        let Some(copy) = self.copy else {
            return Ok(());
        };
        while self.next_cut(copy.part, last).is_some() {
            self.make_room(index, false)?;
            // Making room may have completed the tail's upload, which changes what is left.
            if let Some(n) = self.next_cut(copy.part, last) {
                self.cut(n, copy.part);
                self.pump(index)?;
            }
        }
        Ok(())
    }

    /// How many bytes of the tail's buffer go out as the next part, if any. An upload with
    /// nothing left to send is closed when `last`.
    fn next_cut(&mut self, part: usize, last: bool) -> Option<usize> {
        let tail = self.objects.back_mut()?;
        let len = tail.buf.len();
        match tail.upload.as_mut() {
            Some(upload) if upload.closed => None,
            Some(upload) if last && len == 0 => {
                upload.closed = true;
                None
            }
            Some(_) if last => Some(len.min(part)),
            _ if len >= part => Some(part),
            _ => None,
        }
    }

    /// Moves the first `n` bytes of the tail's buffer into a new part, to be sent once the
    /// upload has an ID (asked for now if there is no upload yet).
    fn cut(&mut self, n: usize, part: usize) {
        let tail = self.objects.back_mut().expect("only the tail is cut");
        let upload = tail.upload.get_or_insert_with(|| {
            let (key, start) = (self.client.key(tail.seq), tail.start);
            let create = spawn(&self.client, &self.bell, move |c| {
                c.create_upload(&key, start)
            });
            // The object as S3 holds it is part 1, copied by the server.
            let copy = (tail.held > 0).then_some(Chunk {
                number: 1,
                len: tail.held,
                source: Source::Copy,
                state: State::Queued,
            });
            Upload {
                id: Id::Creating(create),
                parts: copy.into_iter().collect(),
                closed: false,
            }
        });
        let buf = Arc::make_mut(&mut tail.buf);
        let mut rest = Vec::with_capacity(part.max(buf.len() - n));
        rest.extend_from_slice(&buf[n..]);
        buf.truncate(n);
        let bytes = Arc::new(std::mem::replace(buf, rest));
        upload.parts.push(Chunk {
            number: upload.parts.last().map_or(1, |p| p.number + 1),
            len: n,
            source: Source::Bytes(bytes),
            state: State::Queued,
        });
        upload.closed = n < part;
    }

    /// Waits until another part may start: fewer than the most parts uploading, and the bytes
    /// held within `(ahead + 1) × part`. Parts of the tail that S3 already has are let go if
    /// that is what it takes: the tail is larger than the budget. With `sealing`, waits
    /// instead until no sealed object is left.
    fn make_room(&mut self, index: &mut Index, sealing: bool) -> Result<(), Error> {
        loop {
            let seen = self.bell.seen();
            self.pump(index)?;
            let room = match (sealing, self.copy) {
                (true, _) => self.objects.len() == 1,
                (false, Some(copy)) => {
                    let held: usize = self.objects.iter().map(Object::in_memory).sum();
                    let over = held > (copy.ahead + 1) * copy.part;
                    if over && self.release_tail_parts() {
                        continue;
                    }
                    !over && self.running_parts() < copy.ahead
                }
                (false, None) => true,
            };
            if room || self.running() == 0 {
                return Ok(());
            }
            self.bell.wait_past(seen);
        }
    }

    /// Lets go of the bytes of the tail's parts that S3 has; whether there were any.
    fn release_tail_parts(&mut self) -> bool {
        let Some(upload) = self.objects.back_mut().and_then(|t| t.upload.as_mut()) else {
            return false;
        };
        let mut released = false;
        for part in &mut upload.parts {
            if matches!(part.state, State::Done(_)) && matches!(part.source, Source::Bytes(_)) {
                part.source = Source::Released;
                released = true;
            }
        }
        released
    }

    /// Parts uploading or waiting for their upload's ID: what `write_ahead` bounds.
    fn running_parts(&self) -> usize {
        (self.objects.iter().flat_map(|o| &o.upload))
            .flat_map(|u| &u.parts)
            .filter(|p| matches!(p.state, State::Running(_) | State::Queued))
            .count()
    }

    /// Jobs under way, each of which rings the bell when it ends.
    fn running(&self) -> usize {
        let uploads = self.objects.iter().flat_map(|o| &o.upload);
        let creating = uploads.clone().filter(|u| matches!(u.id, Id::Creating(_)));
        let parts = uploads.flat_map(|u| &u.parts);
        let sending = parts.filter(|p| matches!(p.state, State::Running(_)));
        let finishing = self.objects.iter().filter(|o| o.finish.is_some());
        creating.count() + sending.count() + finishing.count()
    }

    /// Takes the outcome of every job that ended, sends again the parts whose failure was
    /// reported before, and starts the final upload of the oldest object once it can: objects
    /// become whole in S3 in stream order. Reports the first failure, after the request's own
    /// retries.
    fn pump(&mut self, index: &mut Index) -> Result<(), Error> {
        self.advance(index, true)
    }

    /// Waits for every job under way, starting none: after a failed flush, nothing of it is
    /// left running, and the next call starts again from what S3 has. Failures met meanwhile
    /// are tried again then (a fence is taken at once).
    fn settle(&mut self, index: &mut Index) {
        loop {
            let seen = self.bell.seen();
            // The flush already reports a failure: later ones are retried, not reported.
            let _ = self.advance(index, false);
            if self.running() == 0 || self.fenced.is_some() {
                return;
            }
            self.bell.wait_past(seen);
        }
    }

    /// [`pump`](Writer::pump), which with `starting` false only takes outcomes.
    fn advance(&mut self, index: &mut Index, starting: bool) -> Result<(), Error> {
        let mut failure = None;
        let client = self.client.clone();
        for object in &mut self.objects {
            // Called at every write: the key is only formatted for a request.
            let key = || client.key(object.seq);
            let (start, held) = (object.start, object.held as u64);
            let Some(upload) = object.upload.as_mut() else {
                continue;
            };
            upload.id = match std::mem::replace(&mut upload.id, Id::Failed) {
                Id::Failed if starting => {
                    let key = key();
                    Id::Creating(spawn(&client, &self.bell, move |c| {
                        c.create_upload(&key, start)
                    }))
                }
                Id::Creating(job) if job.is_finished() => match job.join() {
                    Ok(id) => Id::Known(id.into()),
                    Err(err) => {
                        failure.get_or_insert(err);
                        Id::Failed
                    }
                },
                id => id,
            };
            let Id::Known(id) = &upload.id else {
                continue;
            };
            for part in &mut upload.parts {
                part.state = match std::mem::replace(&mut part.state, State::Failed) {
                    State::Queued | State::Failed if starting => {
                        State::Running(part.start(&client, &self.bell, &key(), id, held))
                    }
                    State::Running(job) if job.is_finished() => match job.join() {
                        Ok(done) => State::Done(done),
                        Err(err) => {
                            failure.get_or_insert(err);
                            State::Failed
                        }
                    },
                    state => state,
                };
            }
        }
        while failure.is_none() {
            let flushing = self.flushing && self.objects.len() == 1;
            let Some(oldest) = self.objects.front_mut() else {
                break;
            };
            match oldest.finish.take() {
                Some(job) if !job.is_finished() => {
                    oldest.finish = Some(job);
                    break;
                }
                Some(job) => match job.join() {
                    Ok(etag) => self.finished(index, etag),
                    Err(err) => failure = Some(err),
                },
                // A closed upload (its last part cut by a seal, or by a flush that failed) is
                // completed as soon as it can be, flush or not, so that the bytes written
                // after it can stream out again.
                None if !(oldest.sealed || flushing || oldest.closed()) || !oldest.ready() => break,
                None if oldest.upload.is_none() && oldest.unflushed() == 0 => {
                    if !oldest.sealed {
                        break;
                    }
                    index.cover(oldest.seq, oldest.len() as u64);
                    self.objects.pop_front();
                }
                None if starting => {
                    oldest.finish = Some(oldest.start_finish(&client, &self.bell));
                }
                None => break,
            }
        }
        match failure {
            Some(err) => Err(self.fail(err)),
            None => Ok(()),
        }
    }

    /// The oldest object is whole in S3 with ETag `etag`, as far as its final upload took
    /// it. After a multipart upload, or once it is large enough to append to by copy, its
    /// bytes leave memory and reads go to S3.
    fn finished(&mut self, index: &mut Index, etag: String) {
        let copy_from = self.copy.map(|c| c.copy_from);
        let reserve = self.copy.map_or(0, |c| c.part.min(self.seal_bytes));
        let Some(object) = self.objects.front_mut() else {
            return;
        };
        object.etag = Some(etag);
        object.recorded = true;
        let total = object.len();
        let completed = match object.upload.take() {
            // Bytes written after a failed flush closed the upload are not in it: they stay.
            Some(upload) => upload.parts.iter().map(|p| p.len).sum(),
            None if copy_from.is_some_and(|from| total >= from) => total,
            None => {
                object.stored = object.buf.len();
                return;
            }
        };
        // What is left in `buf` is what the upload lacked.
        let unsent = total - completed;
        let buf = Arc::make_mut(&mut object.buf);
        let mut rest = Vec::with_capacity(reserve.max(unsent));
        rest.extend_from_slice(&buf[buf.len() - unsent..]);
        *buf = rest;
        object.held = completed;
        object.stored = 0;
        index.cover(object.seq, completed as u64);
    }
}

impl Object {
    fn new(seq: u64, start: u64, buf: Vec<u8>, etag: Option<String>) -> Object {
        Object {
            seq,
            start,
            held: 0,
            stored: buf.len(),
            etag,
            recorded: false,
            upload: None,
            buf: Arc::new(buf),
            sealed: false,
            finish: None,
        }
    }

    /// The object's size, as written so far.
    fn len(&self) -> usize {
        let parts = self.upload.iter().flat_map(|u| &u.parts);
        let sent: usize = parts
            .filter(|p| !matches!(p.source, Source::Copy))
            .map(|p| p.len)
            .sum();
        self.held + sent + self.buf.len()
    }

    /// Its bytes in memory, in order (those let go are missing).
    fn memory(&self) -> impl Iterator<Item = &[u8]> {
        let parts = self.upload.iter().flat_map(|u| &u.parts);
        (parts.filter_map(|p| match &p.source {
            Source::Bytes(bytes) => Some(&bytes[..]),
            _ => None,
        }))
        .chain(std::iter::once(&self.buf[..]))
    }

    fn in_memory(&self) -> usize {
        self.memory().map(<[u8]>::len).sum()
    }

    /// Bytes not yet in the object in S3.
    fn unflushed(&self) -> usize {
        self.len() - self.held - self.stored
    }

    fn closed(&self) -> bool {
        self.upload.as_ref().is_some_and(|u| u.closed)
    }

    /// Whether its final upload may start: every part is in S3 and no more will be added.
    fn ready(&self) -> bool {
        self.upload.as_ref().is_none_or(|u| {
            let done = u.parts.iter().all(|p| matches!(p.state, State::Done(_)));
            matches!(u.id, Id::Known(_)) && u.closed && done
        })
    }

    /// Starts the upload that makes the object whole in S3: the Complete of its multipart
    /// upload, or one PUT (or append by copy) of the bytes it holds.
    fn start_finish(&self, client: &Arc<Client>, bell: &Arc<Bell>) -> Job<String> {
        let (seq, start, held, stored) = (self.seq, self.start, self.held, self.stored);
        let etag = self.etag.clone();
        let size = self.len() as u64;
        let key = client.key(seq);
        match &self.upload {
            Some(Upload {
                id: Id::Known(id),
                parts,
                ..
            }) => {
                let parts: Vec<Part> = (parts.iter())
                    .filter_map(|p| match &p.state {
                        State::Done(part) => Some(part.clone()),
                        _ => None,
                    })
                    .collect();
                let id = id.clone();
                spawn(client, bell, move |c| {
                    let expect = etag.as_deref().map_or(Expect::Absent, Expect::Etag);
                    c.complete(&key, &id, &parts, expect, size)
                })
            }
            // `ready` holds only once the ID is known.
            Some(_) => spawn(client, bell, |_| {
                Err(failure("completed before it was created"))
            }),
            None => {
                let buf = self.buf.clone();
                spawn(client, bell, move |c| {
                    let expect = etag.as_deref().map_or(Expect::Absent, Expect::Etag);
                    c.overwrite(seq, start, held, &buf, stored, expect)
                })
            }
        }
    }
}

impl Chunk {
    /// Sends this part of upload `id` to `key`; a copy part copies the first `held` bytes.
    fn start(
        &self,
        client: &Arc<Client>,
        bell: &Arc<Bell>,
        key: &str,
        id: &Arc<str>,
        held: u64,
    ) -> Job<Part> {
        let (key, id, number) = (key.to_owned(), id.clone(), self.number);
        match &self.source {
            Source::Copy => spawn(client, bell, move |c| c.copy_part(&key, &id, held)),
            Source::Bytes(bytes) => {
                let bytes = bytes.clone();
                spawn(client, bell, move |c| {
                    c.upload_part(&key, &id, number, &bytes)
                })
            }
            // Only parts S3 has are let go, and those are never sent again.
            Source::Released => spawn(client, bell, |_| Err(failure("a part let go was lost"))),
        }
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

/// Runs `work` on a thread of its own, which rings `bell` when it ends.
fn spawn<T: Send + 'static>(
    client: &Arc<Client>,
    bell: &Arc<Bell>,
    work: impl FnOnce(&Client) -> Result<T, Error> + Send + 'static,
) -> Job<T> {
    let job = Job(Arc::default());
    let (client, bell, slot) = (client.clone(), bell.clone(), job.0.clone());
    let spawned = std::thread::Builder::new()
        .name("s3-syncr-upload".into())
        .spawn(move || {
            let result = panic::catch_unwind(AssertUnwindSafe(|| work(&client)))
                .unwrap_or_else(|_| Err(failure("the upload thread panicked")));
            *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(result);
            bell.ring();
        });
    if spawned.is_err() {
        // Reported like a failed request: tried again at the next call.
        *job.0.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(Err(failure("no thread could be started")));
    }
    job
}

fn failure(what: &str) -> Error {
    Error::Transport {
        op: "UPLOAD",
        key: String::new(),
        source: std::io::Error::other(what),
    }
}

impl<T> Job<T> {
    fn is_finished(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    fn join(self) -> Result<T, Error> {
        let outcome = self.0.lock().unwrap_or_else(PoisonError::into_inner).take();
        outcome.unwrap_or_else(|| Err(failure("joined before it ended")))
    }
}

impl Bell {
    fn seen(&self) -> u64 {
        *self.rung.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn ring(&self) {
        *self.rung.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        self.ring.notify_all();
    }

    /// Waits until a job ends after `seen` was read.
    fn wait_past(&self, seen: u64) {
        let rung = self.rung.lock().unwrap_or_else(PoisonError::into_inner);
        drop(
            (self.ring)
                .wait_while(rung, |rung| *rung == seen)
                .unwrap_or_else(PoisonError::into_inner),
        );
    }
}

fn next_seq(last: Option<u64>) -> Result<u64, Error> {
    match last {
        None => Ok(0),
        Some(seq) => seq.checked_add(1).ok_or_else(|| {
            Error::InvalidConfig("the stream has used every sequence number".into())
        }),
    }
}
