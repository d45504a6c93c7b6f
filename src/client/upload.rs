//! The requests of a multipart upload: create, copy the object as S3 has it into the first
//! parts, send the new bytes as the last, complete under a condition, abort.
//!
//! rust-s3 0.38 has no UploadPartCopy, and its own multipart calls drop user metadata and take
//! no conditional headers, so every request here is built from its public request type.

use std::ops::Range;

use s3::command::{Command, Multipart};
use s3::error::S3Error;
use s3::serde_types::CompleteMultipartUploadData;
use ureq::http::{HeaderMap, HeaderName, HeaderValue};

use super::put::Settled;
use super::{Crc, Expect, Meta, OCTETS, S3Client, UploadedPart, checksum, xml_text, xml_unescape};
use crate::Error;

impl S3Client {
    /// Starts a multipart upload to `key`, recording `meta` and this handle in its metadata,
    /// whose object will carry a CRC32C of its whole bytes.
    pub(crate) fn create_upload(&self, key: &str, meta: Meta) -> Result<String, Error> {
        let mut meta = self.identity(meta);
        checksum::declare_full_object(&mut meta);
        self.request("CREATE-UPLOAD", key, 0, |bucket| {
            let bucket = bucket.with_extra_headers(meta.clone())?;
            let command = Command::InitiateMultipartUpload {
                content_type: OCTETS,
            };
            answer(
                self.wire
                    .send(&bucket, key, command, None, &HeaderMap::new())?
                    .text()?,
                "UploadId",
            )
        })
    }

    /// How many parts [`copy`](S3Client::copy) of `size` bytes takes: parts 1 to this, and
    /// the upload's own bytes numbered after them.
    pub(crate) fn copy_parts(&self, size: u64) -> u32 {
        // At most 1,024: S3's largest object (5 TiB) in 5 GiB parts.
        u32::try_from(copy_count(size, self.max_copy)).unwrap_or(u32::MAX)
    }

    /// Parts 1 to [`copy_parts`](S3Client::copy_parts): the first `size` bytes of the object at
    /// `key`, copied by the server on the condition that the object is still `etag`: exactly
    /// the bytes the writer counts, even if the object grew since. The parts name the version
    /// they copied ([`UploadedPart::source`]), which the upload's Complete must expect: a write of this
    /// handle's whose answer was lost may have moved the object on, and the copy then takes the
    /// same bytes from that version, all of them, so that every part names the same one.
    /// Another writer's version is [`Error::Fenced`].
    pub(crate) fn copy(
        &self,
        key: &str,
        id: &str,
        size: u64,
        etag: &str,
    ) -> Result<Vec<UploadedPart>, Error> {
        let mut etag = etag.to_owned();
        loop {
            let copied = (copy_ranges(size, self.max_copy).zip(1..))
                .map(|(range, number)| self.copy_once(key, id, number, range, &etag))
                .collect();
            let err = match copied {
                Ok(parts) => return Ok(parts),
                Err(err @ Error::Status { status: 412, .. }) => err,
                // Gone: deleted or trimmed, not ours to copy any more.
                Err(err @ Error::Status { status: 404, .. }) if !err.is_upload_gone() => err,
                Err(err) => return Err(self.vanished_or("COPY-PART", key, id, err)),
            };
            match self.head(key) {
                Ok(head) if head.ours && head.size >= size && head.etag != etag => {
                    etag = head.etag;
                }
                Ok(_) | Err(Error::Status { status: 404, .. }) => {
                    log::debug!("{key}: not the version counted on ({err})");
                    return Err(Error::Fenced {
                        key: key.into(),
                        lost: 0,
                    });
                }
                Err(head_err) => return Err(head_err),
            }
        }
    }

