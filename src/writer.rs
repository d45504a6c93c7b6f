//! The write side: the tail object (from the bytes S3 lacks, once it is large) in memory, the
//! sealed object still uploading in the background, and the fence that stops a writer once
//! another one took over the stream.

use std::sync::Arc;
use std::thread::JoinHandle;

use crate::Error;
use crate::client::{Client, Expect};
use crate::index::Index;

pub(crate) struct Writer {
    client: Arc<Client>,
    seal_bytes: usize,
    /// With appending by copy: the tail size in S3 from which its bytes leave memory once
    /// flushed (they are read back from S3), and the most unflushed bytes held before a write
    /// flushes first, if limited. `None` without appending by copy: the tail then stays whole
    /// in memory.
    drop_flushed: Option<(usize, Option<usize>)>,
    /// The object being appended to, known from the first write on.
    tail: Option<Tail>,
    /// The object sealed last, while its final upload is not confirmed.
    sealing: Option<Sealing>,
    /// Set once another writer took over: this handle writes no more.
    fenced: Option<Fence>,
    /// The buffer of the object sealed before, kept for the next tail.
    spare: Vec<u8>,
}

/// The object being written: its bytes from `held` on are in memory.
struct Tail {
    seq: u64,
    /// Bytes of the object before `buf`: in S3, and in the index, which reads go through.
    held: usize,
    /// Stream offset of its first byte, recorded with every upload.
    start: u64,
    buf: Vec<u8>,
    /// How much of `buf` the object in S3 holds.
    uploaded: usize,
    /// The object's ETag as we last wrote or read it; `None` while it does not exist.
    etag: Option<String>,
    /// Whether S3's copy is one this handle uploaded, and so records its start.
    recorded: bool,
}

/// A full object on its way to S3. Its bytes stay here, readable, until S3 has them.
struct Sealing {
    seq: u64,
    start: u64,
    /// As [`Tail::held`].
    held: usize,
    buf: Arc<Vec<u8>>,
    uploaded: usize,
    etag: Option<String>,
    /// The background upload; `None` once it failed, so the next call retries in the caller.
    job: Option<JoinHandle<Result<String, Error>>>,
}

/// What a fenced writer keeps: the key it lost and the bytes that never reached S3.
struct Fence {
    key: String,
    unflushed: Vec<u8>,
}

impl Writer {
    pub(crate) fn new(
        client: Arc<Client>,
        seal_bytes: usize,
        drop_flushed: Option<(usize, Option<usize>)>,
    ) -> Writer {
        Writer {
            client,
            seal_bytes,
            drop_flushed,
            tail: None,
            sealing: None,
            fenced: None,
            spare: Vec::new(),
        }
    }

    /// Whether this handle found the end of the stream: from then on the index covers the
    /// objects before the writer's, and the rest of the stream is in [`Writer::local`].
    pub(crate) fn started(&self) -> bool {
        self.tail.is_some()
    }

    /// Whether the tail is in S3 as this handle uploaded it, recording its start: the objects
    /// before it may then all be trimmed.
    pub(crate) fn tail_recorded(&self) -> bool {
        self.tail.as_ref().is_some_and(|t| t.recorded)
    }

    /// The stream's bytes after the index: the sealing object's, then the tail's.
    pub(crate) fn local(&self) -> [&[u8]; 2] {
        [
            self.sealing.as_ref().map_or(&[][..], |s| &s.buf[..]),
            self.tail.as_ref().map_or(&[][..], |t| &t.buf[..]),
        ]
    }

    /// Drops the buffers of a closed stream.
    pub(crate) fn release(&mut self) {
        self.tail = None;
        self.spare = Vec::new();
    }

    /// The tail's key, for messages.
    pub(crate) fn tail_key(&self) -> Option<String> {
        self.tail.as_ref().map(|t| self.client.key(t.seq))
    }

    /// Appends `data` whole to the tail. The first write finds the end of the stream; a write
    /// that finds the tail full seals it and hands its upload to a background thread. A failed
    /// background upload is reported here (and nothing of `data` is appended), then retried.
    pub(crate) fn write(&mut self, index: &mut Index, data: &[u8]) -> Result<(), Error> {
        self.check_fence()?;
        self.settle(index, false)?;
        let seal_bytes = self.seal_bytes;
        let tail = self.tail(index)?;
        let full = tail.held + tail.buf.len() >= seal_bytes;
        let unflushed = tail.buf.len() - tail.uploaded;
        if full {
            self.seal(index)?;
        } else if self.write_buffer().is_some_and(|most| unflushed >= most) {
            // Before `data`, so that a failure appends nothing: the caller may write it again.
            self.flush(index)?;
        }
        let reserve = self.reserve();
        let tail = self.tail(index)?;
        if tail.buf.capacity() - tail.buf.len() < data.len() {
            // Only the write that crosses the size reserved gets here: grow by just that much.
            tail.buf
                .reserve_exact(data.len().max(reserve.saturating_sub(tail.buf.len())));
        }
        tail.buf.extend_from_slice(data);
        Ok(())
    }

