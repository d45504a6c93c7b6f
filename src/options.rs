//! Tuning knobs of a [`Storage`](crate::Storage), and the builder that checks them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::Error;
use crate::store::{MAX_COPY, MIN_PART};

const MIB: usize = 1024 * 1024;
/// Each request in flight is a thread and a connection: more than this is a mistake, not a
/// tuning.
const MAX_AHEAD: usize = 64;
/// S3's most parts in one upload.
const MAX_PARTS: u64 = 10_000;
/// S3's largest object.
const MAX_OBJECT: u64 = 5 << 40;

/// How a [`Storage`](crate::Storage) cuts the stream into objects, writes and reads them back.
///
/// Every size is in bytes. Build it with [`Options::builder`], which checks every value, or
/// take [`Options::default`]; the fields are private so that options added later break no
/// caller. Each setting is described at its setter on [`OptionsBuilder`].
///
/// ```
/// use s3_syncr::Options;
///
/// let options = Options::builder().with_seal_size(64 << 20).build()?;
/// assert_eq!(options.seal_size(), 64 << 20);
/// assert_eq!(options.read_chunk(), Options::default().read_chunk());
/// # Ok::<(), s3_syncr::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub(crate) seal_size: usize,
    pub(crate) read_chunk: usize,
    pub(crate) read_ahead: usize,
    pub(crate) retry_attempts: u32,
    pub(crate) retry_backoff: Duration,
    pub(crate) retry_max_elapsed: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) min_throughput: u64,
    pub(crate) conditional_writes: bool,
    pub(crate) verify_reads: bool,
    pub(crate) append_by_copy: Option<usize>,
    pub(crate) part_size: usize,
    pub(crate) write_ahead: usize,
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) directory_bucket: Option<bool>,
    /// How long a writer takes what it knows of the stream's end as current (see
    /// `writer::FRESH`); only the simulator, whose time runs fast, sets another.
    pub(crate) fresh_end: Duration,
    /// Set by the simulator: the handle's requests run one at a time on its own thread, in an
    /// order drawn from this seed (see `job::Bell::stepped`), so that a seed replays exactly.
    pub(crate) stepped: Option<u64>,
}

impl Default for Options {
    /// Objects sealed at 8 MiB, reads of 8 MiB chunks with 4 ahead, appending by copy from
    /// 5 MiB, parts of 8 MiB with 4 uploading at once, 6 attempts per request, fenced writes.
    ///
    /// ```
    /// use s3_syncr::Options;
    ///
    /// let options = Options::default();
    /// assert_eq!(options.seal_size(), 8 << 20);
    /// assert_eq!(options.append_by_copy(), Some(5 << 20));
    /// ```
    fn default() -> Self {
        Options {
            seal_size: 8 * MIB,
            read_chunk: 8 * MIB,
            read_ahead: 4,
            retry_attempts: 6,
            retry_backoff: Duration::from_millis(200),
            retry_max_elapsed: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
            min_throughput: MIB as u64,
            conditional_writes: true,
            verify_reads: true,
            append_by_copy: Some(MIN_PART),
            part_size: 8 * MIB,
            write_ahead: 4,
            ca_file: None,
            directory_bucket: None,
            fresh_end: crate::writer::FRESH,
            stepped: None,
        }
    }
}

impl Options {
    /// A builder that starts from [`Options::default`].
    ///
    /// ```
    /// use s3_syncr::Options;
    ///
    /// let options = Options::builder().with_read_ahead(8).with_write_ahead(8).build()?;
    /// assert_eq!((options.read_ahead(), options.write_ahead()), (8, 8));
    /// # Ok::<(), s3_syncr::Error>(())
    /// ```
    pub fn builder() -> OptionsBuilder {
        OptionsBuilder {
            options: Options::default(),
        }
    }

    /// A builder that starts from these options: to change some of them.
    ///
    /// ```
    /// use s3_syncr::Options;
    ///
    /// let small = Options::builder().with_seal_size(1 << 20).build()?;
    /// let fewer_retries = small.to_builder().with_retry_attempts(2).build()?;
    /// assert_eq!(fewer_retries.seal_size(), 1 << 20);
    /// assert_eq!(fewer_retries.retry_attempts(), 2);
    /// # Ok::<(), s3_syncr::Error>(())
    /// ```
    pub fn to_builder(&self) -> OptionsBuilder {
        OptionsBuilder {
            options: self.clone(),
        }
    }

