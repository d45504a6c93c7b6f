//! Inspecting and trimming the stream: its objects, gaps and pending uploads, its first offset,
//! and deleting its oldest objects.

use super::Storage;
use crate::Error;
use crate::index::{self, Index};
use crate::layout::{Gap, Listing, Object, PendingUpload};

impl Storage {
    /// The stream's objects in S3, in order: key, sequence number, size. Bytes not yet flushed
    /// are not in any object, so they are not counted.
    ///
    /// ```
    /// # let server = s3_syncr_test_server::Server::start();
    /// # let bucket = server.new_bucket();
    /// use std::io::Write;
    /// use s3_syncr::{Options, Storage};
    ///
    /// let options = Options::builder().with_seal_size(1 << 20).build()?;
    /// let mut log = Storage::new(bucket, "app.log", options)?;
    /// log.write_all(&vec![b'a'; 1 << 20])?; // fills the first object
    /// log.write_all(b"tail")?; // seals it and starts the second
    /// log.flush()?;
    /// let sizes: Vec<u64> = log.objects()?.iter().map(|s| s.size).collect();
    /// assert_eq!(sizes, [1 << 20, 4]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn objects(&self) -> Result<Vec<Object>, Error> {
        let listing = self.listing()?;
        match listing.gaps.first() {
            Some(gap) => Err(Error::MissingObject {
                key: gap.first_key.clone(),
            }),
            None => Ok(listing.objects),
        }
    }

    /// The name 0.2 gave [`objects`](Storage::objects).
    #[deprecated(since = "0.3.0", note = "renamed `objects`: one name per idea")]
    pub fn segments(&self) -> Result<Vec<Object>, Error> {
        self.objects()
    }

    /// The stream's objects as [`objects`](Storage::objects) lists them, and its gaps
    /// instead of the error a gap is there: to show a stream that cannot be read through, and
    /// what [`trim_before_gap`](Storage::trim_before_gap) would leave.
    ///
    /// One listing, the HEAD of the first object (unless the handle knows where it starts),
    /// and for each gap in the listing, the HEADs of the objects on either side of it: one
    /// whose older side is gone too was trimmed meanwhile, not a gap, and the object after a
    /// gap tells its recorded start, [`Gap::resume`].
    ///
    /// ```
    /// # let server = s3_syncr_test_server::Server::start();
    /// # let bucket = server.new_bucket();
    /// use std::io::Write;
    /// use s3_syncr::{Options, Storage};
    ///
    /// let options = Options::builder().with_seal_size(1 << 20).build()?;
    /// let mut log = Storage::new(bucket.clone(), "app.log", options)?;
    /// for _ in 0..3 {
    ///     log.write_all(&vec![b'x'; 1 << 20])?;
    /// }
    /// log.close()?;
    /// bucket.delete_object("app-00000000000000000001.log")?; // by hand
    /// let mut log = Storage::new(bucket, "app.log", Options::default())?;
    /// assert!(log.objects().is_err(), "a gap is an error there");
    /// let listing = log.listing()?;
    /// let starts: Vec<u64> = listing.objects.iter().map(|s| s.start).collect();
    /// assert_eq!(starts, [0, 2 << 20], "the last object starts where it records");
    /// assert_eq!(listing.gaps[0].first_key, "app-00000000000000000001.log");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn listing(&self) -> Result<Listing, Error> {
        let mut objects = index::with_gaps(&*self.client, self.client.list(None)?)?;
        let Some(first) = objects.first() else {
            return Ok(Listing::default());
        };
        // Where this handle already placed the first object, else what it records.
        let mut start = match self.index.get(first.seq).filter(|_| self.index.anchored()) {
            Some(entry) => entry.start,
            None => self.client.recorded_start(first.seq)?.unwrap_or(0),
        };
        let mut gaps = Vec::new();
        let mut previous: Option<u64> = None;
        for object in &mut objects {
            if let Some(before) = previous.filter(|&before| before + 1 != object.seq) {
                let resume = self.client.recorded_start(object.seq)?;
                gaps.push(Gap {
                    first_seq: before + 1,
                    last_seq: object.seq - 1,
                    first_key: self.client.key(before + 1),
                    last_key: self.client.key(object.seq - 1),
                    stop: start,
                    resume,
                });
                start = resume.unwrap_or(start);
            }
            previous = Some(object.seq);
            object.start = start;
            start += object.size;
        }
        Ok(Listing { objects, gaps })
    }

    /// The multipart uploads to the stream's objects that were started and neither completed
    /// nor aborted, oldest object first: this or another writer's uploads under way, and those
    /// a crash left behind. S3 keeps (and bills) their parts until they are aborted; an
    /// `AbortIncompleteMultipartUpload` lifecycle rule on the bucket removes them after a while.
    ///
    /// One listing request. A server that cannot list uploads answers with an
    /// [`Error::Status`] of kind `Unsupported` (501).
    ///
    /// ```
    /// # let server = s3_syncr_test_server::Server::start();
    /// # let bucket = server.new_bucket();
    /// use s3_syncr::{Options, Storage};
    ///
    /// let mut log = Storage::new(bucket, "app.log", Options::default())?;
    /// match log.pending_uploads() {
    ///     Ok(uploads) => println!("{} uploads pending", uploads.len()),
    ///     // The in-process test server (s3s-fs) has no ListMultipartUploads.
    ///     Err(err) => assert_eq!(err.kind(), std::io::ErrorKind::Unsupported),
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pending_uploads(&self) -> Result<Vec<PendingUpload>, Error> {
        self.client.list_uploads()
    }

    /// The stream offset of the first byte still in S3: 0 until older objects are deleted
    /// (by [`trim`](Storage::trim), a lifecycle rule or by hand), since offsets never move.
    ///
    /// Each call lists the stream's first key (one LIST; on a new handle, the one that
    /// checked the bucket), so objects deleted by others since count, and asks that object
    /// where it starts (one HEAD) unless the handle knows it already. The stream is not listed
    /// whole: a new handle finds the end as [`len`](Storage::len) does first (through the
    /// hint, at any object count). A new handle reads from there.
    ///
    /// ```
    /// # let server = s3_syncr_test_server::Server::start();
    /// # let bucket = server.new_bucket();
    /// use std::io::Write;
    /// use s3_syncr::{Options, Storage};
    ///
    /// let options = Options::builder().with_seal_size(1 << 20).build()?;
    /// let mut log = Storage::new(bucket, "app.log", options)?;
    /// log.write_all(&vec![b'a'; 1 << 20])?; // the first object, sealed by the next write
    /// log.write_all(b"tail")?;
    /// log.flush()?;
    /// assert_eq!(log.first_offset()?, 0);
    /// assert_eq!(log.trim(1 << 20)?, 1 << 20);
    /// assert_eq!(log.first_offset()?, 1 << 20);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn first_offset(&mut self) -> Result<u64, Error> {
        let extend = !self.writer.started();
        // The front is placed against the objects the index holds: a new one finds the end
        // first, which the hint makes cheaper than the full listing that would place it alone.
        if extend && !self.index.anchored() {
            self.index.refresh(&*self.client)?;
        }
        self.index.refresh_front(&*self.client, extend)?;
        self.position()?;
        Ok(self.index.first())
    }

    /// Deletes the stream's oldest objects that end at or before offset `before`, whole and
    /// oldest first, and returns the new first offset. No other offset moves: every object
    /// records where it starts.
    ///
    /// - The stream's last object is never deleted, so the stream keeps its length (on a
    ///   writing handle, that is its own tail once flushed; before that, the last object
    ///   before it).
    /// - It lists the stream from its first object up to `before` only (a LIST per 1,000
    ///   objects), and deletes with DeleteObjects, 1,000 keys a request, oldest first (one
    ///   DELETE a key on a server without it). An interrupted trim leaves a shorter stream,
    ///   with a gap at most among the keys of the request under way (S3 deletes one request's
    ///   keys in no promised order); running it again finishes it (deleting an object that is
    ///   already gone succeeds).
    /// - Before deleting anything it asks the object that will become the first one (one
    ///   HEAD) where it starts: [`Error::NoRecordedStart`] if it does not record it (an object
    ///   of s3-syncr 0.1.0 or another tool), [`Error::Discontinuity`] if that is not where the
    ///   stream puts it. Nothing is deleted then.
    /// - The read position is unchanged; reading before the new first offset is
    ///   [`Error::Trimmed`].
    ///
    /// ```
    /// # let server = s3_syncr_test_server::Server::start();
    /// # let bucket = server.new_bucket();
    /// use std::io::{Read, Seek, SeekFrom, Write};
    /// use s3_syncr::{Error, Options, Storage};
    ///
    /// let options = Options::builder().with_seal_size(1 << 20).build()?;
    /// let mut log = Storage::new(bucket, "app.log", options)?;
    /// for _ in 0..3 {
    ///     log.write_all(&vec![b'x'; 1 << 20])?; // three sealed 1 MiB objects...
    /// }
    /// log.write_all(b"the end")?; // ...and a tail
    /// log.flush()?;
    ///
    /// // Keeps the object holding offset 2.5 MiB and everything after it.
    /// let first = log.trim(5 << 19)?;
    /// assert_eq!(first, 2 << 20);
    /// let end = log.seek(SeekFrom::End(0))?;
    /// assert_eq!(end, (3 << 20) + 7, "the length is unchanged");
    /// log.seek(SeekFrom::Start((3 << 20) + 4))?;
    /// let mut text = String::new();
    /// log.read_to_string(&mut text)?;
    /// assert_eq!(text, "end");
    ///
    /// let err = log.seek(SeekFrom::Start(0)).unwrap_err();
    /// let inner = err.get_ref().and_then(|e| e.downcast_ref::<Error>());
    /// assert!(matches!(inner, Some(Error::Trimmed { requested: 0, first: 2097152 })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn trim(&mut self, before: u64) -> Result<u64, Error> {
        let (doomed, first) = self.plan_trim(before)?;
        let (Some(&oldest), Some(&newest)) = (doomed.first(), doomed.last()) else {
            return Ok(first);
        };
        self.client.delete_all(&doomed)?;
        self.index.trimmed_before(newest + 1, first);
        log::info!(
            "trimmed {} to {}: the stream now starts at offset {first}",
            self.client.key(oldest),
            self.client.key(newest),
        );
        Ok(first)
    }

    /// What [`trim`](Storage::trim) with the same `before` would do, short of deleting: the
    /// first offset it would leave, or the error it would refuse with
    /// ([`Error::NoRecordedStart`], [`Error::Discontinuity`]), after the same requests (one
    /// listing, and the HEAD of the object that would become the first one).
    ///
    /// ```
    /// # let server = s3_syncr_test_server::Server::start();
    /// # let bucket = server.new_bucket();
    /// use std::io::Write;
    /// use s3_syncr::{Options, Storage};
    ///
    /// let options = Options::builder().with_seal_size(1 << 20).build()?;
    /// let mut log = Storage::new(bucket, "app.log", options)?;
    /// log.write_all(&vec![b'x'; 1 << 20])?;
    /// log.write_all(b"tail")?;
    /// log.flush()?;
    /// assert_eq!(log.trim_dry_run(u64::MAX)?, 1 << 20);
    /// assert_eq!(log.first_offset()?, 0, "nothing was deleted");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn trim_dry_run(&mut self, before: u64) -> Result<u64, Error> {
        self.plan_trim(before).map(|(_, first)| first)
    }

    /// Deletes every object before the stream's last gap (see [`listing`](Storage::listing)),
    /// oldest first, so that the stream starts again at the first object after it, at the
    /// offset that object records, and returns that offset. Offsets after the gap do not move;
    /// the bytes before it are given up. A stream with no gap is left as it is (its first
    /// offset is returned).
    ///
    /// - Nothing is deleted if the object after the gap records no start
    ///   ([`Error::NoRecordedStart`]: its offset cannot be known), or, on a handle that knows
    ///   where that object starts (it wrote after it, or listed it before the gap appeared),
    ///   if it records another start ([`Error::Discontinuity`]).
    /// - An interrupted run leaves the stream with its oldest objects gone and the gap still
    ///   there; running it again finishes it.
    /// - Until then, reads into the gap fail with [`Error::MissingObject`] (a gap is never
    ///   skipped silently); the bytes on either side of it read, and a writer appends after it.
    ///
    /// ```
    /// # let server = s3_syncr_test_server::Server::start();
    /// # let bucket = server.new_bucket();
    /// use std::io::{Read, Seek, SeekFrom, Write};
    /// use s3_syncr::{Options, Storage};
    ///
    /// let options = Options::builder().with_seal_size(1 << 20).build()?;
    /// let mut log = Storage::new(bucket.clone(), "app.log", options)?;
    /// for byte in [b'a', b'b', b'c'] {
    ///     log.write_all(&vec![byte; 1 << 20])?;
    /// }
    /// log.close()?;
    /// bucket.delete_object("app-00000000000000000001.log")?; // by hand
    ///
    /// let mut log = Storage::new(bucket, "app.log", Options::default())?;
    /// log.seek(SeekFrom::Start(1 << 20))?;
    /// assert!(log.read(&mut [0; 16]).is_err(), "a gap is invalid data");
    /// assert_eq!(log.trim_before_gap_dry_run()?, 2 << 20);
    /// assert_eq!(log.trim_before_gap()?, 2 << 20);
    /// assert_eq!(log.first_offset()?, 2 << 20);
    /// log.seek(SeekFrom::Start(2 << 20))?;
    /// let mut rest = Vec::new();
    /// log.read_to_end(&mut rest)?;
    /// assert_eq!(rest, vec![b'c'; 1 << 20]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn trim_before_gap(&mut self) -> Result<u64, Error> {
        let (first, doomed, next) = self.plan_gap_trim()?;
        let (Some(&oldest), Some(&newest)) = (doomed.first(), doomed.last()) else {
            return Ok(first);
        };
        for &seq in &doomed {
            self.client.delete(seq)?;
        }
        if self.writer.started() {
            // The missing objects too, if the index knew them before they went.
            self.index.pop_before(next);
        } else {
            // Not anchored any more: the next read lists and anchors as a new handle does.
            self.index = Index::default();
        }
        log::info!(
            "trimmed {} to {}, before a gap: the stream now starts at offset {first}",
            self.client.key(oldest),
            self.client.key(newest),
        );
        Ok(first)
    }

    /// What [`trim_before_gap`](Storage::trim_before_gap) would do, short of deleting: the
    /// first offset it would leave, or the error it would refuse with, after the same requests.
    ///
    /// ```
    /// # let server = s3_syncr_test_server::Server::start();
    /// # let bucket = server.new_bucket();
    /// use std::io::Write;
    /// use s3_syncr::{Options, Storage};
    ///
    /// let mut log = Storage::new(bucket, "app.log", Options::default())?;
    /// log.write_all(b"no gap")?;
    /// log.flush()?;
    /// assert_eq!(log.trim_before_gap_dry_run()?, 0, "nothing to trim");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn trim_before_gap_dry_run(&self) -> Result<u64, Error> {
        self.plan_gap_trim().map(|(first, _, _)| first)
    }

    /// The first offset `trim_before_gap` leaves, the objects it deletes, oldest first, and the
    /// object that becomes the first one.
    fn plan_gap_trim(&self) -> Result<(u64, Vec<u64>, u64), Error> {
        let listing = self.listing()?;
        let Some(gap) = listing.gaps.last() else {
            let first = listing.objects.first();
            let seq = first.map_or(0, |s| s.seq);
            return Ok((
                first.map_or(self.index.first(), |s| s.start),
                Vec::new(),
                seq,
            ));
        };
        let next = gap.last_seq + 1;
        let Some(resume) = gap.resume else {
            return Err(Error::NoRecordedStart {
                key: self.client.key(next),
            });
        };
        // A writer's own objects start where its index ends.
        let known = match self.index.get(next).filter(|_| self.index.anchored()) {
            Some(entry) => Some(entry.start),
            None => self.writer.started().then(|| self.index.end()),
        };
        if let Some(expected) = known.filter(|&expected| expected != resume) {
            return Err(Error::Discontinuity {
                key: self.client.key(next),
                expected,
                found: resume,
            });
        }
        let doomed = (listing.objects.iter())
            .map(|s| s.seq)
            .take_while(|&seq| seq < next)
            .collect();
        Ok((resume, doomed, next))
    }

    /// The objects `trim(before)` deletes, oldest first, once the object that will become the
    /// first one was checked, and the offset the stream then starts at.
    ///
    /// The stream's first objects are listed afresh, up to `before` (a page per 1,000 objects
    /// the trim deletes, not the whole stream): objects others deleted since this handle
    /// listed are not counted, so the first offset returned is S3's.
    fn plan_trim(&mut self, before: u64) -> Result<(Vec<u64>, u64), Error> {
        // The end, as a reader finds it; a writer's index ends where its own objects begin.
        let upto = match self.writer.started() {
            false => {
                self.index.refresh(&*self.client)?;
                None
            }
            true => match self.index.last() {
                Some(last) => Some(last.seq),
                None => return Ok((Vec::new(), self.index.first())),
            },
        };
        let (mut front, whole) = index::listed_through(&*self.client, before, upto)?;
        // Deleting across a gap gives up bytes that were never read through: that takes
        // `trim_before_gap`, asked for by name.
        if let Some(seq) = front.first_gap() {
            return Err(Error::MissingObject {
                key: self.client.key(seq),
            });
        }
        // The last object listed is the stream's, unless this handle's own tail is in S3.
        // Nor is an object this writer is still writing, part of which the index holds.
        let keep_last = whole && (!self.writer.tail_recorded() || self.writer.shares_index());
        let doomed: Vec<u64> = (front.trimmable(before, keep_last).iter())
            .map(|e| e.seq)
            .collect();
        if let Some(next) = doomed.last().and_then(|&seq| front.get(seq + 1)) {
            match self.client.recorded_start(next.seq)? {
                None => {
                    return Err(Error::NoRecordedStart {
                        key: self.client.key(next.seq),
                    });
                }
                recorded => next.verify(&*self.client, recorded)?,
            }
        }
        front.pop_before(doomed.last().map_or(0, |&seq| seq + 1));
        Ok((doomed, front.first()))
    }
}