    /// Part `number`: bytes `range` of the object at `key`, if it is still `etag`.
    fn copy_once(
        &self,
        key: &str,
        id: &str,
        number: u32,
        range: Range<u64>,
        etag: &str,
    ) -> Result<UploadedPart, Error> {
        let path = format!("/{}/{}", self.bucket_name(), uri_encode(key));
        // Keys are checked when the stream is opened and ETags come from S3: both are valid
        // header values, and an invalid one could only fail the request.
        let value =
            |text: &str| HeaderValue::from_str(text).unwrap_or(HeaderValue::from_static(""));
        let mut source = HeaderMap::new();
        source.insert(HeaderName::from_static("x-amz-copy-source"), value(&path));
        let mut exact = HeaderMap::new();
        let len = range.end - range.start;
        let bytes = format!("bytes={}-{}", range.start, range.end.saturating_sub(1));
        exact.insert(
            HeaderName::from_static("x-amz-copy-source-range"),
            value(&bytes),
        );
        exact.insert(
            HeaderName::from_static("x-amz-copy-source-if-match"),
            value(etag),
        );
        // The ETag of a copied part comes in the body, not in a header, with the checksum the
        // server computed for it if the upload declared one (S3, SeaweedFS).
        let (copied, crc) = self.request("COPY-PART", key, len, |bucket| {
            let command = Command::PutObject {
                content: &[],
                content_type: OCTETS,
                custom_headers: Some(source.clone()),
                multipart: Some(Multipart::new(number, id)),
            };
            let text = (self.wire.send(bucket, key, command, Some(&[]), &exact)?).text()?;
            let crc = checksum::stored(Some(&xml_text(&text, checksum::CRC_ELEMENT)), None, len);
            Ok((answer(text, "ETag")?, crc))
        })?;
        // What this handle remembers is the checksum of a whole version, which is the
        // range's only if the range is all of it.
        let known = || match range.start {
            0 => self.known.of(key, etag, range.end),
            _ => None,
        };
        Ok(UploadedPart {
            number,
            etag: copied,
            crc: crc.or_else(known),
            source: Some(etag.to_owned()),
        })
    }

    /// Part `number`: bytes of the object that S3 lacks.
    pub(crate) fn upload_part(
        &self,
        key: &str,
        id: &str,
        number: u32,
        new: &[u8],
    ) -> Result<UploadedPart, Error> {
        let crc = Crc::of(new);
        let mut headers = HeaderMap::new();
        crc.add_to(&mut headers);
        let etag = self.request("UPLOAD-PART", key, new.len() as u64, |bucket| {
            // The body is signed and sent by the transport, not hashed by rust-s3.
            let command = Command::PutObject {
                content: &[],
                content_type: OCTETS,
                custom_headers: Some(headers.clone()),
                multipart: Some(Multipart::new(number, id)),
            };
            let answer = (self.wire).send(bucket, key, command, Some(new), &HeaderMap::new())?;
            let etag = answer.header("etag").map(str::to_owned);
            answer.finish();
            Ok(etag)
        });
        let etag = etag.map_err(|err| self.vanished_or("UPLOAD-PART", key, id, err))?;
        // Some servers send no ETag for a part; it is the MD5 of the part's bytes.
        let etag = etag.unwrap_or_else(|| format!("\"{:x}\"", md5::compute(new)));
        Ok(UploadedPart {
            number,
            etag,
            source: None,
            crc: Some(crc),
        })
    }

    /// Completes the upload of `size` bytes, on the condition that `key` is as `expect` says
    /// (`If-Match: <etag>` or `If-None-Match: *`), with the whole object's checksum when every
    /// part's is known: the server then checks the object it assembles. A failure is settled
    /// by the object's metadata: if this handle wrote it, `size` bytes long, an earlier attempt
    /// succeeded and lost its answer; if this handle wrote a shorter version (a write of its
    /// whose answer was lost, or that failed through its retries after it landed), the upload
    /// extends it, and completes again on that version, as [`put`](S3Client::put) does.
    pub(crate) fn complete(
        &self,
        key: &str,
        id: &str,
        parts: &[UploadedPart],
        expect: Expect<'_>,
        size: u64,
    ) -> Result<String, Error> {
        let mut expected = match expect {
            Expect::Absent => None,
            Expect::Etag(etag) => Some(etag.to_owned()),
        };
        loop {
            let expect = expected.as_deref().map_or(Expect::Absent, Expect::Etag);
            match self.complete_once(key, id, parts, expect, size)? {
                Completed::Done(etag) => return Ok(etag),
                Completed::Moved(etag) if expected.as_ref() != Some(&etag) => {
                    expected = Some(etag);
                }
                // The same version again: the condition failed on another ground.
                Completed::Moved(_) => {
                    return Err(Error::Fenced {
                        key: key.into(),
                        lost: 0,
                    });
                }
            }
        }
    }

