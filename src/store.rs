//! The requests a stream makes, behind one trait: [`S3Client`](crate::client::S3Client) sends
//! them to S3 (or, in the tests, to the in-memory S3 below its wire). Each method keeps the
//! contract of the real request, retries and settling of lost answers included.

use std::sync::atomic::AtomicBool;

use crate::Error;
use crate::client::{Expect, Head, Meta, Part, Recorded, Running, S3Client, Tail, Whole};
use crate::layout::{PendingUpload, Segment};

/// What the writer, the reader and the index ask of a store; see the methods of the same
/// names on [`S3Client`] for each contract.
pub(crate) trait Store: Send + Sync {
    fn bucket_name(&self) -> String;
    fn key(&self, seq: u64) -> String;
    fn list(&self, after: Option<u64>) -> Result<Vec<Segment>, Error>;
    fn list_uploads(&self) -> Result<Vec<PendingUpload>, Error>;
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
    fn get_tail(&self, seq: u64, from: u64, out: &mut [u8]) -> Result<Option<Tail>, Error>;
    fn delete(&self, seq: u64) -> Result<(), Error>;
    fn overwrite(
        &self,
        seq: u64,
        meta: Meta,
        only_in_s3: usize,
        body: &[u8],
        in_s3: usize,
        expect: Expect<'_>,
    ) -> Result<String, Error>;
    fn create_upload(&self, key: &str, meta: Meta) -> Result<String, Error>;
    fn copy_part(&self, key: &str, id: &str, size: u64, etag: &str) -> Result<Part, Error>;
    fn upload_part(&self, key: &str, id: &str, number: u32, bytes: &[u8]) -> Result<Part, Error>;
    fn complete(
        &self,
        key: &str,
        id: &str,
        parts: &[Part],
        expect: Expect<'_>,
        size: u64,
    ) -> Result<String, Error>;
    fn abort(&self, key: &str, id: &str);
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
    fn list_uploads(&self) -> Result<Vec<PendingUpload>, Error> {
        S3Client::list_uploads(self)
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
    fn copy_part(&self, key: &str, id: &str, size: u64, etag: &str) -> Result<Part, Error> {
        S3Client::copy_part(self, key, id, size, etag)
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
}
