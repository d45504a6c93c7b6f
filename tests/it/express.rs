//! S3 Express One Zone directory buckets, on the in-process server's emulation of them (see
//! `tests/server/src/express.rs`): a flush is one append of exactly the bytes S3 lacks, writers
//! are fenced by the write offset, an object that has the most parts S3 allows is sealed, and
//! every request carries session credentials that are renewed before they lapse.

use crate::common::*;

use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::time::Duration;

use s3_syncr::{Error, Options, Storage};
use s3_syncr_test_server::{Fault, Proxy, Request};

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
        assert_eq!(
            (sent[0].op, sent[0].ok, sent[0].bytes),
            ("PutObject", true, 100)
        );
        written.extend_from_slice(&record);
        requests.extend(flush);
    }
    assert_eq!(
        uploaded(&requests),
        written.len() as u64,
        "1.00 byte uploaded per byte"
    );
    log.close().unwrap();
    assert_eq!(stream_contents(&bucket, "app.log"), written);
    assert_eq!(object_sizes(&bucket, "app.log"), [2000]);
}

#[test]
fn writers_racing_on_the_end_keep_the_contention_rule() {
    let server = Server::start();
    let bucket = server.new_directory_bucket();
    let mut seed = open(&bucket, "race.log", 8);
    seed.write_all(b"seed\n").unwrap();
    seed.close().unwrap();
    // Both continue the same tail; the first flush wins, the other's offset is stale.
    let mut first = open(&bucket, "race.log", 8);
    let mut second = open(&bucket, "race.log", 8);
    first.write_all(b"first\n").unwrap();
    second.write_all(b"second\n").unwrap();
    first.flush().unwrap();
    let err = second.flush().unwrap_err();
    assert!(
        matches!(inner(&err), Error::Fenced { lost: 0, .. }),
        "{err}"
    );
    assert_eq!(
        second.unflushed(),
        b"second\n",
        "nothing of the loser is lost"
    );
    first.write_all(b"again\n").unwrap();
    first.close().unwrap();
    assert_eq!(
        stream_contents(&bucket, "race.log"),
        b"seed\nfirst\nagain\n"
    );

    // Both start the stream's first object: offset 0 creates it once.
    let mut first = open(&bucket, "new.log", 8);
    let mut second = open(&bucket, "new.log", 8);
    first.write_all(b"first\n").unwrap();
    second.write_all(b"second\n").unwrap();
    second.flush().unwrap();
    let err = first.flush().unwrap_err();
    assert!(matches!(inner(&err), Error::Fenced { .. }), "{err}");
    assert_eq!(stream_contents(&bucket, "new.log"), b"second\n");
}

#[test]
fn an_append_whose_answer_was_lost_is_settled_by_its_size_and_checksum() {
    let server = Server::start();
    let bucket = server.new_directory_bucket();
    let mut log = open(&bucket, "lost.log", 8);
    log.write_all(b"one\n").unwrap();
    log.flush().unwrap();
    // Another handle continues the object (so its writer metadata names someone else), then
    // this one's append lands behind its back, as if its answer had been lost: the retry
    // finds its offset taken, and the HEAD's size and CRC32C say the bytes are its own.
    let mut other = open(&bucket, "lost.log", 8);
    other.write_all(b"two\n").unwrap();
    other.flush().unwrap();
    drop(other);
    let mut again = open(&bucket, "lost.log", 8);
    again.write_all(b"three\n").unwrap();
    let mut twin = open(&bucket, "lost.log", 8);
    twin.write_all(b"three\n").unwrap();
    twin.flush().unwrap();
    again
        .flush()
        .expect("the same bytes at the same offset: settled as landed");
    again.write_all(b"four\n").unwrap();
    again.close().unwrap();
    assert_eq!(
        stream_contents(&bucket, "lost.log"),
        b"one\ntwo\nthree\nfour\n"
    );
}

#[test]
fn lost_answers_of_appends_are_settled_without_a_fence_or_a_double() {
    let server = Server::start();
    let proxy = Proxy::start(&server);
    let bucket = server.new_directory_bucket();
    // Another handle creates the object: its writer metadata never names the one under test.
    let mut acked = b"created elsewhere\n".to_vec();
    let mut first = open(&bucket, "lost.log", 8);
    first.write_all(&acked).unwrap();
    first.close().unwrap();
    let via = proxy.bucket(&server, &bucket.name());
    let mut log = Storage::new(via, "lost.log", Options::default()).unwrap();
    let faults = [
        Fault::DropResponse,
        Fault::CutResponse(10),
        Fault::Status(500),
    ];
    for (i, fault) in faults.into_iter().enumerate() {
        let record = format!("record {i}\n");
        log.write_all(record.as_bytes()).unwrap();
        proxy.inject(Some("PUT"), fault);
        log.flush().unwrap_or_else(|e| panic!("{fault:?}: {e}"));
        acked.extend_from_slice(record.as_bytes());
        assert_eq!(stream_contents(&bucket, "lost.log"), acked, "{fault:?}");
    }
    assert_eq!(proxy.injected(), faults.len());
    log.close().unwrap();
}