    /// One Complete of [`complete`](S3Client::complete), settled, under one condition.
    fn complete_once(
        &self,
        key: &str,
        id: &str,
        parts: &[UploadedPart],
        expect: Expect<'_>,
        size: u64,
    ) -> Result<Completed, Error> {
        let mut condition = HeaderMap::new();
        self.add_condition(&mut condition, expect);
        let whole = (parts.iter())
            .map(|p| p.crc)
            .reduce(|sum, crc| Some(sum?.then(crc?)))
            .flatten();
        if let Some(whole) = whole {
            checksum::add_full_object(whole, &mut condition);
        }
        let body = complete_body(parts);
        let result = self.request("COMPLETE-UPLOAD", key, size, |bucket| {
            let bucket = bucket.with_extra_headers(condition.clone())?;
            // The body is ours (rust-s3's has no part checksums), signed by the transport.
            let command = Command::CompleteMultipartUpload {
                upload_id: id,
                data: CompleteMultipartUploadData { parts: Vec::new() },
            };
            let sent = Some(body.as_bytes());
            answer(
                (self
                    .wire
                    .send(&bucket, key, command, sent, &HeaderMap::new())?)
                .text()?,
                "ETag",
            )
        });
        // A retry after a lost answer finds the upload gone (404 `NoSuchUpload` on AWS): the
        // object says whether it was ours.
        let err = match result {
            Ok(etag) => {
                return Ok(Completed::Done(match whole {
                    Some(whole) => self.wrote(key, etag, whole),
                    None => etag,
                }));
            }
            Err(err) => err,
        };
        // A failing HEAD leaves it open whether an earlier attempt landed: that failure is the
        // answer, never a fence for bytes that may be stored.
        match self.settle(key, size)? {
            Settled::Done(etag) => return Ok(Completed::Done(etag)),
            // A failed condition leaves the upload open (S3 consumes it only on success).
            Settled::Moved { etag, .. } if matches!(err, Error::Status { status: 412, .. }) => {
                return Ok(Completed::Moved(etag));
            }
            _ => {}
        }
        match err {
            Error::Status { status: 412, .. } => Err(Error::Fenced {
                key: key.into(),
                lost: 0,
            }),
            // If-Match on a missing key (AWS, moto): someone deleted our tail.
            Error::Status { status: 404, .. }
                if !err.is_upload_gone() && matches!(expect, Expect::Etag(_)) =>
            {
                Err(Error::Fenced {
                    key: key.into(),
                    lost: 0,
                })
            }
            err => Err(self.vanished_or("COMPLETE-UPLOAD", key, id, err)),
        }
    }

    /// `err`, the failure of a request on upload `id` after its retries, or `NoSuchUpload` if
    /// the upload is no longer listed. A server may refuse a part to a vanished upload before
    /// its body is sent and close (the answer is lost in a broken pipe), or answer with a bare
    /// 500 (moto): only the listing tells that the upload is gone, and so that retrying it
    /// cannot help.
    fn vanished_or(&self, op: &'static str, key: &str, id: &str, err: Error) -> Error {
        if err.is_upload_gone() || !self.upload_is_open(key, id).is_ok_and(|open| !open) {
            return err;
        }
        Error::Status {
            op,
            key: key.into(),
            status: 404,
            code: "NoSuchUpload".into(),
            message: "the upload is no longer listed".into(),
        }
    }

    /// Aborts the upload, best effort: what is left is removed by the bucket's
    /// `AbortIncompleteMultipartUpload` lifecycle rule, if it has one.
    pub(crate) fn abort(&self, key: &str, id: &str) {
        let result = self.request("ABORT-UPLOAD", key, 0, |bucket| {
            let command = Command::AbortMultipartUpload { upload_id: id };
            (self
                .wire
                .send(bucket, key, command, None, &HeaderMap::new()))
            .map(super::wire::Answer::finish)
        });
        if let Err(err) = result {
            log::warn!("could not abort an upload to {key}: {err}");
        }
    }
}

