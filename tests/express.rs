//! S3 Express One Zone directory buckets, on the in-process server's emulation of them (see
//! `tests/server/src/express.rs`): a flush is one append of exactly the bytes S3 lacks, writers
//! are fenced by the write offset, an object that has the most parts S3 allows is sealed, and
//! every request carries session credentials that are renewed before they lapse.

mod common;

use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::time::Duration;

use common::*;
use s3::Bucket;
use s3_syncr::{Error, Options, Storage};
use s3_syncr_test_server::Request;

/// A handle on stream `name` of `bucket`, objects sealed at `seal` bytes.
fn open_sealed(bucket: &Bucket, name: &str, seal: usize) -> Storage {
    let options = Options::builder().with_seal_size(seal).build().unwrap();
    Storage::new(bucket.clone(), name, options).expect("open stream")
}

/// The bytes the requests uploaded (bodies of PUTs and parts).
fn uploaded(requests: &[Request]) -> u64 {
    requests.iter().map(|r| r.bytes).sum()
}

#[test]
fn a_flush_is_one_append_of_the_bytes_written() {
    let server = Server::start();
    let bucket = server.new_directory_bucket();
    let mut log = open(&bucket, "app.log", 8);
    let mut written = Vec::new();
    let mut requests = Vec::new();
    for n in 0..20 {
        let record = format!("{n:03} {}\n", "x".repeat(95)).into_bytes();
        assert_eq!(record.len(), 100);
        server.take_requests();
        log.write_all(&record).unwrap();
        log.flush().unwrap();
        let flush = server.take_requests();
        // The first write finds the stream's end (a LIST) first.
        let sent: Vec<_> = flush.iter().filter(|r| r.op != "ListObjectsV2").collect();
        assert_eq!(sent.len(), 1, "flush {n}: {flush:?}");
        assert_eq!((sent[0].op, sent[0].ok, sent[0].bytes), ("PutObject", true, 100));
        written.extend_from_slice(&record);
        requests.extend(flush);
    }
    assert_eq!(uploaded(&requests), written.len() as u64, "1.00 byte uploaded per byte");
    log.close().unwrap();
    assert_eq!(stream_contents(&bucket, "app.log"), written);
    assert_eq!(segment_sizes(&bucket, "app.log"), [2000]);
}
