//! The stream itself: [`Storage`] and its read, write and seek state.

use std::fmt;
use std::io::{self, BufRead, Read, Seek, SeekFrom, Write};
use std::sync::Arc;

use s3::Bucket;

use crate::client::{Client, MIN_PART, S3Client};
use crate::index::{self, Index};
use crate::layout::{Gap, Layout, Listing, Location, PendingUpload, Segment};
use crate::reader::Reader;
use crate::writer::{Streaming, Writer};
use crate::{Error, Options};

/// An append-only byte stream kept in S3, as one `Read + Write + Seek + BufRead` handle.
///
/// Writes are buffered in memory and always append to the end of the stream;
/// [`flush`](Write::flush) makes every byte written so far durable by overwriting the tail object
/// (sending only the new bytes once the tail is large, see [`Options::copy_threshold`]); once
/// the tail holds at least [`Options::min_size`] MiB it is sealed and later bytes go to a new
/// object. Reads see every object in order, then this handle's
/// unflushed bytes; [`Seek`] moves the read position anywhere from the first offset still in S3
/// (0 until older objects are deleted: offsets are absolute) to the stream's length.
///
/// ```
/// # let server = s3_syncr_test_server::Server::start();
/// # let bucket = server.new_bucket();
/// use std::io::{Read, Seek, SeekFrom, Write};
/// use s3_syncr::{Options, Storage};
///
/// let mut log = Storage::new(bucket, "logs/app.log", Options::default())?;
/// log.write_all(b"first line\n")?;
/// log.write_all(b"second line\n")?;
/// log.flush()?; // both lines are now in S3
///
/// log.seek(SeekFrom::Start(11))?;
/// let mut second = String::new();
/// log.read_to_string(&mut second)?;
/// assert_eq!(second, "second line\n");
/// log.close()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Storage {
    client: Arc<Client>,
    /// The objects before the writer's (all known objects while nothing was written).
    index: Index,
    writer: Writer,
    reader: Reader,
    /// Whether the read position was set: a new handle's starts at the first offset, once that
    /// is known.
    positioned: bool,
    closed: bool,
}

impl Storage {
    /// Opens the stream at `location`, `s3://bucket/dir/name.ext` or the original package's
    /// `bucket/dir/name.ext`, with credentials, region and endpoint from the standard AWS
    /// environment:
    ///
    /// - `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, else the shared
    ///   credentials file (`AWS_SHARED_CREDENTIALS_FILE` or `~/.aws/credentials`, profile
    ///   `AWS_PROFILE` or `default`);
    /// - `AWS_REGION` or `AWS_DEFAULT_REGION`, else the profile's `region` in the shared config
    ///   file (`AWS_CONFIG_FILE` or `~/.aws/config`), else `us-east-1`;
    /// - `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` for S3-compatible servers, which are then
    ///   addressed path-style.
    ///
    /// The location and options are checked before any request; then one listing request checks
    /// that the bucket exists (it is never created). Nothing else is read until it is needed.
    ///
    /// ```no_run
    /// use s3_syncr::{Options, Storage};
    ///
    /// let log = Storage::open("s3://my-bucket/logs/app.log", Options::default())?;
    /// # Ok::<(), s3_syncr::Error>(())
    /// ```
    pub fn open(location: &str, options: Options) -> Result<Storage, Error> {
        Storage::open_with_env(location, options, |key| std::env::var(key).ok())
    }