    /// The most unflushed bytes a tail holds before a write flushes first, if limited.
    fn write_buffer(&self) -> Option<usize> {
        self.drop_flushed.and_then(|(_, most)| most)
    }

    /// What a tail's buffer reserves: the whole object, or at most the write buffer.
    fn reserve(&self) -> usize {
        self.write_buffer()
            .map_or(self.seal_bytes, |most| self.seal_bytes.min(most))
    }

    /// Makes every accepted byte durable: waits for the sealing upload, then uploads the tail
    /// if S3 lacks any of its bytes.
    pub(crate) fn flush(&mut self, index: &mut Index) -> Result<(), Error> {
        self.check_fence()?;
        self.settle(index, true)?;
        let reserve = self.reserve();
        let Some(tail) = self.tail.as_mut().filter(|t| t.buf.len() > t.uploaded) else {
            return Ok(());
        };
        let expect = tail.etag.as_deref().map_or(Expect::Absent, Expect::Etag);
        let (seq, start, held, uploaded) = (tail.seq, tail.start, tail.held, tail.uploaded);
        match (self.client).overwrite(seq, start, held, &tail.buf, uploaded, expect) {
            Ok(etag) => {
                tail.etag = Some(etag);
                tail.uploaded = tail.buf.len();
                tail.recorded = true;
                if let Some((from, _)) = self.drop_flushed
                    && tail.held + tail.uploaded >= from
                {
                    // S3 has every byte and appends by copy from now on: reads go there.
                    tail.held += tail.uploaded;
                    index.cover(tail.seq, tail.held as u64);
                    tail.uploaded = 0;
                    tail.buf.clear();
                    if tail.buf.capacity() > reserve {
                        tail.buf = Vec::with_capacity(reserve);
                    }
                }
                Ok(())
            }
            Err(err) => Err(self.fail(err)),
        }
    }

    /// Whether the index holds an object this writer is still writing (the part of it that
    /// left memory): that one must not be trimmed.
    pub(crate) fn shares_index(&self) -> bool {
        self.tail.as_ref().is_some_and(|t| t.held > 0)
            || self.sealing.as_ref().is_some_and(|s| s.held > 0)
    }

    /// The bytes accepted by `write` that S3 does not hold yet.
    pub(crate) fn unflushed(&self) -> Vec<u8> {
        if let Some(fence) = &self.fenced {
            return fence.unflushed.clone();
        }
        let sealing = self.sealing.as_ref().map(|s| &s.buf[s.uploaded..]);
        let tail = self.tail.as_ref().map(|t| &t.buf[t.uploaded..]);
        [sealing, tail]
            .into_iter()
            .flatten()
            .flatten()
            .copied()
            .collect()
    }

    fn check_fence(&self) -> Result<(), Error> {
        match &self.fenced {
            Some(fence) => Err(Error::Fenced {
                key: fence.key.clone(),
            }),
            None => Ok(()),
        }
    }

    /// A fence turns the writer off: the bytes S3 lacks are kept aside, and reads show what S3
    /// holds from the index on.
    fn fail(&mut self, err: Error) -> Error {
        if let Error::Fenced { key } = &err {
            log::error!("{key} was changed by another writer: this handle stops writing");
            let unflushed = self.unflushed();
            self.fenced = Some(Fence {
                key: key.clone(),
                unflushed,
            });
            self.tail = None;
            self.sealing = None;
        }
        err
    }

    /// The tail, found on first use: a last object below the sealing size is continued (its
    /// bytes are fetched once, now), otherwise a new object is started. The index is anchored
    /// on the way, with no request of its own when the stream is new or the continued tail
    /// records its start.
    fn tail(&mut self, index: &mut Index) -> Result<&mut Tail, Error> {
        let tail = match self.tail.take() {
            Some(tail) => tail,
            None => {
                index.list(&self.client)?;
                let reserve = self.reserve();
                match index.last() {
                    Some(last)
                        if last.size < self.seal_bytes as u64
                            && self
                                .drop_flushed
                                .is_some_and(|(from, _)| last.size >= from as u64) =>
                    {
                        // Appending by copy needs the object's ETag, not its bytes: they stay
                        // in S3, and in the index for reads.
                        let (etag, recorded) = self.client.stat(last.seq)?;
                        index.anchor_with(&self.client, last.seq, recorded)?;
                        let start = index.last().map_or(0, |last| last.start);
                        let mut tail =
                            Tail::new(last.seq, start, Vec::with_capacity(reserve), Some(etag));
                        tail.held = last.size as usize;
                        tail
                    }
                    Some(last) if last.size < self.seal_bytes as u64 => {
                        let mut whole = self.client.get_whole(last.seq, last.size)?;
                        index.anchor_with(&self.client, last.seq, whole.start)?;
                        let start = index.last().map_or(0, |last| last.start);
                        whole.buf.reserve_exact(self.seal_bytes - whole.buf.len());
                        index.truncate_from(last.seq);
                        Tail::new(last.seq, start, whole.buf, Some(whole.etag))
                    }
                    last => {
                        index.anchor_empty();
                        index.anchor(&self.client)?;
                        Tail::new(
                            next_seq(last.map(|l| l.seq))?,
                            index.end(),
                            Vec::with_capacity(reserve),
                            None,
                        )
                    }
                }
            }
        };
        Ok(self.tail.insert(tail))
    }