    /// The size at which the tail object is sealed: the original package's `MinSize`, in
    /// bytes. See [`OptionsBuilder::with_seal_size`].
    ///
    /// ```
    /// use s3_syncr::Options;
    ///
    /// assert_eq!(Options::default().seal_size(), 8 << 20);
    /// ```
    pub fn seal_size(&self) -> usize {
        self.seal_size
    }

    /// The most bytes one ranged GET fetches. See [`OptionsBuilder::with_read_chunk`].
    ///
    /// ```
    /// use s3_syncr::Options;
    ///
    /// assert_eq!(Options::default().read_chunk(), 8 << 20);
    /// ```
    pub fn read_chunk(&self) -> usize {
        self.read_chunk
    }

    /// GETs in flight ahead of a sequential reader. See [`OptionsBuilder::with_read_ahead`].
    ///
    /// ```
    /// use s3_syncr::Options;
    ///
    /// assert_eq!(Options::default().read_ahead(), 4);
    /// ```
    pub fn read_ahead(&self) -> usize {
        self.read_ahead
    }

    /// Most attempts of one request. See [`OptionsBuilder::with_retry_attempts`].
    ///
    /// ```
    /// use s3_syncr::Options;
    ///
    /// assert_eq!(Options::default().retry_attempts(), 6);
    /// ```
    pub fn retry_attempts(&self) -> u32 {
        self.retry_attempts
    }

    /// Upper bound of the first backoff. See [`OptionsBuilder::with_retry_backoff`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use s3_syncr::Options;
    ///
    /// assert_eq!(Options::default().retry_backoff(), Duration::from_millis(200));
    /// ```
    pub fn retry_backoff(&self) -> Duration {
        self.retry_backoff
    }

    /// Most time waited between the attempts of one request. See
    /// [`OptionsBuilder::with_retry_max_elapsed`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use s3_syncr::Options;
    ///
    /// assert_eq!(Options::default().retry_max_elapsed(), Duration::from_secs(30));
    /// ```
    pub fn retry_max_elapsed(&self) -> Duration {
        self.retry_max_elapsed
    }

    /// Time allowed to a request with no body. See [`OptionsBuilder::with_request_timeout`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use s3_syncr::Options;
    ///
    /// assert_eq!(Options::default().request_timeout(), Duration::from_secs(30));
    /// ```
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// Slowest transfer rate allowed for, in bytes per second. See
    /// [`OptionsBuilder::with_min_throughput`].
    ///
    /// ```
    /// use s3_syncr::Options;
    ///
    /// assert_eq!(Options::default().min_throughput(), 1 << 20);
    /// ```
    pub fn min_throughput(&self) -> u64 {
        self.min_throughput
    }

    /// Whether writers are fenced with conditional writes. See
    /// [`OptionsBuilder::with_conditional_writes`].
    ///
    /// ```
    /// use s3_syncr::Options;
    ///
    /// assert_eq!(Options::default().conditional_writes(), true);
    /// ```
    pub fn conditional_writes(&self) -> bool {
        self.conditional_writes
    }

    /// Whether objects read through are checked against their stored checksums. See
    /// [`OptionsBuilder::with_verify_reads`].
    ///
    /// ```
    /// use s3_syncr::Options;
    ///
    /// assert_eq!(Options::default().verify_reads(), true);
    /// ```
    pub fn verify_reads(&self) -> bool {
        self.verify_reads
    }

    /// The size in S3 from which a flush appends by copy, `None` if it never does. See
    /// [`OptionsBuilder::with_append_by_copy`].
    ///
    /// ```
    /// use s3_syncr::Options;
    ///
    /// assert_eq!(Options::default().append_by_copy(), Some(5 << 20));
    /// ```
    pub fn append_by_copy(&self) -> Option<usize> {
        self.append_by_copy
    }

    /// The size of the parts large writes stream out as. See
    /// [`OptionsBuilder::with_part_size`].
    ///
    /// ```
    /// use s3_syncr::Options;
    ///
    /// assert_eq!(Options::default().part_size(), 8 << 20);
    /// ```
    pub fn part_size(&self) -> usize {
        self.part_size
    }

