//! The S3 access layer: the requests a stream needs, each with its deadline, retried under one
//! policy, logged, and with its failure turned into an [`Error`].

use std::hash::{BuildHasher, RandomState};
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use attohttpc::header::{
    CONTENT_LENGTH, HeaderMap, HeaderName, HeaderValue, IF_MATCH, IF_NONE_MATCH,
};
use s3::Bucket;
use s3::command::Command;
use s3::error::S3Error;
use s3::request::Request;
use s3::request::blocking::AttoRequest;

use crate::layout::{Layout, PendingUpload, Segment};
use crate::{Error, Options};

mod append;

pub(crate) use append::MIN_PART;

/// How much of a GET's body is read between two checks for cancellation.
const BODY_SLICE: usize = 256 * 1024;

/// The user metadata in which every object records the stream offset of its first byte, as a
/// decimal: offsets then survive the deletion of older objects.
pub(crate) const START_HEADER: &str = "x-amz-meta-s3syncr-start";

/// One stream's view of a bucket.
pub(crate) struct Client {
    bucket: Bucket,
    layout: Layout,
    options: Options,
}

/// What a PUT expects to find, when writers are fenced.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Expect<'a> {
    /// No object: `If-None-Match: *`.
    Absent,
    /// The object we wrote last: `If-Match: <etag>`.
    Etag(&'a str),
}

impl Client {
    pub(crate) fn new(bucket: Bucket, layout: Layout, options: Options) -> Client {
        Client {
            bucket,
            layout,
            options,
        }
    }

    pub(crate) fn bucket_name(&self) -> String {
        self.bucket.name()
    }

    pub(crate) fn key(&self, seq: u64) -> String {
        self.layout.key(seq)
    }

    /// Fails with [`Error::BucketNotFound`] (or the access error) unless the bucket answers.
    pub(crate) fn check_bucket(&self) -> Result<(), Error> {
        let prefix = self.layout.prefix();
        self.request("LIST", prefix, 0, |bucket| {
            bucket
                .list_page(prefix.to_owned(), None, None, None, Some(1))
                .map(|_| ())
        })
    }

    /// Overwrites object `seq`, which starts at stream offset `start`, with `body` and returns
    /// its new ETag. Every PUT records `start` in the object's metadata. With conditional writes
    /// on, the PUT carries `expect`, and a failed condition is [`Error::Fenced`] unless the
    /// object turns out to hold exactly `body`: an earlier attempt of ours succeeded but its
    /// answer was lost.
    pub(crate) fn put(
        &self,
        seq: u64,
        start: u64,
        body: &[u8],
        expect: Expect<'_>,
    ) -> Result<String, Error> {
        let key = self.key(seq);
        let mut headers = HeaderMap::new();
        headers.insert(
            HeaderName::from_static(START_HEADER),
            HeaderValue::from(start),
        );
        self.add_condition(&mut headers, expect);
        let headers = Some(headers);
        // Hashing costs as much as a loopback upload: only on the paths that need it.
        let md5 = || format!("\"{:x}\"", md5::compute(body));
        let result = self.request("PUT", &key, body.len() as u64, |bucket| {
            bucket.put_object_with_headers(&key, body, headers.clone())
        });
        match result {
            // Some servers send no ETag; that of a plain single PUT is the body's MD5.
            Ok(response) => Ok(match response.as_str() {
                Ok(etag) if !etag.is_empty() => etag.to_owned(),
                _ => md5(),
            }),
            // A 404 answers If-Match on a missing object (AWS, moto): someone deleted our tail.
            Err(Error::Status { status: 404, .. }) if matches!(expect, Expect::Etag(_)) => {
                Err(Error::Fenced { key })
            }
            Err(Error::Status {
                status: 409 | 412, ..
            }) => match self.head(&key)? {
                (etag, _) if etag.eq_ignore_ascii_case(&md5()) => Ok(etag),
                _ => Err(Error::Fenced { key }),
            },
            Err(err) => Err(err),
        }
    }

