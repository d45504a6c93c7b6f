//! Tuning knobs of a [`Storage`](crate::Storage).

use std::path::PathBuf;
use std::time::Duration;

use crate::Error;
use crate::client::MIN_PART;

const MIB: usize = 1024 * 1024;
/// Each request in flight is a thread and a connection: more than this is a mistake, not a
/// tuning.
const MAX_AHEAD: usize = 64;
/// S3's most parts in one upload.
const MAX_PARTS: usize = 10_000;

/// How a [`Storage`](crate::Storage) cuts the stream into objects and reads it back.
///
/// Build it with struct-update syntax so that fields added later keep their defaults:
///
/// ```
/// use s3_syncr::Options;
///
/// let options = Options { min_size: 64, ..Options::default() };
/// assert_eq!(options.min_size, 64);
/// assert_eq!(options.read_chunk, 8 * 1024 * 1024);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Size in MiB (as the original `MinSize`) from which the tail object is sealed and the next
    /// bytes go to a new object. Default 8. A write of at most [`part_size`](Options::part_size)
    /// bytes (of at most `min_size` without appending by copy) is never split across objects,
    /// and may take the object past it; a larger one is split where the object reaches it.
    ///
    /// A [`flush`](std::io::Write::flush) re-uploads the whole tail until S3 holds
    /// [`copy_threshold`](Options::copy_threshold) bytes of it, then only the new bytes: flushing
    /// every `K` bytes into objects of `S` bytes uploads about `1 + min(S, T)² / 2KS` times the
    /// data written, `T` the threshold. A large `min_size` means fewer objects and requests for
    /// reading, and frequent flushes stay cheap in bytes. With appending by copy, memory does
    /// not grow with it (see [`part_size`](Options::part_size)); without, the writer holds the
    /// tail and one sealed object until its background upload is confirmed.
    pub min_size: usize,
    /// Largest number of bytes fetched by one ranged GET when reading. Default 8 MiB.
    ///
    /// The first read after opening or seeking sends one GET of 4 KiB (or of the caller's
    /// buffer, if larger), so that a seek followed by a short read does not fetch a whole
    /// chunk. Reads that go on from there are sequential: each further GET is four times the
    /// one before, up to this size, with [`read_ahead`](Options::read_ahead) of them in flight.
    pub read_chunk: usize,
    /// Ranged GETs kept in flight ahead of a sequential reader, each on its own connection and
    /// worker thread, across object boundaries. Default 4; 0 fetches every chunk in the
    /// caller's thread when it is needed. At most 64.
    ///
    /// The reader holds at most `read_ahead + 1` buffers of at most
    /// [`read_chunk`](Options::read_chunk) bytes (40 MiB with the defaults). On a link whose
    /// round trip is `t` and whose connections each carry `r` bytes per second, one GET of `c`
    /// bytes moves `c / (t + c / r)`: more GETs in flight make up for the round trips. A seek
    /// drops the GETs under way (cutting their responses short); an error surfaces at the read
    /// that needs the bytes, after the usual retries.
    pub read_ahead: usize,
    /// Most attempts of one request, the first included. Default 6.
    ///
    /// Failures that may pass (HTTP 5xx, 408, 429 and `SlowDown`, refused or reset connections,
    /// timeouts, cut responses) are retried with exponential backoff and full jitter; other
    /// errors are returned at once. A request that fails on a kept-alive connection which the
    /// server closed meanwhile, before any byte of the answer, is sent again on another
    /// connection at once and counts as no attempt.
    pub retry_attempts: u32,
    /// Upper bound of the first backoff; each retry doubles it. Default 200 ms.
    pub retry_backoff: Duration,
    /// No retry starts once this much time has passed since the first attempt. Default 30 s.
    pub retry_max_elapsed: Duration,
    /// Time allowed to a request with no body; a request moving `n` bytes gets
    /// `request_timeout + n / min_throughput`. Default 30 s.
    pub request_timeout: Duration,
    /// Slowest transfer rate, in bytes per second, that a request's deadline allows for: big
    /// objects on slow links get time in proportion. Default 1 MiB/s.
    pub min_throughput: u64,
    /// Fence writers with conditional PUTs: a new object is created with `If-None-Match: *` and
    /// the tail is overwritten with `If-Match: <its ETag>`, so that a second writer on the same
    /// stream gets [`Error::Fenced`] instead of silently interleaving. Default `true`.
    ///
    /// Turn it off only for servers that reject these headers: some (Garage) ignore them, and
    /// then nothing stops two concurrent writers from corrupting the stream.
    pub conditional_writes: bool,
    /// Once the tail object in S3 holds at least this many bytes, a flush sends only the bytes
    /// S3 lacks: a multipart upload to the same key whose first part the server copies from the
    /// object as it stands (UploadPartCopy), then `CompleteMultipartUpload`, fenced with
    /// `If-Match` like a PUT. Below it, a flush PUTs the whole tail. Default 5 MiB, the smallest
    /// part S3 accepts before the last, and so the least allowed.
    ///
    /// An append by copy costs four requests (create, copy, part, complete) where a PUT costs
    /// one, and saves re-sending `S` bytes: it pays once `S / bandwidth` exceeds three round
    /// trips. On loopback that is always; on a link with a 60 ms round trip (handshakes
    /// included) and 50 MB/s, from about 9 MB: raise the threshold there to favour flush
    /// latency over bytes sent.
    pub copy_threshold: usize,
    /// Append by copy at all (see [`copy_threshold`](Options::copy_threshold)). Default `true`;
    /// turn it off for servers without UploadPartCopy. Each flush then re-uploads the whole
    /// tail.
    pub append_by_copy: bool,
    /// Size of the parts that large writes stream out as, with appending by copy. Default
    /// 8 MiB; at least 5 MiB (S3's smallest part), and at most a ten-thousandth of the largest
    /// object (S3's most parts).
    ///
    /// Once a tail holds this many bytes S3 lacks, they go out as a part of a multipart
    /// upload to the tail's key, on a thread of its own, while writing goes on; a flush or a
    /// seal sends the rest as the last part and completes the upload. Objects are completed in
    /// stream order, each once the one before it is, so that a crash leaves no gap.
    ///
    /// The writer holds at most about `(write_ahead + 1) × part_size` bytes (40 MiB with the
    /// defaults) plus one part at most of the write under way (a larger write is taken a part at
    /// a time), whatever [`min_size`](Options::min_size) is:
    /// past that it waits for uploads to end, and lets go of the parts of the tail that S3
    /// already has. Those are read back from S3 once the tail is flushed (a read of them
    /// flushes first), and are lost with the upload if another writer fences this one:
    /// [`unflushed`](crate::Storage::unflushed) then lacks them. That happens only to a tail
    /// larger than the budget that is not flushed.
    pub part_size: usize,
    /// Most parts uploading at once, across objects, each on its own connection and thread.
    /// Default 4; between 1 and 64.
    ///
    /// On a link whose round trip is `t` and whose connections each carry `r` bytes per
    /// second, one upload of `p` bytes moves `p / (t + p / r)`: more in flight make up for the
    /// round trips, as [`read_ahead`](Options::read_ahead) does for reads.
    pub write_ahead: usize,
    /// A PEM file of CA certificates to trust for HTTPS, besides Mozilla's roots (built in),
    /// the platform's and those of the file that `AWS_CA_BUNDLE` names, as the AWS CLI reads
    /// it: an on-premises server (MinIO, Ceph, SeaweedFS) whose certificate comes from a
    /// private CA. Default `None`. A file that cannot be read, or holds no certificate, fails
    /// [`Storage::new`](crate::Storage::new); a certificate that none of these roots vouches
    /// for fails every request, and is never let through.
    ///
    /// All the handles of a process that trust the same roots share one pool of connections,
    /// kept open between requests (at most 32 idle per host, each closed after 10 s idle),
    /// and one TLS configuration.
    pub ca_file: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            min_size: 8,
            read_chunk: 8 * MIB,
            read_ahead: 4,
            retry_attempts: 6,
            retry_backoff: Duration::from_millis(200),
            retry_max_elapsed: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
            min_throughput: MIB as u64,
            conditional_writes: true,
            copy_threshold: MIN_PART,
            append_by_copy: true,
            part_size: 8 * MIB,
            write_ahead: 4,
            ca_file: None,
        }
    }
}

