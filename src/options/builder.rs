//! The builder of [`Options`], and the checks that make its values ones S3 takes.

use std::path::PathBuf;
use std::time::Duration;

use super::Options;
use crate::Error;
use crate::store::{MAX_COPY, MIN_PART};

/// Each request in flight is a thread and a connection: more than this is a mistake, not a
/// tuning.
const MAX_AHEAD: usize = 64;
/// S3's most parts in one upload.
pub(super) const MAX_PARTS: u64 = 10_000;
/// S3's largest object.
pub(super) const MAX_OBJECT: u64 = 5 << 40;

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
    pub(super) options: Options,
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
