//! Overwriting the tail: one PUT of the whole object, or, once the object in S3 is large, an
//! append by copy: a multipart upload to the same key whose first part is a server-side copy of
//! the object as it stands, and whose second part is the new bytes alone.
//!
//! rust-s3 0.38 has no UploadPartCopy, and its own multipart calls drop user metadata and take
//! no conditional headers, so every request here goes through its public request type.

use attohttpc::header::{HeaderMap, HeaderName, HeaderValue};
use s3::Bucket;
use s3::command::{Command, Multipart};
use s3::error::S3Error;
use s3::request::Request;
use s3::request::blocking::AttoRequest;
use s3::serde_types::{CompleteMultipartUploadData, Part};

use super::{Client, Expect, START_HEADER, xml_text, xml_unescape};
use crate::Error;

/// Smallest part S3 accepts before the last one: the copied object must be at least this large.
pub(crate) const MIN_PART: usize = 5 * 1024 * 1024;

const OCTETS: &str = "application/octet-stream";

impl Client {
    /// Overwrites object `seq`, which starts at stream offset `start`, with its first `held`
    /// bytes (which S3 has and the caller no longer keeps) followed by `body`, of which S3
    /// holds the first `stored` (as the object `expect` names); returns its new ETag.
    ///
    /// Once S3 holds [`Options::copy_threshold`](crate::Options::copy_threshold) bytes of it,
    /// only the bytes S3 lacks are sent; below it, or with appending by copy turned off, the
    /// whole body is PUT (`held` is then 0).
    pub(crate) fn overwrite(
        &self,
        seq: u64,
        start: u64,
        held: usize,
        body: &[u8],
        stored: usize,
        expect: Expect<'_>,
    ) -> Result<String, Error> {
        let in_s3 = held + stored;
        match expect {
            Expect::Etag(etag)
                if held > 0
                    || (self.options.append_by_copy
                        && in_s3 >= self.options.copy_threshold.max(MIN_PART)
                        && stored < body.len()) =>
            {
                self.append(seq, start, etag, in_s3, &body[stored..])
            }
            _ => self.put(seq, start, body, expect),
        }
    }

    /// Appends `new` to object `seq`, whose ETag is `etag`, by a multipart upload: part 1
    /// copies the object whole, part 2 is `new`, and Complete carries `If-Match: <etag>` so that
    /// another writer's change in between fences this one. On failure the upload is aborted
    /// (best effort) and nothing else changed.
    fn append(
        &self,
        seq: u64,
        start: u64,
        etag: &str,
        stored: usize,
        new: &[u8],
    ) -> Result<String, Error> {
        let key = self.key(seq);
        let id = self.create_upload(&key, start)?;
        // The server copies and assembles the whole object: deadlines in proportion.
        let size = (stored + new.len()) as u64;
        let result = self.copy_part(&key, &id, stored as u64).and_then(|copied| {
            let added = self.upload_part(&key, &id, 2, new)?;
            self.complete(&key, &id, &[copied, added], Expect::Etag(etag), size)
        });
        if result.is_err() {
            self.abort(&key, &id);
        }
        result
    }

    /// Starts a multipart upload to `key`, recording `start` in its metadata.
    pub(crate) fn create_upload(&self, key: &str, start: u64) -> Result<String, Error> {
        let mut meta = HeaderMap::new();
        meta.insert(
            HeaderName::from_static(START_HEADER),
            HeaderValue::from(start),
        );
        self.request("CREATE-UPLOAD", key, 0, |bucket| {
            let bucket = bucket.with_extra_headers(meta.clone())?;
            let command = Command::InitiateMultipartUpload {
                content_type: OCTETS,
            };
            send(&bucket, key, command, "UploadId")
        })
    }