    /// Like [`open`](Storage::open), with the AWS variables read through `var` instead of the
    /// process environment: for configuration that comes from flags or files, or that overrides
    /// part of the environment.
    ///
    /// ```
    /// # let server = s3_syncr_test_server::Server::start();
    /// # let location = format!("s3://{}/logs/app.log", server.new_bucket().name());
    /// # let (access_key, secret_key) = server.keys();
    /// use s3_syncr::{Options, Storage};
    ///
    /// let endpoint = server.endpoint(); // from a --endpoint flag, say
    /// let log = Storage::open_with_env(&location, Options::default(), |key| match key {
    ///     "AWS_ENDPOINT_URL" => Some(endpoint.to_owned()),
    /// #   "AWS_ACCESS_KEY_ID" => Some(access_key.to_owned()),
    /// #   "AWS_SECRET_ACCESS_KEY" => Some(secret_key.to_owned()),
    ///     _ => std::env::var(key).ok(),
    /// })?;
    /// # Ok::<(), s3_syncr::Error>(())
    /// ```
    pub fn open_with_env(
        location: &str,
        options: Options,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Storage, Error> {
        let location = Location::parse(location)?;
        options.seal_bytes()?;
        let bucket = crate::env::bucket(&location.bucket, var)?;
        Storage::new(bucket, &location.name, options)
    }

    /// Checks `location` as [`open`](Storage::open) does, reading no environment and sending
    /// no request: to refuse a malformed location before anything else happens.
    ///
    /// ```
    /// use s3_syncr::Storage;
    ///
    /// assert!(Storage::check_location("s3://my-bucket/logs/app.log").is_ok());
    /// assert!(Storage::check_location("s3://my-bucket/logs//app.log").is_err());
    /// ```
    pub fn check_location(location: &str) -> Result<(), Error> {
        Location::parse(location).map(drop)
    }

    /// Checks a stream name as [`new`](Storage::new) does, sending no request.
    pub fn check_name(name: &str) -> Result<(), Error> {
        Layout::new(name).map(drop)
    }

    /// Opens stream `name` in a bucket the caller built: for credentials, endpoints, timeouts or
    /// TLS settings that the environment does not cover.
    ///
    /// ```
    /// # let server = s3_syncr_test_server::Server::start();
    /// use s3::{Bucket, Region, creds::Credentials};
    /// use s3_syncr::{Options, Storage};
    ///
    /// let region = Region::Custom {
    ///     region: "us-east-1".into(),
    ///     endpoint: server.endpoint().into(), // e.g. "http://127.0.0.1:9000"
    /// };
    /// # let (access_key, secret_key) = server.keys();
    /// # let name = server.new_bucket().name();
    /// let credentials = Credentials::new(Some(access_key), Some(secret_key), None, None, None)?;
    /// let bucket = Bucket::new(&name, region, credentials)?.with_path_style();
    /// let log = Storage::new(*bucket, "logs/app.log", Options::default())?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(bucket: Bucket, name: &str, options: Options) -> Result<Storage, Error> {
        let layout = Layout::new(name)?;
        let seal_bytes = options.seal_bytes()?;
        let reader = Reader::new(options.read_chunk, options.read_ahead);
        let copy = options.append_by_copy.then_some(Streaming {
            copy_from: options.copy_threshold.max(MIN_PART),
            part: options.part_size,
            ahead: options.write_ahead,
        });
        let client = S3Client::new(bucket, layout, options);
        client.check_bucket()?;
        let client: Arc<Client> = Arc::new(client);
        Ok(Storage {
            writer: Writer::new(client.clone(), seal_bytes, copy),
            reader,
            client,
            index: Index::default(),
            positioned: false,
            closed: false,
        })
    }

