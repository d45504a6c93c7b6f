//! The requests a stream makes, behind one trait: [`S3Client`](crate::client::S3Client) sends
//! them to S3 (or, in the tests, to the in-memory S3 below its wire). Each method keeps the
//! contract of the real request, retries and settling of lost answers included.
//!
//! The types the trait speaks in live here with it, so that the core (writer, reader, index,
//! storage) imports this module alone, and the S3 layer (`client`) imports it, never the
//! other way round.

use std::sync::atomic::AtomicBool;

use crate::Error;
use crate::layout::{Object, PendingUpload};

mod crc;

pub(crate) use crc::{Crc, Running};

/// What the rest of the crate talks to: any [`Store`]; S3 itself is
/// [`S3Client`](crate::client::S3Client).
pub(crate) type Client = dyn Store;

/// Smallest part S3 accepts before the last one: the copied object must be at least this large.
pub(crate) const MIN_PART: usize = 5 * 1024 * 1024;

/// The most bytes S3 copies into one part (UploadPartCopy): a larger object is copied in
/// ranges, one part each.
pub(crate) const MAX_COPY: u64 = 5 << 30;

/// An object as one HEAD saw it: its size and ETag are of the same version.
#[derive(Debug, Clone)]
pub(crate) struct Head {
    pub(crate) size: u64,
    pub(crate) etag: String,
    /// The start offset it records, if any.
    pub(crate) start: Option<u64>,
    /// Whether this handle wrote it last: its first `size` bytes are then this handle's
    /// view of the object, since every write of a handle to an object extends the last one.
    pub(crate) ours: bool,
    /// The size at which its writer seals it, if it records one.
    pub(crate) seal: Option<u64>,
    /// The full-object checksum the server stores for it, if any.
    pub(crate) crc: Option<Crc>,
}

/// A part of a multipart upload, as S3 acknowledged it.
#[derive(Debug, Clone)]
pub(crate) struct UploadedPart {
    pub(crate) number: u32,
    pub(crate) etag: String,
    /// For a part copied from the object itself, the ETag of the version it copied.
    pub(crate) source: Option<String>,
    /// The checksum of its bytes, if known (a copied part's may not be).
    pub(crate) crc: Option<Crc>,
}

/// What every object a writer uploads records in its metadata: the stream offset of its first
/// byte ([`START_HEADER`](crate::client::START_HEADER)) and the size at which it is sealed ([`SEAL_HEADER`](crate::client::SEAL_HEADER)). The seal is the
/// object's, not the handle's: a writer that continues a tail keeps the seal it records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meta {
    pub(crate) start: u64,
    pub(crate) seal: u64,
}

/// A recent object, as the stream's hint names it: where a new handle starts listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hint {
    pub(crate) seq: u64,
    /// The start it records.
    pub(crate) start: u64,
}

/// What a PUT expects to find, when writers are fenced.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Expect<'a> {
    /// No object: `If-None-Match: *`.
    Absent,
    /// The object we wrote last: `If-Match: <etag>`.
    Etag(&'a str),
}

/// What an object records in its metadata, as a GET of it answers.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Recorded {
    /// The stream offset of its first byte (`None`: it records none).
    pub(crate) start: Option<u64>,
    /// The size at which its writer seals it.
    pub(crate) seal: Option<u64>,
    /// The full-object checksum the server stores for it, if the answer carried it.
    pub(crate) crc: Option<Crc>,
}

/// What a poll of an object past its known end found.
#[derive(Debug)]
pub(crate) struct Polled {
    /// How many bytes of the caller's buffer it filled.
    pub(crate) filled: usize,
    /// The object's size as of the answer.
    pub(crate) size: u64,
    /// The start offset the object records, if any.
    pub(crate) recorded: Option<u64>,
    /// The size at which its writer seals it, if it records one.
    pub(crate) seal: Option<u64>,
}

