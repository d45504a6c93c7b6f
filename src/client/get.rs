//! Reading objects: a HEAD, a GET of an object whole, of a range into the caller's buffer,
//! and a poll past the known end.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};

use s3::command::Command;
use s3::error::S3Error;
use ureq::http::{HeaderMap, HeaderName, HeaderValue};

use super::meta::recorded_number;
use super::{BODY_SLICE, Running, S3Client, SEAL_HEADER, START_HEADER, WRITER_HEADER, checksum};
use crate::Error;
use crate::store::{Head, Polled, Recorded, Whole};

impl S3Client {
    /// Fetches the whole of object `seq`, with its ETag and the start offset it records, all of
    /// one version: the tail a writer continues. No range: a ranged GET would carry the ETag of
    /// the whole object, which may have grown since it was listed.
    pub(crate) fn get_whole(&self, seq: u64) -> Result<Whole, Error> {
        let key = self.key(seq);
        self.request("GET", &key, 0, |bucket| {
            let command = Command::GetObject;
            let mut answer = self
                .wire
                .send(bucket, &key, command, None, &HeaderMap::new())?;
            Ok(Whole {
                etag: answer.header("etag").unwrap_or_default().to_owned(),
                start: recorded_number(&key, &answer, START_HEADER),
                seal: recorded_number(&key, &answer, SEAL_HEADER),
                buf: answer.bytes()?,
            })
        })
    }

    /// Object `seq` as one HEAD sees it.
    pub(crate) fn stat(&self, seq: u64) -> Result<Head, Error> {
        self.head(&self.key(seq))
    }

    /// Object `key` as one HEAD sees it, with the checksum the server stores for it.
    pub(crate) fn head(&self, key: &str) -> Result<Head, Error> {
        let head = self.request("HEAD", key, 0, |bucket| {
            let command = Command::HeadObject;
            let answer = (self.wire).send(bucket, key, command, None, &checksum_mode())?;
            let size = (answer.header("content-length"))
                .and_then(|size| size.parse().ok())
                .unwrap_or(0);
            Ok(Head {
                size,
                etag: answer.header("etag").unwrap_or_default().to_owned(),
                start: recorded_number(key, &answer, START_HEADER),
                ours: answer.header(WRITER_HEADER) == Some(self.writer.as_str()),
                seal: recorded_number(key, &answer, SEAL_HEADER),
                crc: checksum::stored(
                    answer.header(checksum::CRC_HEADER),
                    answer.header(checksum::TYPE_HEADER),
                    size,
                ),
            })
        })?;
        if let Some(crc) = head.crc {
            self.known.remember(key, &head.etag, crc);
        }
        Ok(head)
    }

