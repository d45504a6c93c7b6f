//! Tuning knobs of a [`Storage`](crate::Storage), and the builder that checks them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::store::MIN_PART;

mod builder;
#[cfg(test)]
mod tests;

pub use builder::OptionsBuilder;

const MIB: usize = 1024 * 1024;

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
