//! The S3 access layer: the requests a stream needs, each with its deadline, retried under one
//! policy, logged, and with its failure turned into an [`Error`].

use std::hash::{BuildHasher, RandomState};
use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use s3::Bucket;
use s3::command::Command;
use s3::error::S3Error;
use ureq::http::header::{IF_MATCH, IF_NONE_MATCH};
use ureq::http::{HeaderMap, HeaderName, HeaderValue};

use crate::layout::{Layout, PendingUpload, Segment};
use crate::store::{Expect, Head, Hint, MAX_COPY, Meta, Part, Recorded, Store, Tail, Whole};
use crate::{Error, Options};

mod append;
mod batch;
mod checksum;
#[cfg(test)]
mod contract;
mod express;
mod hint;
mod listing;
#[cfg(test)]
pub(crate) mod mem;
mod open;
mod renew;
mod retry;
mod sign;
mod wire;

pub(crate) use checksum::{Crc, Running};
pub(crate) use express::is_directory_bucket;
pub(crate) use wire::Transport;

/// How much of a GET's body is read between two checks for cancellation.
const BODY_SLICE: usize = 256 * 1024;

/// The user metadata in which every object records the stream offset of its first byte, as a
/// decimal: offsets then survive the deletion of older objects.
pub(crate) const START_HEADER: &str = "x-amz-meta-s3syncr-start";

/// The user metadata in which every object names the handle that wrote it last: a random
/// identifier per [`S3Client`]. A write whose answer was lost is settled by it (a HEAD), not by
/// comparing ETags with an MD5, which SSE-KMS and SSE-C objects do not have.
pub(crate) const WRITER_HEADER: &str = "x-amz-meta-s3syncr-writer";

/// The user metadata in which every object records the size at which its writer seals it (the
/// writer's [`Options::seal_size`]): a follower knows from an object's size whether
/// it can still grow, whatever its own seal size.
pub(crate) const SEAL_HEADER: &str = "x-amz-meta-s3syncr-seal";

const OCTETS: &str = "application/octet-stream";

/// One stream's view of a bucket in S3.
pub(crate) struct S3Client {
    bucket: renew::Handle,
    wire: Arc<dyn Transport>,
    layout: Layout,
    options: Options,
    /// This handle's [`WRITER_HEADER`].
    writer: String,
    /// The checksums of the objects this handle wrote last.
    known: checksum::Known,
    /// The most bytes copied into one part: S3's [`MAX_COPY`], lowered only by tests, to
    /// copy in several ranges without objects of gigabytes.
    pub(crate) max_copy: u64,
    /// In a directory bucket (S3 Express One Zone), its session: flushes are appends.
    sessions: Option<express::Sessions>,
    /// What the open found, for the first requests after it.
    opened: open::Opened,
}

impl S3Client {
    /// Fails if the CA certificates to trust cannot be read.
    pub(crate) fn new(bucket: Bucket, layout: Layout, options: Options) -> Result<S3Client, Error> {
        let wire = wire::Wire::shared(options.ca_file.as_deref())?;
        Ok(S3Client::with_transport(
            bucket,
            layout,
            options,
            Arc::new(wire),
        ))
    }

    /// A client that sends through `wire` (the tests' in-memory S3, say).
    pub(crate) fn with_transport(
        bucket: Bucket,
        layout: Layout,
        options: Options,
        wire: Arc<dyn Transport>,
    ) -> S3Client {
        let directory = (options.directory_bucket).unwrap_or(is_directory_bucket(&bucket.name()));
        // A stepped handle's identity comes from its seed too, so that a replay matches.
        let writer = (options.stepped)
            .map_or_else(random_id, |seed| format!("{:032x}", crate::draw::mix(seed)));
        S3Client {
            sessions: directory.then(express::Sessions::default),
            bucket: renew::Handle::new(bucket),
            wire,
            layout,
            options,
            writer,
            known: checksum::Known::default(),
            max_copy: MAX_COPY,
            opened: open::Opened::default(),
        }
    }