    /// Whether the bucket is taken for an S3 Express One Zone directory bucket, whose flushes
    /// are appends; `None`: by its name (`--<zone-id>--x-s3` at its end). See
    /// [`OptionsBuilder::with_directory_bucket`].
    ///
    /// ```
    /// use s3_syncr::Options;
    ///
    /// assert_eq!(Options::default().directory_bucket(), None);
    /// ```
    pub fn directory_bucket(&self) -> Option<bool> {
        self.directory_bucket
    }

    /// Most parts uploading at once. See [`OptionsBuilder::with_write_ahead`].
    ///
    /// ```
    /// use s3_syncr::Options;
    ///
    /// assert_eq!(Options::default().write_ahead(), 4);
    /// ```
    pub fn write_ahead(&self) -> usize {
        self.write_ahead
    }

    /// The PEM file of CA certificates trusted instead of the usual roots and
    /// `AWS_CA_BUNDLE`. See [`OptionsBuilder::with_ca_file`].
    ///
    /// ```
    /// use s3_syncr::Options;
    ///
    /// assert_eq!(Options::default().ca_file(), None);
    /// ```
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca_file.as_deref()
    }

    /// The deadline of a request that moves `bytes` bytes.
    pub(crate) fn timeout_for(&self, bytes: u64) -> Duration {
        self.request_timeout + Duration::from_secs_f64(bytes as f64 / self.min_throughput as f64)
    }
}

/// Builds [`Options`], checking every value at [`build`](OptionsBuilder::build): a value out of
/// range is an [`Error::InvalidOption`] naming the setting, before any request is sent.
///
/// ```
/// use s3_syncr::{Error, Options};
///
/// let err = Options::builder().with_part_size(1 << 20).build().unwrap_err();
/// assert!(matches!(err, Error::InvalidOption { option: "part_size", .. }));
/// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct OptionsBuilder {
    options: Options,
}

impl OptionsBuilder {
    /// The size in bytes at which the tail object is sealed: the original package's
    /// `MinSize` (given there in MiB). Once the tail holds at least this many bytes, the next
    /// write seals it (it is never written again) and starts the next object. A write of at
    /// most [`part_size`](Self::with_part_size) bytes is never split across objects, and may take the object past it; a
    /// larger one is split where the object reaches it. Default 8 MiB; at least 1 byte, and
    /// small enough that the largest object a writer makes, `seal_size + part_size - 1` bytes,
    /// fits S3's limits: at most 5 TiB, and at most 10,000 parts in one upload, counted as
    /// that size in parts of [`part_size`](Self::with_part_size) (or of 5 GiB, the most S3
    /// copies into one part, if smaller) plus one: an append by copy copies what S3 holds in
    /// parts of up to 5 GiB, then sends the rest in parts of `part_size`, and each may end
    /// with a short one. With the smallest parts, 5 MiB, that is about 48.8 GiB.
    ///
    /// A [`flush`](std::io::Write::flush) re-uploads the whole tail until S3 holds
    /// [`append_by_copy`](Self::with_append_by_copy) bytes of it, then only the new bytes:
    /// flushing every `K` bytes into objects of `S` bytes uploads about
    /// `1 + min(S, T)² / 2KS` times the data written, `T` the threshold. A large seal size
    /// means fewer objects and requests for reading, and frequent flushes stay cheap in bytes.
    /// With appending by copy, memory does not grow with it (see
    /// [`part_size`](Self::with_part_size)); without, the writer holds the whole tail, whose
    /// bytes a flush must send again.
    ///
    /// ```
    /// use s3_syncr::Options;
    ///
    /// let options = Options::builder().with_seal_size(64 << 20).build()?;
    /// assert_eq!(options.seal_size(), 64 << 20);
    /// assert!(Options::builder().with_seal_size(0).build().is_err());
    /// # Ok::<(), s3_syncr::Error>(())
    /// ```
    pub fn with_seal_size(mut self, bytes: usize) -> Self {
        self.options.seal_size = bytes;
        self
    }