    /// Seals the full tail and starts the next object. At most one sealed object uploads at a
    /// time: a second one waits for the first, so memory stays at two tails.
    fn seal(&mut self, index: &mut Index) -> Result<(), Error> {
        self.settle(index, true)?;
        let Some(tail) = self.tail.take() else {
            return Ok(());
        };
        let mut buf = std::mem::take(&mut self.spare);
        buf.reserve_exact(self.reserve());
        let next_start = tail.start + (tail.held + tail.buf.len()) as u64;
        let next = Tail::new(next_seq(Some(tail.seq))?, next_start, buf, None);
        log::info!(
            "sealed {} at {} bytes; continuing in {}",
            self.client.key(tail.seq),
            tail.buf.len(),
            self.client.key(next.seq)
        );
        if tail.uploaded == tail.buf.len() {
            index.cover(tail.seq, (tail.held + tail.buf.len()) as u64);
            let mut buf = tail.buf;
            buf.clear();
            self.spare = buf;
        } else {
            let buf = Arc::new(tail.buf);
            let etag = tail.etag.clone();
            let (seq, start, held, uploaded) = (tail.seq, tail.start, tail.held, tail.uploaded);
            let job = self.spawn_upload(seq, start, held, buf.clone(), uploaded, etag);
            self.sealing = Some(Sealing {
                seq: tail.seq,
                start: tail.start,
                held: tail.held,
                buf,
                uploaded: tail.uploaded,
                etag: tail.etag,
                job,
            });
        }
        self.tail = Some(next);
        Ok(())
    }

    fn spawn_upload(
        &self,
        seq: u64,
        start: u64,
        held: usize,
        buf: Arc<Vec<u8>>,
        uploaded: usize,
        etag: Option<String>,
    ) -> Option<JoinHandle<Result<String, Error>>> {
        let client = self.client.clone();
        let spawned = std::thread::Builder::new()
            .name("s3-syncr-upload".into())
            .spawn(move || {
                let expect = etag.as_deref().map_or(Expect::Absent, Expect::Etag);
                client.overwrite(seq, start, held, &buf, uploaded, expect)
            });
        // Without a thread, the upload happens in the caller, at the next settle.
        spawned.ok()
    }

    /// Takes the sealing upload's outcome: waits for it if `wait`, and uploads in the caller
    /// if an earlier attempt failed. Once S3 has the object, it joins the index.
    fn settle(&mut self, index: &mut Index, wait: bool) -> Result<(), Error> {
        let Some(sealing) = self.sealing.as_mut() else {
            return Ok(());
        };
        let result = match sealing.job.take() {
            Some(job) if !wait && !job.is_finished() => {
                sealing.job = Some(job);
                return Ok(());
            }
            Some(job) => job.join().unwrap_or_else(|_| {
                Err(Error::Transport {
                    op: "PUT",
                    key: self.client.key(sealing.seq),
                    source: std::io::Error::other("the upload thread panicked"),
                })
            }),
            None => {
                let expect = sealing.etag.as_deref().map_or(Expect::Absent, Expect::Etag);
                let (seq, start, held) = (sealing.seq, sealing.start, sealing.held);
                (self.client).overwrite(seq, start, held, &sealing.buf, sealing.uploaded, expect)
            }
        };
        match result {
            Ok(_) => {
                index.cover(sealing.seq, (sealing.held + sealing.buf.len()) as u64);
                if let Some(sealing) = self.sealing.take()
                    && let Ok(mut buf) = Arc::try_unwrap(sealing.buf)
                {
                    buf.clear();
                    self.spare = buf;
                }
                Ok(())
            }
            Err(err) => Err(self.fail(err)),
        }
    }
}

impl Tail {
    fn new(seq: u64, start: u64, buf: Vec<u8>, etag: Option<String>) -> Tail {
        Tail {
            seq,
            start,
            held: 0,
            recorded: false,
            uploaded: buf.len(),
            buf,
            etag,
        }
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
