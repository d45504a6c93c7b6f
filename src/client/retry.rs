//! The retry policy every request runs under, and how a failure becomes an [`Error`].

use std::hash::{BuildHasher, RandomState};
use std::io;
use std::time::{Duration, Instant};

use s3::Bucket;
use s3::error::S3Error;

use super::{S3Client, wire, xml_text};
use crate::Error;

/// Most resends of one request after failures on pooled connections that the server had
/// closed: more than the pool keeps per host would mean something else is wrong.
const STALE_RESENDS: u32 = 33;

impl S3Client {
    /// Runs one request under the retry policy: each attempt gets a deadline for `bytes` bytes,
    /// is logged at debug level (operation, key, bytes, time), and a transient failure is
    /// retried after a jittered exponential backoff while attempts remain and the time spent
    /// between attempts stays within `retry_max_elapsed`.
    pub(super) fn request<T>(
        &self,
        op: &'static str,
        key: &str,
        bytes: u64,
        attempt: impl FnMut(&Bucket) -> Result<T, S3Error>,
    ) -> Result<T, Error> {
        self.request_until(op, key, bytes, || false, attempt)
    }

    /// [`request`](S3Client::request), with no retry once `given_up` says the answer is no
    /// longer wanted.
    pub(super) fn request_until<T>(
        &self,
        op: &'static str,
        key: &str,
        bytes: u64,
        given_up: impl Fn() -> bool,
        mut attempt: impl FnMut(&Bucket) -> Result<T, S3Error>,
    ) -> Result<T, Error> {
        let options = &self.options;
        let timeout = options.timeout_for(bytes);
        let first = Instant::now();
        // Time spent in the attempts themselves. The budget (`retry_max_elapsed`) is for the
        // rest, the time between attempts: counting the attempts too, one that ran into its
        // deadline (as long as the budget, with the defaults) would leave no time for a retry,
        // and timeouts would never be retried. Each attempt is bounded by its deadline and
        // their number by `retry_attempts`, so the whole stays bounded.
        let mut attempting = Duration::ZERO;
        let mut backoff = options.retry_backoff;
        let mut number = 0;
        let mut resent = 0;
        loop {
            number += 1;
            // Each attempt, since a retry may start after the credentials' margin has begun.
            let bucket = self.bucket.for_attempt(timeout);
            let started = Instant::now();
            let result = self
                .session_bucket(bucket)
                .and_then(|bucket| attempt(&bucket));
            let took = started.elapsed();
            attempting += took;
            let ms = took.as_secs_f64() * 1000.0;
            let err = match result {
                Ok(value) => {
                    log::debug!("{op} {key} {bytes} bytes in {ms:.1} ms");
                    return Ok(value);
                }
                Err(err) => self.map_error(op, key, err),
            };
            log::debug!("{op} {key} {bytes} bytes failed in {ms:.1} ms: {err}");
            // A connection the server closed while it sat in the pool says nothing of the
            // request: it goes again at once on another, and counts as no attempt. Each one
            // such failure takes out of the pool, so this ends; and each came soon after the
            // request began (a timeout is never one), so it adds little time.
            if wire::failed_stale() && resent < STALE_RESENDS && !given_up() {
                log::debug!("{op} {key}: the pooled connection was closed; sending again");
                number -= 1;
                resent += 1;
                continue;
            }
            let delay = backoff.mul_f64(jitter());
            if !is_transient(&err)
                || given_up()
                || number >= options.retry_attempts
                || first.elapsed().saturating_sub(attempting) + delay > options.retry_max_elapsed
            {
                return Err(err);
            }
            log::warn!(
                "{op} {key}: attempt {number} of {} failed ({err}); retrying in {delay:.0?}",
                options.retry_attempts
            );
            std::thread::sleep(delay);
            backoff = backoff.saturating_mul(2);
        }
    }

    fn map_error(&self, op: &'static str, key: &str, err: S3Error) -> Error {
        match err {
            S3Error::HttpFailWithBody(status, body) => {
                let code = xml_text(&body, "Code");
                if status == 404 && code == "NoSuchBucket" {
                    return Error::BucketNotFound {
                        bucket: self.bucket_name(),
                    };
                }
                Error::Status {
                    op,
                    key: key.to_owned(),
                    status,
                    code,
                    message: xml_text(&body, "Message"),
                }
            }
            other => Error::Transport {
                op,
                key: key.to_owned(),
                source: transport_error(&other),
            },
        }
    }
}