    /// Adds to `headers` what a write expecting `expect` carries when writers are fenced:
    /// `If-None-Match: *` or `If-Match: <etag>`.
    fn add_condition(&self, headers: &mut HeaderMap, expect: Expect<'_>) {
        if !self.options.conditional_writes {
            return;
        }
        match expect {
            Expect::Absent => headers.insert(IF_NONE_MATCH, HeaderValue::from_static("*")),
            Expect::Etag(etag) => match HeaderValue::from_str(etag) {
                Ok(value) => headers.insert(IF_MATCH, value),
                // Not a valid header: no object can have it, so the write must fail.
                Err(_) => headers.insert(IF_MATCH, HeaderValue::from_static("\"\"")),
            },
        };
    }

    /// Fetches the whole of object `seq`, `size` bytes long, with its ETag and the start offset
    /// it records: the tail a writer continues.
    pub(crate) fn get_whole(&self, seq: u64, size: u64) -> Result<Whole, Error> {
        let key = self.key(seq);
        if size == 0 {
            let (etag, start) = self.head(&key)?;
            return Ok(Whole {
                buf: Vec::new(),
                etag,
                start,
            });
        }
        let response = self.request("GET", &key, size, |bucket| {
            bucket.get_object_range(&key, 0, Some(size - 1))
        })?;
        if response.as_slice().len() as u64 != size {
            return Err(Error::SegmentChanged {
                key,
                expected: size,
                found: response.as_slice().len() as u64,
            });
        }
        let headers = response.headers();
        let header = |wanted: &str| {
            headers
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(wanted))
                .map(|(_, value)| value.as_str())
        };
        Ok(Whole {
            etag: header("etag").unwrap_or_default().to_owned(),
            start: parse_start(&key, header(START_HEADER)),
            buf: response.to_vec(),
        })
    }

    /// The start offset object `seq` records, from a HEAD; `None` if it records none.
    pub(crate) fn recorded_start(&self, seq: u64) -> Result<Option<u64>, Error> {
        Ok(self.stat(seq)?.1)
    }

    /// The ETag of object `seq` and the start offset it records, from a HEAD.
    pub(crate) fn stat(&self, seq: u64) -> Result<(String, Option<u64>), Error> {
        self.head(&self.key(seq))
    }

    /// The ETag of object `key` and the start offset it records.
    fn head(&self, key: &str) -> Result<(String, Option<u64>), Error> {
        let (head, _) = self.request("HEAD", key, 0, |bucket| bucket.head_object(key))?;
        let meta = head.metadata.as_ref().and_then(|m| m.get(START_META));
        let start = parse_start(key, meta.map(String::as_str));
        Ok((head.e_tag.unwrap_or_default(), start))
    }

    /// Deletes object `seq`. Deleting a missing object succeeds in S3, so a retry after a lost
    /// answer does too; a server that answers 404 instead is taken at its word as well.
    pub(crate) fn delete(&self, seq: u64) -> Result<(), Error> {
        let key = self.key(seq);
        let result = self.request("DELETE", &key, 0, |bucket| {
            bucket.delete_object(&key).map(|_| ())
        });
        match result {
            Err(Error::Status { status: 404, .. }) => Ok(()),
            other => other,
        }
    }

    /// Fills `out` with the bytes of object `seq` from offset `start` on, and returns the
    /// stream offset the object records for its first byte (`None` if it records none), so
    /// that the caller can check it against where the stream puts the object.
    ///
    /// The body is read straight into `out`, which the caller keeps initialized from one GET
    /// to the next, so no byte is zeroed or copied twice. A response cut short is resumed from
    /// the first byte missing, so no byte is delivered twice; a server that ignores the range
    /// cannot write past `out`. Once `cancel` is set, the response is dropped at the next slice
    /// of the body and the request is not retried: its bytes are no longer wanted.
    pub(crate) fn get_range(
        &self,
        seq: u64,
        start: u64,
        out: &mut [u8],
        cancel: Option<&AtomicBool>,
    ) -> Result<Option<u64>, Error> {
        let key = self.key(seq);
        let len = out.len() as u64;
        let mut filled = 0;
        let mut recorded = None;
        let cancelled = || cancel.is_some_and(|c| c.load(Ordering::Relaxed));
        let result = self.request_until("GET", &key, len, cancelled, |bucket| {
            if filled == out.len() {
                return Ok(());
            }
            let from = start + filled as u64;
            let command = Command::GetObjectRange {
                start: from,
                end: Some(start + len - 1),
            };
            let mut response = AttoRequest::new(bucket, &key, command)?.response()?;
            let headers = response.headers();
            let status = response.status().as_u16();
            let sent = headers
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
            let header = headers.get(START_HEADER);
            recorded = parse_start(&key, header.and_then(|value| value.to_str().ok()));
            // A 200 is the whole object: the range was ignored, and unless it started at 0 the
            // bytes are not the ones asked for.
            if (status == 200 && from != 0) || sent.is_some_and(|sent| sent > out.len() - filled) {
                return Err(S3Error::Io(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the server sent more than the requested range",
                )));
            }
            while filled < out.len() {
                if cancelled() {
                    return Err(S3Error::Io(io::Error::other("no longer wanted")));
                }
                let end = out.len().min(filled + BODY_SLICE);
                match response.read(&mut out[filled..end]) {
                    Ok(0) => {
                        return Err(S3Error::Io(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the response ended before the requested range",
                        )));
                    }
                    Ok(n) => filled += n,
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    Err(err) => return Err(S3Error::Io(err)),
                }
            }
            Ok(())
        });
        match result {
            Err(Error::Status { status: 416, .. }) => Err(Error::SegmentChanged {
                key,
                expected: start + len,
                found: start + filled as u64,
            }),
            other => other.map(|()| recorded),
        }
    }

    /// The stream's objects after `after` (all of them for `None`), in order, across as many
    /// listing pages as there are.
    pub(crate) fn list(&self, after: Option<u64>) -> Result<Vec<Segment>, Error> {
        let prefix = self.layout.prefix();
        let start_after = after.map(|seq| self.key(seq));
        let mut token = None;
        let mut segments = Vec::new();
        loop {
            let (page, _) = self.request("LIST", prefix, 0, |bucket| {
                bucket.list_page(
                    prefix.to_owned(),
                    None,
                    token.clone(),
                    start_after.clone(),
                    None,
                )
            })?;
            for object in page.contents {
                if let Some(seq) = self.layout.seq(&object.key) {
                    segments.push(Segment {
                        key: object.key,
                        seq,
                        // Known only from the first object's metadata: the caller sets it.
                        start: 0,
                        size: object.size,
                        last_modified: object.last_modified,
                    });
                }
            }
            match page.next_continuation_token {
                Some(next) if page.is_truncated => token = Some(next),
                _ => break,
            }
        }
        // Lexicographic order is numeric order for fixed-width keys, but not every server sorts.
        segments.sort_by_key(|s| s.seq);
        Ok(segments)
    }

    /// The multipart uploads to the stream's objects that were neither completed nor aborted,
    /// oldest object first. The answer is read here: rust-s3's parser requires elements that
    /// some servers leave out (SeaweedFS sends no `StorageClass`).
    pub(crate) fn list_uploads(&self) -> Result<Vec<PendingUpload>, Error> {
        let prefix = self.layout.prefix();
        let mut uploads = Vec::new();
        let mut markers: (Option<String>, Option<String>) = (None, None);
        loop {
            let body = self.request("LIST-UPLOADS", prefix, 0, |bucket| {
                let command = Command::ListMultipartUploads {
                    prefix: Some(prefix),
                    delimiter: None,
                    key_marker: markers.0.clone(),
                    upload_id_marker: markers.1.clone(),
                    max_uploads: None,
                };
                Ok(AttoRequest::new(bucket, "/", command)?.response()?.text()?)
            })?;
            for upload in body.split("<Upload>").skip(1) {
                let key = xml_unescape(&xml_text(upload, "Key"));
                if let Some(seq) = self.layout.seq(&key) {
                    let initiated = xml_text(upload, "Initiated");
                    uploads.push(PendingUpload {
                        key,
                        seq,
                        initiated,
                    });
                }
            }
            let next = Some(xml_unescape(&xml_text(&body, "NextKeyMarker")));
            let next_id = Some(xml_text(&body, "NextUploadIdMarker")).filter(|id| !id.is_empty());
            // A truncated page must move the cursor, or the listing would never end.
            if xml_text(&body, "IsTruncated") != "true"
                || (next.clone(), next_id.clone()) == markers
            {
                break;
            }
            markers = (next, next_id);
        }
        uploads.sort_by(|a, b| (a.seq, &a.initiated).cmp(&(b.seq, &b.initiated)));
        Ok(uploads)
    }

    /// Runs one request under the retry policy: each attempt gets a deadline for `bytes` bytes,
    /// is logged at debug level (operation, key, bytes, time), and a transient failure is
    /// retried after a jittered exponential backoff while attempts and time remain.
    fn request<T>(
        &self,
        op: &'static str,
        key: &str,
        bytes: u64,
        attempt: impl FnMut(&Bucket) -> Result<T, S3Error>,
    ) -> Result<T, Error> {
        self.request_until(op, key, bytes, || false, attempt)
    }

    /// [`request`](Client::request), with no retry once `given_up` says the answer is no
    /// longer wanted.
    fn request_until<T>(
        &self,
        op: &'static str,
        key: &str,
        bytes: u64,
        given_up: impl Fn() -> bool,
        mut attempt: impl FnMut(&Bucket) -> Result<T, S3Error>,
    ) -> Result<T, Error> {
        let options = &self.options;
        let mut bucket = self.bucket.clone();
        bucket.set_request_timeout(Some(options.timeout_for(bytes)));
        let first = Instant::now();
        let mut backoff = options.retry_backoff;
        let mut number = 0;
        loop {
            number += 1;
            let started = Instant::now();
            let result = attempt(&bucket);
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            let err = match result {
                Ok(value) => {
                    log::debug!("{op} {key} {bytes} bytes in {ms:.1} ms");
                    return Ok(value);
                }
                Err(err) => self.map_error(op, key, err),
            };
            log::debug!("{op} {key} {bytes} bytes failed in {ms:.1} ms: {err}");
            let delay = backoff.mul_f64(jitter());
            if !is_transient(&err)
                || given_up()
                || number >= options.retry_attempts
                || first.elapsed() + delay > options.retry_max_elapsed
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

/// An object fetched whole: a tail to continue.
pub(crate) struct Whole {
    pub(crate) buf: Vec<u8>,
    pub(crate) etag: String,
    /// The start offset it records, if any.
    pub(crate) start: Option<u64>,
}

/// [`START_HEADER`] as rust-s3 names it in a HEAD's metadata.
const START_META: &str = "s3syncr-start";

/// A recorded start offset. A value that is no decimal number was not written by s3-syncr: it
/// counts as none (the object then starts where its predecessor ends), with a warning.
fn parse_start(key: &str, value: Option<&str>) -> Option<u64> {
    let value = value?;
    let parsed = value.trim().parse().ok();
    if parsed.is_none() {
        log::warn!("{key}: ignoring {START_HEADER} {value:?}: not a decimal offset");
    }
    parsed
}

/// Whether a failure may pass if the request is sent again.
fn is_transient(err: &Error) -> bool {
    match err {
        Error::Status { status, code, .. } => {
            // 501 (an operation the server lacks), 505 and 511 answer the same every time.
            let permanent = matches!(status, 501 | 505 | 511) || code == "NotImplemented";
            !permanent
                && (matches!(status, 408 | 429 | 500..=599)
                    || code == "SlowDown"
                    || code == "RequestTimeout")
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
        S3Error::Atto(http_err) => match http_err.kind() {
            attohttpc::ErrorKind::Io(io_err) => Some(io_err),
            _ => None,
        },
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

/// `text` with XML's predefined entities (and the quote as a character reference) replaced.
fn xml_unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// The text of the first `<tag>` element of an S3 error body; the rest of the body (which may
/// echo the string-to-sign) is dropped.
fn xml_text(body: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    body.split_once(&open)
        .and_then(|(_, rest)| rest.split_once(&close))
        .map(|(text, _)| text.trim().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_keep_only_code_and_message() {
        let body = "<Error><Code>SignatureDoesNotMatch</Code><Message>nope</Message>\
                    <StringToSign>AWS4-HMAC-SHA256 secret stuff</StringToSign></Error>";
        assert_eq!(xml_text(body, "Code"), "SignatureDoesNotMatch");
        assert_eq!(xml_text(body, "Message"), "nope");
        assert_eq!(xml_text("", "Code"), "");
    }

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
            transport(io::ErrorKind::ConnectionReset),
            transport(io::ErrorKind::ConnectionRefused),
            transport(io::ErrorKind::TimedOut),
            transport(io::ErrorKind::UnexpectedEof),
        ] {
            assert!(is_transient(&transient), "{transient}");
        }
        for permanent in [
            status(403, "AccessDenied"),
            status(404, "NoSuchKey"),
            status(412, "PreconditionFailed"),
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
