//! The S3 access layer: the four requests a stream needs, each timed, logged, and with its
//! failure turned into an [`Error`].

use std::io::{self, Write};
use std::time::Instant;

use s3::Bucket;
use s3::error::S3Error;

use crate::Error;
use crate::layout::{Layout, Segment};

/// One stream's view of a bucket.
pub(crate) struct Client {
    bucket: Bucket,
    layout: Layout,
}

impl Client {
    pub(crate) fn new(bucket: Bucket, layout: Layout) -> Client {
        Client { bucket, layout }
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
        self.logged("LIST", prefix, || {
            self.bucket
                .list_page(prefix.to_owned(), None, None, None, Some(1))
                .map(|_| 0)
        })
    }

    /// Overwrites object `seq` with `body`.
    pub(crate) fn put(&self, seq: u64, body: &[u8]) -> Result<(), Error> {
        let key = self.key(seq);
        self.logged("PUT", &key, || {
            self.bucket.put_object(&key, body).map(|_| body.len())
        })
    }

    /// Appends exactly `len` bytes of object `seq`, from offset `start`, to `out`.
    ///
    /// Memory stays bounded even if the server ignores the range and sends the whole object.
    pub(crate) fn get_range(
        &self,
        seq: u64,
        start: u64,
        len: u64,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let key = self.key(seq);
        if len == 0 {
            return Ok(());
        }
        let before = out.len();
        let mut limited = Limited {
            out: &mut *out,
            room: len,
        };
        let end = start + len - 1;
        let result = self.logged("GET", &key, || {
            self.bucket
                .get_object_range_to_writer(&key, start, Some(end), &mut limited)
                .map(|_| len as usize)
        });
        let found = (out.len() - before) as u64;
        match result {
            Ok(()) if found < len => Err(Error::SegmentChanged {
                key,
                expected: start + len,
                found: start + found,
            }),
            other => other,
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
            let page = self.logged_value("LIST", prefix, || {
                self.bucket
                    .list_page(
                        prefix.to_owned(),
                        None,
                        token.take(),
                        start_after.clone(),
                        None,
                    )
                    .map(|(page, _)| (page.contents.len(), page))
            })?;
            for object in page.contents {
                if let Some(seq) = self.layout.seq(&object.key) {
                    segments.push(Segment {
                        key: object.key,
                        seq,
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

    fn logged(
        &self,
        op: &'static str,
        key: &str,
        request: impl FnOnce() -> Result<usize, S3Error>,
    ) -> Result<(), Error> {
        self.logged_value(op, key, || request().map(|bytes| (bytes, ())))
    }

    /// Runs one request, logs it at debug level (operation, key, bytes or entries, time), and
    /// maps its failure.
    fn logged_value<T>(
        &self,
        op: &'static str,
        key: &str,
        request: impl FnOnce() -> Result<(usize, T), S3Error>,
    ) -> Result<T, Error> {
        let started = Instant::now();
        let result = request();
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        match result {
            Ok((bytes, value)) => {
                log::debug!("{op} {key} {bytes} in {ms:.1} ms");
                Ok(value)
            }
            Err(err) => {
                let err = self.map_error(op, key, err);
                log::debug!("{op} {key} failed in {ms:.1} ms: {err}");
                Err(err)
            }
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

/// A writer that takes at most `room` bytes, so a misbehaving server cannot grow the buffer.
struct Limited<'a> {
    out: &'a mut Vec<u8>,
    room: u64,
}

impl Write for Limited<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() as u64 > self.room {
            // The server ignored the range: the object is not the one that was listed.
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the server sent more than the requested range",
            ));
        }
        self.out.extend_from_slice(buf);
        self.room -= buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
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
    fn limited_writer_refuses_overflow() {
        let mut out = Vec::new();
        let mut w = Limited {
            out: &mut out,
            room: 4,
        };
        assert_eq!(w.write(b"abc").unwrap(), 3);
        assert!(w.write(b"de").is_err());
        assert_eq!(out, b"abc");
    }
}
