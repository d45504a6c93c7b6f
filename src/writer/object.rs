//! One object a writer has not finished: where its bytes are (S3 only, parts of an upload,
//! memory), and the requests that make it whole in S3.

use std::sync::Arc;

use crate::Error;
use crate::index::BEHIND;
use crate::job::{Bell, Job, spawn};
use crate::store::{Client, Expect, Hint, Meta, UploadedPart};

/// An object this handle writes. Its bytes, in order: `released` bytes that S3 has and
/// memory let go of (the index covers them), then those of the upload's parts, then `buf`.
pub(super) struct Object {
    pub(super) seq: u64,
    /// Its start offset and seal size, recorded with every upload.
    pub(super) meta: Meta,
    /// Bytes S3 has and memory released (the same word as the store's
    /// [`overwrite`](crate::store::Store::overwrite)).
    pub(super) released: usize,
    /// How many bytes of memory, from its first one, S3 holds too (after `released`): S3
    /// mirrors them.
    pub(super) mirrored: usize,
    /// The object's ETag as we last wrote or read it; `None` while it does not exist.
    pub(super) etag: Option<String>,
    /// Whether S3's copy is one this handle uploaded, and so records its start.
    pub(super) recorded: bool,
    pub(super) upload: Option<Upload>,
    /// The bytes not handed to the upload. Shared with the job that PUTs it whole.
    pub(super) buf: Arc<Vec<u8>>,
    pub(super) phase: Phase,
    /// The request that makes the object whole in S3, while under way.
    pub(super) finish: Option<Job<String>>,
    /// How many bytes of `buf`, from its first, that request takes to S3: bytes written while
    /// an append is under way are not in it.
    pub(super) sending: usize,
}

/// Whether an object takes more bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// The tail: writes append to it.
    Open,
    /// Full: the next object took over, and this one is completed in its turn.
    Sealed,
}

/// A multipart upload to an object's key, while its parts go out.
pub(super) struct Upload {
    pub(super) id: Id,
    pub(super) parts: Vec<Part>,
    /// No part follows: the last one may be short. Set by a flush or a seal.
    pub(super) closed: bool,
}

/// The upload's ID: parts wait for it, while writing goes on.
pub(super) enum Id {
    Creating(Job<String>),
    /// Failed and reported, or vanished: asked for again at the next call.
    Wanted,
    Known(Arc<str>),
}

pub(super) struct Part {
    /// Its part number; a copy takes this one and those up to the next part's.
    pub(super) number: u32,
    pub(super) len: usize,
    pub(super) source: Source,
    pub(super) state: State,
}

pub(super) enum Source {
    /// Parts 1 to [`Store::copy_parts`](crate::store::Store::copy_parts), copied by the server
    /// from the object as S3 holds it: its `released` bytes.
    Copy,
    Bytes(Arc<Vec<u8>>),
    /// Bytes S3 has as a part, let go to bound memory: they are readable once completed.
    Released,
}

impl Source {
    /// The part's bytes, if memory holds them.
    pub(super) fn into_bytes(self) -> Option<Arc<Vec<u8>>> {
        match self {
            Source::Bytes(bytes) => Some(bytes),
            Source::Copy | Source::Released => None,
        }
    }
}

pub(super) enum State {
    /// Waiting for the upload's ID, or to be sent again after a reported failure.
    Queued,
    /// A copy is several parts; bytes are one.
    Running(Job<Vec<UploadedPart>>),
    Done(Vec<UploadedPart>),
}

/// Whether a pass over the jobs starts requests, or only takes the outcomes of those that
/// ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pass {
    Start,
    Collect,
}

impl Object {
    pub(super) fn new(seq: u64, meta: Meta, buf: Vec<u8>, etag: Option<String>) -> Object {
        Object {
            seq,
            meta,
            released: 0,
            mirrored: buf.len(),
            etag,
            recorded: false,
            upload: None,
            buf: Arc::new(buf),
            phase: Phase::Open,
            finish: None,
            sending: 0,
        }
    }