/// How many ranges of at most `max` bytes a copy of `size` bytes takes (at least one).
fn copy_count(size: u64, max: u64) -> u64 {
    size.div_ceil(max.max(1)).max(1)
}

/// The ranges in which the first `size` bytes of an object are copied, at most `max` bytes
/// each: as few as that allows, of equal sizes (within a byte), since every part but an
/// upload's last must be at least 5 MiB, which an even split keeps each far above where a
/// remainder could be a few bytes.
fn copy_ranges(size: u64, max: u64) -> impl Iterator<Item = Range<u64>> {
    let n = copy_count(size, max);
    // In u128: `size × i` does not fit in 64 bits for every size.
    let at = move |i: u64| (u128::from(size) * u128::from(i) / u128::from(n)) as u64;
    (0..n).map(move |i| at(i)..at(i + 1))
}

/// How one Complete settled.
enum Completed {
    /// The object is the upload's, with this ETag.
    Done(String),
    /// The condition failed on a shorter version of this handle's, with this ETag.
    Moved(String),
}

/// The body of a Complete: each part's number, ETag and, where known, checksum, which S3
/// checks against the part it holds (as the AWS SDKs send them).
fn complete_body(parts: &[UploadedPart]) -> String {
    let mut body = String::from("<CompleteMultipartUpload>");
    for part in parts {
        body += &format!("<Part><PartNumber>{}</PartNumber>", part.number);
        // ETags come from S3 and hold no markup, but their quotes.
        body += &format!("<ETag>{}</ETag>", part.etag);
        if let Some(crc) = part.crc {
            let element = checksum::CRC_ELEMENT;
            body += &format!("<{element}>{}</{element}>", crc.encoded());
        }
        body += "</Part>";
    }
    body + "</CompleteMultipartUpload>"
}

/// The text of element `tag` in an answer, with the quotes that XML may escape. An answer
/// without it was cut short, and is retried as such; an error in the body of a 200 (S3 may
/// send one for a Complete) is retried as the 500 it is.
fn answer(body: String, tag: &str) -> Result<String, S3Error> {
    if body.contains("<Error>") {
        return Err(S3Error::HttpFailWithBody(500, body));
    }
    match xml_text(&body, tag) {
        text if text.is_empty() => Err(S3Error::Io(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("the answer has no {tag}: cut short"),
        ))),
        text => Ok(xml_unescape(&text)),
    }
}

/// `key` as a URI path: every byte but unreserved characters and `/` percent-encoded.
fn uri_encode(key: &str) -> String {
    key.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MAX_COPY;

    #[test]
    fn copies_are_split_evenly_within_the_limit() {
        let ranges = |size, max| copy_ranges(size, max).collect::<Vec<_>>();
        assert_eq!(ranges(10, 10), vec![0..10]);
        assert_eq!(ranges(11, 10), [0..5, 5..11]);
        assert_eq!(ranges(30, 10), [0..10, 10..20, 20..30]);
        let s3 = ranges(MAX_COPY + 1, MAX_COPY);
        assert_eq!(s3.len(), 2);
        assert!(s3.iter().all(|r| r.end - r.start >= MAX_COPY / 2));
        let largest = 5u64 << 40;
        let tib = ranges(largest, MAX_COPY);
        assert_eq!(tib.len(), 1024);
        assert_eq!((tib[0].start, tib[1023].end), (0, largest));
        assert!(tib.windows(2).all(|w| w[0].end == w[1].start));
        assert!(tib.iter().all(|r| r.end - r.start <= MAX_COPY));
    }

    #[test]
    fn keys_are_uri_encoded_but_slashes() {
        assert_eq!(uri_encode("dir/a b+c-00.log"), "dir/a%20b%2Bc-00.log");
        assert_eq!(uri_encode("é"), "%C3%A9");
    }
}