    /// Part 1: the object at `key` as it stands, copied whole by the server.
    pub(crate) fn copy_part(&self, key: &str, id: &str, size: u64) -> Result<Part, Error> {
        let mut source = HeaderMap::new();
        let path = format!("/{}/{}", self.bucket_name(), uri_encode(key));
        // Keys are checked when the stream is opened: the encoded path is always a valid value.
        let value = HeaderValue::from_str(&path).unwrap_or(HeaderValue::from_static("/"));
        source.insert(HeaderName::from_static("x-amz-copy-source"), value);
        // The ETag of a copied part comes in the body, not in a header.
        let etag = self.request("COPY-PART", key, size, |bucket| {
            let command = Command::PutObject {
                content: &[],
                content_type: OCTETS,
                custom_headers: Some(source.clone()),
                multipart: Some(Multipart::new(1, id)),
            };
            send(bucket, key, command, "ETag")
        })?;
        Ok(Part {
            part_number: 1,
            etag,
        })
    }

    /// Part `number`: bytes of the object that S3 lacks.
    pub(crate) fn upload_part(
        &self,
        key: &str,
        id: &str,
        number: u32,
        new: &[u8],
    ) -> Result<Part, Error> {
        let etag = self.request("UPLOAD-PART", key, new.len() as u64, |bucket| {
            let command = Command::PutObject {
                content: new,
                content_type: OCTETS,
                custom_headers: None,
                multipart: Some(Multipart::new(number, id)),
            };
            let response = send_borrowed(bucket, key, command, new)?;
            Ok(response
                .headers()
                .get("etag")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned))
        })?;
        // Some servers send no ETag for a part; it is the MD5 of the part's bytes.
        let etag = etag.unwrap_or_else(|| format!("\"{:x}\"", md5::compute(new)));
        Ok(Part {
            part_number: number,
            etag,
        })
    }

    /// Completes the upload of `size` bytes, on the condition that `key` is as `expect` says
    /// (`If-Match: <etag>` or `If-None-Match: *`). A failure is settled by the object's ETag:
    /// if it is the one these parts make, an earlier attempt of ours succeeded and lost its
    /// answer.
    pub(crate) fn complete(
        &self,
        key: &str,
        id: &str,
        parts: &[Part],
        expect: Expect<'_>,
        size: u64,
    ) -> Result<String, Error> {
        let mut condition = HeaderMap::new();
        self.add_condition(&mut condition, expect);
        let ours = multipart_etag(parts);
        let data = CompleteMultipartUploadData {
            parts: parts.to_vec(),
        };
        let result = self.request("COMPLETE-UPLOAD", key, size, |bucket| {
            let bucket = bucket.with_extra_headers(condition.clone())?;
            let command = Command::CompleteMultipartUpload {
                upload_id: id,
                data: data.clone(),
            };
            send(&bucket, key, command, "ETag")
        });
        // A retry after a lost answer finds the upload gone (404 `NoSuchUpload` on AWS, 403 on
        // s3s-fs): whatever the failure, if the object is what these parts make, it is ours.
        let err = match result {
            Ok(etag) => return Ok(etag),
            Err(err) => err,
        };
        if let Ok((found, _)) = self.head(key)
            && ours.as_deref() == Some(found.as_str())
        {
            return Ok(found);
        }
        match err {
            Error::Status {
                status: 409 | 412, ..
            } => Err(Error::Fenced { key: key.into() }),
            // If-Match on a missing key (AWS, moto): someone deleted our tail.
            Error::Status {
                status: 404,
                ref code,
                ..
            } if code != "NoSuchUpload" && matches!(expect, Expect::Etag(_)) => {
                Err(Error::Fenced { key: key.into() })
            }
            err => Err(err),
        }
    }

    /// Aborts the upload, best effort: what is left is removed by the bucket's
    /// `AbortIncompleteMultipartUpload` lifecycle rule, if it has one.
    pub(crate) fn abort(&self, key: &str, id: &str) {
        let result = self.request("ABORT-UPLOAD", key, 0, |bucket| {
            let command = Command::AbortMultipartUpload { upload_id: id };
            AttoRequest::new(bucket, key, command)?.response().map(drop)
        });
        if let Err(err) = result {
            log::warn!("could not abort an upload to {key}: {err}");
        }
    }
}