    /// The size at which it is sealed: the one it records, whichever writer continues it.
    pub(super) fn seal(&self) -> usize {
        usize::try_from(self.meta.seal).unwrap_or(usize::MAX)
    }

    /// The object's size, as written so far.
    pub(super) fn len(&self) -> usize {
        let parts = self.upload.iter().flat_map(|u| &u.parts);
        let sent: usize = parts
            .filter(|p| !matches!(p.source, Source::Copy))
            .map(|p| p.len)
            .sum();
        self.released + sent + self.buf.len()
    }

    /// Its bytes in memory, in order (those let go are missing).
    pub(super) fn memory(&self) -> impl Iterator<Item = &[u8]> {
        let parts = self.upload.iter().flat_map(|u| &u.parts);
        (parts.filter_map(|p| match &p.source {
            Source::Bytes(bytes) => Some(&bytes[..]),
            _ => None,
        }))
        .chain(std::iter::once(&self.buf[..]))
    }

    pub(super) fn in_memory(&self) -> usize {
        self.memory().map(<[u8]>::len).sum()
    }

    /// Bytes not yet in the object in S3.
    pub(super) fn unflushed(&self) -> usize {
        self.len() - self.released - self.mirrored
    }

    pub(super) fn closed(&self) -> bool {
        self.upload.as_ref().is_some_and(|u| u.closed)
    }

    /// Whether its final upload may start: every part is in S3 and no more will be added.
    pub(super) fn ready(&self) -> bool {
        self.upload.as_ref().is_none_or(|u| {
            let done = u.parts.iter().all(|p| matches!(p.state, State::Done(_)));
            matches!(u.id, Id::Known(_)) && u.closed && done
        })
    }

    /// Takes the outcomes of its upload's jobs that ended and, on a [`Pass::Start`], starts
    /// what is wanted: the upload's creation, parts that wait for it or failed before. An
    /// upload that vanished is started again from the bytes in memory. Returns the first
    /// failure, after the request's own retries.
    pub(super) fn advance_upload(
        &mut self,
        client: &Arc<Client>,
        bell: &Arc<Bell>,
        pass: Pass,
    ) -> Result<(), Error> {
        let mut failure = None;
        let mut vanished = false;
        let (seq, meta, copied) = (self.seq, self.meta, self.released as u64);
        let Some(upload) = self.upload.as_mut() else {
            return Ok(());
        };
        upload.id = match std::mem::replace(&mut upload.id, Id::Wanted) {
            Id::Wanted if pass == Pass::Start => Id::Creating(create(client, bell, seq, meta)),
            Id::Creating(job) if job.is_finished() => match job.join() {
                Ok(id) => Id::Known(id.into()),
                Err(err) => {
                    failure.get_or_insert(err);
                    Id::Wanted
                }
            },
            id => id,
        };
        let Id::Known(id) = &upload.id else {
            return failure.map_or(Ok(()), Err);
        };
        for part in &mut upload.parts {
            part.state = match std::mem::replace(&mut part.state, State::Queued) {
                State::Queued if pass == Pass::Start => {
                    let etag = self.etag.clone().unwrap_or_default();
                    State::Running(part.start(client, bell, seq, id, copied, etag))
                }
                State::Running(job) if job.is_finished() => match job.join() {
                    Ok(done) => {
                        // The Complete expects the version the copy took its bytes from.
                        if let Some(source) = done.iter().find_map(|p| p.source.clone()) {
                            self.etag = Some(source);
                        }
                        State::Done(done)
                    }
                    Err(err) if err.is_upload_gone() => {
                        vanished = true;
                        State::Queued
                    }
                    Err(err) => {
                        failure.get_or_insert(err);
                        State::Queued
                    }
                },
                state => state,
            };
        }
        if vanished {
            self.restart_upload(client, bell, pass)?;
        }
        failure.map_or(Ok(()), Err)
    }