impl Options {
    /// The deadline of a request that moves `bytes` bytes.
    pub(crate) fn timeout_for(&self, bytes: u64) -> Duration {
        self.request_timeout + Duration::from_secs_f64(bytes as f64 / self.min_throughput as f64)
    }

    /// The sealing threshold in bytes, after checking every field.
    pub(crate) fn seal_bytes(&self) -> Result<usize, Error> {
        if self.read_chunk == 0 {
            return Err(Error::InvalidConfig(
                "read_chunk must be at least 1 byte".into(),
            ));
        }
        if self.copy_threshold < MIN_PART {
            return Err(Error::InvalidConfig(format!(
                "copy_threshold must be at least {MIN_PART} bytes (S3's smallest part), got {}",
                self.copy_threshold
            )));
        }
        if self.part_size < MIN_PART {
            return Err(Error::InvalidConfig(format!(
                "part_size must be at least {MIN_PART} bytes (S3's smallest part), got {}",
                self.part_size
            )));
        }
        if !(1..=MAX_AHEAD).contains(&self.write_ahead) {
            return Err(Error::InvalidConfig(format!(
                "write_ahead must be between 1 and {MAX_AHEAD}, got {}",
                self.write_ahead
            )));
        }
        if self.read_ahead > MAX_AHEAD {
            return Err(Error::InvalidConfig(format!(
                "read_ahead must be at most {MAX_AHEAD}, got {}",
                self.read_ahead
            )));
        }
        match self.min_size.checked_mul(MIB) {
            // The copied part, the parts of a full object, and the last one that crosses it.
            Some(bytes) if bytes / self.part_size + 2 > MAX_PARTS => {
                Err(Error::InvalidConfig(format!(
                    "min_size {} MiB would take more than {MAX_PARTS} parts of {} bytes",
                    self.min_size, self.part_size
                )))
            }
            Some(bytes) if bytes > 0 => Ok(bytes),
            _ => Err(Error::InvalidConfig(format!(
                "min_size must be between 1 and {} MiB, got {}",
                usize::MAX / MIB,
                self.min_size
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_out_of_range_values() {
        let zero = Options {
            min_size: 0,
            ..Options::default()
        };
        assert!(matches!(zero.seal_bytes(), Err(Error::InvalidConfig(_))));
        let huge = Options {
            min_size: usize::MAX,
            ..Options::default()
        };
        assert!(matches!(huge.seal_bytes(), Err(Error::InvalidConfig(_))));
        let small_copy = Options {
            copy_threshold: MIN_PART - 1,
            ..Options::default()
        };
        assert!(matches!(
            small_copy.seal_bytes(),
            Err(Error::InvalidConfig(_))
        ));
        let no_chunk = Options {
            read_chunk: 0,
            ..Options::default()
        };
        assert!(matches!(
            no_chunk.seal_bytes(),
            Err(Error::InvalidConfig(_))
        ));
        let too_deep = Options {
            read_ahead: 65,
            ..Options::default()
        };
        assert!(matches!(
            too_deep.seal_bytes(),
            Err(Error::InvalidConfig(_))
        ));
        assert_eq!(Options::default().seal_bytes().unwrap(), 8 * MIB);
    }
}