/// Whether a failure may pass if the request is sent again.
/// What a failure means to the stream, for the code above this layer, which holds no HTTP
/// status: the S3 layer alone knows how each server says it.
impl Error {
    /// Whether what the request named does not exist (S3's 404): an object deleted, or not
    /// yet written.
    pub(crate) fn is_missing(&self) -> bool {
        matches!(self, Error::Status { status: 404, .. })
    }

    /// Whether the upload the request was part of is gone: aborted (by a lifecycle rule or
    /// another process) or completed.
    pub(crate) fn is_upload_gone(&self) -> bool {
        matches!(self, Error::Status { code, .. } if code == "NoSuchUpload")
    }
}

fn is_transient(err: &Error) -> bool {
    match err {
        Error::Status { status, code, .. } => {
            // 501 (an operation the server lacks), 505 and 511 answer the same every time.
            let permanent = matches!(status, 501 | 505 | 511) || code == "NotImplemented";
            !permanent
                && (matches!(status, 408 | 429 | 500..=599)
                    || code == "SlowDown"
                    // A conditional write that met another one under way on the key (S3's
                    // 409): nothing was written, and AWS's API reference says to send it
                    // again; whether its condition holds, only that attempt tells.
                    || (*status == 409
                        && matches!(code.as_str(), "ConditionalRequestConflict" | "OperationAborted"))
                    || code == "RequestTimeout"
                    // The body arrived damaged (its checksum or payload hash did not match):
                    // the bytes are still in memory, and a new attempt sends them again.
                    || code == "BadDigest"
                    || code == "XAmzContentSHA256Mismatch")
        }
        Error::Transport { source, .. } => !matches!(
            source.kind(),
            io::ErrorKind::InvalidData
                | io::ErrorKind::InvalidInput
                | io::ErrorKind::PermissionDenied
        ),
        _ => false,
    }
}

/// A factor in [0, 1) that spreads retries of many clients apart ("full jitter").
fn jitter() -> f64 {
    // A fresh `RandomState` is randomly keyed: no random-number crate needed for this.
    (RandomState::new().hash_one(Instant::now()) >> 11) as f64 / (1u64 << 53) as f64
}

/// The I/O failure behind a transport error, with its kind, and only its message: the request
/// itself (headers, signature) is never part of it.
fn transport_error(err: &S3Error) -> io::Error {
    let io_err = match err {
        S3Error::Io(io_err) => Some(io_err),
        _ => None,
    };
    match io_err {
        Some(io_err) => {
            let kind = match io_err.kind() {
                // A socket read timeout surfaces as EAGAIN on Linux.
                io::ErrorKind::WouldBlock => io::ErrorKind::TimedOut,
                kind => kind,
            };
            io::Error::new(kind, io_err.to_string())
        }
        None => io::Error::other(err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_passing_failures_are_retried() {
        let status = |status: u16, code: &str| Error::Status {
            op: "PUT",
            key: "k".into(),
            status,
            code: code.into(),
            message: String::new(),
        };
        let transport = |kind: io::ErrorKind| Error::Transport {
            op: "GET",
            key: "k".into(),
            source: kind.into(),
        };
        for transient in [
            status(500, "InternalError"),
            status(503, "SlowDown"),
            status(429, ""),
            status(408, ""),
            status(400, "RequestTimeout"),
            status(400, "BadDigest"),
            status(400, "XAmzContentSHA256Mismatch"),
            status(409, "ConditionalRequestConflict"),
            transport(io::ErrorKind::ConnectionReset),
            transport(io::ErrorKind::ConnectionRefused),
            transport(io::ErrorKind::TimedOut),
            transport(io::ErrorKind::UnexpectedEof),
        ] {
            assert!(is_transient(&transient), "{transient}");
        }
        for permanent in [
            status(403, "AccessDenied"),
            status(400, "InvalidDigest"),
            status(404, "NoSuchKey"),
            status(412, "PreconditionFailed"),
            status(409, "BucketNotEmpty"),
            status(501, "NotImplemented"),
            status(505, ""),
            transport(io::ErrorKind::InvalidData),
            Error::BucketNotFound { bucket: "b".into() },
        ] {
            assert!(!is_transient(&permanent), "{permanent}");
        }
    }

    #[test]
    fn jitter_is_a_fraction() {
        let samples: Vec<f64> = (0..100).map(|_| jitter()).collect();
        assert!(samples.iter().all(|j| (0.0..1.0).contains(j)));
        assert!(samples.iter().any(|j| *j != samples[0]), "not constant");
    }
}