    /// Its upload vanished (aborted by a lifecycle rule or another process): a new one takes
    /// every part again, unless some were let go, which are lost ([`Error::UploadLost`]).
    pub(super) fn restart_upload(
        &mut self,
        client: &Arc<Client>,
        bell: &Arc<Bell>,
        pass: Pass,
    ) -> Result<(), Error> {
        let (seq, meta) = (self.seq, self.meta);
        let Some(upload) = self.upload.as_mut() else {
            return Ok(());
        };
        let lost: usize = (upload.parts.iter())
            .filter(|p| matches!(p.source, Source::Released))
            .map(|p| p.len)
            .sum();
        if lost > 0 {
            return Err(Error::UploadLost {
                key: client.key(seq),
                lost: lost as u64,
            });
        }
        log::warn!(
            "the upload to {} vanished; starting it again",
            client.key(seq)
        );
        upload.id = match pass {
            Pass::Start => Id::Creating(create(client, bell, seq, meta)),
            Pass::Collect => Id::Wanted,
        };
        for part in &mut upload.parts {
            part.state = State::Queued;
        }
        Ok(())
    }

    /// Starts the upload that makes the object whole in S3: the Complete of its multipart
    /// upload, or one PUT (or append by copy, or append in a directory bucket) of the bytes
    /// it holds, all of them: the bytes end where a write did, so that no append splits a
    /// write another writer's append could then follow.
    /// `look_past`: the object is new, and what the writer knows of the stream's end is old
    /// enough that another writer may have gone past it (see [`confirm_new`]).
    pub(super) fn start_finish(
        &mut self,
        client: &Arc<Client>,
        bell: &Arc<Bell>,
        look_past: bool,
    ) -> Job<String> {
        let (seq, meta, released, mirrored) = (self.seq, self.meta, self.released, self.mirrored);
        let etag = self.etag.clone();
        match &self.upload {
            Some(Upload {
                id: Id::Known(id),
                parts,
                ..
            }) => {
                // Bytes written after the upload was closed are not in it.
                let size = parts.iter().map(|p| p.len as u64).sum();
                let parts: Vec<UploadedPart> = (parts.iter())
                    .filter_map(|p| match &p.state {
                        State::Done(done) => Some(done.iter().cloned()),
                        _ => None,
                    })
                    .flatten()
                    .collect();
                let id = id.clone();
                spawn(client, bell, move |c| {
                    let expect = etag.as_deref().map_or(Expect::Absent, Expect::Etag);
                    let new = New::of(&etag, look_past);
                    created(c, seq, meta.start, meta.start + size, new, || {
                        c.complete(&c.key(seq), &id, &parts, expect, size)
                    })
                })
            }
            // `ready` holds only once the ID is known.
            Some(_) => spawn(client, bell, |_| {
                Err(Error::internal(
                    "an upload was completed before it was created",
                ))
            }),
            None => {
                let buf = self.buf.clone();
                let sent = buf.len();
                self.sending = sent;
                spawn(client, bell, move |c| {
                    let expect = etag.as_deref().map_or(Expect::Absent, Expect::Etag);
                    let end = meta.start + (released + sent) as u64;
                    let new = New::of(&etag, look_past);
                    created(c, seq, meta.start, end, new, || {
                        c.overwrite(seq, meta, released, &buf[..sent], mirrored, expect)
                    })
                })
            }
        }
    }
}

/// Whether a write creates its object, and if so whether the writer's view of the end is old.
#[derive(Clone, Copy, PartialEq, Eq)]
enum New {
    No,
    Fresh,
    /// Others may have gone past the end the writer knows: see [`created`].
    Stale,
}

impl New {
    /// An object with no ETag yet is created by its next write; `look_past` says the view is old.
    fn of(etag: &Option<String>, look_past: bool) -> New {
        match (etag, look_past) {
            (Some(_), _) => New::No,
            (None, false) => New::Fresh,
            (None, true) => New::Stale,
        }
    }
}