    /// Largest number of bytes fetched by one ranged GET when reading. Default 8 MiB; at
    /// least 1.
    ///
    /// The first read after opening or seeking sends one GET of 4 KiB (or of the caller's
    /// buffer, if larger), so that a seek followed by a short read does not fetch a whole
    /// chunk. Reads that go on from there are sequential: each further GET is four times the
    /// one before, up to this size, with [`read_ahead`](Self::with_read_ahead) of them in
    /// flight.
    ///
    /// ```
    /// use s3_syncr::Options;
    ///
    /// let options = Options::builder().with_read_chunk(1 << 20).build()?;
    /// assert_eq!(options.read_chunk(), 1 << 20);
    /// # Ok::<(), s3_syncr::Error>(())
    /// ```
    pub fn with_read_chunk(mut self, bytes: usize) -> Self {
        self.options.read_chunk = bytes;
        self
    }

    /// Ranged GETs kept in flight ahead of a sequential reader, each on its own connection and
    /// thread, across object boundaries. Default 4; 0 fetches every chunk in the
    /// caller's thread when it is needed. At most 64.
    ///
    /// The reader holds at most `read_ahead + 1` buffers of at most
    /// [`read_chunk`](Self::with_read_chunk) bytes (40 MiB with the defaults). On a link whose
    /// round trip is `t` and whose connections each carry `r` bytes per second, one GET of `c`
    /// bytes moves `c / (t + c / r)`: more GETs in flight make up for the round trips. A seek
    /// drops the GETs under way (cutting their responses short); an error surfaces at the read
    /// that needs the bytes, after the usual retries.
    ///
    /// ```
    /// use s3_syncr::Options;
    ///
    /// let options = Options::builder().with_read_ahead(0).build()?;
    /// assert_eq!(options.read_ahead(), 0);
    /// # Ok::<(), s3_syncr::Error>(())
    /// ```
    pub fn with_read_ahead(mut self, gets: usize) -> Self {
        self.options.read_ahead = gets;
        self
    }

    /// Most attempts of one request, the first included. Default 6; at least 1.
    ///
    /// Failures that may pass (HTTP 5xx, 408, 429 and `SlowDown`, refused or reset connections,
    /// timeouts, cut responses) are retried with exponential backoff and full jitter; other
    /// errors are returned at once. A request that fails on a kept-alive connection which the
    /// server closed meanwhile (the connection ends or is reset before any byte of the answer,
    /// within a second of the request) is sent again on another connection at once and counts
    /// as no attempt; any other failure on such a connection, a timeout included, is an
    /// attempt.
    ///
    /// ```
    /// use s3_syncr::Options;
    ///
    /// let options = Options::builder().with_retry_attempts(1).build()?; // no retry
    /// assert_eq!(options.retry_attempts(), 1);
    /// # Ok::<(), s3_syncr::Error>(())
    /// ```
    pub fn with_retry_attempts(mut self, attempts: u32) -> Self {
        self.options.retry_attempts = attempts;
        self
    }

    /// Upper bound of the first backoff; each retry doubles it. Default 200 ms.
    ///
    /// ```
    /// use std::time::Duration;
    /// use s3_syncr::Options;
    ///
    /// let options = Options::builder().with_retry_backoff(Duration::from_millis(50)).build()?;
    /// assert_eq!(options.retry_backoff(), Duration::from_millis(50));
    /// # Ok::<(), s3_syncr::Error>(())
    /// ```
    pub fn with_retry_backoff(mut self, backoff: Duration) -> Self {
        self.options.retry_backoff = backoff;
        self
    }

    /// Most time spent between the attempts of one request, backoffs included: no retry
    /// starts whose backoff would take it past this. Default 30 s.
    ///
    /// The attempts themselves do not count: each is bounded by its own deadline (see
    /// [`with_request_timeout`](Self::with_request_timeout)) and their number by
    /// [`with_retry_attempts`](Self::with_retry_attempts), so a request whose every attempt
    /// times out still gets all its attempts, however its deadline compares with this. A
    /// request moving `n` bytes that keeps failing gives up within about
    /// `retry_attempts × (request_timeout + n / min_throughput) + retry_max_elapsed` (the
    /// prompt resends after closed connections that count as no attempt add under a second
    /// each).
    ///
    /// ```
    /// use std::time::Duration;
    /// use s3_syncr::Options;
    ///
    /// let options = Options::builder().with_retry_max_elapsed(Duration::from_secs(5)).build()?;
    /// assert_eq!(options.retry_max_elapsed(), Duration::from_secs(5));
    /// # Ok::<(), s3_syncr::Error>(())
    /// ```
    pub fn with_retry_max_elapsed(mut self, elapsed: Duration) -> Self {
        self.options.retry_max_elapsed = elapsed;
        self
    }