    pub(crate) fn bucket_name(&self) -> String {
        self.bucket.name()
    }

    pub(crate) fn key(&self, seq: u64) -> String {
        self.layout.key(seq)
    }

    /// Fails with [`Error::BucketNotFound`] (or the access error) unless the bucket answers.
    /// It is a LIST of the stream's first key, which names the stream's first object when it is
    /// one (`Some(None)`: it has none; `None`: the key told nothing, or a directory bucket,
    /// which lists in no order).
    pub(crate) fn check_bucket(&self) -> Result<Option<Option<Segment>>, Error> {
        match self.first_page(None, 1)? {
            open::FirstPage::Found(first) if self.sessions.is_none() => Ok(Some(first)),
            _ => Ok(None),
        }
    }

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
    fn wrote(&self, key: &str, etag: String, crc: Crc) -> String {
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

    /// The metadata every object a writer creates carries: `meta` and this handle.
    pub(crate) fn identity(&self, meta: Meta) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            HeaderName::from_static(START_HEADER),
            HeaderValue::from(meta.start),
        );
        headers.insert(
            HeaderName::from_static(SEAL_HEADER),
            HeaderValue::from(meta.seal),
        );
        // A random hex identifier is always a valid header value.
        if let Ok(writer) = HeaderValue::from_str(&self.writer) {
            headers.insert(HeaderName::from_static(WRITER_HEADER), writer);
        }
        headers
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
                start: parse_start(&key, answer.header(START_HEADER)),
                seal: parse_start(&key, answer.header(SEAL_HEADER)),
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
                start: parse_start(key, answer.header(START_HEADER)),
                ours: answer.header(WRITER_HEADER) == Some(self.writer.as_str()),
                seal: parse_start(key, answer.header(SEAL_HEADER)),
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