/// Object `seq`, from stream offset `start` to `end`, made whole by `write`. A new one is
/// named by the stream's hint afterwards (best effort, and from object [`BEHIND`] on: see
/// `client/hint.rs`); with
/// [`New::Stale`] it is checked on both sides of `write`.
///
/// Before: if any later object exists, others went past the end this writer knew, and its
/// key may be empty only because a trim or a lifecycle rule deleted another writer's object
/// there: [`Error::Fenced`] with nothing written. Creating it anyway would put a phantom in the
/// middle of the stream, which [`confirm_new`] deletes again moments later, but which any
/// handle listing meanwhile takes in: it places the objects after it where the phantom ends,
/// not where they record (a false [`Error::Discontinuity`]), or starts the stream at it (a
/// false [`Error::Trimmed`] once it is gone). After: what can still slip between the check and
/// the write (others going past and the key emptied within one request) is undone.
fn created(
    client: &Client,
    seq: u64,
    start: u64,
    end: u64,
    new: New,
    write: impl FnOnce() -> Result<String, Error>,
) -> Result<String, Error> {
    if new == New::Stale
        && let Some(later) = client.first_after(seq)?
    {
        let key = client.key(seq);
        log::warn!(
            "{key}: {} already follows it; not creating it",
            client.key(later)
        );
        return Err(Error::Fenced { key, lost: 0 });
    }
    let done = write()?;
    if new == New::Stale {
        confirm_new(client, seq, end)?;
    }
    if new != New::No
        && seq >= BEHIND
        && let Err(err) = client.write_hint(Hint { seq, start })
    {
        // The object is written: a stale hint costs readers a longer listing, nothing more.
        log::warn!(
            "{}: the stream's hint was not updated: {err}",
            client.key(seq)
        );
    }
    Ok(done)
}

/// After object `seq` was created (`If-None-Match: *` held) ending at stream offset `end`:
/// fails with [`Error::Fenced`], having deleted it, if a later object already follows it
/// that does not start at `end`. The condition holds on a key that a trim or a lifecycle
/// rule emptied after another writer had written it and gone on: a writer that found the end
/// long ago (idle since) would otherwise put its object back in the middle of the stream,
/// under offsets the objects after it contradict.
fn confirm_new(client: &Client, seq: u64, end: u64) -> Result<(), Error> {
    // Best effort: the object is written, and a failure to look past it must not make the
    // writer take its bytes for unwritten (they would be handed back while stored).
    let next = client.next_after(seq).unwrap_or_else(|err| {
        log::warn!(
            "{}: could not check what follows it: {err}",
            client.key(seq)
        );
        None
    });
    match next {
        Some((next, start)) if next != seq + 1 || start.is_some_and(|start| start != end) => {
            let key = client.key(seq);
            log::warn!("{key}: a later object already follows it; deleting it again");
            client.delete(seq)?;
            Err(Error::Fenced { key, lost: 0 })
        }
        _ => Ok(()),
    }
}

/// Creates the multipart upload of object `seq`, which records `meta`.
fn create(client: &Arc<Client>, bell: &Arc<Bell>, seq: u64, meta: Meta) -> Job<String> {
    spawn(client, bell, move |c| c.create_upload(&c.key(seq), meta))
}

impl Part {
    /// Sends this part of upload `id` to object `seq`; a copy copies the first `copied` bytes
    /// of the object, on the condition that it is still `etag`.
    fn start(
        &self,
        client: &Arc<Client>,
        bell: &Arc<Bell>,
        seq: u64,
        id: &Arc<str>,
        copied: u64,
        etag: String,
    ) -> Job<Vec<UploadedPart>> {
        let (id, number) = (id.clone(), self.number);
        match &self.source {
            Source::Copy => spawn(client, bell, move |c| {
                c.copy(&c.key(seq), &id, copied, &etag)
            }),
            Source::Bytes(bytes) => {
                let bytes = bytes.clone();
                spawn(client, bell, move |c| {
                    Ok(vec![c.upload_part(&c.key(seq), &id, number, &bytes)?])
                })
            }
            // Only parts S3 has are let go, and those are sent again only if their upload
            // vanished, which `restart_upload` reports instead.
            Source::Released => spawn(client, bell, |_| {
                Err(Error::internal("a part that was let go was sent again"))
            }),
        }
    }
}

#[cfg(test)]
mod tests;