/// An object fetched whole: a tail to continue.
pub(crate) struct Whole {
    pub(crate) buf: Vec<u8>,
    pub(crate) etag: String,
    /// The start offset it records, if any.
    pub(crate) start: Option<u64>,
    /// The size at which it is sealed, if it records one.
    pub(crate) seal: Option<u64>,
}

/// What the writer, the reader and the index ask of a store; see the methods of the same
/// names on [`S3Client`](crate::client::S3Client) for each contract.
pub(crate) trait Store: Send + Sync {
    fn bucket_name(&self) -> String;
    fn key(&self, seq: u64) -> String;
    fn list(&self, after: Option<u64>) -> Result<Vec<Object>, Error>;
    /// One page of [`list`](Store::list), and whether more keys follow it.
    fn list_page_after(&self, after: Option<u64>, max: usize)
    -> Result<(Vec<Object>, bool), Error>;
    fn list_uploads(&self) -> Result<Vec<PendingUpload>, Error>;
    /// The stream's hint, if there is one of this stream (see `client/hint.rs`).
    fn read_hint(&self) -> Result<Option<Hint>, Error>;
    fn write_hint(&self, hint: Hint) -> Result<(), Error>;
    /// The stream's first object, if it has one (its `start` is not known: 0).
    fn first_object(&self) -> Result<Option<Object>, Error>;
    /// The first object as the open found it, if fresh; once (see `client/open.rs`).
    fn opened_first(&self) -> Option<Option<Object>>;
    /// The sequence number of the first object after `seq`, if there is one.
    fn first_after(&self, seq: u64) -> Result<Option<u64>, Error>;
    /// The first object after `seq`, with the start it records, if there is one.
    fn next_after(&self, seq: u64) -> Result<Option<(u64, Option<u64>)>, Error>;
    fn stat(&self, seq: u64) -> Result<Head, Error>;
    fn recorded_start(&self, seq: u64) -> Result<Option<u64>, Error> {
        Ok(self.stat(seq)?.start)
    }
    fn get_whole(&self, seq: u64) -> Result<Whole, Error>;
    fn get_range(
        &self,
        seq: u64,
        start: u64,
        out: &mut [u8],
        cancel: Option<&AtomicBool>,
        crc: Option<&mut Running>,
    ) -> Result<Recorded, Error>;
    fn get_tail(&self, seq: u64, from: u64, out: &mut [u8]) -> Result<Option<Polled>, Error>;
    fn delete(&self, seq: u64) -> Result<(), Error>;
    /// Deletes objects `seqs`, in as few requests as S3 allows.
    fn delete_all(&self, seqs: &[u64]) -> Result<(), Error>;
    fn overwrite(
        &self,
        seq: u64,
        meta: Meta,
        released: usize,
        body: &[u8],
        mirrored: usize,
        expect: Expect<'_>,
    ) -> Result<String, Error>;
    fn create_upload(&self, key: &str, meta: Meta) -> Result<String, Error>;
    /// How many parts a copy of `size` bytes takes: the numbers after them are the upload's
    /// own bytes'.
    fn copy_parts(&self, size: u64) -> u32;
    fn copy(&self, key: &str, id: &str, size: u64, etag: &str) -> Result<Vec<UploadedPart>, Error>;
    fn upload_part(
        &self,
        key: &str,
        id: &str,
        number: u32,
        bytes: &[u8],
    ) -> Result<UploadedPart, Error>;
    fn complete(
        &self,
        key: &str,
        id: &str,
        parts: &[UploadedPart],
        expect: Expect<'_>,
        size: u64,
    ) -> Result<String, Error>;
    fn abort(&self, key: &str, id: &str);
    /// Whether [`overwrite`](Store::overwrite) appends, sending only the bytes S3 lacks at
    /// any size, and may refuse to once the object has too many parts (a directory bucket).
    fn appends(&self) -> bool {
        false
    }
    /// Whether requests run one at a time in an order drawn from a seed (the simulator's
    /// handles): then none runs on a thread of its own.
    fn stepped(&self) -> bool {
        false
    }
}