    /// Fills `out` with the bytes of object `seq` from offset `start` on, and returns what the
    /// object records: the stream offset of its first byte, so that the caller can check it
    /// against where the stream puts the object, and its seal size.
    ///
    /// The body is read straight into `out`, which the caller keeps initialized from one GET
    /// to the next, so no byte is zeroed or copied twice. A response cut short is resumed from
    /// the first byte missing, so no byte is delivered twice; a server that ignores the range
    /// cannot write past `out`. Once `cancel` is set, the response is dropped at the next slice
    /// of the body and the request is not retried: its bytes are no longer wanted. `crc`, if
    /// given, takes in the bytes as they arrive.
    pub(crate) fn get_range(
        &self,
        seq: u64,
        start: u64,
        out: &mut [u8],
        cancel: Option<&AtomicBool>,
        mut crc: Option<&mut Running>,
    ) -> Result<Recorded, Error> {
        let key = self.key(seq);
        let len = out.len() as u64;
        let mut filled = 0;
        let mut recorded = Recorded::default();
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
            let mut answer = (self.wire).send(bucket, &key, command, None, &checksum_mode())?;
            let status = answer.status;
            let sent = (answer.header("content-length")).and_then(|v| v.parse::<usize>().ok());
            recorded = Recorded {
                start: recorded_number(&key, &answer, START_HEADER),
                seal: recorded_number(&key, &answer, SEAL_HEADER),
                // A server sends the stored checksum only with an answer that holds the whole
                // object (as S3 does); its size is the range's total.
                crc: (answer.header("content-range"))
                    .and_then(|range| range.rsplit_once('/'))
                    .and_then(|(_, total)| total.trim().parse().ok())
                    .or(sent.map(|sent| sent as u64).filter(|_| status == 200))
                    .and_then(|total| {
                        let kind = answer.header(checksum::TYPE_HEADER);
                        checksum::stored(answer.header(checksum::CRC_HEADER), kind, total)
                    }),
            };
            check_range(status, answer.header("content-range"), from)?;
            let mut response = answer.reader();
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
                    Ok(n) => {
                        if let Some(crc) = crc.as_deref_mut() {
                            crc.update(&out[filled..filled + n]);
                        }
                        filled += n;
                    }
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    Err(err) => return Err(S3Error::Io(err)),
                }
            }
            drop(response);
            answer.finish();
            Ok(())
        });
        match result {
            Err(Error::Status { status: 416, .. }) => Err(Error::ObjectChanged {
                key,
                expected: start + len,
                found: start + filled as u64,
            }),
            other => other.map(|()| recorded),
        }
    }

    /// Polls object `seq` for bytes from offset `from` on, its known end, with one ranged GET
    /// of at most `out.len()` bytes: the bytes come in the same answer, read into `out`, with
    /// the object's size now. `None` when the object holds nothing from `from` on (416, as S3
    /// and s3s answer a range that starts at the size). A missing object is the 404 error.
    ///
    /// A server that ignores the range (200, the whole object) is read past `from`, and one
    /// that sends no `Content-Range` is taken to hold no more than it sent: a later poll asks
    /// again from there.
    pub(crate) fn get_tail(
        &self,
        seq: u64,
        from: u64,
        out: &mut [u8],
    ) -> Result<Option<Polled>, Error> {
        let key = self.key(seq);
        let len = out.len() as u64;
        let result = self.request("GET", &key, len, |bucket| {
            let command = Command::GetObjectRange {
                start: from,
                end: Some(from + len.max(1) - 1),
            };
            let mut answer = self
                .wire
                .send(bucket, &key, command, None, &HeaderMap::new())?;
            let recorded = recorded_number(&key, &answer, START_HEADER);
            let seal = recorded_number(&key, &answer, SEAL_HEADER);
            let whole = answer.status == 200;
            check_range(answer.status, answer.header("content-range"), from)?;
            let total = match whole {
                true => answer.header("content-length"),
                false => (answer.header("content-range"))
                    .and_then(|range| range.rsplit_once('/'))
                    .map(|(_, total)| total),
            };
            let total = total.and_then(|total| total.trim().parse::<u64>().ok());
            let mut body = answer.reader();
            if whole {
                io::copy(&mut (&mut body).take(from), &mut io::sink()).map_err(S3Error::Io)?;
            }
            let mut filled = 0;
            while filled < out.len() {
                match body.read(&mut out[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    Err(err) => return Err(S3Error::Io(err)),
                }
            }
            drop(body);
            answer.finish();
            let size = total
                .unwrap_or(from + filled as u64)
                .max(from + filled as u64);
            Ok((size > from).then_some(Polled {
                filled,
                size,
                recorded,
                seal,
            }))
        });
        match result {
            Err(Error::Status { status: 416, .. }) => Ok(None),
            other => other,
        }
    }
}

/// Asks a GET or HEAD for the object's stored checksum.
pub(super) fn checksum_mode() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        HeaderName::from_static(checksum::MODE_HEADER),
        HeaderValue::from_static("ENABLED"),
    );
    headers
}

/// Fails unless a partial answer (206) holds the range from `from` on, as its `Content-Range`
/// (`bytes <first>-<last>/<total>`) says: a proxy or cache that answers another range would
/// have its bytes handed out as the ones asked for.
pub(super) fn check_range(
    status: u16,
    content_range: Option<&str>,
    from: u64,
) -> Result<(), S3Error> {
    let first = (content_range.and_then(|range| range.trim().strip_prefix("bytes ")))
        .and_then(|range| range.split_once('-'))
        .and_then(|(first, _)| first.trim().parse::<u64>().ok());
    match status {
        206 if first != Some(from) => Err(S3Error::Io(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("asked for bytes from {from} on, the server answered {content_range:?}"),
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_answer_must_hold_the_range_asked_for() {
        assert!(check_range(206, Some("bytes 100-199/1000"), 100).is_ok());
        assert!(
            check_range(200, None, 0).is_ok(),
            "a whole answer is checked elsewhere"
        );
        for other in [
            Some("bytes 101-199/1000"),
            Some("bytes */1000"),
            Some("x"),
            None,
        ] {
            assert!(check_range(206, other, 100).is_err(), "{other:?}");
        }
    }
}