    /// Flushes, then refuses further reads, writes and seeks with [`Error::Closed`].
    ///
    /// If the flush fails the stream stays open and keeps every byte, so `close` can be retried.
    /// Closing a closed stream is `Ok`. Unlike dropping, closing reports the flush's error.
    ///
    /// ```
    /// # let server = s3_syncr_test_server::Server::start();
    /// # let bucket = server.new_bucket();
    /// use std::io::Write;
    /// use s3_syncr::{Options, Storage};
    ///
    /// let mut log = Storage::new(bucket, "app.log", Options::default())?;
    /// log.write_all(b"kept without an explicit flush")?;
    /// log.close()?;
    /// log.close()?;
    /// assert!(log.write(b"x").is_err());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn close(&mut self) -> io::Result<()> {
        if self.closed {
            return Ok(());
        }
        self.flush()?;
        self.closed = true;
        self.writer.release();
        self.reader.release();
        Ok(())
    }

    /// The stream's objects in S3, in order: key, sequence number, size. Bytes not yet flushed
    /// are not in any object, so they are not counted.
    ///
    /// ```
    /// # let server = s3_syncr_test_server::Server::start();
    /// # let bucket = server.new_bucket();
    /// use std::io::Write;
    /// use s3_syncr::{Options, Storage};
    ///
    /// let options = Options { min_size: 1, ..Options::default() };
    /// let mut log = Storage::new(bucket, "app.log", options)?;
    /// log.write_all(&vec![b'a'; 1 << 20])?; // fills the first object
    /// log.write_all(b"tail")?; // seals it and starts the second
    /// log.flush()?;
    /// let sizes: Vec<u64> = log.segments()?.iter().map(|s| s.size).collect();
    /// assert_eq!(sizes, [1 << 20, 4]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn segments(&mut self) -> Result<Vec<Segment>, Error> {
        let listing = self.listing()?;
        match listing.gaps.first() {
            Some(gap) => Err(Error::MissingSegment {
                key: gap.first_key.clone(),
            }),
            None => Ok(listing.segments),
        }
    }

    /// The stream's objects as [`segments`](Storage::segments) lists them, and its gaps
    /// instead of the error a gap is there: to show a stream that cannot be read through, and
    /// what [`trim_before_gap`](Storage::trim_before_gap) would leave.
    ///
    /// One listing, the HEAD of the first object (unless the handle knows where it starts),
    /// and for each hole in the listing, the HEADs of the objects on either side of it: one
    /// whose older side is gone too was trimmed meanwhile, not a gap, and the object after a
    /// gap tells its recorded start, [`Gap::resume`].
    ///
    /// ```
    /// # let server = s3_syncr_test_server::Server::start();
    /// # let bucket = server.new_bucket();
    /// use std::io::Write;
    /// use s3_syncr::{Options, Storage};
    ///
    /// let options = Options { min_size: 1, ..Options::default() };
    /// let mut log = Storage::new(bucket.clone(), "app.log", options)?;
    /// for _ in 0..3 {
    ///     log.write_all(&vec![b'x'; 1 << 20])?;
    /// }
    /// log.close()?;
    /// bucket.delete_object("app-00000000000000000001.log")?; // by hand
    /// let mut log = Storage::new(bucket, "app.log", Options::default())?;
    /// assert!(log.segments().is_err(), "a gap is an error there");
    /// let listing = log.listing()?;
    /// let starts: Vec<u64> = listing.segments.iter().map(|s| s.start).collect();
    /// assert_eq!(starts, [0, 2 << 20], "the last object starts where it records");
    /// assert_eq!(listing.gaps[0].first_key, "app-00000000000000000001.log");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn listing(&mut self) -> Result<Listing, Error> {
        self.check_open()?;
        let mut segments = index::settled(&*self.client, self.client.list(None)?)?;
        let Some(first) = segments.first() else {
            return Ok(Listing::default());
        };
        // Where this handle already placed the first object, else what it records.
        let mut start = match self.index.get(first.seq).filter(|_| self.index.anchored()) {
            Some(entry) => entry.start,
            None => self.client.recorded_start(first.seq)?.unwrap_or(0),
        };
        let mut gaps = Vec::new();
        let mut previous: Option<u64> = None;
        for segment in &mut segments {
            if let Some(before) = previous.filter(|&before| before + 1 != segment.seq) {
                let resume = self.client.recorded_start(segment.seq)?;
                gaps.push(Gap {
                    first_seq: before + 1,
                    last_seq: segment.seq - 1,
                    first_key: self.client.key(before + 1),
                    last_key: self.client.key(segment.seq - 1),
                    stop: start,
                    resume,
                });
                start = resume.unwrap_or(start);
            }
            previous = Some(segment.seq);
            segment.start = start;
            start += segment.size;
        }
        Ok(Listing { segments, gaps })
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
    pub fn pending_uploads(&mut self) -> Result<Vec<PendingUpload>, Error> {
        self.check_open()?;
        self.client.list_uploads()
    }

    /// The stream offset of the first byte still in S3: 0 until older objects are deleted
    /// (by [`trim`](Storage::trim), a lifecycle rule or by hand), since offsets never move.
    ///
    /// Each call lists the stream, so objects deleted by others since count; the first call
    /// also asks the first object where it starts (one HEAD), unless the handle knows it
    /// already. A new handle reads from there.
    ///
    /// ```
    /// # let server = s3_syncr_test_server::Server::start();
    /// # let bucket = server.new_bucket();
    /// use std::io::Write;
    /// use s3_syncr::{Options, Storage};
    ///
    /// let options = Options { min_size: 1, ..Options::default() };
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
        self.check_open()?;
        self.index.resync(&*self.client, !self.writer.started())?;
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
    /// - An interrupted trim leaves a shorter stream with no gap; running it again finishes it
    ///   (deleting an object that is already gone succeeds).
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
    /// let options = Options { min_size: 1, ..Options::default() };
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
        let doomed = self.plan_trim(before)?;
        let (Some(&oldest), Some(&newest)) = (doomed.first(), doomed.last()) else {
            return Ok(self.index.first());
        };
        for &seq in &doomed {
            self.client.delete(seq)?;
            self.index.pop_first();
        }
        log::info!(
            "trimmed {} to {}: the stream now starts at offset {}",
            self.client.key(oldest),
            self.client.key(newest),
            self.index.first()
        );
        Ok(self.index.first())
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
    /// let options = Options { min_size: 1, ..Options::default() };
    /// let mut log = Storage::new(bucket, "app.log", options)?;
    /// log.write_all(&vec![b'x'; 1 << 20])?;
    /// log.write_all(b"tail")?;
    /// log.flush()?;
    /// assert_eq!(log.trim_dry_run(u64::MAX)?, 1 << 20);
    /// assert_eq!(log.first_offset()?, 0, "nothing was deleted");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn trim_dry_run(&mut self, before: u64) -> Result<u64, Error> {
        let doomed = self.plan_trim(before)?;
        let newest = doomed.last().and_then(|&seq| self.index.get(seq));
        Ok(newest.map_or(self.index.first(), |e| e.end()))
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
    /// - Reads of a stream with a gap fail with [`Error::MissingSegment`] until then: a gap is
    ///   never skipped silently.
    ///
    /// ```
    /// # let server = s3_syncr_test_server::Server::start();
    /// # let bucket = server.new_bucket();
    /// use std::io::{Read, Write};
    /// use s3_syncr::{Options, Storage};
    ///
    /// let options = Options { min_size: 1, ..Options::default() };
    /// let mut log = Storage::new(bucket.clone(), "app.log", options)?;
    /// for byte in [b'a', b'b', b'c'] {
    ///     log.write_all(&vec![byte; 1 << 20])?;
    /// }
    /// log.close()?;
    /// bucket.delete_object("app-00000000000000000001.log")?; // by hand
    ///
    /// let mut log = Storage::new(bucket, "app.log", Options::default())?;
    /// assert!(log.read(&mut [0; 16]).is_err(), "a gap is invalid data");
    /// assert_eq!(log.trim_before_gap_dry_run()?, 2 << 20);
    /// assert_eq!(log.trim_before_gap()?, 2 << 20);
    /// assert_eq!(log.first_offset()?, 2 << 20);
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
    pub fn trim_before_gap_dry_run(&mut self) -> Result<u64, Error> {
        self.plan_gap_trim().map(|(first, _, _)| first)
    }

    /// The first offset `trim_before_gap` leaves, the objects it deletes, oldest first, and the
    /// object that becomes the first one.
    fn plan_gap_trim(&mut self) -> Result<(u64, Vec<u64>, u64), Error> {
        let listing = self.listing()?;
        let Some(gap) = listing.gaps.last() else {
            let first = listing.segments.first();
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
        let doomed = (listing.segments.iter())
            .map(|s| s.seq)
            .take_while(|&seq| seq < next)
            .collect();
        Ok((resume, doomed, next))
    }

    /// The objects `trim(before)` deletes, oldest first, once the object that will become the
    /// first one was checked.
    fn plan_trim(&mut self, before: u64) -> Result<Vec<u64>, Error> {
        self.check_open()?;
        // From a full listing: objects deleted since this handle listed are not counted, so
        // the first offset returned is S3's. A writer's index ends where its own objects begin.
        self.index.resync(&*self.client, !self.writer.started())?;
        // The index's last object is the stream's, unless this handle's own tail is in S3.
        // Nor is an object this writer is still writing, part of which the index holds.
        let keep_last = !self.writer.tail_recorded() || self.writer.shares_index();
        let doomed: Vec<u64> = (self.index.trimmable(before, keep_last).iter())
            .map(|e| e.seq)
            .collect();
        if let Some(next) = doomed.last().and_then(|&seq| self.index.get(seq + 1)) {
            match self.client.recorded_start(next.seq)? {
                None => {
                    return Err(Error::NoRecordedStart {
                        key: self.client.key(next.seq),
                    });
                }
                recorded => next.verify(&*self.client, recorded)?,
            }
        }
        Ok(doomed)
    }

    fn check_open(&self) -> Result<(), Error> {
        if self.closed {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    /// Anchors the offsets and places a new handle's read position at the first offset, with
    /// the one request that needs, once (0 if the stream has no object yet). A stream with no
    /// object yet is not anchored: it is listed again at each call, as reading at its end does
    /// anyway.
    fn position(&mut self) -> Result<u64, Error> {
        if !self.index.anchored() && !self.writer.started() {
            self.index.refresh(&*self.client)?;
        }
        if !self.positioned {
            if self.index.anchored() {
                self.reader.seek(self.index.first());
            }
            // From now on the position is what the caller saw: an empty stream's 0 stays 0 even
            // if objects appear and the oldest of them are deleted.
            self.positioned = true;
        }
        Ok(self.reader.pos)
    }

    /// Fails with [`Error::Trimmed`] if the read position is before the first byte.
    fn check_readable(&mut self) -> Result<(), Error> {
        let pos = self.position()?;
        let first = self.index.first();
        if pos < first {
            return Err(Error::Trimmed {
                requested: pos,
                first,
            });
        }
        Ok(())
    }

    /// Flushes before a read of this handle's own bytes if memory no longer holds them all:
    /// parts of a tail larger than the write budget that S3 has, but not as an object yet.
    fn complete_for_read(&mut self) -> Result<(), Error> {
        if !self.writer.holds_all() && self.reader.pos >= self.index.end() {
            self.writer.flush(&mut self.index)?;
        }
        Ok(())
    }

    /// The bytes at the read position: from the chunk fetched last, else from this handle's
    /// bytes not yet in S3, else from S3. At the end of what is known, and with no writer to
    /// say where the end is, the objects are listed again, so bytes appended since by any
    /// handle are found. A GET fetches at least `wanted` bytes when it can.
    fn available(&mut self, wanted: usize) -> Result<&[u8], Error> {
        let pos = self.reader.pos;
        if !self.reader.holds_pos() {
            if pos >= self.index.end() && !self.writer.started() {
                self.index.refresh(&*self.client)?;
                // The listing may have found the objects up to here trimmed.
                let first = self.index.first();
                if pos < first {
                    return Err(Error::Trimmed {
                        requested: pos,
                        first,
                    });
                }
            }
            if let Some(offset) = pos.checked_sub(self.index.end()) {
                return Ok(self.writer.local_at(offset as usize));
            }
        }
        match self.reader.fill_buf(&self.client, &self.index, wanted) {
            Ok(bytes) => Ok(bytes),
            Err(err) => {
                let extend = !self.writer.started();
                Err((self.index).explain_deleted(&*self.client, err, pos, extend))
            }
        }
    }

    /// The stream's length (the offset of its end), as of now.
    fn len(&mut self) -> Result<u64, Error> {
        if !self.writer.started() {
            self.index.refresh(&*self.client)?;
        }
        Ok(self.known_len())
    }

    /// The stream's length as this handle knows it, without asking S3.
    fn known_len(&self) -> u64 {
        self.index.end() + self.writer.local_len() as u64
    }

    /// The bytes accepted by `write` that are not in S3 yet: what a failed flush or a fenced
    /// writer would otherwise lose.
    ///
    /// ```
    /// # let server = s3_syncr_test_server::Server::start();
    /// # let bucket = server.new_bucket();
    /// use std::io::Write;
    /// use s3_syncr::{Options, Storage};
    ///
    /// let mut log = Storage::new(bucket, "app.log", Options::default())?;
    /// log.write_all(b"abc")?;
    /// assert_eq!(log.unflushed(), b"abc");
    /// log.flush()?;
    /// assert!(log.unflushed().is_empty());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn unflushed(&self) -> Vec<u8> {
        self.writer.unflushed()
    }
}

impl Storage {
    /// Gives up on the bytes that S3 does not hold: aborts the uploads under way (best
    /// effort), returns those bytes (as [`unflushed`](Storage::unflushed) does), and closes the
    /// stream without a last flush. For a caller that already knows the flush cannot succeed
    /// (it failed, or the handle was fenced), and would rather not wait for a drop's retries.
    ///
    /// ```
    /// # let server = s3_syncr_test_server::Server::start();
    /// # let bucket = server.new_bucket();
    /// use std::io::Write;
    /// use s3_syncr::{Options, Storage};
    ///
    /// let mut log = Storage::new(bucket.clone(), "app.log", Options::default())?;
    /// log.write_all(b"kept")?;
    /// log.flush()?;
    /// log.write_all(b" and dropped")?;
    /// assert_eq!(log.discard(), b" and dropped");
    /// assert!(log.write(b"x").is_err()); // closed
    /// let mut reader = Storage::new(bucket, "app.log", Options::default())?;
    /// let mut text = String::new();
    /// std::io::Read::read_to_string(&mut reader, &mut text)?;
    /// assert_eq!(text, "kept");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn discard(&mut self) -> Vec<u8> {
        let unflushed = self.writer.discard();
        self.closed = true;
        self.writer.release();
        self.reader.release();
        unflushed
    }
}