#[test]
fn an_object_with_the_most_parts_is_sealed_and_the_stream_moves_on() {
    let server = Server::start();
    server.set_append_part_limit(5);
    let bucket = server.new_directory_bucket();
    let mut log = open(&bucket, "parts.log", 8);
    let mut written = Vec::new();
    for n in 0..12 {
        let record = format!("record {n:02}\n").into_bytes();
        log.write_all(&record).unwrap();
        log.flush().unwrap();
        written.extend_from_slice(&record);
    }
    log.close().unwrap();
    let refused = server
        .take_requests()
        .into_iter()
        .filter(|r| r.op == "PutObject" && !r.ok);
    assert_eq!(refused.count(), 2, "one TooManyParts per full object");
    assert_eq!(object_sizes(&bucket, "parts.log"), [50, 50, 20]);
    assert_eq!(stream_contents(&bucket, "parts.log"), written);
    // A new handle continues the last object, and seals it in turn.
    let mut log = open(&bucket, "parts.log", 8);
    for n in 12..16 {
        log.write_all(format!("record {n:02}\n").as_bytes())
            .unwrap();
        log.flush().unwrap();
    }
    log.close().unwrap();
    assert_eq!(object_sizes(&bucket, "parts.log"), [50, 50, 50, 10]);
}

#[test]
fn sessions_are_created_once_and_renewed_before_they_lapse() {
    let server = Server::start();
    server.set_session_life(Duration::from_secs(2));
    let bucket = server.new_directory_bucket();
    let mut log = open(&bucket, "session.log", 8);
    for _ in 0..3 {
        log.write_all(b"record\n").unwrap();
        log.flush().unwrap();
    }
    let sessions =
        |requests: &[Request]| requests.iter().filter(|r| r.op == "CreateSession").count();
    assert_eq!(
        sessions(&server.take_requests()),
        1,
        "one session for many requests"
    );
    // Renewed half-way through its life: the server refuses a lapsed one.
    std::thread::sleep(Duration::from_millis(1200));
    log.write_all(b"record\n").unwrap();
    log.flush().unwrap();
    let requests = server.take_requests();
    assert_eq!(sessions(&requests), 1, "{requests:?}");
    assert!(requests.iter().all(|r| r.ok), "{requests:?}");
    log.close().unwrap();
}

#[test]
fn a_directory_bucket_refuses_requests_without_a_session() {
    let server = Server::start();
    let bucket = server.new_directory_bucket();
    let plain = Options::builder()
        .with_directory_bucket(Some(false))
        .build()
        .unwrap();
    let err = Storage::new(bucket.clone(), "app.log", plain).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    // Session requests to a general-purpose bucket are refused too: its name says which.
    let general = server.new_bucket();
    let express = Options::builder()
        .with_directory_bucket(Some(true))
        .build()
        .unwrap();
    assert!(Storage::new(general, "app.log", express).is_err());
}

#[test]
fn large_writes_stream_out_as_appends_of_a_part() {
    let server = Server::start();
    let bucket = server.new_directory_bucket();
    let options = Options::builder()
        .with_seal_size(64 * MIB)
        .with_part_size(5 * MIB)
        .build()
        .unwrap();
    let mut log = Storage::new(bucket.clone(), "large.log", options).unwrap();
    let data = pattern(17 * MIB + 3, 7);
    server.take_requests();
    log.write_all(&data).unwrap();
    log.flush().unwrap();
    let requests = server.take_requests();
    let puts: Vec<u64> = (requests.iter())
        .filter(|r| r.op == "PutObject")
        .map(|r| r.bytes)
        .collect();
    assert!(puts.iter().all(|&n| n <= 5 * MIB as u64), "{puts:?}");
    assert_eq!(puts.len(), 4, "{puts:?}");
    assert_eq!(uploaded(&requests), data.len() as u64);
    assert!(
        !requests
            .iter()
            .any(|r| r.op.contains("Multipart") || r.op == "UploadPart")
    );
    // The flushed bytes left memory: a read fetches them from S3.
    log.seek(SeekFrom::Start(0)).unwrap();
    let mut back = Vec::new();
    log.read_to_end(&mut back).unwrap();
    assert!(back == data, "read back through the handle");
    log.close().unwrap();
    assert!(stream_contents(&bucket, "large.log") == data);
}