    /// Deletes object `seq`. Deleting a missing object succeeds in S3, so a retry after a lost
    /// answer does too; a server that answers 404 instead is taken at its word as well.
    pub(crate) fn delete(&self, seq: u64) -> Result<(), Error> {
        let key = self.key(seq);
        let result = self.request("DELETE", &key, 0, |bucket| {
            let command = Command::DeleteObject;
            self.wire
                .send(bucket, &key, command, None, &HeaderMap::new())
                .map(wire::Answer::finish)
        });
        match result {
            Err(Error::Status { status: 404, .. }) => Ok(()),
            other => other,
        }
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
                start: parse_start(&key, answer.header(START_HEADER)),
                seal: parse_start(&key, answer.header(SEAL_HEADER)),
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
            Err(Error::Status { status: 416, .. }) => Err(Error::SegmentChanged {
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
    ) -> Result<Option<Tail>, Error> {
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
            let recorded = parse_start(&key, answer.header(START_HEADER));
            let seal = parse_start(&key, answer.header(SEAL_HEADER));
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
            Ok((size > from).then_some(Tail {
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

/// Asks a GET or HEAD for the object's stored checksum.
fn checksum_mode() -> HeaderMap {
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
fn check_range(status: u16, content_range: Option<&str>, from: u64) -> Result<(), S3Error> {
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

/// A random identifier: 128 bits as hex. Each `RandomState` is keyed afresh from the
/// operating system's randomness, so no random-number crate is needed.
fn random_id() -> String {
    let hash = |salt: u64| RandomState::new().hash_one((salt, Instant::now()));
    format!("{:016x}{:016x}", hash(0), hash(1))
}

/// A recorded offset or size. A value that is no decimal number was not written by s3-syncr:
/// it counts as none (a start is then where the predecessor ends), with a warning.
fn parse_start(key: &str, value: Option<&str>) -> Option<u64> {
    let value = value?;
    let parsed = value.trim().parse().ok();
    if parsed.is_none() {
        log::warn!("{key}: ignoring {START_HEADER} {value:?}: not a decimal offset");
    }
    parsed
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

/// Each method forwards to the inherent one of the same name.
impl Store for S3Client {
    fn bucket_name(&self) -> String {
        S3Client::bucket_name(self)
    }
    fn key(&self, seq: u64) -> String {
        S3Client::key(self, seq)
    }
    fn list(&self, after: Option<u64>) -> Result<Vec<Segment>, Error> {
        S3Client::list(self, after)
    }
    fn list_page_after(
        &self,
        after: Option<u64>,
        max: usize,
    ) -> Result<(Vec<Segment>, bool), Error> {
        S3Client::list_page_after(self, after, max)
    }
    fn list_uploads(&self) -> Result<Vec<PendingUpload>, Error> {
        S3Client::list_uploads(self)
    }
    fn first_after(&self, seq: u64) -> Result<Option<u64>, Error> {
        S3Client::first_after(self, seq)
    }
    fn read_hint(&self) -> Result<Option<Hint>, Error> {
        S3Client::read_hint(self)
    }
    fn write_hint(&self, hint: Hint) -> Result<(), Error> {
        S3Client::write_hint(self, hint)
    }
    fn next_after(&self, seq: u64) -> Result<Option<(u64, Option<u64>)>, Error> {
        S3Client::next_after(self, seq)
    }
    fn stat(&self, seq: u64) -> Result<Head, Error> {
        S3Client::stat(self, seq)
    }
    fn get_whole(&self, seq: u64) -> Result<Whole, Error> {
        S3Client::get_whole(self, seq)
    }
    fn get_range(
        &self,
        seq: u64,
        start: u64,
        out: &mut [u8],
        cancel: Option<&AtomicBool>,
        crc: Option<&mut Running>,
    ) -> Result<Recorded, Error> {
        S3Client::get_range(self, seq, start, out, cancel, crc)
    }
    fn get_tail(&self, seq: u64, from: u64, out: &mut [u8]) -> Result<Option<Tail>, Error> {
        S3Client::get_tail(self, seq, from, out)
    }
    fn delete(&self, seq: u64) -> Result<(), Error> {
        S3Client::delete(self, seq)
    }
    fn delete_all(&self, seqs: &[u64]) -> Result<(), Error> {
        S3Client::delete_all(self, seqs)
    }
    fn overwrite(
        &self,
        seq: u64,
        meta: Meta,
        only_in_s3: usize,
        body: &[u8],
        in_s3: usize,
        expect: Expect<'_>,
    ) -> Result<String, Error> {
        S3Client::overwrite(self, seq, meta, only_in_s3, body, in_s3, expect)
    }
    fn create_upload(&self, key: &str, meta: Meta) -> Result<String, Error> {
        S3Client::create_upload(self, key, meta)
    }
    fn copy_parts(&self, size: u64) -> u32 {
        S3Client::copy_parts(self, size)
    }
    fn copy(&self, key: &str, id: &str, size: u64, etag: &str) -> Result<Vec<Part>, Error> {
        S3Client::copy(self, key, id, size, etag)
    }
    fn upload_part(&self, key: &str, id: &str, number: u32, bytes: &[u8]) -> Result<Part, Error> {
        S3Client::upload_part(self, key, id, number, bytes)
    }
    fn complete(
        &self,
        key: &str,
        id: &str,
        parts: &[Part],
        expect: Expect<'_>,
        size: u64,
    ) -> Result<String, Error> {
        S3Client::complete(self, key, id, parts, expect, size)
    }
    fn abort(&self, key: &str, id: &str) {
        S3Client::abort(self, key, id)
    }
    fn appends(&self) -> bool {
        self.sessions.is_some()
    }
    fn stepped(&self) -> bool {
        self.options.stepped.is_some()
    }
    fn first_object(&self) -> Result<Option<Segment>, Error> {
        S3Client::first_object(self)
    }
    fn opened_first(&self) -> Option<Option<Segment>> {
        S3Client::opened_first(self)
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