impl Write for Storage {
    /// Appends all of `buf` to the tail object in memory and returns its length; a write is never
    /// split across objects. The first write of a handle lists the stream to find its end. A
    /// write that finds [`Options::part_size`] bytes S3 lacks hands them to a multipart upload,
    /// on a thread of its own, and one that finds the tail full seals it: its last upload goes
    /// on in the background while writing continues in the next object, and it is completed
    /// once the objects before it are. A write waits while the writer holds its budget of
    /// bytes. If an upload fails, the next write or flush returns the error, appends nothing,
    /// and the upload is tried again.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.check_open()?;
        if buf.is_empty() {
            return Ok(0);
        }
        self.writer.write(&mut self.index, buf)?;
        Ok(buf.len())
    }

    /// Makes every byte written so far durable: completes the sealed objects in order, then, if
    /// any byte was written since the tail's last upload, completes the tail: its multipart
    /// upload if parts went out (the rest as the last part), else one PUT of the whole tail,
    /// or once S3 holds [`Options::copy_threshold`] bytes of it, an append by copy of the new
    /// bytes; otherwise sends nothing. On failure nothing is dropped, and the next flush tries
    /// again. Flushing a closed stream is `Ok`: it holds no unflushed byte.
    fn flush(&mut self) -> io::Result<()> {
        Ok(self.writer.flush(&mut self.index)?)
    }
}