    /// Time allowed to a request with no body; a request moving `n` bytes gets
    /// `request_timeout + n / min_throughput`. Default 30 s; more than zero.
    ///
    /// ```
    /// use std::time::Duration;
    /// use s3_syncr::Options;
    ///
    /// let options = Options::builder().with_request_timeout(Duration::from_secs(5)).build()?;
    /// assert_eq!(options.request_timeout(), Duration::from_secs(5));
    /// # Ok::<(), s3_syncr::Error>(())
    /// ```
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.options.request_timeout = timeout;
        self
    }

    /// Slowest transfer rate, in bytes per second, that a request's deadline allows for: big
    /// objects on slow links get time in proportion. Default 1 MiB/s; at least 1.
    ///
    /// ```
    /// use s3_syncr::Options;
    ///
    /// let options = Options::builder().with_min_throughput(100_000).build()?;
    /// assert_eq!(options.min_throughput(), 100_000);
    /// # Ok::<(), s3_syncr::Error>(())
    /// ```
    pub fn with_min_throughput(mut self, bytes_per_second: u64) -> Self {
        self.options.min_throughput = bytes_per_second;
        self
    }

    /// Fence writers with conditional writes: a new object is created with `If-None-Match: *`
    /// and the tail is overwritten with `If-Match: <its ETag>`, so that a second writer on the
    /// same stream gets [`Error::Fenced`] instead of silently interleaving. Default `true`.
    ///
    /// Turn it off only for servers that reject these headers: some (Garage) ignore them, and
    /// then nothing stops two concurrent writers from corrupting the stream.
    ///
    /// ```
    /// use s3_syncr::Options;
    ///
    /// let options = Options::builder().with_conditional_writes(false).build()?;
    /// assert!(!options.conditional_writes());
    /// # Ok::<(), s3_syncr::Error>(())
    /// ```
    pub fn with_conditional_writes(mut self, fence: bool) -> Self {
        self.options.conditional_writes = fence;
        self
    }

    /// Check every object read from its first byte to its last against the CRC32C checksum
    /// the server stores for it (s3-syncr sends one with every write). A mismatch is
    /// [`Error::Corrupt`], kind `InvalidData`, and no byte of the
    /// object is handed out: the reader holds an object until it has all of it, when it fits
    /// in the read-ahead buffers (`read_ahead` chunks); a larger one is checked before its
    /// last chunk is handed out. A mismatch is fetched again first (up to `retry_attempts`
    /// fetches), since a bit flipped on the way is its usual cause, and then asked about
    /// again with a HEAD: a server may answer with another version's checksum while an object
    /// is rewritten. A follower ([`Storage::wait_for_data`](crate::Storage::wait_for_data))
    /// checks what it fetched of an object from its first byte on once the object is sealed,
    /// before the bytes that complete it are handed out. Default `true`.
    ///
    /// Reads that start inside an object (after a seek) cannot be checked, nor can an object
    /// a follower saw only part of, or one that is not sealed yet; objects without a stored
    /// checksum (written by s3-syncr 0.1, other tools, or servers that keep none) are read as
    /// they are. Checking costs a CRC of the bytes read (memory speed) and,
    /// where an answer to a ranged GET does not carry the checksum, one HEAD per object. Turn
    /// it off for random access that often starts at an object's first byte: a first read
    /// there fetches the whole object.
    ///
    /// ```
    /// use s3_syncr::Options;
    ///
    /// let options = Options::builder().with_verify_reads(false).build()?;
    /// assert!(!options.verify_reads());
    /// # Ok::<(), s3_syncr::Error>(())
    /// ```
    pub fn with_verify_reads(mut self, verify: bool) -> Self {
        self.options.verify_reads = verify;
        self
    }

    /// Appending by copy: with `Some(bytes)`, once the tail object in S3 holds at least that
    /// many bytes, a flush sends only the bytes S3 lacks, as a multipart upload to the same
    /// key whose first part the server copies from the object as it stands (UploadPartCopy),
    /// then `CompleteMultipartUpload`, fenced with `If-Match` like a PUT. Below it, a flush
    /// PUTs the whole tail. With `None`, every flush sends the whole tail, for servers without
    /// UploadPartCopy. Default `Some(5 MiB)`; the threshold is at least 5 MiB, the smallest
    /// part S3 accepts before the last.
    ///
    /// An append by copy costs four requests (create, copy, part, complete) where a PUT costs
    /// one, and saves re-sending `S` bytes: it pays once `S / bandwidth` exceeds three round
    /// trips. On loopback that is always; on a link with a 60 ms round trip (handshakes
    /// included) and 50 MB/s, from about 9 MB: raise the threshold there to favour flush
    /// latency over bytes sent.
    ///
    /// Large writes stream out as parts either way (see [`part_size`](Self::with_part_size)).
    ///
    /// ```
    /// use s3_syncr::Options;
    ///
    /// let later = Options::builder().with_append_by_copy(Some(16 << 20)).build()?;
    /// assert_eq!(later.append_by_copy(), Some(16 << 20));
    /// let never = Options::builder().with_append_by_copy(None).build()?;
    /// assert_eq!(never.append_by_copy(), None);
    /// assert!(Options::builder().with_append_by_copy(Some(1 << 20)).build().is_err());
    /// # Ok::<(), s3_syncr::Error>(())
    /// ```
    pub fn with_append_by_copy(mut self, from_bytes: Option<usize>) -> Self {
        self.options.append_by_copy = from_bytes;
        self
    }

    /// Size of the parts that large writes stream out as. Default 8 MiB; at least 5 MiB
    /// (S3's smallest part).
    ///
    /// Once a tail holds this many bytes S3 lacks, they go out as a part of a multipart
    /// upload to the tail's key, on a thread of its own, while writing goes on; a flush or a
    /// seal sends the rest as the last part and completes the upload. Objects are completed in
    /// stream order, each once the one before it is, so that a crash leaves no gap.
    ///
    /// With appending by copy, the writer holds at most about `(write_ahead + 1) × part_size`
    /// bytes (40 MiB with the defaults) plus one part at most of the write under way (a
    /// larger write is taken a part at a time), whatever the
    /// [`seal_size`](Self::with_seal_size) is: past that it waits for uploads to end, and
    /// lets go of the parts of the tail that S3 already has. Those are read back from S3 once
    /// the tail is flushed (a read of them flushes first), and are lost with the upload if
    /// another writer fences this one: [`unflushed`](crate::Storage::unflushed) then lacks
    /// them. That happens only to a tail larger than the budget that is not flushed. Without
    /// appending by copy, the tail stays in memory until it is sealed, since the next flush
    /// sends it again; the parts in flight are bounded all the same.
    ///
    /// ```
    /// use s3_syncr::Options;
    ///
    /// let options = Options::builder().with_part_size(16 << 20).build()?;
    /// assert_eq!(options.part_size(), 16 << 20);
    /// # Ok::<(), s3_syncr::Error>(())
    /// ```
    pub fn with_part_size(mut self, bytes: usize) -> Self {
        self.options.part_size = bytes;
        self
    }

    /// Most parts uploading at once, across objects, each on its own connection and thread.
    /// Default 4; between 1 and 64.
    ///
    /// On a link whose round trip is `t` and whose connections each carry `r` bytes per
    /// second, one upload of `p` bytes moves `p / (t + p / r)`: more in flight make up for the
    /// round trips, as [`read_ahead`](Self::with_read_ahead) does for reads.
    ///
    /// ```
    /// use s3_syncr::Options;
    ///
    /// let options = Options::builder().with_write_ahead(1).build()?;
    /// assert_eq!(options.write_ahead(), 1);
    /// # Ok::<(), s3_syncr::Error>(())
    /// ```
    pub fn with_write_ahead(mut self, parts: usize) -> Self {
        self.options.write_ahead = parts;
        self
    }

    /// A PEM file of CA certificates to trust for HTTPS instead of Mozilla's roots (built
    /// in), the platform's and the file that `AWS_CA_BUNDLE` names: an on-premises server
    /// (MinIO, Ceph, SeaweedFS) whose certificate comes from a private CA. Default none: the
    /// bundle that `AWS_CA_BUNDLE` names, if any, else the built-in and platform roots. As
    /// with the AWS CLI (its `--ca-bundle`, which overrides `AWS_CA_BUNDLE` likewise), a
    /// bundle replaces the default roots rather than adding to them, which pins the endpoint
    /// to its CA; a bundle for AWS itself must hold the public roots. A file that cannot be
    /// read, or holds no certificate, fails [`Storage::new`](crate::Storage::new) with
    /// [`Error::InvalidConfig`]; a certificate that the roots trusted do not vouch for fails
    /// every request, and is never let through.
    ///
    /// All the handles of a process that trust the same roots share one pool of connections,
    /// kept open between requests (at most 32 idle per host, each closed after 10 s idle),
    /// and one TLS configuration.
    ///
    /// ```
    /// use std::path::Path;
    /// use s3_syncr::Options;
    ///
    /// let options = Options::builder().with_ca_file(Some("/etc/ssl/minio-ca.pem".into())).build()?;
    /// assert_eq!(options.ca_file(), Some(Path::new("/etc/ssl/minio-ca.pem")));
    /// # Ok::<(), s3_syncr::Error>(())
    /// ```
    pub fn with_ca_file(mut self, pem: Option<PathBuf>) -> Self {
        self.options.ca_file = pem;
        self
    }

    /// Whether the bucket is an S3 Express One Zone directory bucket. Default `None`: a
    /// bucket whose name ends in `--<zone-id>--x-s3` is one, as AWS names them; `Some` says
    /// so for a bucket named otherwise (a test server, an endpoint behind an alias).
    ///
    /// In a directory bucket every flush is one append of exactly the bytes S3 lacks
    /// (`PutObject` with `x-amz-write-offset-bytes`), requests carry the bucket's session
    /// credentials (from `CreateSession`, renewed before they lapse), and an object is also
    /// sealed when S3 refuses more appends to it (10,000 parts). See the crate's
    /// documentation, *S3 Express One Zone*.
    ///
    /// ```
    /// use s3_syncr::Options;
    ///
    /// let options = Options::builder().with_directory_bucket(Some(true)).build()?;
    /// assert_eq!(options.directory_bucket(), Some(true));
    /// # Ok::<(), s3_syncr::Error>(())
    /// ```
    pub fn with_directory_bucket(mut self, directory: Option<bool>) -> Self {
        self.options.directory_bucket = directory;
        self
    }

    /// Checks every value, and each against the others, and returns the options.
    ///
    /// ```
    /// use s3_syncr::{Error, Options};
    ///
    /// let err = Options::builder().with_write_ahead(0).build().unwrap_err();
    /// assert!(matches!(err, Error::InvalidOption { option: "write_ahead", .. }));
    /// ```
    pub fn build(self) -> Result<Options, Error> {
        let o = self.options;
        let invalid =
            |option: &'static str, reason: String| Err(Error::InvalidOption { option, reason });
        if o.seal_size == 0 {
            return invalid("seal_size", "must be at least 1 byte".into());
        }
        if o.read_chunk == 0 {
            return invalid("read_chunk", "must be at least 1 byte".into());
        }
        if o.read_ahead > MAX_AHEAD {
            return invalid(
                "read_ahead",
                format!("must be at most {MAX_AHEAD}, got {}", o.read_ahead),
            );
        }
        if o.retry_attempts == 0 {
            return invalid("retry_attempts", "must be at least 1 (the first)".into());
        }
        if o.request_timeout.is_zero() {
            return invalid("request_timeout", "must be more than zero".into());
        }
        if o.min_throughput == 0 {
            return invalid(
                "min_throughput",
                "must be at least 1 byte per second".into(),
            );
        }
        if let Some(from) = o.append_by_copy.filter(|&from| from < MIN_PART) {
            return invalid(
                "append_by_copy",
                format!("must be at least {MIN_PART} bytes (S3's smallest part), got {from}"),
            );
        }
        if o.part_size < MIN_PART {
            return invalid(
                "part_size",
                format!(
                    "must be at least {MIN_PART} bytes (S3's smallest part), got {}",
                    o.part_size
                ),
            );
        }
        if !(1..=MAX_AHEAD).contains(&o.write_ahead) {
            return invalid(
                "write_ahead",
                format!("must be between 1 and {MAX_AHEAD}, got {}", o.write_ahead),
            );
        }
        // A write of up to a part is taken whole by a tail just short of its seal.
        let largest = (o.seal_size as u64).saturating_add(o.part_size as u64 - 1);
        if largest > MAX_OBJECT {
            return invalid(
                "seal_size",
                format!(
                    "an object may reach {largest} bytes (seal_size + part_size - 1), more \
                     than S3's largest, {MAX_OBJECT}"
                ),
            );
        }
        // An upload of that object copies the `c` bytes S3 held in ⌈c / MAX_COPY⌉ parts and
        // sends the rest in ⌈(largest - c) / part_size⌉: together at most one more than the
        // object takes in parts of the smaller size, whatever `c` is.
        let smallest = (o.part_size as u64).min(MAX_COPY);
        if largest.div_ceil(smallest) + 1 > MAX_PARTS {
            return invalid(
                "seal_size",
                format!(
                    "an object of up to {largest} bytes (seal_size + part_size - 1) would take \
                     more than {MAX_PARTS} parts, copied in parts of up to {MAX_COPY} bytes and \
                     sent in parts of {} bytes",
                    o.part_size
                ),
            );
        }
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(builder: OptionsBuilder) -> &'static str {
        match builder.build() {
            Err(Error::InvalidOption { option, .. }) => option,
            other => panic!("expected InvalidOption, got {other:?}"),
        }
    }

    #[test]
    fn rejects_out_of_range_values() {
        let b = Options::builder;
        assert_eq!(refused(b().with_seal_size(0)), "seal_size");
        assert_eq!(refused(b().with_seal_size(usize::MAX)), "seal_size");
        let copy = b().with_append_by_copy(Some(MIN_PART - 1));
        assert_eq!(refused(copy), "append_by_copy");
        assert_eq!(refused(b().with_part_size(MIN_PART - 1)), "part_size");
        assert_eq!(refused(b().with_read_chunk(0)), "read_chunk");
        assert_eq!(refused(b().with_read_ahead(65)), "read_ahead");
        assert_eq!(refused(b().with_write_ahead(65)), "write_ahead");
        assert_eq!(refused(b().with_retry_attempts(0)), "retry_attempts");
        assert_eq!(refused(b().with_min_throughput(0)), "min_throughput");
        let instant = b().with_request_timeout(Duration::ZERO);
        assert_eq!(refused(instant), "request_timeout");
    }

    #[test]
    fn default_is_valid_and_unchanged_by_the_builder() {
        assert_eq!(Options::builder().build().unwrap(), Options::default());
        assert_eq!(Options::default().seal_size, 8 * MIB);
    }

    fn b_parts(seal_size: usize, part_size: usize) -> Result<Options, Error> {
        (Options::builder().with_part_size(part_size))
            .with_seal_size(seal_size)
            .build()
    }

    #[test]
    fn an_upload_of_the_largest_object_fits_in_10_000_parts() {
        // 9,999 parts of an object of seal_size + part_size - 1 bytes, and one for the short
        // end of the copied bytes.
        let largest = (MAX_PARTS as usize - 2) * MIN_PART + 1;
        let most = b_parts(largest, MIN_PART);
        assert!(most.is_ok(), "{most:?}");
        let more = b_parts(largest + 1, MIN_PART);
        assert!(matches!(
            more,
            Err(Error::InvalidOption {
                option: "seal_size",
                ..
            })
        ));
    }

    #[cfg(target_pointer_width = "64")]
    #[test]
    fn no_object_exceeds_5_tib() {
        // Parts of 1 GiB: 5 TiB takes 5,120 of them, so only the size limits.
        let part = 1 << 30;
        let largest = (MAX_OBJECT as usize) - part + 1;
        let most = b_parts(largest, part);
        assert!(most.is_ok(), "{most:?}");
        for seal in [largest + 1, MAX_OBJECT as usize, MAX_OBJECT as usize + 1] {
            let err = b_parts(seal, part).unwrap_err();
            assert!(matches!(
                err,
                Error::InvalidOption {
                    option: "seal_size",
                    ..
                }
            ));
        }
    }
}