/// Sends `command`, whose body is `body`, as rust-s3's `AttoRequest::response` does, but from
/// the caller's bytes: rust-s3 copies every body first, which would double the memory of each
/// part in flight.
fn send_borrowed(
    bucket: &Bucket,
    key: &str,
    command: Command<'_>,
    body: &[u8],
) -> Result<attohttpc::Response, S3Error> {
    let request = AttoRequest::new(bucket, key, command)?;
    let mut session = attohttpc::Session::new();
    for (name, value) in request.headers()?.iter() {
        session.header(name, value);
    }
    if let Some(timeout) = bucket.request_timeout {
        session.timeout(timeout);
    }
    let response = session.put(request.url()?).bytes(body).send()?;
    if !response.status().is_success() {
        let status = response.status().as_u16();
        return Err(S3Error::HttpFailWithBody(status, response.text()?));
    }
    Ok(response)
}

/// Sends one request and returns the text of element `tag` in its answer, with the quotes
/// that XML may escape. An answer without it was cut short, and is retried as such; an error
/// in the body of a 200 (S3 may send one for a Complete) is retried as the 500 it is.
fn send(bucket: &Bucket, key: &str, command: Command<'_>, tag: &str) -> Result<String, S3Error> {
    let body = AttoRequest::new(bucket, key, command)?.response()?.text()?;
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

/// The ETag S3 gives the object completed from `parts`: the MD5 of their binary ETags, then the
/// number of parts. A copied part's ETag may be the source's own multipart ETag (SeaweedFS):
/// its digest counts, not its `-N`. `None` if a part's ETag is no MD5 (a server of another
/// kind).
fn multipart_etag(parts: &[Part]) -> Option<String> {
    let mut digests = Vec::with_capacity(16 * parts.len());
    for part in parts {
        let etag = part.etag.trim_matches('"');
        let hex = etag.split_once('-').map_or(etag, |(hex, _)| hex);
        if hex.len() != 32 {
            return None;
        }
        for pair in hex.as_bytes().chunks(2) {
            let pair = std::str::from_utf8(pair).ok()?;
            digests.push(u8::from_str_radix(pair, 16).ok()?);
        }
    }
    Some(format!("\"{:x}-{}\"", md5::compute(&digests), parts.len()))
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

    fn part(part_number: u32, etag: &str) -> Part {
        Part {
            part_number,
            etag: etag.into(),
        }
    }

    #[test]
    fn multipart_etag_is_the_md5_of_the_part_md5s() {
        // Two parts whose bodies are "a" and "b".
        let a = format!("\"{:x}\"", md5::compute(b"a"));
        let b = format!("\"{:x}\"", md5::compute(b"b"));
        let mut both = md5::compute(b"a").0.to_vec();
        both.extend_from_slice(&md5::compute(b"b").0);
        let expected = format!("\"{:x}-2\"", md5::compute(&both));
        assert_eq!(
            multipart_etag(&[part(1, &a), part(2, &b)]),
            Some(expected.clone())
        );
        // SeaweedFS names a copied part by its source's ETag, and counts only the digest.
        let copied = format!("{}-3", a.trim_end_matches('"'));
        assert_eq!(
            multipart_etag(&[part(1, &copied), part(2, &b)]),
            Some(expected)
        );
        assert_eq!(multipart_etag(&[part(1, "\"not-an-md5\"")]), None);
    }

    #[test]
    fn keys_are_uri_encoded_but_slashes() {
        assert_eq!(uri_encode("dir/a b+c-00.log"), "dir/a%20b%2Bc-00.log");
        assert_eq!(uri_encode("é"), "%C3%A9");
    }
}
