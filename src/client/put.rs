//! Writing an object whole (one PUT), under a condition, and settling a write whose answer was
//! lost by the writer identity it records.

use s3::command::Command;
use ureq::http::header::{IF_MATCH, IF_NONE_MATCH};
use ureq::http::{HeaderMap, HeaderValue};

use super::{Crc, OCTETS, S3Client};
use crate::Error;
use crate::store::{Expect, Head, Meta};

impl S3Client {
    /// Overwrites object `seq` with `body` and returns its new ETag. Every PUT records `meta`
    /// and this handle's identity in the object's metadata. With conditional writes on, the PUT carries `expect`, and a failed condition
    /// is [`Error::Fenced`] unless the object turns out to be this handle's: an earlier attempt
    /// succeeded but its answer was lost (then it is done, or sent again on top of it).
    pub(crate) fn put(
        &self,
        seq: u64,
        meta: Meta,
        body: &[u8],
        expect: Expect<'_>,
    ) -> Result<String, Error> {
        let key = self.key(seq);
        let crc = Crc::of(body);
        // What the PUT expects: `None` for no object, else its ETag.
        let mut expected = match expect {
            Expect::Absent => None,
            Expect::Etag(etag) => Some(etag.to_owned()),
        };
        loop {
            let expect = expected.as_deref().map_or(Expect::Absent, Expect::Etag);
            let mut headers = self.identity(meta);
            self.add_condition(&mut headers, expect);
            crc.add_to(&mut headers);
            let headers = Some(headers);
            let result = self.request("PUT", &key, body.len() as u64, |bucket| {
                // The body is signed and sent by the transport, not hashed by rust-s3.
                let command = Command::PutObject {
                    content: &[],
                    content_type: OCTETS,
                    custom_headers: headers.clone(),
                    multipart: None,
                };
                let answer =
                    self.wire
                        .send(bucket, &key, command, Some(body), &HeaderMap::new())?;
                let etag = answer.header("etag").map(str::to_owned);
                answer.finish();
                Ok(etag)
            });
            let err = match result {
                Ok(Some(etag)) if !etag.is_empty() => return Ok(self.wrote(&key, etag, crc)),
                // A server that sends no ETag: ask for it rather than assume an MD5.
                Ok(_) => return Ok(self.wrote(&key, self.head(&key)?.etag, crc)),
                Err(err) => err,
            };
            match err {
                // A 404 answers If-Match on a missing object (AWS, moto): someone deleted our
                // tail.
                Error::Status { status: 404, .. } if expected.is_some() => {
                    return Err(Error::Fenced { key, lost: 0 });
                }
                // Only a failed condition is a fence: a 409 that outlasted its retries says
                // nothing of it, and is returned as it is.
                Error::Status { status: 412, .. } => match self.settle(&key, body.len() as u64)? {
                    Settled::Done(etag) => return Ok(self.wrote(&key, etag, crc)),
                    Settled::Moved { etag, .. } if expected.as_ref() != Some(&etag) => {
                        expected = Some(etag);
                    }
                    _ => return Err(Error::Fenced { key, lost: 0 }),
                },
                err => return Err(err),
            }
        }
    }

    /// Remembers that version `etag` of `key` holds bytes whose checksum is `crc`, and returns
    /// the ETag.
    pub(super) fn wrote(&self, key: &str, etag: String, crc: Crc) -> String {
        self.known.remember(key, &etag, crc);
        etag
    }

    /// Settles a write of `size` bytes to `key` that may or may not have landed: whether the
    /// object holds it ([`Settled::Done`]), holds a shorter write of this handle's, which the
    /// write can build on ([`Settled::Moved`]), or is someone else's.
    pub(crate) fn settle(&self, key: &str, size: u64) -> Result<Settled, Error> {
        let head = match self.head(key) {
            Err(Error::Status { status: 404, .. }) => return Ok(Settled::Theirs),
            head => head?,
        };
        Ok(match head {
            Head { ours: true, .. } if head.size == size => Settled::Done(head.etag),
            Head { ours: true, .. } if head.size < size => Settled::Moved {
                etag: head.etag,
                size: head.size,
            },
            _ => Settled::Theirs,
        })
    }

    /// Adds to `headers` what a write expecting `expect` carries when writers are fenced:
    /// `If-None-Match: *` or `If-Match: <etag>`.
    pub(super) fn add_condition(&self, headers: &mut HeaderMap, expect: Expect<'_>) {
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
}

/// What a HEAD tells of a write that may or may not have landed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Settled {
    /// It landed: the object is this handle's, as large as the write, with this ETag.
    Done(String),
    /// A shorter write of this handle's landed (its answer was lost too): the object is the
    /// first `size` bytes of the write, with this ETag.
    Moved { etag: String, size: u64 },
    /// Someone else wrote the object, or deleted it.
    Theirs,
}