impl BufRead for Storage {
    /// Returns the bytes at the read position: from the chunk fetched last, else from this
    /// handle's bytes not yet in S3, else from a ranged GET (while reading is sequential,
    /// [`Options::read_ahead`] GETs run ahead on worker threads). At the end of the stream it
    /// lists the objects again, so bytes appended since by any handle are found.
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.check_open()?;
        self.check_readable()?;
        self.complete_for_read()?;
        Ok(self.available(0)?)
    }

    fn consume(&mut self, amt: usize) {
        self.reader.pos += amt as u64;
    }
}

impl Read for Storage {
    /// Reads from the read position. `Ok(0)` means the end of the stream as of now: a later
    /// read continues from there with whatever was appended since.
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        self.check_open()?;
        self.check_readable()?;
        self.complete_for_read()?;
        // A GET for less than the caller asks for would only cost another request.
        let available = self.available(out.len())?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl Seek for Storage {
    /// Moves the read position to any offset from the first one still in S3 to the stream's
    /// length (its unflushed bytes included), and returns it. Offsets are absolute: they do not
    /// move when older objects are deleted. Seeking from the end, or past the length last seen,
    /// lists the objects; a seek inside the chunk already fetched sends nothing. A target
    /// before the first offset is [`Error::Trimmed`], a negative one or one past the end
    /// [`Error::SeekPositionNotSupported`]; both leave the position unchanged. Writes still
    /// append to the end.
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.check_open()?;
        let pos = self.position()?;
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::Current(delta) => pos.checked_add_signed(delta),
            SeekFrom::End(delta) => self.len()?.checked_add_signed(delta),
        };
        let first = self.index.first();
        let target = match target {
            Some(requested) if requested < first => {
                return Err(Error::Trimmed { requested, first }.into());
            }
            Some(t) if t <= self.known_len() => t,
            Some(t) if !matches!(to, SeekFrom::End(_)) && t <= self.len()? => t,
            _ => return Err(Error::SeekPositionNotSupported.into()),
        };
        self.reader.seek(target);
        self.positioned = true;
        Ok(target)
    }

    /// The read position: the first offset for a new handle. Unlike `seek(Current(0))` it
    /// succeeds even when the position was trimmed since.
    fn stream_position(&mut self) -> io::Result<u64> {
        self.check_open()?;
        Ok(self.position()?)
    }
}

impl Drop for Storage {
    /// Flushes best-effort, as `BufWriter` does, and logs a failure: call
    /// [`close`](Storage::close) to see it. Skipped while panicking.
    fn drop(&mut self) {
        if !self.closed
            && !std::thread::panicking()
            && let Err(err) = self.flush()
        {
            log::error!(
                "dropping the stream {} lost its unflushed bytes: {err}",
                self.writer.tail_key().unwrap_or_default()
            );
        }
    }
}

impl fmt::Debug for Storage {
    /// Shows where the stream is, never the bucket's credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Storage")
            .field("bucket", &self.client.bucket_name())
            .field("tail", &self.writer.tail_key())
            .field("position", &self.reader.pos)
            .field("closed", &self.closed)
            .finish()
    }
}
