//! The S3 access layer: the requests a stream needs, each with its deadline, retried under one
//! policy, logged, and with its failure turned into an [`Error`].

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use s3::Bucket;

use crate::layout::{Layout, Object, PendingUpload};
use crate::store::{
    Expect, Head, Hint, MAX_COPY, Meta, Polled, Recorded, Store, UploadedPart, Whole,
};
use crate::{Error, Options};

mod append;
mod checksum;
#[cfg(test)]
mod contract;
mod delete;
mod express;
mod get;
mod hint;
mod listing;
#[cfg(test)]
pub(crate) mod mem;
mod meta;
mod open;
mod put;
mod renew;
mod retry;
mod sign;
mod upload;
mod wire;

pub(crate) use checksum::{Crc, Running};
pub(crate) use express::is_directory_bucket;
pub(crate) use meta::{SEAL_HEADER, START_HEADER, WRITER_HEADER};
pub(crate) use wire::Transport;

/// How much of a GET's body is read between two checks for cancellation.
const BODY_SLICE: usize = 256 * 1024;

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

    /// Whether the bucket is a directory bucket (S3 Express One Zone): its requests carry a
    /// session, a flush is an append, and its listings take no `start-after`.
    pub(crate) fn is_directory(&self) -> bool {
        self.sessions.is_some()
    }

    /// Fails with [`Error::BucketNotFound`] (or the access error) unless the bucket answers.
    /// It is a LIST of the stream's first key, which names the stream's first object when it is
    /// one (`Some(None)`: it has none; `None`: the key told nothing, or a directory bucket,
    /// which lists in no order).
    pub(crate) fn check_bucket(&self) -> Result<Option<Option<Object>>, Error> {
        match self.first_page(None, 1)? {
            open::FirstPage::Found(first) if self.sessions.is_none() => Ok(Some(first)),
            _ => Ok(None),
        }
    }
}

/// A random identifier: 128 bits as hex. Each `RandomState` is keyed afresh from the
/// operating system's randomness, so no random-number crate is needed.
fn random_id() -> String {
    let hash = |salt: u64| RandomState::new().hash_one((salt, Instant::now()));
    format!("{:016x}{:016x}", hash(0), hash(1))
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
    fn list(&self, after: Option<u64>) -> Result<Vec<Object>, Error> {
        S3Client::list(self, after)
    }
    fn list_page_after(
        &self,
        after: Option<u64>,
        max: usize,
    ) -> Result<(Vec<Object>, bool), Error> {
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
    fn get_tail(&self, seq: u64, from: u64, out: &mut [u8]) -> Result<Option<Polled>, Error> {
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
        released: usize,
        body: &[u8],
        mirrored: usize,
        expect: Expect<'_>,
    ) -> Result<String, Error> {
        S3Client::overwrite(self, seq, meta, released, body, mirrored, expect)
    }
    fn create_upload(&self, key: &str, meta: Meta) -> Result<String, Error> {
        S3Client::create_upload(self, key, meta)
    }
    fn copy_parts(&self, size: u64) -> u32 {
        S3Client::copy_parts(self, size)
    }
    fn copy(&self, key: &str, id: &str, size: u64, etag: &str) -> Result<Vec<UploadedPart>, Error> {
        S3Client::copy(self, key, id, size, etag)
    }
    fn upload_part(
        &self,
        key: &str,
        id: &str,
        number: u32,
        bytes: &[u8],
    ) -> Result<UploadedPart, Error> {
        S3Client::upload_part(self, key, id, number, bytes)
    }
    fn complete(
        &self,
        key: &str,
        id: &str,
        parts: &[UploadedPart],
        expect: Expect<'_>,
        size: u64,
    ) -> Result<String, Error> {
        S3Client::complete(self, key, id, parts, expect, size)
    }
    fn abort(&self, key: &str, id: &str) {
        S3Client::abort(self, key, id)
    }
    fn appends(&self) -> bool {
        self.is_directory()
    }
    fn stepped(&self) -> bool {
        self.options.stepped.is_some()
    }
    fn first_object(&self) -> Result<Option<Object>, Error> {
        S3Client::first_object(self)
    }
    fn opened_first(&self) -> Option<Option<Object>> {
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
}
